"""The training configuration: a validated, JSON-safe set of settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

import pandas as pd

from flight_delay.data import schema
from flight_delay.errors import InvalidConfig
from flight_delay.features import DEFAULT_FEATURE_SET, get_feature_set
from flight_delay.ml.families import DEFAULT_FAMILY, get_family

SPLITS = ("time", "random")
#: seeds reach numpy, which takes 0 .. 2**32 - 1
MAX_SEED = 2**32 - 1
MAX_CUTOFF_LENGTH = 32
THRESHOLD_STRATEGIES = ("best_f1", "fixed")
MIN_CV_FOLDS, MAX_CV_FOLDS = 2, 12


@dataclass(frozen=True)
class TrainConfig:
    """How to train and evaluate one model.

    Attributes:
        model_type: a registered model family (``lightgbm``, ``logistic_regression``).
        features: ``schedule`` (default) or ``minimal``.
        split: ``time`` holds out the last ``test_size`` of flights by Fecha-I (or every flight from
            ``time_cutoff`` on); ``random`` holds out a stratified, seeded sample.
        test_size: share of flights held out for the evaluation.
        validation_size: share of the training part used for early stopping and the threshold
            when the data spans too few months for ``cv_folds`` (or ``cv_folds`` is 0).
        cv_folds: cross-validation folds inside the training part (one-month rolling-origin
            windows with ``split=time``, stratified folds with ``split=random``); they choose
            the capacity (LightGBM's tree count) and the threshold. 0: one validation slice.
        time_cutoff: with ``split=time``, hold out flights scheduled at or after this date.
        seed: random seed of splits and models.
        threshold_strategy: ``best_f1`` (of the delay class, on the out-of-fold predictions of
            the cross-validation, or the validation slice) or ``fixed``.
        min_recall: with ``best_f1``, the threshold must flag at least this share of the delayed
            flights there (0.6: the challenge's acceptance bar; 0 for plain best F1).
        threshold: the decision threshold when ``threshold_strategy`` is ``fixed``.
        refit: after the evaluation, refit the final model on every row.
        params: hyperparameters of the model family, validated against its declared ranges.
    """

    model_type: str = DEFAULT_FAMILY
    features: str = DEFAULT_FEATURE_SET
    split: str = "time"
    test_size: float = 0.2
    validation_size: float = 0.15
    cv_folds: int = 4
    time_cutoff: str | None = None
    seed: int = 42
    threshold_strategy: str = "best_f1"
    threshold: float | None = None
    min_recall: float = 0.6
    refit: bool = True
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        get_family(self.model_type)
        get_feature_set(self.features)
        if self.split not in SPLITS:
            raise InvalidConfig("split", f"must be one of {', '.join(SPLITS)}, got {self.split!r}")
        for name in ("test_size", "validation_size"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0.05 <= value <= 0.5
            ):
                raise InvalidConfig(name, f"must be a number between 0.05 and 0.5, got {value!r}")
        if (
            isinstance(self.cv_folds, bool)
            or not isinstance(self.cv_folds, int)
            or not (self.cv_folds == 0 or MIN_CV_FOLDS <= self.cv_folds <= MAX_CV_FOLDS)
        ):
            raise InvalidConfig(
                "cv_folds", f"must be 0 or an integer from {MIN_CV_FOLDS} to {MAX_CV_FOLDS}"
            )
        if get_feature_set(self.features).given and self.model_type != "lightgbm":
            raise InvalidConfig(
                "features", f"the {self.features!r} features need model_type lightgbm"
            )
        if get_feature_set(self.features).given and self.split != "time":
            # each flight is a row per lead time: a random split or fold would put copies of
            # one flight on both sides, and score the model on flights it trained on
            raise InvalidConfig(
                "split", f"the {self.features!r} features are trained on the time protocol only"
            )
        if self.time_cutoff is not None:
            if self.split != "time":
                raise InvalidConfig("time_cutoff", "only applies to split=time")
            check_cutoff(self.time_cutoff)
        if (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not 0 <= self.seed <= MAX_SEED
        ):
            raise InvalidConfig("seed", f"must be an integer from 0 to {MAX_SEED}")
        if self.threshold_strategy not in THRESHOLD_STRATEGIES:
            raise InvalidConfig(
                "threshold_strategy", f"must be one of {', '.join(THRESHOLD_STRATEGIES)}"
            )
        if self.threshold_strategy == "fixed":
            t = self.threshold
            if isinstance(t, bool) or not isinstance(t, int | float) or not 0.0 < t < 1.0:
                raise InvalidConfig(
                    "threshold", "with threshold_strategy=fixed, give a number in (0, 1)"
                )
        elif self.threshold is not None:
            raise InvalidConfig("threshold", "only applies to threshold_strategy=fixed")
        if (
            isinstance(self.min_recall, bool)
            or not isinstance(self.min_recall, int | float)
            or not 0.0 <= self.min_recall <= 1.0
        ):
            raise InvalidConfig("min_recall", "must be a number from 0 to 1")
        if not isinstance(self.refit, bool):
            raise InvalidConfig("refit", "must be true or false")
        # validates names, types and ranges; the resolved values are recorded at training time
        get_family(self.model_type).resolve_params(self.params)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every setting's default: the one source for the CLI, the API schema and the docs."""
        return cls().to_dict()

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any] | None) -> TrainConfig:
        """Build from JSON-like settings; an unknown key is an error, not silently dropped."""
        settings = dict(settings or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise InvalidConfig(unknown[0], f"unknown setting; allowed: {', '.join(sorted(known))}")
        return cls(**settings)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def resolved_params(self) -> dict[str, Any]:
        params = get_family(self.model_type).resolve_params(self.params)
        if "random_state" in params and "random_state" not in self.params:
            params["random_state"] = self.seed
        return params


def check_cutoff(value: Any) -> pd.Timestamp:
    """A ``time_cutoff``: a naive date or date-time (local SCL time, like Fecha-I), 1950-2100."""
    if not isinstance(value, str) or len(value) > MAX_CUTOFF_LENGTH:
        raise InvalidConfig(
            "time_cutoff",
            f"a date as text, YYYY-MM-DD[ HH:MM:SS], at most {MAX_CUTOFF_LENGTH} characters",
        )
    text = value.strip()
    try:
        # fromisoformat: ISO 8601 only, and quick on any input (pd.Timestamp guesses formats)
        parsed = datetime.fromisoformat(text) if text.isascii() else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise InvalidConfig("time_cutoff", "not a date: expected YYYY-MM-DD[ HH:MM:SS]")
    if parsed.tzinfo is not None:
        raise InvalidConfig(
            "time_cutoff", "give a local SCL date-time without a UTC offset, as Fecha-I is"
        )
    if not schema.EARLIEST_SCHEDULED <= parsed <= schema.LATEST_SCHEDULED:
        raise InvalidConfig("time_cutoff", schema.OUT_OF_RANGE)
    return pd.Timestamp(parsed)
