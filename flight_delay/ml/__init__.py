"""The model library: features, model families, training, evaluation and artifacts (no Flask)."""

from flight_delay.features import FEATURE_SETS, FlightFeatures
from flight_delay.ml.artifacts import TrainedModel, load_model
from flight_delay.ml.config import TrainConfig
from flight_delay.ml.training import evaluate, train

__all__ = [
    "FEATURE_SETS",
    "FlightFeatures",
    "TrainConfig",
    "TrainedModel",
    "evaluate",
    "load_model",
    "train",
]
