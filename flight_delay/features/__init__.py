"""Features known when a flight is scheduled, and the contract a caller's flights must meet.

- ``sets``: the named feature sets and the raw fields each needs.
- ``values``: how every path reads a raw value (cleaning, parsing).
- ``contract``: required and allowed values, and every problem with a request's flights.
- ``calendar``, ``delay_rates``: features learned or looked up beyond the row itself.
- ``transformer``: ``FlightFeatures``, the pipeline step that learns the lookups.
- ``frame_path``, ``record_path``, ``column_path``: the three ways to build the same feature
  matrix (pandas frames; a few records; a large batch of records), held equal by tests.

``FlightFeatures`` is imported on first use: a process that only reads values (the prediction
log's writer) never loads scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flight_delay.features.sets import (
    DEFAULT_FEATURE_SET,
    FEATURE_SETS,
    FeatureSet,
    get_feature_set,
)

if TYPE_CHECKING:
    from flight_delay.features.transformer import FlightFeatures

__all__ = ["DEFAULT_FEATURE_SET", "FEATURE_SETS", "FeatureSet", "FlightFeatures", "get_feature_set"]


def __getattr__(name: str) -> Any:
    if name == "FlightFeatures":
        from flight_delay.features.transformer import FlightFeatures

        return FlightFeatures
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
