"""Drift (issue 11): adversarial validation and PSI over the model's own features. A held-out
slice of the training data looks like it (ROC AUC < 0.55); the same flights moved to one
airline and to night hours are told apart (> 0.9) by the features that changed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from flight_delay.data import flights_from_frame, make_synthetic_flights
from flight_delay.ml import TrainedModel, train
from flight_delay.ml.drift import TooFewRows, chart_png, drift_report, population_stability
from flight_delay.ml.splits import split_positions

SETTINGS = {"split": "random", "test_size": 0.25, "seed": 42, "refit": False, "cv_folds": 0,
            "params": {"n_estimators": 60}}  # fmt: skip


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    return flights_from_frame(make_synthetic_flights(6000, seed=11)).frame


@pytest.fixture(scope="module")
def model(flights: pd.DataFrame) -> TrainedModel:
    return train(flights, SETTINGS)


def sides(flights: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    training, held_out = split_positions(flights, "random", 0.25, 42)
    return flights.iloc[training], flights.iloc[held_out]


def moved_to_one_airline_at_night(flights: pd.DataFrame) -> pd.DataFrame:
    moved = flights.copy()
    first = moved.iloc[0]
    moved["OPERA"], moved["Emp-I"] = first["OPERA"], first["Emp-I"]
    minutes = pd.to_timedelta(np.arange(len(moved)) % 240, unit="m")
    moved["Fecha-I"] = moved["Fecha-I"].dt.normalize() + pd.Timedelta(hours=1) + minutes
    return moved


def test_a_held_out_slice_of_the_training_data_shows_no_drift(
    model: TrainedModel, flights: pd.DataFrame
) -> None:
    reference, held_out = sides(flights)
    report = drift_report(model.features, reference, held_out)
    assert report["adversarial"]["roc_auc"] < 0.55
    assert report["current_rows"] == len(held_out)
    assert max(report["psi"].values()) < 0.1


def test_requests_moved_to_one_airline_and_night_hours_are_told_apart(
    model: TrainedModel, flights: pd.DataFrame
) -> None:
    reference, held_out = sides(flights)
    report = drift_report(model.features, reference, moved_to_one_airline_at_night(held_out))
    assert report["adversarial"]["roc_auc"] > 0.9
    top = [f["feature"] for f in report["adversarial"]["separating_features"][:3]]
    assert {"hour", "minute_of_day"} & set(top), top
    assert report["psi"]["airline"] > 0.25 and report["psi"]["hour"] > 0.25
    assert chart_png(report, "moved").startswith(b"\x89PNG")


def test_psi_is_zero_for_the_same_distribution_and_counts_unseen_categories() -> None:
    rng = np.random.default_rng(0)
    numbers = pd.Series(rng.normal(size=5000))
    assert population_stability(numbers, numbers.sample(frac=1, random_state=1)) < 1e-9
    assert population_stability(numbers, numbers + 2) > 1.0
    known = pd.Series(pd.Categorical(["a", "b"] * 500))
    unseen = pd.Series(pd.Categorical(["c"] * 1000))
    assert population_stability(known, unseen) > 5.0  # all in the "not in training" bin


def test_too_few_requested_flights_is_an_error_not_a_figure(
    model: TrainedModel, flights: pd.DataFrame
) -> None:
    with pytest.raises(TooFewRows, match="at least 50"):
        drift_report(model.features, flights, flights.head(49))


def test_the_drift_chart_has_every_word_inside_the_picture() -> None:
    """Long feature names and titles once ran past the figure's right edge."""
    from flight_delay.ml.drift import chart_png

    report = {
        "psi": {f"days_since_holiday_{i}": 0.05 * i for i in range(12)},
        "adversarial": {
            "roc_auc": 0.712,
            "separating_features": [
                {"feature": f"airline_slot_flights_per_week_{i}", "gain_share": 0.1}
                for i in range(12)
            ],
        },
    }
    outside: list[str] = []

    def inspect(figure: Any) -> None:
        renderer = figure.canvas.get_renderer()
        drawn = figure.get_tightbbox(renderer)  # in inches: everything drawn, text included
        page = figure.bbox_inches
        for side, beyond in (("left", drawn.x0 < page.x0 - 0.01),
                             ("right", drawn.x1 > page.x1 + 0.01),
                             ("bottom", drawn.y0 < page.y0 - 0.01),
                             ("top", drawn.y1 > page.y1 + 0.01)):  # fmt: skip
            if beyond:
                outside.append(side)

    assert chart_png(report, "model 3f1c2a9e: logged requests vs training rows", inspect)
    assert outside == []
