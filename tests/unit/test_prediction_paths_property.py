"""Both prediction paths the API uses give identical answers for every input it accepts, and the
same refusals for every input it refuses (issue 7, finding 7): a Hypothesis property test.

Path A is a small batch (the record path, no pandas); path B is the same flights inside a batch
larger than FAST_PATH_MAX_FLIGHTS (the frame path), exactly as POST /predict calls them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flight_delay.errors import InvalidFlights
from flight_delay.ml import TrainedModel, train
from flight_delay.ml.artifacts import FAST_PATH_MAX_FLIGHTS
from flight_delay.ml.features import FEATURE_SETS
from tests.unit.test_record_path import frame_codes

VALID = {"Fecha-I": "2017-07-31 23:59:00", "Vlo-I": "989", "Des-I": "SCIE", "Emp-I": "SKU",
         "OPERA": "Sky Airline", "TIPOVUELO": "N", "MES": 7}  # fmt: skip


@pytest.fixture(scope="module", params=sorted(FEATURE_SETS))
def model(request: pytest.FixtureRequest, synthetic_flights: pd.DataFrame) -> TrainedModel:
    return train(synthetic_flights, {"features": request.param, "params": {"n_estimators": 60}})


def texts(*samples: str) -> st.SearchStrategy[Any]:
    """Known values, lookalikes and arbitrary text, numbers and nulls."""
    return st.one_of(
        st.sampled_from(samples),
        st.sampled_from(samples).map(lambda s: f"  {s} "),
        st.text(max_size=12),
        st.text(alphabet="0123456789٠١٢٣٤٥٦٧٨٩０１２３", min_size=1, max_size=5),
        st.integers(-(10**6), 10**6),
        st.floats(allow_nan=False, allow_infinity=False, width=32),
        st.booleans(),
        st.none(),
    )


dates = st.one_of(
    st.builds(
        lambda d, sep: d.isoformat(sep=sep),
        st.datetimes(
            min_value=pd.Timestamp("1940-01-01").to_pydatetime(),
            max_value=pd.Timestamp("2110-12-31").to_pydatetime(),
        ),
        st.sampled_from([" ", "T"]),
    ),
    st.sampled_from(
        [
            "2017-01-01",
            "2017-01-01T10:00:00+03:00",
            "2017-02-29 10:00:00",
            "2017-12-31 23:59:59",
            "yesterday",
            "",
            " ",
            "٢٠١٧-٠١-٠١",
        ]
    ),
    st.none(),
    st.integers(0, 10),
)

FIELDS = {
    "Fecha-I": dates,
    "Vlo-I": texts("989", "100", "11", "989P", "0"),
    "Des-I": texts("SCIE", "SCFA", "SPJC", "SAWH"),
    "Emp-I": texts("SKU", "LAN", "JMR", "ZZZ"),
    "OPERA": texts("Sky Airline", "Grupo LATAM", "Air Nowhere"),
    "TIPOVUELO": texts("N", "I", "X"),
    "MES": st.one_of(st.integers(-2, 14), st.floats(0, 13, width=32), texts("3", "12")),
    "Ori-I": st.sampled_from(["SCEL", "SCEL ", "SCFA"]),
}
flights = st.one_of(
    # one field off a valid flight: most such flights are accepted, so answers get compared
    st.sampled_from(sorted(FIELDS)).flatmap(lambda name: FIELDS[name].map(lambda v: {name: v})),
    # anything goes: refusals get compared
    st.fixed_dictionaries({}, optional=FIELDS),
)


def outcome(model: TrainedModel, batch: list[dict[str, Any]], width: int) -> Any:
    try:
        return model.predict_proba(batch)[:width]
    except InvalidFlights as exc:
        return sorted((i.index, i.field, i.problem) for i in exc.issues)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(flights.map(lambda f: {**VALID, **f}), min_size=1, max_size=4))
def test_small_and_large_batches_agree(model: TrainedModel, batch: list[dict[str, Any]]) -> None:
    small = outcome(model, batch, len(batch))
    padding = [VALID] * (FAST_PATH_MAX_FLIGHTS + 1 - len(batch))
    large = outcome(model, batch + padding, len(batch))
    if isinstance(small, list):
        assert small == large  # the same refusals, naming the same flights and fields
    else:
        assert isinstance(large, np.ndarray), large
        np.testing.assert_allclose(small, large, rtol=0, atol=1e-12)
        # and the features themselves, which a small model may not all use
        np.testing.assert_array_equal(
            model.features.records_matrix(batch), frame_codes(model, batch)
        )
