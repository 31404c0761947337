"""Loading SCL files: the happy paths, the quirks, and a clear error for each malformed input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flight_delay.data import flights_from_frame, load_flights, schema
from flight_delay.errors import InvalidDataset

HEADER = ",".join(schema.ALL_COLUMNS)
GOOD_ROW = (
    "2017-01-01 23:30:00,226,SCEL,KMIA,AAL,2017-01-01 23:50:00,226,SCEL,KMIA,AAL,"
    "1,1,2017,Domingo,I,American Airlines,Santiago,Miami"
)
ON_TIME_ROW = GOOD_ROW.replace("2017-01-01 23:50:00", "2017-01-01 23:33:00")


def write(tmp_path: Path, text: str | bytes, name: str = "flights.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_label_is_operated_minus_scheduled_over_fifteen_minutes(tmp_path: Path) -> None:
    exactly_15 = GOOD_ROW.replace("2017-01-01 23:50:00", "2017-01-01 23:45:00")
    path = write(tmp_path, "\n".join([HEADER, GOOD_ROW, ON_TIME_ROW, exactly_15]) + "\n")
    data = load_flights(path)
    assert data.labels.tolist() == [1, 0, 0]
    assert data.frame[schema.DELAY_MINUTES].tolist() == [20.0, 3.0, 15.0]


def test_flight_numbers_stay_identifiers_and_empty_operated_values_are_accepted(
    tmp_path: Path,
) -> None:
    odd = GOOD_ROW.replace(
        ",226,SCEL,KMIA,AAL,2017-01-01 23:50:00,226,", ",989P,SCEL,KMIA,AAL,2017-01-01 23:50:00,,"
    )
    path = write(tmp_path, "\n".join([HEADER, odd, GOOD_ROW]) + "\n")
    frame = load_flights(path).frame
    assert frame[schema.FLIGHT_NUMBER].tolist() == ["989P", "226"]
    assert frame["Vlo-O"].isna().tolist() == [True, False]


def test_fingerprint_records_hash_rows_and_dates(tmp_path: Path) -> None:
    path = write(tmp_path, "\n".join([HEADER, GOOD_ROW, ON_TIME_ROW]) + "\n")
    fingerprint = load_flights(path).fingerprint
    assert fingerprint.rows == 2
    assert len(fingerprint.sha256) == 64
    assert fingerprint.scheduled_from == "2017-01-01 23:30:00"


def test_a_folder_of_csv_files_is_concatenated(
    tmp_path: Path, synthetic_flights: pd.DataFrame
) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    synthetic_flights.iloc[:1000].to_csv(folder / "a.csv", index=False)
    synthetic_flights.iloc[1000:].to_csv(folder / "b.csv", index=False)
    data = load_flights(folder)
    assert len(data.frame) == len(synthetic_flights)
    assert data.fingerprint.sources == (str(folder / "a.csv"), str(folder / "b.csv"))


def test_a_parquet_file_loads_like_the_csv(tmp_path: Path, synthetic_flights: pd.DataFrame) -> None:
    csv_path = tmp_path / "f.csv"
    synthetic_flights.to_csv(csv_path, index=False)
    typed = synthetic_flights.assign(**{"Fecha-I": pd.to_datetime(synthetic_flights["Fecha-I"])})
    parquet_path = tmp_path / "f.parquet"
    typed.to_parquet(parquet_path)
    from_parquet, from_csv = load_flights(parquet_path), load_flights(csv_path)
    assert from_parquet.labels.tolist() == from_csv.labels.tolist()
    assert (from_parquet.frame[schema.SCHEDULED_AT] == from_csv.frame[schema.SCHEDULED_AT]).all()


def test_an_in_memory_frame_is_validated_like_a_file(synthetic_flights: pd.DataFrame) -> None:
    broken = synthetic_flights.drop(columns=[schema.AIRLINE])
    with pytest.raises(InvalidDataset, match="OPERA"):
        flights_from_frame(broken)


# -- one test per malformed input, each asserting the message names the problem ---------------
def test_missing_column_is_named(tmp_path: Path) -> None:
    header = HEADER.replace(",OPERA", "")
    row = GOOD_ROW.replace(",American Airlines", "")
    path = write(tmp_path, f"{header}\n{row}\n")
    with pytest.raises(InvalidDataset) as info:
        load_flights(path)
    assert str(path) in str(info.value)
    assert "missing required column(s) OPERA" in str(info.value)
    assert info.value.column == "OPERA"


def test_unparsable_date_names_column_line_and_value(tmp_path: Path) -> None:
    bad = GOOD_ROW.replace("2017-01-01 23:30:00", "31/01/2017 23:30")
    path = write(tmp_path, "\n".join([HEADER, GOOD_ROW, bad, GOOD_ROW, bad]) + "\n")
    with pytest.raises(InvalidDataset) as info:
        load_flights(path)
    message = str(info.value)
    assert "column 'Fecha-I'" in message
    assert "lines 3, 5" in message
    assert "unparsable date '31/01/2017 23:30'" in message
    assert info.value.rows == [3, 5]


def test_empty_file_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with pytest.raises(InvalidDataset, match="the file is empty") as info:
        load_flights(path)
    assert str(path) in str(info.value)


def test_header_without_rows_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "\n")
    with pytest.raises(InvalidDataset, match="header but no data rows"):
        load_flights(path)


def test_a_binary_file_is_not_a_csv(tmp_path: Path) -> None:
    path = write(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(InvalidDataset, match="not a CSV file: it holds binary data"):
        load_flights(path)


def test_a_non_utf8_text_file_is_not_a_csv(tmp_path: Path) -> None:
    path = write(tmp_path, (HEADER + "\n" + GOOD_ROW + "\n").encode("utf-16"))
    with pytest.raises(InvalidDataset, match=r"not a (UTF-8 )?CSV file"):
        load_flights(path)


@pytest.mark.parametrize(("delimiter", "shown"), [(";", "';'"), ("\t", "TAB")])
def test_wrong_delimiter_is_named(tmp_path: Path, delimiter: str, shown: str) -> None:
    text = HEADER.replace(",", delimiter) + "\n" + GOOD_ROW.replace(",", delimiter) + "\n"
    path = write(tmp_path, text)
    with pytest.raises(InvalidDataset) as info:
        load_flights(path)
    assert f"wrong delimiter: the header is separated by {shown}" in str(info.value)


def test_ragged_rows_are_reported_as_malformed_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "\n".join([HEADER, GOOD_ROW, GOOD_ROW + ",extra,fields"]) + "\n")
    with pytest.raises(InvalidDataset, match="not a well-formed CSV file"):
        load_flights(path)


def test_missing_required_value_names_column_and_line(tmp_path: Path) -> None:
    bad = GOOD_ROW.replace(",American Airlines,", ",,")
    path = write(tmp_path, "\n".join([HEADER, GOOD_ROW, bad]) + "\n")
    with pytest.raises(InvalidDataset, match=r"column 'OPERA', line 3: missing value"):
        load_flights(path)


def test_invalid_flight_type_is_named(tmp_path: Path) -> None:
    bad = GOOD_ROW.replace(",I,American", ",X,American")
    path = write(tmp_path, "\n".join([HEADER, bad]) + "\n")
    with pytest.raises(
        InvalidDataset, match=r"column 'TIPOVUELO', line 2: flight type must be I or N, got 'X'"
    ):
        load_flights(path)


def test_a_corrupt_parquet_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, b"PAR1 this is not really parquet", name="f.parquet")
    with pytest.raises(InvalidDataset, match="not a readable parquet file"):
        load_flights(path)


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidDataset, match="no such file or folder"):
        load_flights(tmp_path / "nope.csv")
    with pytest.raises(InvalidDataset, match=r"holds no \.csv or \.parquet files"):
        load_flights(tmp_path)
