"""Reading and validating raw SCL flight files; the label; synthetic flights for tests."""

from flight_delay.data.loading import DataFingerprint, FlightData, flights_from_frame, load_flights
from flight_delay.data.synthetic import make_synthetic_flights

__all__ = [
    "DataFingerprint",
    "FlightData",
    "flights_from_frame",
    "load_flights",
    "make_synthetic_flights",
]
