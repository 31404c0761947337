"""LightGBM gradient-boosted trees with native categorical handling: the main model."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from flight_delay.ml.families.base import Curve, FitResult, ModelFamily, Param


class LightGBMFamily(ModelFamily):
    name: ClassVar[str] = "lightgbm"
    capacity_name: ClassVar[str | None] = "n_estimators"
    description: ClassVar[str] = (
        "LightGBM gradient boosting, native categorical splits, early stopping"
    )
    # Defaults from a sweep on the real data (see docs in README): strong regularisation of the
    # categorical splits matters because the flight number has ~700 levels and overfits otherwise.
    params: ClassVar[Mapping[str, Param]] = {
        "n_estimators": Param(
            int, 2000, 1, 20000, help="upper bound; early stopping picks the count"
        ),
        "learning_rate": Param(float, 0.03, 1e-4, 1.0),
        "num_leaves": Param(int, 31, 2, 4096),
        "max_depth": Param(int, -1, -1, 64),
        "min_child_samples": Param(int, 40, 1, 100000),
        "subsample": Param(float, 0.8, 0.05, 1.0),
        "subsample_freq": Param(int, 1, 0, 100),
        "colsample_bytree": Param(float, 0.5, 0.05, 1.0),
        "reg_lambda": Param(float, 0.0, 0.0, 1000.0),
        "reg_alpha": Param(float, 0.0, 0.0, 1000.0),
        "cat_smooth": Param(float, 100.0, 0.0, 10000.0),
        "cat_l2": Param(float, 50.0, 0.0, 10000.0),
        "min_data_per_group": Param(int, 200, 1, 100000),
        "max_cat_threshold": Param(int, 16, 1, 1024),
        "early_stopping_rounds": Param(
            int,
            200,
            0,
            10000,
            help="patience: a cross-validation fold (or the validation slice) stops after this "
            "many rounds without improvement; 0 turns early stopping off",
        ),
        "n_jobs": Param(int, 2, -1, 256, help="threads while training"),
        "random_state": Param(int, 42, 0, 2**31 - 1),
    }

    def build(
        self, params: Mapping[str, Any], categorical: Sequence[str], numeric: Sequence[str]
    ) -> BaseEstimator:
        options = {k: v for k, v in params.items() if k != "early_stopping_rounds"}
        return lgb.LGBMClassifier(objective="binary", verbose=-1, **options)

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
        estimator = self.build(params, categorical, numeric)
        rounds = int(params["early_stopping_rounds"])
        callbacks = _checkpoint_callbacks(checkpoint)
        if validation is None or rounds == 0:
            estimator.fit(features, labels, callbacks=callbacks)
            return FitResult(estimator, {})
        estimator.fit(
            features,
            labels,
            eval_X=(validation[0],),
            eval_y=(validation[1],),
            eval_metric="binary_logloss",
            callbacks=[*callbacks, lgb.early_stopping(rounds, verbose=False)],
        )
        best = int(estimator.best_iteration_ or params["n_estimators"])
        return FitResult(estimator, {"n_estimators": best, "early_stopping_rounds": 0})

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
        # AUC is the only metric, so early stopping and the recorded curve are about ranking
        estimator = self.build(params, categorical, numeric).set_params(metric="auc")
        rounds = int(params["early_stopping_rounds"])
        scores: dict[str, Any] = {}
        callbacks = [lgb.record_evaluation(scores), *_checkpoint_callbacks(checkpoint)]
        if rounds:
            callbacks.append(lgb.early_stopping(rounds, first_metric_only=True, verbose=False))
        estimator.fit(
            features,
            labels,
            eval_X=(validation_features,),
            eval_y=(validation_labels,),
            callbacks=callbacks,
        )
        curve = np.asarray(scores["valid_0"]["auc"], dtype=float)
        fitted = len(curve)

        def predict(x: pd.DataFrame, step: int) -> np.ndarray:
            return np.asarray(estimator.predict_proba(x, num_iteration=min(step, fitted))[:, 1])

        return Curve(curve, predict)

    def pin_capacity(self, step: int) -> dict[str, Any]:
        return {"n_estimators": step, "early_stopping_rounds": 0}


def _checkpoint_callbacks(checkpoint: Callable[[], None] | None) -> list[Any]:
    """``checkpoint`` called every boosting round: a cancelled job stops within one round, not
    at the end of the fit."""
    return [] if checkpoint is None else [lambda env: checkpoint()]
