"""Read SCL flight files (a CSV, a folder of CSVs, a parquet file) into a validated frame.

Every problem a user can cause with a file becomes an :class:`InvalidDataset` naming the file, the
column and example rows, never a bare pandas traceback.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from flight_delay.data import schema
from flight_delay.errors import InvalidDataset

#: how many example rows an error message lists
EXAMPLES = 5
_SNIFF_BYTES = 64 * 1024
_PARQUET_MAGIC = b"PAR1"
_OTHER_DELIMITERS = (";", "\t", "|")


@dataclass(frozen=True)
class DataFingerprint:
    """What identifies the data a model was trained on."""

    sha256: str
    rows: int
    scheduled_from: str
    scheduled_to: str
    sources: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "rows": self.rows,
            "scheduled_from": self.scheduled_from,
            "scheduled_to": self.scheduled_to,
            "sources": list(self.sources),
        }


@dataclass
class FlightData:
    """A validated flight table: raw columns as strings, ``Fecha-I``/``Fecha-O`` parsed, and the label.

    Attributes:
        frame: one row per flight, with the added columns ``delay`` and ``delay_minutes``.
        fingerprint: hash, size and date range of the input.
        notes: facts about the input worth keeping (for example that it is synthetic).
    """

    frame: pd.DataFrame
    fingerprint: DataFingerprint
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> pd.Series:
        return self.frame[schema.LABEL]


def load_flights(path: str | Path) -> FlightData:
    """Load and validate flights from a CSV file, a folder of CSV/parquet files, or a parquet file.

    Raises:
        InvalidDataset: the path is missing or any file cannot be used; the message names the file,
            the column and example line numbers.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".csv", ".parquet", ".pq"))
        if not files:
            raise InvalidDataset(str(path), "the folder holds no .csv or .parquet files")
    elif path.is_file():
        files = [path]
    else:
        raise InvalidDataset(str(path), "no such file or folder")

    frames = []
    digests = []
    for file in files:
        raw = file.read_bytes()
        digests.append(hashlib.sha256(raw).hexdigest())
        frames.append(
            _validate(_read_file(file, raw), str(file), "line" if _is_csv(file, raw) else "row")
        )
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    digest = (
        digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()
    )
    return FlightData(frame, _fingerprint(frame, digest, tuple(str(f) for f in files)))


def flights_from_frame(frame: pd.DataFrame, name: str = "<dataframe>") -> FlightData:
    """Validate an in-memory frame in the SCL schema, as :func:`load_flights` does for a file."""
    raw = _as_raw_text(frame.reset_index(drop=True))
    validated = _validate(raw, name, "row")
    hashed = pd.util.hash_pandas_object(raw, index=False).to_numpy()
    digest = hashlib.sha256(hashed.tobytes()).hexdigest()
    return FlightData(validated, _fingerprint(validated, digest, (name,)))


