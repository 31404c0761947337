"""Explanations: LightGBM contributions in log-odds, in the user's terms (issue 8)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flight_delay.data import make_synthetic_flights
from flight_delay.errors import ExplanationUnavailable
from flight_delay.ml import TrainedModel, train


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    return make_synthetic_flights(6000, seed=5)


@pytest.fixture(scope="module")
def model(flights: pd.DataFrame) -> TrainedModel:
    return train(flights, {"params": {"n_estimators": 120}})


def test_contributions_plus_the_base_value_are_the_raw_log_odds(
    model: TrainedModel, flights: pd.DataFrame
) -> None:
    rows = flights.drop(columns=["Fecha-O"]).head(40)
    raw = model.pipeline.named_steps["model"].predict(
        model.features.transform(rows), raw_score=True
    )
    probability = model.predict_proba(rows.to_dict("records"))
    for explained in (
        model.explain(rows, top=100),
        model.explain(rows.to_dict("records"), top=100),
    ):
        total = np.array(
            [
                e["base_value"] + sum(c["contribution"] for c in e["contributions"])
                for e in explained
            ]
        )
        assert np.allclose(total, raw, atol=1e-6, rtol=0)
        assert np.allclose([e["log_odds"] for e in explained], raw, atol=1e-6, rtol=0)
        # and the log-odds, calibrated, are the probabilities the model serves
        served = model.calibration.apply(1 / (1 + np.exp(-total)))
        assert np.allclose(served, probability, atol=1e-9)


def test_the_record_path_and_the_frame_path_explain_alike(
    model: TrainedModel, flights: pd.DataFrame
) -> None:
    rows = flights.drop(columns=["Fecha-O"]).head(30)
    by_frame = model.explain(rows, top=100)
    by_records = model.explain(rows.to_dict("records"), top=100)
    for a, b in zip(by_frame, by_records, strict=True):
        assert a["base_value"] == pytest.approx(b["base_value"], abs=1e-9)
        left = {c["feature"]: (c["value"], c["contribution"]) for c in a["contributions"]}
        right = {c["feature"]: (c["value"], c["contribution"]) for c in b["contributions"]}
        assert left.keys() == right.keys()
        for feature, (value, contribution) in left.items():
            assert right[feature][0] == value, feature
            assert right[feature][1] == pytest.approx(contribution, abs=1e-9), feature


def test_the_top_contributions_come_largest_first_in_the_users_terms(
    model: TrainedModel, flights: pd.DataFrame
) -> None:
    row = flights.iloc[[0]].to_dict("records")
    explanation = model.explain(row)[0]
    sizes = [abs(c["contribution"]) for c in explanation["contributions"]]
    assert len(sizes) == 5 and sizes == sorted(sizes, reverse=True)
    by_feature = {c["feature"]: c["value"] for c in model.explain(row, top=100)[0]["contributions"]}
    assert by_feature["airline"] == row[0]["OPERA"]
    assert by_feature["hour"] == float(row[0]["Fecha-I"][11:13])
    unseen = model.explain([{**row[0], "Des-I": "NEW1"}], top=100)[0]["contributions"]
    assert {c["feature"]: c["value"] for c in unseen}["destination"] is None


def test_global_importances_are_recorded(model: TrainedModel) -> None:
    importances = model.metadata["importances"]
    assert set(importances) == set(model.features.feature_names_out_)
    assert sum(importances.values()) == pytest.approx(1.0, abs=1e-4)
    assert list(importances.values()) == sorted(importances.values(), reverse=True)


def test_other_families_say_explanations_are_unavailable(flights: pd.DataFrame) -> None:
    baseline = train(flights, {"model_type": "logistic_regression", "features": "minimal"})
    with pytest.raises(ExplanationUnavailable) as info:
        baseline.explain([{"OPERA": "Grupo LATAM", "TIPOVUELO": "N", "MES": 3}])
    assert info.value.errors == [
        {"field": "explain", "problem": "not available for logistic_regression models"}
    ]
    assert baseline.metadata["importances"] == {}


def test_predict_explained_serves_the_probabilities_of_predict_proba(
    model: TrainedModel, flights: pd.DataFrame
) -> None:
    """?explain=true predicts once, from the contributions: the same probabilities, in order."""
    rows = flights.drop(columns=["Fecha-O"]).iloc[100:400]
    for given in (rows.to_dict("records")[:50], rows.reset_index(drop=True)):
        probability, explanations = model.predict_explained(given)
        assert len(explanations) == len(probability) == len(given)
        np.testing.assert_allclose(probability, model.predict_proba(given), atol=1e-9, rtol=0)
