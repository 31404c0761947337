"""The interface every model family implements, and validated hyperparameters."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.metrics import roc_auc_score

from flight_delay.errors import InvalidConfig


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its type, default and allowed range or choices."""

    kind: type
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""

    def check(self, name: str, value: Any) -> Any:
        field = f"params.{name}"
        # bool is an int in Python; a JSON true must not pass as num_leaves=1
        if isinstance(value, bool) and self.kind is not bool:
            raise InvalidConfig(field, f"must be {self.kind.__name__}, got a boolean")
        if self.kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, self.kind):
            raise InvalidConfig(field, f"must be {self.kind.__name__}, got {type(value).__name__}")
        checked: Any = value
        if isinstance(checked, float) and not math.isfinite(checked):
            raise InvalidConfig(field, f"must be a finite number, got {checked}")
        if self.choices is not None and checked not in self.choices:
            raise InvalidConfig(field, f"must be one of {', '.join(map(str, self.choices))}")
        if self.low is not None and checked < self.low:
            raise InvalidConfig(field, f"must be at least {self.low}, got {checked}")
        if self.high is not None and checked > self.high:
            raise InvalidConfig(field, f"must be at most {self.high}, got {checked}")
        return checked


@dataclass
class Curve:
    """One fold's fit: ``scores[i]`` is the validation ROC AUC at capacity step ``i + 1`` (for
    LightGBM, ``i + 1`` trees; a family without a capacity knob has one step), and
    ``predict(x, step)`` the probabilities at a step."""

    scores: np.ndarray
    predict: Callable[[pd.DataFrame, int], np.ndarray]


@dataclass
class FitResult:
    """A fitted estimator and the parameters a refit on more rows should pin (say, tree count)."""

    estimator: BaseEstimator
    pinned_params: dict[str, Any]


class ModelFamily(ABC):
    """A kind of model. Adding one is a module with a subclass plus one registry entry."""

    name: ClassVar[str]
    description: ClassVar[str]
    params: ClassVar[Mapping[str, Param]]
    #: what cross-validation chooses (recorded in model.json); None: nothing to choose
    capacity_name: ClassVar[str | None] = None

    def resolve_params(self, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults overlaid with ``overrides``; raises InvalidConfig naming a bad parameter."""
        if overrides is not None and not isinstance(overrides, Mapping):
            raise InvalidConfig("params", "must be an object of hyperparameters")
        unknown = sorted(set(overrides or {}) - set(self.params))
        if unknown:
            raise InvalidConfig(
                f"params.{unknown[0]}",
                f"unknown hyperparameter for {self.name}; allowed: {', '.join(sorted(self.params))}",
            )
        resolved = {name: spec.default for name, spec in self.params.items()}
        for name, value in (overrides or {}).items():
            resolved[name] = self.params[name].check(name, value)
        return resolved

    @abstractmethod
    def build(
        self, params: Mapping[str, Any], categorical: Sequence[str], numeric: Sequence[str]
    ) -> BaseEstimator:
        """An unfitted scikit-learn classifier taking the feature frame."""

    def fit(
        self,
        params: Mapping[str, Any],
        categorical: Sequence[str],
        numeric: Sequence[str],
        features: pd.DataFrame,
        labels: pd.Series,
        validation: tuple[pd.DataFrame, pd.Series] | None = None,
        checkpoint: Callable[[], None] | None = None,
    ) -> FitResult:
        """Fit on ``features``; ``validation`` may be used for early stopping, never for anything
        that reaches the holdout. ``checkpoint`` is called as fitting goes on (a family calls it
        as often as it can, every boosting round for LightGBM); it raises to stop the fit."""
        if checkpoint is not None:
            checkpoint()
        estimator = self.build(params, categorical, numeric)
        estimator.fit(features, labels)
        return FitResult(estimator, {})

    def fit_curve(
        self,
        params: Mapping[str, Any],
        categorical: Sequence[str],
        numeric: Sequence[str],
        features: pd.DataFrame,
        labels: pd.Series,
        validation_features: pd.DataFrame,
        validation_labels: pd.Series,
        checkpoint: Callable[[], None] | None = None,
    ) -> Curve:
        """Fit one cross-validation fold and score it on its validation rows at every capacity
        step. A family without a capacity knob has a curve of one step."""
        estimator = self.fit(params, categorical, numeric, features, labels, checkpoint=checkpoint)
        model = estimator.estimator
        score = roc_auc_score(validation_labels, model.predict_proba(validation_features)[:, 1])
        return Curve(np.array([score]), lambda x, step: model.predict_proba(x)[:, 1])

    def pin_capacity(self, step: int) -> dict[str, Any]:
        """The parameters that fix the capacity cross-validation chose."""
        return {}
