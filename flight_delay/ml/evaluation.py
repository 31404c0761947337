"""Metrics of a probability forecast, and the choice of the decision threshold."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

CALIBRATION_BINS = 10
#: most points of a recorded ROC or precision-recall curve (enough to draw, small to store)
CURVE_POINTS = 101


def best_f1_threshold(
    labels: np.ndarray, probabilities: np.ndarray, min_recall: float = 0.0
) -> float:
    """The threshold that maximises the F1 score of the delay class among those that flag at
    least ``min_recall`` of the delayed flights (the highest such threshold if none does)."""
    precision, recall, thresholds = precision_recall_curve(labels, probabilities)
    # the last precision/recall pair has no threshold (recall 0); leave it out
    precision, recall = precision[:-1], recall[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    allowed = recall >= min_recall
    if not allowed.any():
        return float(thresholds[0])
    return float(thresholds[int(np.argmax(np.where(allowed, f1, -1.0)))])


def expected_calibration_error(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS
) -> float:
    """Mean gap between predicted probability and observed delay rate, over equal-width bins,
    weighted by how many flights fall in each bin."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.sum() * abs(probabilities[inside].mean() - labels[inside].mean())
    return float(total / len(labels))


def reliability_table(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS
) -> list[dict[str, Any]]:
    """Per equal-width probability bin that holds flights: its range, how many flights, their
    mean predicted probability and their actual delay rate (the reliability diagram's points)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    table = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            table.append(
                {
                    "from": float(edges[b]),
                    "to": float(edges[b + 1]),
                    "flights": int(inside.sum()),
                    "mean_predicted": float(probabilities[inside].mean()),
                    "delay_rate": float(labels[inside].mean()),
                }
            )
    return table


def classification_metrics(
    labels: np.ndarray, probabilities: np.ndarray, threshold: float
) -> dict[str, Any]:
    """Ranking, calibration and thresholded metrics of ``probabilities`` against ``labels``."""
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    predicted = probabilities >= threshold
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=[0, 1], zero_division=0
    )
    tn, fp, fn, tp = confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(("on_time", "delayed"))
    }
    return {
        "rows": len(labels),
        "base_rate": float(labels.mean()),
        "roc_auc": float(roc_auc_score(labels, probabilities)),
        "pr_auc": float(average_precision_score(labels, probabilities)),
        "brier": float(brier_score_loss(labels, probabilities)),
        "log_loss": float(
            log_loss(labels, np.clip(probabilities, 1e-15, 1 - 1e-15), labels=[0, 1])
        ),
        "ece": expected_calibration_error(labels, probabilities),
        "mean_predicted": float(probabilities.mean()),
        "reliability": reliability_table(labels, probabilities),
        "threshold": float(threshold),
        "classes": per_class,
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def curves(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """ROC and precision-recall points for plotting, at most CURVE_POINTS each (ends kept)."""
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
