"""Drift between a model's training rows and the flights it is asked about (issue 11).

Two views of the same question, both over the features the model sees (its own
``FlightFeatures``, so an unseen destination is "unseen" here as it is to the model):

- **Adversarial validation**: a small LightGBM classifier learns to tell training rows (0) from
  requested flights (1). Its out-of-fold ROC AUC is ~0.5 when they look alike and near 1 when
  they can be told apart; its split gains name the features that separate them.
- **PSI** (population stability index) per feature: deciles of the training values (numeric)
  or the training categories (categorical), sum of ``(current - expected) * ln(current /
  expected)`` over the bins. Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 shifted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from flight_delay.features import FlightFeatures

#: rows of each side the classifier sees at most (a sample beyond), which bounds the work
MAX_ROWS_PER_SIDE = 20_000
#: fewest requested flights a drift report is computed for
MIN_CURRENT_ROWS = 50
PSI_BINS = 10
_EPSILON = 1e-4
_ADVERSARY: dict[str, Any] = {
    "n_estimators": 100,
    "learning_rate": 0.1,
    "num_leaves": 15,
    "min_child_samples": 20,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "n_jobs": 1,
    "verbose": -1,
}


class TooFewRows(ValueError):
    """Not enough flights on one side to say anything."""


def drift_report(
    features: FlightFeatures,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    seed: int = 0,
    folds: int = 3,
) -> dict[str, Any]:
    """Adversarial validation and PSI of ``current`` flights against ``reference`` (the
    model's training rows), both raw flights as the API and training take them."""
    if len(current) < MIN_CURRENT_ROWS:
        raise TooFewRows(
            f"{len(current)} requested flights; drift needs at least {MIN_CURRENT_ROWS}"
        )
    if len(reference) < MIN_CURRENT_ROWS:
        raise TooFewRows(f"{len(reference)} training rows; drift needs {MIN_CURRENT_ROWS}")
    rng = np.random.default_rng(seed)
    reference = _sample(reference, rng)
    current = _sample(current, rng)
    x_reference = features.transform(reference.reset_index(drop=True))
    x_current = features.transform(current.reset_index(drop=True))
    adversarial = adversarial_validation(x_reference, x_current, seed, folds)
    psi = {name: population_stability(x_reference[name], x_current[name]) for name in x_reference}
    return {
        "reference_rows": len(x_reference),
        "current_rows": len(x_current),
        "adversarial": adversarial,
        "psi": dict(sorted(psi.items(), key=lambda item: -item[1])),
    }


def _sample(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    if len(frame) <= MAX_ROWS_PER_SIDE:
        return frame
    return frame.iloc[np.sort(rng.choice(len(frame), MAX_ROWS_PER_SIDE, replace=False))]


def adversarial_validation(
    x_reference: pd.DataFrame, x_current: pd.DataFrame, seed: int = 0, folds: int = 3
) -> dict[str, Any]:
    """Out-of-fold ROC AUC of a classifier telling ``x_current`` (1) from ``x_reference`` (0),
    and each feature's share of its split gain (largest first), from a fit on all rows."""
    from lightgbm import LGBMClassifier

    x = pd.concat([x_reference, x_current], ignore_index=True)
    y = np.r_[np.zeros(len(x_reference), dtype=int), np.ones(len(x_current), dtype=int)]
    out_of_fold = np.zeros(len(x))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit_rows, scored_rows in splitter.split(x, y):
        adversary = LGBMClassifier(**_ADVERSARY, random_state=seed)
        adversary.fit(x.iloc[fit_rows], y[fit_rows])
        scored: Any = adversary.predict_proba(x.iloc[scored_rows])
        out_of_fold[scored_rows] = scored[:, 1]
    adversary = LGBMClassifier(**_ADVERSARY, random_state=seed, importance_type="gain")
    adversary.fit(x, y)
    gains = np.asarray(adversary.feature_importances_, dtype=float)
    shares = gains / gains.sum() if gains.sum() > 0 else gains
    ranked = sorted(zip(x.columns, shares, strict=True), key=lambda item: -item[1])
    return {
        "roc_auc": float(roc_auc_score(y, out_of_fold)),
        "folds": folds,
        "separating_features": [
            {"feature": str(name), "gain_share": float(share)} for name, share in ranked
        ],
    }


def population_stability(expected: pd.Series, actual: pd.Series) -> float:
    """PSI of ``actual`` against ``expected``: categories as bins for a categorical feature,
    deciles of ``expected`` for a numeric one; missing values are a bin of their own."""
    if isinstance(expected.dtype, pd.CategoricalDtype):
        expected_bins = expected.astype(object).where(expected.notna(), "(missing)")
        actual_bins = actual.astype(object).where(actual.notna(), "(missing)")
        known = set(expected_bins.unique())
        actual_bins = actual_bins.where(actual_bins.isin(known), "(not in training)")
    else:
        values = expected.to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        edges: Any = (
            np.unique(np.quantile(finite, np.linspace(0, 1, PSI_BINS + 1))) if len(finite) else []
        )
        expected_bins = _numeric_bins(values, edges)
        actual_bins = _numeric_bins(actual.to_numpy(dtype=float), edges)
    expected_share = expected_bins.value_counts(normalize=True)
    actual_share = actual_bins.value_counts(normalize=True)
    names = expected_share.index.union(actual_share.index)
    e = expected_share.reindex(names, fill_value=0.0).to_numpy() + _EPSILON
    a = actual_share.reindex(names, fill_value=0.0).to_numpy() + _EPSILON
    return float(np.sum((a - e) * np.log(a / e)))


def _numeric_bins(values: np.ndarray, edges: Any) -> pd.Series:
    """Bin numbers by the inner edges (values beyond the training range fall in the end bins);
    -1 for missing."""
    inner = np.asarray(edges, dtype=float)[1:-1]
    bins = np.searchsorted(inner, values, side="right").astype(int)
    bins[~np.isfinite(values)] = -1
    return pd.Series(bins)


def chart_png(
    report: dict[str, Any], title: str, inspect: Callable[[Any], None] | None = None
) -> bytes:
    """A PNG of the report: the features' PSI and the adversary's gain shares, side by side.
    ``inspect`` sees the drawn matplotlib figure (tests check nothing is cut off)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    psi = list(report["psi"].items())[:12]
    gains = [(f["feature"], f["gain_share"]) for f in report["adversarial"]["separating_features"]]
    gains = gains[:12]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    left.barh([name for name, _ in psi][::-1], [value for _, value in psi][::-1], color="#4C72B0")
    left.axvline(0.1, color="#999999", linestyle=":", linewidth=1)
    left.axvline(0.25, color="#C44E52", linestyle="--", linewidth=1)
    left.set_title("PSI per feature")
    left.set_xlabel("PSI (0.1 moderate, 0.25 shifted)")
    right.barh([name for name, _ in gains][::-1], [v for _, v in gains][::-1], color="#DD8452")
    # short titles, the detail on the axis: a long title ran past the figure's edge
    right.set_title(f"adversarial ROC AUC {report['adversarial']['roc_auc']:.3f}")
    right.set_xlabel("gain share: what tells requests from training rows")
    right.margins(x=0.08)
    figure.suptitle(title)
    if inspect is not None:
        figure.canvas.draw()
        inspect(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()
