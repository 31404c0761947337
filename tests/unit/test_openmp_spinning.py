"""OpenMP threads stop spinning early (flight_delay/__init__.py says why and what it measured):
set before lightgbm loads, in every process that imports the package; a user's value is kept."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = (
    "import sys, flight_delay.ml.training, os; "
    "assert 'lightgbm' in sys.modules; print(os.environ['GOMP_SPINCOUNT'])"
)


def spincount(environment: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=environment, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_the_package_sets_a_short_spin_before_lightgbm_loads() -> None:
    environment = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    assert spincount(environment) == "1000"


def test_a_value_the_user_set_is_kept() -> None:
    assert spincount({**os.environ, "GOMP_SPINCOUNT": "300000"}) == "300000"
