"""Where a training dataset comes from: a path inside the data root, an http(s) URL, a public
Google Drive file link, or ``synthetic[:N]`` (generated flights, labelled as such).

The API checks a reference before queuing anything (:func:`check_reference`); the worker fetches
it (:func:`fetch`).
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

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


def check_reference(reference: str, data_root: str | Path) -> DatasetReference:
    """Validate a dataset reference without fetching it.

    Raises:
        InvalidDataset: an unsupported scheme, a path outside the data root, or a missing file.
    """
    reference = reference.strip()
    if not reference:
        raise InvalidDataset("dataset", "must not be empty")
    if reference == SYNTHETIC or reference.startswith(SYNTHETIC + ":"):
        count = reference.partition(":")[2] or str(DEFAULT_SYNTHETIC_FLIGHTS)
        if not count.isdigit() or not 1000 <= int(count) <= MAX_SYNTHETIC_FLIGHTS:
            raise InvalidDataset(
                reference, f"synthetic:N needs N between 1000 and {MAX_SYNTHETIC_FLIGHTS}"
            )
        return DatasetReference(SYNTHETIC, count, reference)
    parsed = urlparse(reference)
    if parsed.scheme in ("http", "https"):
        if not parsed.netloc:
            raise InvalidDataset(reference, "not a valid URL")
        return DatasetReference("url", _download_url(reference), reference)
    if parsed.scheme and len(parsed.scheme) > 1:  # "C:" style drive letters are not schemes
        raise InvalidDataset(
            reference, f"unsupported scheme {parsed.scheme!r}; use a path, http(s) or synthetic"
        )
    root = Path(data_root).resolve()
    path = (root / reference).resolve()
    if not path.is_relative_to(root):
        raise InvalidDataset(reference, f"the path is outside the data root {root}")
    if not path.exists():
        raise InvalidDataset(reference, f"no such file or folder inside the data root {root}")
    return DatasetReference("local", str(path), reference)


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


def fetch(reference: DatasetReference, workdir: Path, max_bytes: int, timeout: float) -> FlightData:
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
        return load_flights(reference.location)
    target = workdir / "download.csv"
    _download(reference.location, target, max_bytes, timeout)
    if target.read_bytes()[:4] == b"PAR1":
        target = target.rename(target.with_suffix(".parquet"))
    data = load_flights(target)
    data.notes["downloaded_from"] = reference.original
    return data


def _download(url: str, target: Path, max_bytes: int, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "flight-delay"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, target.open("wb") as out:
            copied = 0
            while chunk := response.read(1 << 20):
                copied += len(chunk)
                if copied > max_bytes:
                    raise InvalidDataset(url, f"larger than the {max_bytes} byte download limit")
                out.write(chunk)
            if response.headers.get_content_type() == "text/html" and copied < 1_000_000:
                # Drive answers large files with a confirmation page instead of the file
                raise InvalidDataset(
                    url, "the server sent an HTML page, not a data file (is the link public?)"
                )
    except urllib.error.HTTPError as exc:
        raise InvalidDataset(url, f"download failed: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise InvalidDataset(url, f"download failed: {exc}") from exc
