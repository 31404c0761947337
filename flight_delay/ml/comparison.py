"""Several models scored on one common holdout, side by side (issue 12).

Each model predicts the same flights with its own pipeline, as the API would; the metrics are
the offline evaluation's (flight_delay.ml.evaluation) at each model's own threshold, and the
curves are thinned to at most ``CURVE_POINTS`` points for plotting. A model whose training rows
include holdout flights is flagged: its figures there are not an honest test.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve

from flight_delay.data import FlightData, schema
from flight_delay.ml.artifacts import TrainedModel
from flight_delay.ml.evaluation import classification_metrics

CURVE_POINTS = 101
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
        probabilities = np.asarray(model.predict_proba(frame), dtype=float)
        metrics = classification_metrics(labels, probabilities, model.threshold)
        trained_on = (training_positions or {}).get(model_id)
        overlap = None if trained_on is None else len(held.intersection(trained_on.tolist()))
        results.append(
            {
                "model_id": model_id,
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
                "holdout_flights_in_training": overlap,
                "curves": curves(labels, probabilities) | {"reliability": metrics["reliability"]},
            }
        )
    return {
        "flights": len(positions),
        "delay_rate": float(labels.mean()),
        "scheduled_from": frame[schema.SCHEDULED_AT].min().strftime(schema.DATETIME_FORMAT),
        "scheduled_to": frame[schema.SCHEDULED_AT].max().strftime(schema.DATETIME_FORMAT),
        "models": results,
    }


def curves(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """ROC and precision-recall points, at most CURVE_POINTS each (ends kept)."""
    fpr, tpr, _ = roc_curve(labels, probabilities)
    precision, recall, _ = precision_recall_curve(labels, probabilities)
    return {
        "roc": [{"fpr": float(f), "tpr": float(t)} for f, t in _thin(fpr, tpr)],
        "precision_recall": [
            {"recall": float(r), "precision": float(p)} for r, p in _thin(recall, precision)
        ],
    }


def _thin(x: np.ndarray, y: np.ndarray) -> list[tuple[float, float]]:
    if len(x) <= CURVE_POINTS:
        return list(zip(x.tolist(), y.tolist(), strict=True))
    keep = np.unique(np.linspace(0, len(x) - 1, CURVE_POINTS).round().astype(int))
    return list(zip(x[keep].tolist(), y[keep].tolist(), strict=True))
