"""Smoothed historical delay rates by key (a flight, a route, an airline at an hour), learned from
the labels of training rows only.

A key's rate is its delayed share shrunk toward the overall rate: ``(delayed + m * prior) /
(flights + m)`` with ``m = SMOOTHING``, so a key seen a handful of times says little and an
unseen key says "the overall rate". While a model trains, each training row gets the rate learned
from the *other* folds of the training rows (out-of-fold), so no row ever sees its own label and
the model learns how far a rate from other flights can be trusted; at prediction time the rates
learned from every training row are used. The folds are cut by position with a fixed seed, not
by label, so a row's fold never depends on any label.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

#: pseudo-flights at the overall rate added to every key (a key needs ~this many flights to speak)
SMOOTHING = 20.0
#: folds of the out-of-fold rates of training rows
FOLDS = 5
FOLD_SEED = 0


def rate_table(keys: pd.Series, labels: np.ndarray, prior: float) -> dict[str, float]:
    """Each key's smoothed delay rate; rows whose key is missing are left out."""
    frame = pd.DataFrame({"key": keys.to_numpy(), "label": labels}).dropna(subset=["key"])
    grouped = frame.groupby("key", sort=False)["label"].agg(["sum", "count"])
    rates = (grouped["sum"] + SMOOTHING * prior) / (grouped["count"] + SMOOTHING)
    return {str(key): float(rate) for key, rate in rates.items()}


def fit_rates(
    keys: Mapping[str, pd.Series], labels: np.ndarray
) -> tuple[float, dict[str, dict[str, float]]]:
    """The overall delay rate and, per rate feature, each key's smoothed rate."""
    prior = float(np.mean(labels)) if len(labels) else 0.0
    return prior, {name: rate_table(values, labels, prior) for name, values in keys.items()}


def lookup(keys: pd.Series, table: Mapping[str, float], prior: float) -> np.ndarray:
    """Rates of ``keys`` (the prior for unseen or missing keys)."""
    return keys.map(table).astype(float).fillna(prior).to_numpy()


def out_of_fold_rates(keys: Mapping[str, pd.Series], labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per rate feature, each training row's rate learned from the other folds only."""
    rows = len(labels)
    out = {name: np.empty(rows) for name in keys}
    if rows < FOLDS:  # too few rows to hold any out: every row gets the overall rate
        prior = float(np.mean(labels)) if rows else 0.0
        return {name: np.full(rows, prior) for name in keys}
    splitter = KFold(n_splits=FOLDS, shuffle=True, random_state=FOLD_SEED)
    for fit, held_out in splitter.split(np.zeros(rows)):
        prior, tables = fit_rates(
            {name: values.iloc[fit] for name, values in keys.items()}, labels[fit]
        )
        for name, values in keys.items():
            out[name][held_out] = lookup(values.iloc[held_out], tables[name], prior)
    return out
