"""The record path (small API batches, no pandas) computes exactly what the frame path does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flight_delay.features import FEATURE_SETS
from flight_delay.ml import TrainedModel, train
from flight_delay.ml.artifacts import FAST_PATH_MAX_FLIGHTS
from tests.support.features import frame_codes

REQUEST_FIELDS = ["Fecha-I", "Vlo-I", "Des-I", "Emp-I", "OPERA", "TIPOVUELO", "MES"]


@pytest.fixture(scope="module", params=sorted(FEATURE_SETS))
def model(request: pytest.FixtureRequest, synthetic_flights: pd.DataFrame) -> TrainedModel:
    return train(synthetic_flights, {"features": request.param, "params": {"n_estimators": 150}})


def as_requests(frame: pd.DataFrame) -> list[dict[str, object]]:
    """Flights as a JSON client sends them."""
    return frame[REQUEST_FIELDS].to_dict("records")


def test_feature_matrices_are_equal(model: TrainedModel, synthetic_flights: pd.DataFrame) -> None:
    records = as_requests(synthetic_flights.sample(300, random_state=1))
    np.testing.assert_array_equal(
        model.features.records_matrix(records), frame_codes(model, records)
    )


def test_edge_values_are_read_alike(model: TrainedModel) -> None:
    base = {"Fecha-I": "2017-07-31 23:59:00", "Vlo-I": "989P", "Des-I": "SCIE", "Emp-I": "SKU",
            "OPERA": "Sky Airline", "TIPOVUELO": "N", "MES": "7"}  # fmt: skip
    records = [
        base,
        {**base, "Vlo-I": 100, "Emp-I": " ZZZ ", "MES": 7.0},  # numbers, spaces, unseen carrier
        {**base, "Fecha-I": "2017-12-31T00:05:00+03:00"},  # ISO with an offset: wall-clock time
        {**base, "Fecha-I": "2017-09-18 10:00:00", "Vlo-I": "12345"},  # a holiday
        {**base, "Fecha-I": "2016-01-01 06:00:00"},  # a year the training data never saw
    ]
    np.testing.assert_array_equal(
        model.features.records_matrix(records), frame_codes(model, records)
    )


def test_probabilities_are_equal(model: TrainedModel, synthetic_flights: pd.DataFrame) -> None:
    records = as_requests(synthetic_flights.sample(FAST_PATH_MAX_FLIGHTS, random_state=2))
    record_path = model.predict_proba(records)
    frame_path = model.predict_proba(pd.DataFrame.from_records(records))
    np.testing.assert_allclose(record_path, frame_path, rtol=0, atol=1e-12)
    one = model.predict_proba(records[:1])
    assert one[0] == pytest.approx(frame_path[0], abs=1e-12)


def test_large_batches_take_the_columnar_path_with_the_same_answers(
    model: TrainedModel, synthetic_flights: pd.DataFrame
) -> None:
    records = as_requests(synthetic_flights.head(FAST_PATH_MAX_FLIGHTS + 10))
    both = model.predict_proba(records)
    np.testing.assert_allclose(both[:5], model.predict_proba(records[:5]), atol=1e-12)
    # and the three ways of building the features agree number for number
    columnar = model.features.columns_matrix(records)
    np.testing.assert_array_equal(columnar, model.features.records_matrix(records))
    np.testing.assert_array_equal(columnar, frame_codes(model, records))


def test_the_given_live_features_are_read_alike_by_the_three_paths(
    synthetic_flights: pd.DataFrame,
) -> None:
    """A live model's lead time and point-in-time features come with each flight: numbers are
    taken as they are, anything else (text, a boolean, absent) is missing, on every path."""
    model = train(synthetic_flights, {"features": "live", "params": {"n_estimators": 40}})
    given = FEATURE_SETS["live"].given
    records: list[dict[str, object]] = []
    for i, record in enumerate(as_requests(synthetic_flights.head(FAST_PATH_MAX_FLIGHTS + 10))):
        values: dict[str, object] = {name: float((i * 7 + j) % 13) for j, name in enumerate(given)}
        if i % 5 == 1:
            values[given[0]] = "30"  # text: missing, as a caller's JSON string would be
        if i % 5 == 2:
            values[given[1]] = True
        if i % 5 == 3:
            values = {}  # nothing observed
        records.append({**record, **values})
    columnar = model.features.columns_matrix(records)
    np.testing.assert_array_equal(columnar, model.features.records_matrix(records))
    np.testing.assert_array_equal(columnar, frame_codes(model, records))
    width = len(FEATURE_SETS["live"].columns)
    lead = width - len(given)
    assert columnar[0, lead] == 0.0 and np.isnan(columnar[1, lead])
    assert np.isnan(columnar[2, lead + 1]) and np.isnan(columnar[3, lead:]).all()
    # and what the model answers does not depend on the path either
    np.testing.assert_allclose(
        model.predict_proba(records)[:5], model.predict_proba(records[:5]), atol=1e-12
    )
