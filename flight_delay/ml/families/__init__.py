"""Model families behind one interface, and the registry that names them.

Adding a family: write a module with a :class:`ModelFamily` subclass and add one entry below.
"""

from __future__ import annotations

from collections.abc import Mapping

from flight_delay.errors import UnknownModelFamily
from flight_delay.ml.families.base import FitResult, ModelFamily, Param
from flight_delay.ml.families.lightgbm import LightGBMFamily
from flight_delay.ml.families.logistic_regression import LogisticRegressionFamily

FAMILIES: Mapping[str, ModelFamily] = {
    LightGBMFamily.name: LightGBMFamily(),
    LogisticRegressionFamily.name: LogisticRegressionFamily(),
}
DEFAULT_FAMILY = LightGBMFamily.name


def get_family(name: str) -> ModelFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        raise UnknownModelFamily(
            "model_type", f"unknown model type {name!r}; choose one of {', '.join(FAMILIES)}"
        ) from None


__all__ = ["DEFAULT_FAMILY", "FAMILIES", "FitResult", "ModelFamily", "Param", "get_family"]
