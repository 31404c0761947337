"""Where a training dataset comes from: a path inside the data root, an http(s) URL, a public
Google Drive file link, or ``synthetic[:N]`` (generated flights, labelled as such).

The API checks a reference before queuing anything (:func:`check_reference`); the worker fetches
it (:func:`fetch`), and jobs that read a dataset again fetch it whole (:func:`fetch_dataset`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse, urlsplit

from flight_delay.data.download import AllowList, check_url_syntax, download, is_public, redact
from flight_delay.data.loading import FlightData, flights_from_frame, load_flights
from flight_delay.data.synthetic import make_synthetic_flights
from flight_delay.errors import InvalidDataset

SYNTHETIC = "synthetic"
DEFAULT_SYNTHETIC_FLIGHTS = 20_000
MAX_SYNTHETIC_FLIGHTS = 1_000_000
_DRIVE_FILE = re.compile(r"/file/d/([A-Za-z0-9_-]+)")


@dataclass(frozen=True)
class DatasetReference:
    """A checked dataset reference: ``kind`` is ``local``, ``url`` or ``synthetic``."""

    kind: str
    location: str  # resolved path, download URL, or number of synthetic flights
    original: str


MAX_PATH_LENGTH = 1024
MAX_NAME_LENGTH = 255


def check_reference(
    reference: str,
    data_root: str | Path,
    allow: AllowList = AllowList(),  # noqa: B008 - immutable
) -> DatasetReference:
    """Validate a dataset reference without fetching it.

    A URL whose host is an IP address is checked against the public ranges here already; host
    names are resolved and checked by the worker when it downloads.

    Raises:
        InvalidDataset: an unsupported scheme, a malformed URL, a path outside the data root, a
            missing file; messages never show the data root's location on the server.
    """
    reference = reference.strip()
    if not reference:
        raise InvalidDataset("dataset", "must not be empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in reference):
        raise InvalidDataset("dataset", "must not contain control characters (NUL, newline, ...)")
    if reference == SYNTHETIC or reference.startswith(SYNTHETIC + ":"):
        count = reference.partition(":")[2] or str(DEFAULT_SYNTHETIC_FLIGHTS)
        if not count.isdigit() or not 1000 <= int(count) <= MAX_SYNTHETIC_FLIGHTS:
            raise InvalidDataset(
                "dataset", f"synthetic:N needs N between 1000 and {MAX_SYNTHETIC_FLIGHTS}"
            )
        return DatasetReference(SYNTHETIC, count, reference)
    scheme, colon, _ = reference.partition(":")
    if (
        colon
        and len(scheme) > 1
        and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum()
    ):
        if scheme.lower() not in ("http", "https"):
            raise InvalidDataset(
                "dataset",
                f"unsupported scheme {scheme[:20]!r}; use a path, an http(s) URL or synthetic[:N]",
            )
        check_url_syntax(reference)
        host = urlsplit(reference).hostname or ""
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None and not is_public(literal) and not allow.allows(host, literal):
            raise InvalidDataset(
                redact(reference),
                "refused: not a public address; an operator can allow an internal mirror with "
                "FLIGHT_DELAY_DOWNLOAD_ALLOW_HOSTS",
            )
        return DatasetReference("url", _download_url(reference), reference)
    return DatasetReference("local", str(_local_path(reference, data_root)), reference)


def _local_path(reference: str, data_root: str | Path) -> Path:
    if len(reference) > MAX_PATH_LENGTH:
        raise InvalidDataset("dataset", f"a path of at most {MAX_PATH_LENGTH} characters")
    if any(len(part) > MAX_NAME_LENGTH for part in Path(reference).parts):
        raise InvalidDataset(
            "dataset", f"a path whose names have at most {MAX_NAME_LENGTH} characters"
        )
    # The caller's path must stay inside the root as written: relative, no "..". Symbolic links
    # inside the root are followed: only the operator places files there, and a link is the
    # usual way to point at a large file kept elsewhere.
    given = Path(reference)
    if given.is_absolute() or ".." in given.parts:
        raise InvalidDataset(
            reference, "the path is outside the data root (FLIGHT_DELAY_DATA_ROOT)"
        )
    root = Path(data_root).resolve()
    path = (root / given).resolve()
    try:
        exists = path.exists()
    except OSError:
        exists = False
    if not exists:
        raise InvalidDataset(
            reference,
            "no such file or folder inside the data root (FLIGHT_DELAY_DATA_ROOT); "
            '"synthetic" trains on generated flights',
        )
    return path


def _download_url(url: str) -> str:
    """Public Google Drive file links become direct download links; other URLs stay."""
    parsed = urlparse(url)
    if parsed.netloc in ("drive.google.com", "docs.google.com"):
        match = _DRIVE_FILE.search(parsed.path)
        ids = parse_qs(parsed.query).get("id", [])
        file_id = match.group(1) if match else (ids[0] if ids else None)
        if not file_id:
            raise InvalidDataset(url, "a Google Drive link must name a file (/file/d/<id>/...)")
        return f"https://drive.google.com/uc?export=download&id={file_id}"
    return url


def fetch(
    reference: DatasetReference,
    workdir: Path,
    max_bytes: int,
    timeout: float,
    allow: AllowList = AllowList(),  # noqa: B008 - immutable
) -> FlightData:
    """Load the dataset a reference names; URLs are downloaded into ``workdir`` first."""
    if reference.kind == SYNTHETIC:
        count = int(reference.location)
        data = flights_from_frame(
            make_synthetic_flights(count, seed=0), name=f"<synthetic:{count}>"
        )
        data.notes["synthetic"] = (
            f"{count} generated flights (flight_delay.data.make_synthetic_flights, seed 0); not real data"
        )
        return data
    if reference.kind == "local":
        try:
            data = load_flights(reference.location)
        except InvalidDataset as exc:
            # the caller named the file relative to the data root: show it so, not where it lives
            raise InvalidDataset(
                reference.original, exc.problem, column=exc.column, rows=exc.rows
            ) from None
        return _with_sources(
            data, [_as_given(source, reference) for source in data.fingerprint.sources]
        )
    shown = redact(reference.original)
    target = workdir / "download.csv"
    content_type = download(
        reference.location, target, max_bytes=max_bytes, deadline_seconds=timeout, allow=allow
    )
    if content_type.split(";")[0].strip() == "text/html" and target.stat().st_size < 1_000_000:
        # Drive answers large files with a confirmation page instead of the file
        raise InvalidDataset(
            shown, "the server sent an HTML page, not a data file (is the link public?)"
        )
    with target.open("rb") as head:
        if head.read(4) == b"PAR1":
            target = target.rename(target.with_suffix(".parquet"))
    try:
        data = load_flights(target)
    except InvalidDataset as exc:
        # never quote what a server sent: its bytes could be anything it wants shown to readers
        where = f"column '{exc.column}'" if exc.column else "its contents"
        raise InvalidDataset(
            shown, f"the downloaded file is not a usable SCL flight file (a problem with {where})"
        ) from None
    data.notes["downloaded_from"] = shown
    return _with_sources(data, [shown])


def _as_given(source: str, reference: DatasetReference) -> str:
    """A loaded file's name as the caller gave it (relative to the data root): the model's
    metadata and the API never show where the data root is on the server."""
    location = Path(reference.location)
    if location.is_dir():
        return str(Path(reference.original) / Path(source).relative_to(location))
    return reference.original


def _with_sources(data: FlightData, sources: list[str]) -> FlightData:
    data.fingerprint = dataclasses.replace(data.fingerprint, sources=tuple(sources))
    return data


def fetch_dataset(config: Mapping[str, Any], dataset: str) -> FlightData:
    """The flights a dataset reference names, checked and fetched as training does (the
    settings DATA_ROOT, DOWNLOAD_* of ``config``) through a scratch folder removed afterwards:
    what evaluation, drift and comparison jobs read."""
    allow = AllowList.parse(config["DOWNLOAD_ALLOW_HOSTS"])
    scratch = Path(tempfile.mkdtemp(prefix="dataset-"))
    try:
        reference = check_reference(dataset, config["DATA_ROOT"], allow)
        return fetch(
            reference,
            scratch,
            config["DOWNLOAD_MAX_BYTES"],
            config["DOWNLOAD_TIMEOUT_SECONDS"],
            allow,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
