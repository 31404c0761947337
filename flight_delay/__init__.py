"""flight-delay: train, evaluate, deploy and serve models of delayed departures from SCL."""

from __future__ import annotations

import os
from typing import Any

__version__ = "0.1.0"

# LightGBM's OpenMP threads (GNU libgomp) spin 300,000 times at every barrier before they sleep.
# When another busy process shares the cores, a spinning thread waits for one that is not
# running. Measured here (2 cores, one 200,000-flight training running beside): a 4,000-flight,
# 50-tree training took 62-71 s with libgomp's default and 1.2-1.3 s with 1,000 spins, which cost
# nothing alone (200,000 flights: 6.0-6.3 s vs 6.3-7.1 s). libgomp reads this once, when
# LightGBM loads it, so it is set here, before any module of the package imports lightgbm; a
# value the user set is kept.
os.environ.setdefault("GOMP_SPINCOUNT", "1000")


def __getattr__(name: str) -> Any:
    # create_app pulls in Flask, Celery and Redis; the model library and CLI do not need them
    if name == "create_app":
        from flight_delay.app import create_app

        return create_app
    raise AttributeError(name)