def _as_raw_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn typed columns (parquet, in-memory frames) into the text a CSV would have held."""
    raw = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            raw[column] = values.dt.strftime(schema.DATETIME_FORMAT).astype(object)
        else:
            raw[column] = values.astype(object).map(_as_text, na_action="ignore")
    return raw


def _as_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_csv(file: Path, raw: bytes) -> bool:
    return not (file.suffix.lower() in (".parquet", ".pq") or raw[:4] == _PARQUET_MAGIC)


def _read_file(file: Path, raw: bytes) -> pd.DataFrame:
    name = str(file)
    if not raw.strip():
        raise InvalidDataset(name, "the file is empty")
    if not _is_csv(file, raw):
        try:
            frame = pd.read_parquet(io.BytesIO(raw))
        except Exception as exc:  # pyarrow raises many types; all mean "not a usable parquet file"
            raise InvalidDataset(name, f"not a readable parquet file ({exc})") from exc
        return _as_raw_text(frame)
    head = raw[:_SNIFF_BYTES]
    if b"\x00" in head:
        raise InvalidDataset(name, "not a CSV file: it holds binary data (NUL bytes)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidDataset(
            name, f"not a UTF-8 CSV file: undecodable byte at offset {exc.start}"
        ) from exc
    header = text.splitlines()[0]
    _check_delimiter(name, header)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skipinitialspace=True,
        )
    except pd.errors.ParserError as exc:
        raise InvalidDataset(name, f"not a well-formed CSV file: {exc}") from exc
    except pd.errors.EmptyDataError as exc:
        raise InvalidDataset(name, "the file is empty") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _check_delimiter(name: str, header: str) -> None:
    """Say so plainly when the header is split by another delimiter than a comma."""
    fields = next(csv.reader([header]))
    if len(fields) > 1:
        return
    for delimiter in _OTHER_DELIMITERS:
        parts = [p.strip() for p in header.split(delimiter)]
        if len(parts) > 1 and any(p in schema.ALL_COLUMNS for p in parts):
            shown = "TAB" if delimiter == "\t" else repr(delimiter)
            raise InvalidDataset(
                name,
                f"wrong delimiter: the header is separated by {shown}; SCL files are comma-separated",
                rows=[1],
            )


def _validate(frame: pd.DataFrame, name: str, location: str) -> pd.DataFrame:
    """Check columns and values; return a copy with parsed dates and the label."""
    missing = [c for c in schema.REQUIRED_TRAINING_COLUMNS if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns[:8])) + (" ..." if len(frame.columns) > 8 else "")
        raise InvalidDataset(
            name,
            f"missing required column(s) {', '.join(missing)} (found: {found})",
            column=missing[0],
        )
    if frame.empty:
        raise InvalidDataset(name, "the file has a header but no data rows")

    first = 2 if location == "line" else 1  # CSV line 1 is the header
    frame = frame.reset_index(drop=True).copy()

    for column in schema.REQUIRED_TRAINING_COLUMNS:
        values = frame[column]
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            values = values.str.strip()
            frame[column] = values
        empty = values.isna() | (values == "")
        if empty.any():
            raise InvalidDataset(
                name, "missing value", column=column, rows=_rows(empty, first), location=location
            )

    for column in (schema.SCHEDULED_AT, schema.OPERATED_AT):
        parsed = pd.to_datetime(frame[column], format=schema.DATETIME_FORMAT, errors="coerce")
        bad = parsed.isna()
        if bad.any():
            example = frame[column][bad].iloc[0]
            raise InvalidDataset(
                name,
                f"unparsable date {example!r} (expected YYYY-MM-DD HH:MM:SS)",
                column=column,
                rows=_rows(bad, first),
                location=location,
            )
        outside = (parsed < schema.EARLIEST_SCHEDULED) | (parsed > schema.LATEST_SCHEDULED)
        if outside.any():
            raise InvalidDataset(
                name,
                f"date {str(frame[column][outside].iloc[0])[:40]!r} is {schema.OUT_OF_RANGE}",
                column=column,
                rows=_rows(outside, first),
                location=location,
            )
        frame[column] = parsed

    bad_type = ~frame[schema.FLIGHT_TYPE].isin(schema.FLIGHT_TYPES)
    if bad_type.any():
        example = frame[schema.FLIGHT_TYPE][bad_type].iloc[0]
        raise InvalidDataset(
            name,
            f"flight type must be I or N, got {example!r}",
            column=schema.FLIGHT_TYPE,
            rows=_rows(bad_type, first),
            location=location,
        )

    frame[schema.DELAY_MINUTES] = schema.delay_minutes(
        frame[schema.SCHEDULED_AT], frame[schema.OPERATED_AT]
    )
    frame[schema.LABEL] = schema.delay_label(frame[schema.SCHEDULED_AT], frame[schema.OPERATED_AT])
    return frame


def _rows(mask: pd.Series, first: int) -> list[int]:
    return [int(i) + first for i in mask[mask].index[:EXAMPLES]]


def _fingerprint(frame: pd.DataFrame, digest: str, sources: Iterable[str]) -> DataFingerprint:
    scheduled = frame[schema.SCHEDULED_AT]
    return DataFingerprint(
        sha256=digest,
        rows=len(frame),
        scheduled_from=scheduled.min().strftime(schema.DATETIME_FORMAT),
        scheduled_to=scheduled.max().strftime(schema.DATETIME_FORMAT),
        sources=tuple(sources),
    )
