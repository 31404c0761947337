"""``train``: split, fit, choose the threshold, evaluate on the holdout, refit, describe.

The holdout is touched exactly once, to measure the model. The capacity (LightGBM's tree count),
the calibration and the threshold come from cross-validation inside the training part (rolling-
origin monthly folds by default, see :mod:`flight_delay.ml.capacity`), or from one validation
slice of it when the data spans too few months.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from flight_delay.data import FlightData, flights_from_frame, load_flights, schema
from flight_delay.features import FeatureSet, FlightFeatures, get_feature_set
from flight_delay.features.live import LEAD_FEATURE, TRAINING_LEADS, at_lead_times, lead_label
from flight_delay.ml.artifacts import FORMAT_VERSION, TrainedModel, library_versions
from flight_delay.ml.calibration import Calibration
from flight_delay.ml.capacity import MIN_FOLDS, choose_capacity, cross_validation_folds
from flight_delay.ml.config import TrainConfig
from flight_delay.ml.evaluation import best_f1_threshold, classification_metrics, curves
from flight_delay.ml.families import get_family
from flight_delay.ml.live_model import LiveClassifier
from flight_delay.ml.splits import split_positions

#: progress(stage, percent): called as training moves on; the CLI draws it, the worker publishes it
Progress = Callable[[str, int], None]


def _no_progress(stage: str, percent: int) -> None:
    return None


def as_flight_data(data: FlightData | pd.DataFrame | str | Path) -> FlightData:
    if isinstance(data, FlightData):
        return data
    if isinstance(data, pd.DataFrame):
        return flights_from_frame(data)
    return load_flights(data)


def train(
    data: FlightData | pd.DataFrame | str | Path,
    config: TrainConfig | Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> TrainedModel:
    """Train and evaluate one model.

    Args:
        data: a path (CSV, folder, parquet), a frame in the SCL schema, or loaded ``FlightData``.
        config: a :class:`TrainConfig` or its settings as a dict (validated).
        progress: optional ``progress(stage, percent)`` callback.
        checkpoint: optional callable the model families call while fitting (every boosting
            round); it raises to stop training (the worker's cancelled jobs).

    Returns:
        The final model (refit on every row unless ``refit`` is false) with its metadata.

    Raises:
        InvalidDataset: the data cannot be used.
        InvalidConfig: a setting or hyperparameter is not acceptable.
    """
    report = progress or _no_progress
    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_dict(config)
    report("loading data", 2)
    flights = as_flight_data(data)
    frame, labels = flights.frame, flights.labels
    family = get_family(config.model_type)
    feature_set = get_feature_set(config.features)
    blind: TrainedModel | None = None
    if feature_set.given:
        # flights with nothing observed get the schedule model of the same flights and settings
        # (see flight_delay.ml.live_model); the live booster learns from the lead-time rows
        outer = report
        blind = train(
            flights,
            {**config.to_dict(), "features": "schedule"},
            progress=lambda stage, percent: outer(f"schedule model: {stage}", 2 + percent // 3),
            checkpoint=checkpoint,
        )

        def report(stage: str, percent: int) -> None:
            outer(stage, 35 + percent * 65 // 100)

    params = config.resolved_params()
    categorical, numeric = feature_set.categorical, feature_set.numeric

    report("splitting", 8)
    train_pos, test_pos = split_positions(
        frame, config.split, config.test_size, config.seed, config.time_cutoff
    )
    flight_rows = len(frame)
    if feature_set.given:
        report("sampling every flight at each lead time", 9)
        frame, origin = at_lead_times(frame, [lead for lead in TRAINING_LEADS if lead])
        labels = labels.iloc[origin].reset_index(drop=True)
        # a flight's rows stay on its side of the split
        train_pos = np.flatnonzero(np.isin(origin, train_pos))
        test_pos = np.flatnonzero(np.isin(origin, test_pos))
    train_part = frame.iloc[train_pos].reset_index(drop=True)
    y_train = labels.iloc[train_pos].reset_index(drop=True)

    def choose_threshold(y: np.ndarray, probability: np.ndarray) -> float:
        if config.threshold_strategy == "fixed":
            assert config.threshold is not None
            return float(config.threshold)
        return best_f1_threshold(y, probability, float(config.min_recall))

    folds = cross_validation_folds(
        train_part[schema.SCHEDULED_AT], y_train, config.cv_folds, config.split, config.seed
    )
    capacity: dict[str, Any] | None = None
    if len(folds) >= MIN_FOLDS:
        report(f"cross-validating {family.name} (fold 1 of {len(folds)})", 15)
        choice = choose_capacity(
            family, params, config.features, categorical, numeric, train_part, y_train, folds,
            choose_threshold,
            progress=lambda done: report(
                f"cross-validating {family.name} (fold {min(done + 1, len(folds))} of "
                f"{len(folds)})", 15 + 30 * done // len(folds),
            ),
            checkpoint=checkpoint,
        )  # fmt: skip
        pinned = {**params, **choice.pinned_params}
        calibration = choice.calibration
        threshold = choice.threshold
        validation_metrics = choice.out_of_fold_metrics
        capacity = choice.report
        chosen_on = (
            f"out-of-fold predictions of {len(folds)} cross-validation folds "
            f"({validation_metrics['rows']} flights)"
        )
        report("building features", 45)
        features = FlightFeatures(config.features)
        x_train = features.fit_transform(train_part, y_train)  # out-of-fold delay rates
        validation_rows = int(validation_metrics["rows"])
    else:
        # too few months for the folds: one time-ordered (or stratified) validation slice
        fit_pos, val_pos = split_positions(
            train_part, config.split, config.validation_size, config.seed
        )
        report("building features", 15)
        features = FlightFeatures(config.features)
        x_train = features.fit_transform(train_part, y_train)  # out-of-fold delay rates
        x_fit, y_fit = x_train.iloc[fit_pos], y_train.iloc[fit_pos]
        x_val, y_val = x_train.iloc[val_pos], y_train.iloc[val_pos]
        report(f"fitting {family.name} (validation)", 25)
        first = family.fit(
            params, categorical, numeric, x_fit, y_fit, validation=(x_val, y_val),
            checkpoint=checkpoint,
        )  # fmt: skip
        pinned = {**params, **first.pinned_params}
        calibration = Calibration()  # one slice is too little to fit and check a calibration
        val_probability = first.estimator.predict_proba(x_val)[:, 1]
        threshold = choose_threshold(y_val.to_numpy(), val_probability)
        validation_metrics = classification_metrics(y_val.to_numpy(), val_probability, threshold)
        chosen_on = f"validation slice of the training part ({len(val_pos)} flights)"
        validation_rows = len(val_pos)

    # The evaluated model is the one the procedure produces: all of the training part, with the
    # tree count cross-validation (or early stopping on the slice) chose. The holdout is seen here for the first and only time.
    report(f"fitting {family.name} (training part)", 45)
    evaluated = family.fit(
        pinned, categorical, numeric, x_train, y_train, checkpoint=checkpoint
    ).estimator
    report("evaluating on the holdout", 65)
    test_part = frame.iloc[test_pos].reset_index(drop=True)
    y_test = labels.iloc[test_pos].to_numpy()
    test_probability = calibration.apply(
        evaluated.predict_proba(features.transform(test_part))[:, 1]
    )
    holdout_metrics = classification_metrics(y_test, test_probability, threshold)
    if blind is not None:
        holdout_metrics["by_lead"] = _metrics_by_lead(
            test_part[LEAD_FEATURE].to_numpy(), y_test, test_probability, threshold
        )
        # nothing observed: the schedule model, measured on the same holdout flights
        holdout_metrics["by_lead"][lead_label(None)] = {
            k: v for k, v in blind.metrics["holdout"].items() if k != "curves"
        }
    # the model page draws these (ROC and precision-recall points, at most 101 each)
    holdout_metrics["curves"] = curves(y_test, test_probability)

    if config.refit:
        report(f"refitting {family.name} on all rows", 75)
        final_features = FlightFeatures(config.features)
        final_estimator = family.fit(
            pinned, categorical, numeric, final_features.fit_transform(frame, labels), labels,
            checkpoint=checkpoint,
        ).estimator  # fmt: skip
        pipeline = Pipeline(
            [
                ("features", final_features),
                ("model", _with_blind(final_estimator, blind, feature_set)),
            ]
        )
        final_rows = len(frame)
    else:
        pipeline = Pipeline(
            [("features", features), ("model", _with_blind(evaluated, blind, feature_set))]
        )
        final_rows = len(train_part)

    report("describing", 95)
    scheduled = frame[schema.SCHEDULED_AT]
    fmt = schema.DATETIME_FORMAT
    metadata: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "model_uid": str(uuid.uuid4()),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_type": family.name,
        "params": pinned,
        "config": config.to_dict(),
        "feature_set": {
            "name": feature_set.name,
            "description": feature_set.description,
            "categorical": list(categorical),
            "numeric": list(numeric),
            "input_schema": pipeline.named_steps["features"].input_schema(),
        },
        "threshold": {
            "value": threshold,
            "strategy": config.threshold_strategy,
            "chosen_on": chosen_on,
        },
        "metrics": {"holdout": holdout_metrics, "validation": validation_metrics},
        "cross_validation": capacity,
        "calibration": calibration.as_dict(),
        "evaluation": {
            "protocol": config.split,
            "training_rows": len(train_pos),
            "validation_rows": validation_rows,
            "holdout_rows": len(test_pos),
            **(
                {
                    # rows are flights x lead times; the data's own flights are these
                    "flights": flight_rows,
                    "lead_times": [lead_label(lead) for lead in TRAINING_LEADS],
                }
                if feature_set.given
                else {}
            ),
            "holdout_scheduled_from": scheduled.iloc[test_pos].min().strftime(fmt),
            "holdout_scheduled_to": scheduled.iloc[test_pos].max().strftime(fmt),
            "note": (
                "holdout metrics measure a model fit on the training part only; "
                + (
                    "the saved model was then refit on all rows with the same settings"
                    if config.refit
                    else "the saved model is that model"
                )
            ),
        },
        "final_model": {"refit_on_all_rows": config.refit, "rows": final_rows},
        "data": {**flights.fingerprint.as_dict(), **flights.notes},
        "versions": library_versions(),
    }
    if blind is not None:
        metadata["blind"] = {
            "about": "the schedule model of the same flights and settings: it answers the "
            "flights asked with nothing observed",
            "calibration": blind.metadata["calibration"],
            "threshold": blind.metadata["threshold"],
            "params": blind.metadata["params"],
            "cross_validation": blind.metadata["cross_validation"],
            "metrics": {"holdout": metadata["metrics"]["holdout"]["by_lead"][lead_label(None)]},
        }
    model = TrainedModel(pipeline, metadata)
    metadata["importances"] = model.importances()
    report("done", 100)
    return model


def _with_blind(estimator: Any, blind: TrainedModel | None, feature_set: FeatureSet) -> Any:
    """A live model's estimator: ``estimator`` for rows with departures seen, the schedule
    model's for rows with nothing observed; any other model's estimator as it is."""
    if blind is None:
        return estimator
    blind_columns = len(get_feature_set(blind.features.feature_set).columns)
    # the schedule model reads the first columns of the live matrix: the same features
    assert list(feature_set.columns[:blind_columns]) == list(blind.features.feature_names_out_)
    return LiveClassifier(
        observed=estimator,
        blind=blind.pipeline.steps[-1][1],
        blind_columns=blind_columns,
        lead_column=list(feature_set.columns).index(LEAD_FEATURE),
    )


def _metrics_by_lead(
    leads: np.ndarray, labels: np.ndarray, probability: np.ndarray, threshold: float
) -> dict[str, dict[str, Any]]:
    """The holdout's metrics at each lead time ("none": nothing observed), on the same flights."""
    out = {}
    for lead in TRAINING_LEADS:
        if lead is not None:
            rows = leads == lead
            out[lead_label(lead)] = classification_metrics(
                labels[rows], probability[rows], threshold
            )
    return out


def evaluate(model: TrainedModel, data: FlightData | pd.DataFrame | str | Path) -> dict[str, Any]:
    """Metrics of ``model`` on labelled ``data`` at the model's own threshold."""
    flights = as_flight_data(data)
    probability = model.predict_proba(flights.frame)
    return classification_metrics(np.asarray(flights.labels), probability, model.threshold)
