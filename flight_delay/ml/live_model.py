"""The estimator of a ``live`` model: one booster for flights asked with departures seen, and the
schedule model trained on the same flights in the same run for flights with nothing observed.

A flight asked further ahead than the model was trained at, or while the feed is empty or
stale, has no lead time and no point-in-time features. One booster trained on both kinds of
rows served those flights worse than a schedule model does (measured on November-December:
ROC AUC 0.676 against 0.687): the capacity cross-validation chose fits the rows with departures
seen. So those flights get the schedule model itself, by construction never worse than it.

Its features are the first ``blind_columns`` columns of the live feature matrix: the live set is
the schedule set plus the given columns, built by the same code from the same flights.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin


class LiveClassifier(ClassifierMixin, BaseEstimator):
    """Routes each row by its lead time: missing (nothing observed) -> ``blind`` on the
    schedule columns, known -> ``observed`` on every column. Both are fitted LightGBM
    classifiers; the probabilities are the estimators' own (the model's calibrations apply
    after, each to its rows: see ``TrainedModel``)."""

    def __init__(
        self,
        observed: Any = None,
        blind: Any = None,
        blind_columns: int = 0,
        lead_column: int = 0,
    ) -> None:
        self.observed = observed
        self.blind = blind
        self.blind_columns = blind_columns
        self.lead_column = lead_column

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.observed.classes_)

    @property
    def booster_(self) -> Any:
        """The observed rows' booster (what importances and the compiled forest describe)."""
        return self.observed.booster_

    def fit(self, X: Any, y: Any = None) -> LiveClassifier:
        raise NotImplementedError("a LiveClassifier is assembled from two fitted models by train()")

    def blind_rows(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Rows with nothing observed (lead time missing)."""
        lead = (
            X.iloc[:, self.lead_column] if isinstance(X, pd.DataFrame) else X[:, self.lead_column]
        )
        return np.isnan(np.asarray(lead, dtype=np.float64))

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        rows = self.blind_rows(X)
        out = np.empty((len(X), 2))
        take = (lambda r: X.iloc[r]) if isinstance(X, pd.DataFrame) else (lambda r: X[r])
        if rows.any():
            part = take(rows)
            part = (
                part.iloc[:, : self.blind_columns]
                if isinstance(part, pd.DataFrame)
                else part[:, : self.blind_columns]
            )
            out[rows] = self.blind.predict_proba(part)
        if (~rows).any():
            out[~rows] = self.observed.predict_proba(take(~rows))
        return out
