"""Shared fixtures: synthetic flights everywhere, the real SCL file when it is present."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from flight_delay.data import make_synthetic_flights
from flight_delay.devstack import DATASET_CANDIDATES, default_dataset

REPO = Path(__file__).resolve().parents[1]


def real_dataset_path() -> Path:
    """FLIGHT_DELAY_DATASET, else datasets/dataset_SCL.csv, else ../shared/datasets/ beside the
    repository: the order of make run, make notebook and make benchmark."""
    found = default_dataset(os.environ, REPO)
    return Path(found) if found else REPO / DATASET_CANDIDATES[-1]


@pytest.fixture(scope="session")
def synthetic_flights() -> pd.DataFrame:
    return make_synthetic_flights(n_flights=4000, seed=7)


@pytest.fixture
def synthetic_csv(tmp_path: Path, synthetic_flights: pd.DataFrame) -> Path:
    path = tmp_path / "flights.csv"
    synthetic_flights.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def real_dataset() -> Path:
    path = real_dataset_path()
    if not path.is_file():
        pytest.skip(
            f"real SCL dataset not found at {path} (set FLIGHT_DELAY_DATASET or put it in datasets/; see datasets/README.md)"
        )
    return path


def _lightness(item: pytest.Item) -> tuple[bool, bool, bool]:
    """Sorts the heaviest first: real-data tests, then slow ones, then the rest; within each,
    a module kept on one process (a chain that cannot be split) before free tests."""
    return (
        item.get_closest_marker("realdata") is None,
        item.get_closest_marker("slow") is None,
        item.get_closest_marker("xdist_group") is None,
    )


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """make test runs on several processes (pytest-xdist, --dist loadgroup):

    - the tests of a module whose fixtures are module-scoped (models trained once, a stack
      started once) stay on one process, so that those fixtures are made once, not once per
      process; every other test goes wherever a process is free;
    - modules run heaviest first (real data, then slow, then the rest; modules kept on one
      process first; each module's tests stay together and in order), so the long tests start
      while the short ones are left to fill the processes at the end (the Makefile turns off xdist's own reordering, which sorts by
      the number of tests and left the longest single tests for last).
    """
    for item in items:
        module = item.module
        if module is None:
            continue
        shared = any(
            getattr(getattr(value, "_fixture_function_marker", None), "scope", None) == "module"
            for value in vars(module).values()
        )
        if shared:
            item.add_marker(pytest.mark.xdist_group(module.__name__))
    heaviest: dict[str, tuple[bool, bool, bool]] = {}
    for item in items:
        key = item.nodeid.split("::", 1)[0]
        heaviest[key] = min(heaviest.get(key, (True, True, True)), _lightness(item))
    position = {id(item): index for index, item in enumerate(items)}
    items.sort(key=lambda item: (heaviest[item.nodeid.split("::", 1)[0]], position[id(item)]))
