"""Probability calibration chosen on the cross-validation's out-of-fold predictions.

Clients read ``delay_probability`` as a probability. Platt scaling (a logistic curve on the
log-odds), isotonic regression, or nothing: each is cross-fitted over the folds (fit on the other
folds' out-of-fold predictions, scored on the held fold by Brier score) and the best is fit on
every out-of-fold prediction. Both maps are monotone, so the ranking (ROC AUC) is kept, and both
are a few JSON numbers, recorded in ``model.json`` and applied after the estimator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss

from flight_delay.ml.evaluation import expected_calibration_error

METHODS = ("none", "platt", "isotonic")
_EPSILON = 1e-6


def _logit(probabilities: np.ndarray) -> np.ndarray:
    clipped = np.clip(probabilities, _EPSILON, 1 - _EPSILON)
    return np.asarray(np.log(clipped / (1 - clipped)))


@dataclass(frozen=True)
class Calibration:
    """A monotone map from the estimator's probability to the served one."""

    method: str = "none"
    params: Mapping[str, Any] = field(default_factory=dict)

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        probabilities = np.asarray(probabilities, dtype=float)
        if self.method == "platt":
            score = self.params["a"] * _logit(probabilities) + self.params["b"]
            return np.asarray(1.0 / (1.0 + np.exp(-score)))
        if self.method == "isotonic":
            return np.asarray(np.interp(probabilities, self.params["x"], self.params["y"]))
        return probabilities

    def as_dict(self) -> dict[str, Any]:
        params = {
            name: value.tolist() if isinstance(value, np.ndarray) else value
            for name, value in self.params.items()
        }
        return {"method": self.method, "params": params}

    @classmethod
    def from_dict(cls, recorded: Mapping[str, Any] | None) -> Calibration:
        if not recorded:
            return cls()
        params = {
            name: np.asarray(value, dtype=float) if isinstance(value, list) else value
            for name, value in (recorded.get("params") or {}).items()
        }
        return cls(str(recorded["method"]), params)


def fit_calibration(method: str, labels: np.ndarray, probabilities: np.ndarray) -> Calibration:
    """Fit ``method`` (one of METHODS) on labelled predictions."""
    if method == "platt":
        model = LogisticRegression(C=1e6, max_iter=1000)
        model.fit(_logit(probabilities).reshape(-1, 1), labels)
        return Calibration(
            "platt", {"a": float(model.coef_[0, 0]), "b": float(model.intercept_[0])}
        )
    if method == "isotonic":
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        model.fit(probabilities, labels)
        return Calibration(
            "isotonic",
            {
                "x": [float(v) for v in model.X_thresholds_],
                "y": [float(v) for v in model.y_thresholds_],
            },
        )
    return Calibration()


def choose_calibration(
    fold_labels: Sequence[np.ndarray], fold_probabilities: Sequence[np.ndarray]
) -> tuple[Calibration, dict[str, Any]]:
    """The method with the lowest cross-fitted Brier score over the folds ("none" wins ties),
    fit on every out-of-fold prediction; and the evidence for model.json."""
    scores: dict[str, dict[str, float]] = {}
    for method in METHODS:
        briers, eces = [], []
        for k in range(len(fold_labels)):
            others = [i for i in range(len(fold_labels)) if i != k]
            fitted = fit_calibration(
                method,
                np.concatenate([fold_labels[i] for i in others]),
                np.concatenate([fold_probabilities[i] for i in others]),
            )
            calibrated = fitted.apply(fold_probabilities[k])
            briers.append(brier_score_loss(fold_labels[k], calibrated))
            eces.append(expected_calibration_error(fold_labels[k], calibrated))
        scores[method] = {"brier": float(np.mean(briers)), "ece": float(np.mean(eces))}
    chosen = min(METHODS, key=lambda m: (round(scores[m]["brier"], 9), METHODS.index(m)))
    calibration = fit_calibration(
        chosen, np.concatenate(list(fold_labels)), np.concatenate(list(fold_probabilities))
    )
    report = {
        "method": chosen,
        "chosen_by": "lowest Brier score, each method fit on the other folds and scored on "
        "the held one",
        "cross_fitted": scores,
    }
    return calibration, report
