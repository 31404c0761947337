"""Several models scored on one common holdout, side by side (issue 12).

Each model predicts the same flights with its own pipeline, as the API would; the metrics are
the offline evaluation's (flight_delay.ml.evaluation) at each model's own threshold, and the
curves are thinned to at most ``evaluation.CURVE_POINTS`` points for plotting. A model whose
training rows include holdout flights is flagged: its figures there are not an honest test.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from flight_delay.data import FlightData, schema
from flight_delay.ml.artifacts import TrainedModel
from flight_delay.ml.config import TrainConfig
from flight_delay.ml.evaluation import classification_metrics, curves
from flight_delay.ml.splits import split_positions

#: fewest holdout flights a comparison is made on
MIN_HOLDOUT_FLIGHTS = 50


class EmptyHoldout(ValueError):
    """The holdout window holds too few flights (or one class only)."""


def holdout_positions(
    flights: FlightData, since: pd.Timestamp | None, until: pd.Timestamp | None
) -> np.ndarray:
    """Positions of the flights scheduled in [since, until)."""
    scheduled = flights.frame[schema.SCHEDULED_AT]
    inside = np.ones(len(scheduled), dtype=bool)
    if since is not None:
        inside &= (scheduled >= since).to_numpy()
    if until is not None:
        inside &= (scheduled < until).to_numpy()
    positions = np.flatnonzero(inside)
    labels = flights.labels.to_numpy()[positions]
    if len(positions) < MIN_HOLDOUT_FLIGHTS:
        raise EmptyHoldout(
            f"the holdout has {len(positions)} flights; at least {MIN_HOLDOUT_FLIGHTS} are needed"
        )
    if len(np.unique(labels)) < 2:
        raise EmptyHoldout("the holdout holds one class only (all delayed or none)")
    return positions


def compare(
    models: Mapping[str, TrainedModel],
    flights: FlightData,
    positions: np.ndarray,
    training_positions: Mapping[str, np.ndarray | None] | None = None,
) -> dict[str, Any]:
    """Every model's metrics and curves on the flights at ``positions``, in the given order.

    ``training_positions`` holds, per model, the rows of ``flights`` it was trained on when
    that is known (the same file); their overlap with the holdout is reported."""
    frame = flights.frame.iloc[positions].reset_index(drop=True)
    labels = flights.labels.to_numpy()[positions].astype(int)
    held = set(positions.tolist())
    results = []
    for model_id, model in models.items():
        trained_on = (training_positions or {}).get(model_id)
        overlap = None if trained_on is None else len(held.intersection(trained_on.tolist()))
        results.append(
            {"model_id": model_id, **scores(model, frame, labels)}
            | {"holdout_flights_in_training": overlap}
        )
    warnings = [
        f"model {r['model_id']} was fitted on {r['holdout_flights_in_training']:,} of these "
        f"{len(positions):,} flights: its figures here are in-sample, better than it can do on "
        "flights it has not seen; compare on flights after its training (holdout.since)"
        for r in results
        if r["holdout_flights_in_training"]
    ]
    return {
        "flights": len(positions),
        "delay_rate": float(labels.mean()),
        "warnings": warnings,
        "scheduled_from": frame[schema.SCHEDULED_AT].min().strftime(schema.DATETIME_FORMAT),
        "scheduled_to": frame[schema.SCHEDULED_AT].max().strftime(schema.DATETIME_FORMAT),
        "models": results,
    }


def scores(model: TrainedModel, frame: pd.DataFrame, labels: np.ndarray) -> dict[str, Any]:
    """One model on labelled flights: its kind, threshold, the metrics side-by-side views show
    (the offline evaluation's, at its own threshold) and its curves."""
    probabilities = np.asarray(model.predict_proba(frame), dtype=float)
    metrics = classification_metrics(labels, probabilities, model.threshold)
    return {
        "model_type": model.metadata.get("model_type"),
        "features": (model.metadata.get("feature_set") or {}).get("name"),
        "threshold": model.threshold,
        "metrics": {
            name: metrics[name]
            for name in ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "mean_predicted")
        }
        | {
            "precision": metrics["classes"]["delayed"]["precision"],
            "recall": metrics["classes"]["delayed"]["recall"],
            "f1": metrics["classes"]["delayed"]["f1"],
        },
        "curves": curves(labels, probabilities) | {"reliability": metrics["reliability"]},
    }


def fitted_positions(
    settings: Mapping[str, Any], trained_sha256: str | None, flights: FlightData
) -> np.ndarray | None:
    """The rows of ``flights`` a model with these training ``settings`` was fitted on, when
    ``flights`` is its own data (``trained_sha256``, the recorded fingerprint, matches); None
    when that cannot be known."""
    if trained_sha256 != flights.fingerprint.sha256:
        return None
    config = TrainConfig.from_dict(settings)
    if config.refit:  # the final model saw every row
        return np.arange(len(flights.frame))
    train_rows, _ = split_positions(
        flights.frame, config.split, config.test_size, config.seed, config.time_cutoff
    )
    return train_rows
