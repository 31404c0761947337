"""Downloads reach public addresses only, within one deadline, and never quote what they fetched
(issue 7, findings 2 and 6). Real HTTP servers on 127.0.0.1, no mocks."""

from __future__ import annotations

import http.server
import ipaddress
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flight_delay.data.download import AllowList, check_url_syntax, download, is_public, redact
from flight_delay.errors import InvalidDataset, scrub_paths

LOOPBACK = AllowList.parse("localhost")


def serve(handle: Callable[[http.server.BaseHTTPRequestHandler], None]) -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            handle(self)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def secret_server() -> Iterator[int]:
    def handle(request: http.server.BaseHTTPRequestHandler) -> None:
        if request.path == "/redirect-to-ip":
            port = request.server.server_address[1]
            request.send_response(302)
            request.send_header("Location", f"http://127.0.0.1:{port}/secret")
            request.end_headers()
            return
        if request.path == "/redirect-to-file":
            request.send_response(302)
            request.send_header("Location", "file:///etc/passwd")
            request.end_headers()
            return
        body = b"TOP-SECRET-LINE,internal\n1,2\n"
        request.send_response(200)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    yield from serve(handle)


@pytest.fixture
def drip_server() -> Iterator[int]:
    def handle(request: http.server.BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Length", "1000")
        request.end_headers()
        try:
            for _ in range(1000):
                request.wfile.write(b"x")
                request.wfile.flush()
                time.sleep(0.3)
        except OSError:
            pass

    yield from serve(handle)


def test_loopback_is_refused_by_default(secret_server: int, tmp_path: Path) -> None:
    for url in (
        f"http://127.0.0.1:{secret_server}/secret",
        f"http://localhost:{secret_server}/secret",
        f"http://[::ffff:127.0.0.1]:{secret_server}/secret",
    ):
        with pytest.raises(InvalidDataset, match="non-public address"):
            download(url, tmp_path / "out", max_bytes=10_000, deadline_seconds=5)
    assert not (tmp_path / "out").exists()


def test_an_allowed_host_name_is_reached_but_its_address_is_not(
    secret_server: int, tmp_path: Path
) -> None:
    download(
        f"http://localhost:{secret_server}/data", tmp_path / "ok", max_bytes=10_000,
        deadline_seconds=5, allow=LOOPBACK,
    )  # fmt: skip
    assert (tmp_path / "ok").read_bytes().startswith(b"TOP-SECRET")
    with pytest.raises(InvalidDataset, match="non-public address"):
        download(
            f"http://127.0.0.1:{secret_server}/data", tmp_path / "no", max_bytes=10_000,
            deadline_seconds=5, allow=LOOPBACK,
        )  # fmt: skip


def test_every_redirect_is_checked(secret_server: int, tmp_path: Path) -> None:
    with pytest.raises(InvalidDataset, match="non-public address"):
        download(
            f"http://localhost:{secret_server}/redirect-to-ip", tmp_path / "out",
            max_bytes=10_000, deadline_seconds=5, allow=LOOPBACK,
        )  # fmt: skip
    with pytest.raises(InvalidDataset, match="only http and https"):
        download(
            f"http://localhost:{secret_server}/redirect-to-file", tmp_path / "out",
            max_bytes=10_000, deadline_seconds=5, allow=LOOPBACK,
        )  # fmt: skip


def test_the_deadline_is_total_not_per_read(drip_server: int, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidDataset, match=r"not finished within 1\.5 s"):
        download(
            f"http://localhost:{drip_server}/", tmp_path / "out", max_bytes=10_000,
            deadline_seconds=1.5, allow=LOOPBACK,
        )  # fmt: skip
    assert time.monotonic() - started < 3.0


def test_the_size_limit_holds(secret_server: int, tmp_path: Path) -> None:
    with pytest.raises(InvalidDataset, match="larger than the 10 byte download limit"):
        download(
            f"http://localhost:{secret_server}/data", tmp_path / "out", max_bytes=10,
            deadline_seconds=5, allow=LOOPBACK,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://[::1", "not a valid URL"),
        ("http://example.org:abc/x.csv", "not a valid URL"),
        ("http://example.org:0/x.csv", "port 0"),
        ("http://exa mple.org/x.csv", "spaces or control characters"),
        ("http://example.org/x\x00.csv", "spaces or control characters"),
        ("http:///x.csv", "no host"),
        ("ftp://example.org/x.csv", "only http and https"),
        ("http://example.org/" + "a" * 3000, "at most 2048 characters"),
    ],
)
def test_url_syntax(url: str, problem: str) -> None:
    with pytest.raises(InvalidDataset, match=problem):
        check_url_syntax(url)


def test_credentials_are_redacted() -> None:
    assert redact("https://alice:s3cret@example.org/f.csv") == "https://***@example.org/f.csv"
    shown = redact("https://example.org/f.csv?token=abc&X-Amz-Signature=def&month=3")
    assert "abc" not in shown and "def" not in shown and "month=3" in shown
    assert redact("flights/2017.csv") == "flights/2017.csv"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
        ("169.254.169.254", False), ("0.0.0.0", False), ("224.0.0.1", False), ("100.64.0.1", False),
        ("::1", False), ("fe80::1", False), ("fc00::1", False), ("::ffff:10.0.0.1", False),
        ("ff02::1", False), ("8.8.8.8", True), ("2001:4860:4860::8888", True),
    ],
)  # fmt: skip
def test_public_ranges(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_scrubbing_hides_roots_but_keeps_words_and_urls() -> None:
    """A relative root ("models") is hidden where it starts a path, never inside a URL path
    such as "POST /models" (which it once turned into "POST /<MODEL_DIR>")."""
    roots = {"MODEL_DIR": "models", "DATA_ROOT": "/srv/fd/data"}
    text = (
        "train one with POST /models; file models/abc/model.joblib and "
        f"{Path('models').resolve()}/x and /srv/fd/data/flights.csv"
    )
    assert scrub_paths(text, roots) == (
        "train one with POST /models; file <MODEL_DIR>/abc/model.joblib and "
        "<MODEL_DIR>/x and <DATA_ROOT>/flights.csv"
    )
