"""Downloading a dataset URL without becoming a proxy into the network the worker sits in.

- Only http and https, to public addresses: every address a host name resolves to is checked, and
  the connection goes to the checked address (a second lookup cannot swap in another one).
  Loopback, private, link-local, multicast, reserved and unspecified ranges are refused, on every
  redirect too, unless the host is listed in ``FLIGHT_DELAY_DOWNLOAD_ALLOW_HOSTS`` (internal mirrors).
- One total deadline for the whole download, redirects included, besides the size limit: a server
  that drips a byte every few seconds cannot hold a worker.
- Errors name the URL with its credentials redacted and never quote what the server sent.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

from flight_delay.errors import InvalidDataset

MAX_REDIRECTS = 5
MAX_URL_LENGTH = 2048
CHUNK = 1 << 16
#: query parameters whose values are secrets in the usual signed or token URLs
_SECRET_PARAMETERS = ("token", "key", "secret", "password", "passwd", "sig", "signature", "auth",
                      "credential", "x-amz-signature", "x-amz-credential", "x-goog-signature")  # fmt: skip

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def redact(url: str) -> str:
    """``url`` with its user info and secret-looking query values replaced by ``***``."""
    if "://" not in url:
        return url  # a path or synthetic:N
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = "***@" + netloc.rpartition("@")[2]
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode(
                [(k, "***" if _is_secret(k) else v) for k, v in pairs], safe="*", quote_via=quote
            )
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return "<an unparsable URL>"


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(secret in lowered for secret in _SECRET_PARAMETERS)


def check_url_syntax(url: str) -> None:
    """Raise InvalidDataset unless ``url`` is a well-formed http(s) URL (no lookup is made)."""
    shown = redact(url)
    if len(url) > MAX_URL_LENGTH:
        raise InvalidDataset("dataset", f"a URL of at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise InvalidDataset(
            shown, "a URL must not hold spaces or control characters (percent-encode them)"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidDataset(shown, f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidDataset(shown, "only http and https URLs can be downloaded")
    if not parts.hostname:
        raise InvalidDataset(shown, "not a valid URL: no host")
    if port == 0:
        raise InvalidDataset(shown, "not a valid URL: port 0")


@dataclass(frozen=True)
class AllowList:
    """Hosts a download may reach although they resolve to non-public addresses: host names
    (matched exactly, case-insensitively), IP addresses and networks (``10.2.0.0/16``)."""

    names: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, spec: str | Iterable[str]) -> AllowList:
        entries = spec.split(",") if isinstance(spec, str) else list(spec)
        names: set[str] = set()
        networks = []
        for entry in (e.strip().lower() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.add(entry.rstrip("."))
        return cls(frozenset(names), tuple(networks))

    def allows(self, host: str, address: IPAddress) -> bool:
        return host.lower().rstrip(".") in self.names or any(
            address in network for network in self.networks if network.version == address.version
        )


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def resolve_public(host: str, port: int, allow: AllowList, shown: str) -> list[IPAddress]:
    """The addresses to connect to; InvalidDataset if any address of ``host`` is not public
    (one private answer among public ones is still a way in) and ``host`` is not allowed."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidDataset(shown, f"download failed: cannot resolve the host ({exc})") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in answers]
    if not addresses:
        raise InvalidDataset(shown, "download failed: the host has no address")
    for address in addresses:
        if not is_public(address) and not allow.allows(host, address):
            raise InvalidDataset(
                shown,
                "refused: the host resolves to a non-public address (loopback, private, "
                "link-local, multicast or reserved); an operator can allow an internal mirror "
                "with FLIGHT_DELAY_DOWNLOAD_ALLOW_HOSTS",
            )
    return addresses


def _connect(addresses: list[IPAddress], port: int, timeout: float | None) -> socket.socket:
    """A connection to the first checked address that answers."""
    failure: OSError = OSError("no address")
    for address in addresses:
        try:
            return socket.create_connection((str(address), port), timeout)
        except OSError as exc:
            failure = exc
    raise failure


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the already-checked addresses, whatever the host name resolves to now."""

    def __init__(self, host: str, port: int, addresses: list[IPAddress], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses

    def connect(self) -> None:
        self.sock = _connect(self._addresses, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, addresses: list[IPAddress], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._addresses = addresses

    def connect(self) -> None:
        sock = _connect(self._addresses, self.port, self.timeout)
        # the certificate is checked against the host name, not the address
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def download(
    url: str,
    target: Path,
    *,
    max_bytes: int,
    deadline_seconds: float,
    allow: AllowList = AllowList(),
) -> str:
    """Download ``url`` into ``target`` within ``deadline_seconds`` in all.

    Returns:
        the response's content type.

    Raises:
        InvalidDataset: a refused address, an HTTP error, the size limit, the deadline, or any
            network failure; the message shows the redacted URL only.
    """
    shown = redact(url)
    check_url_syntax(url)
    deadline = time.monotonic() + deadline_seconds
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(current)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = resolve_public(host, port, allow, shown)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise InvalidDataset(
                shown, f"download failed: not finished within {deadline_seconds:g} s"
            )
        kind = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
        connection = kind(host, port, addresses, timeout=min(remaining, 30.0))
        try:
            path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
            connection.request(
                "GET",
                path,
                headers={"User-Agent": "flight-delay", "Host": parts.netloc.rpartition("@")[2]},
            )
            response = connection.getresponse()
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location")
                if not location:
                    raise InvalidDataset(
                        shown, f"download failed: HTTP {response.status} without a Location"
                    )
                current = urljoin(current, location)
                check_url_syntax(current)  # another scheme (file:, ftp:) is refused here
                continue
            if response.status != 200:
                raise InvalidDataset(
                    shown, f"download failed: HTTP {response.status} {response.reason}"
                )
            _copy(response, connection, target, max_bytes, deadline, deadline_seconds, shown)
            return response.getheader("Content-Type", "") or ""
        except InvalidDataset:
            raise
        except (OSError, http.client.HTTPException) as exc:
            if time.monotonic() >= deadline:
                raise InvalidDataset(
                    shown, f"download failed: not finished within {deadline_seconds:g} s"
                ) from None
            # the exception's text can quote the server's bytes (a bad status line): name it only
            raise InvalidDataset(shown, f"download failed: {type(exc).__name__}") from None
        finally:
            connection.close()
    raise InvalidDataset(shown, f"download failed: more than {MAX_REDIRECTS} redirects")


def _copy(
    response: http.client.HTTPResponse,
    connection: http.client.HTTPConnection,
    target: Path,
    max_bytes: int,
    deadline: float,
    deadline_seconds: float,
    shown: str,
) -> None:
    copied = 0
    with target.open("wb") as out:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise InvalidDataset(
                    shown, f"download failed: not finished within {deadline_seconds:g} s"
                )
            if connection.sock is not None:
                # each wait ends at the deadline; read1 returns what has arrived, so a slow drip
                # comes back to this check instead of waiting for a full chunk
                connection.sock.settimeout(min(remaining, 30.0))
            chunk = response.read1(CHUNK)
            if not chunk:
                return
            copied += len(chunk)
            if copied > max_bytes:
                raise InvalidDataset(shown, f"larger than the {max_bytes} byte download limit")
            out.write(chunk)
