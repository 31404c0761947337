"""``make run`` before the service exists: train and save the default model, print its metrics.

Uses the real SCL file when given, otherwise generated synthetic flights, and says so both on the
terminal and in the model's metadata (``data.synthetic``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from flight_delay.cli import TerminalProgress, metrics_table
from flight_delay.data import FlightData, flights_from_frame, load_flights, make_synthetic_flights
from flight_delay.errors import FlightDelayError
from flight_delay.ml import train

SYNTHETIC_FLIGHTS = 20_000


def default_training_data(path: str | None) -> FlightData:
    """The real file when ``path`` names one, else synthetic flights labelled as such."""
    if path and Path(path).is_file():
        return load_flights(path)
    data = flights_from_frame(make_synthetic_flights(SYNTHETIC_FLIGHTS, seed=0), name="<synthetic>")
    data.notes["synthetic"] = (
        f"{SYNTHETIC_FLIGHTS} generated flights (flight_delay.data.make_synthetic_flights, seed 0); "
        "not real data"
    )
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data", default="", help="the real SCL CSV; synthetic flights when absent"
    )
    parser.add_argument("--out", default="models/default")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        data = default_training_data(args.data)
        if "synthetic" in data.notes:
            print(
                "No real dataset found (datasets/dataset_SCL.csv): training on SYNTHETIC flights."
            )
        model = train(data, progress=TerminalProgress(sys.stderr))
    except FlightDelayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model.save(args.out)
    print(metrics_table(model.metadata, Path(args.out), time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
