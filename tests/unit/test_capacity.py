"""Capacity and threshold chosen by cross-validation inside the training part (issue 8)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from marshmallow import ValidationError
from sklearn.metrics import recall_score

from flight_delay.api.schemas import ModelCreateSchema
from flight_delay.data import flights_from_frame, make_synthetic_flights, schema
from flight_delay.errors import InvalidConfig
from flight_delay.ml import TrainConfig, train
from flight_delay.ml.capacity import cross_validation_folds, rolling_origin_folds
from flight_delay.ml.evaluation import best_f1_threshold


def test_rolling_origin_folds_fit_only_on_the_past_and_score_the_next_month() -> None:
    flights = flights_from_frame(make_synthetic_flights(6000, seed=1)).frame
    times, labels = flights[schema.SCHEDULED_AT], flights[schema.LABEL]
    folds = rolling_origin_folds(times, labels, 4)
    assert len(folds) == 4
    for earlier, later in itertools.pairwise(folds):
        assert earlier.until is not None and later.origin is not None
        assert earlier.origin < later.origin
    for fold in folds:
        assert fold.origin is not None and fold.until is not None
        assert times.iloc[fold.fit].max() < fold.origin  # no fold sees its own future
        assert times.iloc[fold.validation].min() >= fold.origin
        assert set(fold.fit).isdisjoint(fold.validation)
    # the last window reaches the last flight
    assert times.iloc[folds[-1].validation].max() == times.max()


def test_random_protocol_folds_are_stratified_and_cover_every_row_once() -> None:
    flights = flights_from_frame(make_synthetic_flights(3000, seed=2)).frame
    labels = flights[schema.LABEL]
    folds = cross_validation_folds(flights[schema.SCHEDULED_AT], labels, 4, "random", 7)
    covered = np.sort(np.concatenate([fold.validation for fold in folds]))
    assert np.array_equal(covered, np.arange(len(labels)))
    rate = labels.mean()
    assert all(abs(labels.iloc[f.validation].mean() - rate) < 0.02 for f in folds)


def test_model_json_records_every_fold_and_the_chosen_tree_count() -> None:
    model = train(make_synthetic_flights(8000, seed=3), {"params": {"n_estimators": 300}})
    cv = model.metadata["cross_validation"]
    assert cv["method"].startswith("rolling-origin")
    assert len(cv["folds"]) == 4
    assert model.metadata["params"]["n_estimators"] == cv["chosen"] <= 300
    scores = [fold["roc_auc"] for fold in cv["folds"]]
    assert cv["roc_auc_mean"] == pytest.approx(np.mean(scores))
    assert cv["roc_auc_std"] == pytest.approx(np.std(scores))
    assert "cross-validation" in model.metadata["threshold"]["chosen_on"]


def test_data_spanning_too_few_months_falls_back_to_one_validation_slice() -> None:
    flights = make_synthetic_flights(20000, seed=4)
    one_month = flights[flights[schema.SCHEDULED_AT].str[5:7] == "03"].reset_index(drop=True)
    model = train(one_month, {"params": {"n_estimators": 50}})
    assert model.metadata["cross_validation"] is None
    assert "validation slice" in model.metadata["threshold"]["chosen_on"]


def test_the_threshold_flags_at_least_min_recall_of_delayed_flights() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 2000)
    probabilities = np.clip(0.35 * labels + 0.65 * rng.random(2000), 0, 1)
    for floor in (0.0, 0.6, 0.9, 0.99):
        threshold = best_f1_threshold(labels, probabilities, floor)
        assert recall_score(labels, probabilities >= threshold) >= floor


@pytest.mark.parametrize("folds", [1, 13, -1, True, 2.5])
def test_cv_folds_outside_its_range_is_refused(folds: object) -> None:
    with pytest.raises(InvalidConfig) as info:
        TrainConfig(cv_folds=folds)  # type: ignore[arg-type]
    assert info.value.field == "cv_folds"
    if not isinstance(folds, bool | float):
        with pytest.raises(ValidationError) as error:
            ModelCreateSchema().load({"dataset": "flights.csv", "cv_folds": folds})
        assert "cv_folds" in error.value.messages


def test_defaults_are_the_same_for_the_library_and_the_api() -> None:
    loaded = ModelCreateSchema().load({"dataset": "flights.csv"})
    assert loaded["cv_folds"] == TrainConfig().cv_folds == 4
    assert loaded["min_recall"] == TrainConfig().min_recall == 0.6
