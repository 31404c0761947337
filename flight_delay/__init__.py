"""flight-delay: train, evaluate, deploy and serve models of delayed departures from SCL."""

__version__ = "0.1.0"
