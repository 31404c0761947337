"""Capacity chosen by cross-validation inside the training part: rolling-origin time-series
folds when the evaluation is by time (the default), stratified folds when it is random.

The training part is cut at several monthly origins: each fold fits on every flight scheduled
before its origin and is scored on the month that follows (ROC AUC, a ranking metric, so that
the base-rate shift between seasons does not decide). The capacity step (for LightGBM, the tree
count) with the best mean score over the folds is chosen, and the folds' out-of-fold
predictions at that step choose the calibration (:mod:`flight_delay.ml.calibration`) and then the
decision threshold. One validation slice from one season
decided every model's tree count before (18-29 trees on the real data); several origins do not
let one season decide.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from flight_delay.data import schema
from flight_delay.features import FlightFeatures
from flight_delay.ml.calibration import Calibration, choose_calibration
from flight_delay.ml.evaluation import classification_metrics
from flight_delay.ml.families.base import ModelFamily

#: a fold needs this many flights on each side, with both classes, to say anything
MIN_FOLD_ROWS = 200
#: fewer usable folds than this and the single validation slice is used instead
MIN_FOLDS = 2


@dataclass(frozen=True)
class Fold:
    """Fit on ``fit`` positions, score on ``validation``; a time fold's validation is the
    window [origin, until) and it fits on every earlier flight."""

    fit: np.ndarray
    validation: np.ndarray
    origin: pd.Timestamp | None = None
    until: pd.Timestamp | None = None


def cross_validation_folds(
    scheduled_at: pd.Series, labels: pd.Series, count: int, split: str, seed: int
) -> list[Fold]:
    """Folds that match the evaluation protocol: rolling-origin monthly windows for
    ``split=time`` (forecasting), stratified seeded folds for ``split=random``."""
    if split == "time":
        return rolling_origin_folds(scheduled_at, labels, count)
    if count <= 0 or labels.nunique() < 2 or labels.value_counts().min() < count:
        return []
    splitter = StratifiedKFold(n_splits=count, shuffle=True, random_state=seed)
    positions = np.zeros(len(labels))
    return [Fold(fit, validation) for fit, validation in splitter.split(positions, labels)]


def rolling_origin_folds(scheduled_at: pd.Series, labels: pd.Series, count: int) -> list[Fold]:
    """The last ``count`` one-month windows before the end of the data, each with every earlier
    flight to fit on; windows too small or with one class only are left out."""
    if count <= 0 or scheduled_at.empty:
        return []
    end = scheduled_at.max()
    times = scheduled_at.to_numpy()
    values = labels.to_numpy()
    folds = []
    for k in range(count, 0, -1):
        origin = (end - pd.DateOffset(months=k)).normalize()
        until = origin + pd.DateOffset(months=1)
        fit = np.flatnonzero(times < origin)
        validation = np.flatnonzero((times >= origin) & (times < until))
        if k == 1:  # the last window includes the last flight itself
            validation = np.flatnonzero(times >= origin)
        usable = all(
            len(rows) >= MIN_FOLD_ROWS and len(np.unique(values[rows])) == 2
            for rows in (fit, validation)
        )
        if usable:
            folds.append(Fold(fit, validation, pd.Timestamp(origin), pd.Timestamp(until)))
    return folds


@dataclass
class CapacityChoice:
    """What cross-validation chose, and the evidence."""

    step: int
    pinned_params: dict[str, Any]
    calibration: Calibration
    threshold: float
    out_of_fold_metrics: dict[str, Any]
    report: dict[str, Any]


def choose_capacity(
    family: ModelFamily,
    params: dict[str, Any],
    feature_set: str,
    categorical: Sequence[str],
    numeric: Sequence[str],
    frame: pd.DataFrame,
    labels: pd.Series,
    folds: Sequence[Fold],
    choose_threshold: Callable[[np.ndarray, np.ndarray], float],
    progress: Callable[[int], None] | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> CapacityChoice:
    """Fit every fold, average the score curves, take the best step.

    Args:
        frame, labels: the training part (raw rows); folds index into it.
        choose_threshold: ``(labels, probabilities) -> threshold`` over the out-of-fold rows.
        progress: called with the number of folds done.
    """
    fitted = []
    for done, fold in enumerate(folds):
        fit_rows = frame.iloc[fold.fit]
        val_rows = frame.iloc[fold.validation]
        y_fit = labels.iloc[fold.fit]
        features = FlightFeatures(feature_set)
        x_fit = features.fit_transform(fit_rows, y_fit)  # out-of-fold delay rates
        x_val = features.transform(val_rows)
        y_val = labels.iloc[fold.validation]
        curve = family.fit_curve(
            params, categorical, numeric, x_fit, y_fit, x_val, y_val, checkpoint=checkpoint
        )
        fitted.append((fold, curve, x_val, y_val.to_numpy()))
        if progress is not None:
            progress(done + 1)
    longest = max(len(curve.scores) for _, curve, _, _ in fitted)
    # a fold that stopped early keeps its last score for the steps it did not fit
    padded = np.array(
        [
            np.pad(curve.scores, (0, longest - len(curve.scores)), mode="edge")
            for _, curve, _, _ in fitted
        ]
    )
    mean = padded.mean(axis=0)
    step = int(np.argmax(mean)) + 1
    fold_labels = [y for _, _, _, y in fitted]
    fold_probabilities = [curve.predict(x, step) for _, curve, x, _ in fitted]
    calibration, calibration_report = choose_calibration(fold_labels, fold_probabilities)
    oof_labels = np.concatenate(fold_labels)
    # the threshold applies to served (calibrated) probabilities, so it is chosen on them
    oof_probability = calibration.apply(np.concatenate(fold_probabilities))
    threshold = choose_threshold(oof_labels, oof_probability)
    per_fold = []
    for fold, curve, x, y in fitted:
        at_step = classification_metrics(y, curve.predict(x, step), threshold)
        window = (
            {
                "origin": fold.origin.strftime(schema.DATETIME_FORMAT),
                "until": fold.until.strftime(schema.DATETIME_FORMAT),
            }
            if fold.origin is not None and fold.until is not None
            else {}
        )
        per_fold.append(
            {
                **window,
                "fit_rows": len(fold.fit),
                "validation_rows": len(fold.validation),
                "best_step": int(np.argmax(curve.scores)) + 1,
                "best_roc_auc": float(np.max(curve.scores)),
                "roc_auc": at_step["roc_auc"],
                "pr_auc": at_step["pr_auc"],
                "brier": at_step["brier"],
                "base_rate": at_step["base_rate"],
            }
        )
    scores = np.array([f["roc_auc"] for f in per_fold])
    pr_scores = np.array([f["pr_auc"] for f in per_fold])
    report = {
        "method": (
            "rolling-origin time-series cross-validation, one-month windows"
            if folds[0].origin is not None
            else f"stratified {len(folds)}-fold cross-validation"
        ),
        "metric": "roc_auc",
        "capacity": family.capacity_name,
        "chosen": step,
        "folds": per_fold,
        "roc_auc_mean": float(scores.mean()),
        "roc_auc_std": float(scores.std()),
        "pr_auc_mean": float(pr_scores.mean()),
        "pr_auc_std": float(pr_scores.std()),
        "calibration": calibration_report,
    }
    return CapacityChoice(
        step=step,
        pinned_params=family.pin_capacity(step),
        calibration=calibration,
        threshold=threshold,
        out_of_fold_metrics=classification_metrics(oof_labels, oof_probability, threshold),
        report=report,
    )
