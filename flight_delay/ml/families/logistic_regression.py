"""Logistic regression on one-hot categories and scaled numbers: the baseline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from flight_delay.ml.families.base import ModelFamily, Param


class LogisticRegressionFamily(ModelFamily):
    name: ClassVar[str] = "logistic_regression"
    description: ClassVar[str] = "L2 logistic regression, one-hot categories, class balancing"
    params: ClassVar[Mapping[str, Param]] = {
        "C": Param(float, 1.0, 1e-6, 1e6, help="inverse regularisation strength"),
        "class_weight": Param(str, "balanced", choices=("balanced", "none")),
        "max_iter": Param(int, 2000, 10, 100000),
        "min_frequency": Param(int, 5, 1, 100000, help="rarer categories share one column"),
    }

    def build(
        self, params: Mapping[str, Any], categorical: Sequence[str], numeric: Sequence[str]
    ) -> BaseEstimator:
        columns = [
            (
                "categories",
                Pipeline(
                    [
                        # unseen or missing categories arrive as NaN; give them their own level
                        ("fill", SimpleImputer(strategy="constant", fill_value="__missing__")),
                        (
                            "one_hot",
                            OneHotEncoder(
                                handle_unknown="infrequent_if_exist",
                                min_frequency=params["min_frequency"],
                            ),
                        ),
                    ]
                ),
                list(categorical),
            )
        ]
        if numeric:
            columns.append(
                (
                    "numbers",
                    Pipeline(
                        [("fill", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                    ),
                    list(numeric),
                )
            )
        weight = None if params["class_weight"] == "none" else params["class_weight"]
        return Pipeline(
            [
                ("encode", ColumnTransformer(columns)),
                (
                    "classifier",
                    LogisticRegression(
                        C=params["C"], class_weight=weight, max_iter=params["max_iter"]
                    ),
                ),
            ]
        )
