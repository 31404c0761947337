"""flight-delay: train, evaluate, deploy and serve models of delayed departures from SCL."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # create_app pulls in Flask, Celery and Redis; the model library and CLI do not need them
    if name == "create_app":
        from flight_delay.app import create_app

        return create_app
    raise AttributeError(name)
