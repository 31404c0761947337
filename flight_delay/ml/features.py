"""Where models saved before the ``flight_delay.features`` package pickled their transformer.

A saved pipeline names its feature step's class by module path; this alias keeps those models
loadable. New code imports from ``flight_delay.features``.
"""

from flight_delay.features.transformer import FlightFeatures

__all__ = ["FlightFeatures"]
