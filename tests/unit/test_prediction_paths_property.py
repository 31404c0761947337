"""Both prediction paths the API uses give identical answers for every input it accepts, and the
same refusals for every input it refuses (issue 7, finding 7): a Hypothesis property test.

Path A is a small batch (the record path, no pandas); path B is the same flights inside a batch
larger than FAST_PATH_MAX_FLIGHTS (the columnar path: the batch screened and its features built
column by column, issue 10), exactly as POST /predict calls them. The frame path (``transform``,
what training uses) is held equal to both, feature by feature.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flight_delay.errors import InvalidFlights
from flight_delay.features import FEATURE_SETS
from flight_delay.features.contract import COLUMNAR_MIN_FLIGHTS, _check_record, check_records
from flight_delay.ml import TrainedModel, train
from flight_delay.ml.artifacts import FAST_PATH_MAX_FLIGHTS
from tests.support.features import frame_codes

# each property runs hundreds of examples through three models: tens of seconds a test
# (make test-fast leaves them out; test_record_path holds the paths equal there)
pytestmark = pytest.mark.slow

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
        st.sampled_from(samples).map(str.lower),
        st.sampled_from(samples).map(str.swapcase),
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
            # the canonical form with impossible or out-of-range parts: the columnar screen
            # must send each of these to the per-flight checks
            "2017-02-30 10:00:00",
            "2016-02-29 10:00:00",
            "2100-02-29 10:00:00",
            "2017-13-01 00:00:00",
            "2017-00-10 00:00:00",
            "2017-01-00 00:00:00",
            "2017-01-01 24:00:00",
            "2017-01-01 23:60:00",
            "2017-01-01 23:59:60",
            "1949-12-31 23:59:59",
            "1950-01-01 00:00:00",
            "2100-12-31 23:59:59",
            "2101-01-01 00:00:00",
            " 2017-01-01 10:00:00",
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
        np.testing.assert_array_equal(
            model.features.columns_matrix(batch), frame_codes(model, batch)
        )


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    odd=st.lists(flights.map(lambda f: {**VALID, **f}), min_size=1, max_size=6),
    positions=st.lists(st.integers(0, COLUMNAR_MIN_FLIGHTS + 9), min_size=6, max_size=6),
)
def test_the_columnar_screen_reports_exactly_the_per_flight_problems(
    model: TrainedModel, odd: list[dict[str, Any]], positions: list[int]
) -> None:
    """Issue 10: a batch large enough for the column-by-column screen gets the same problems,
    for the same flights, in the same words and order, as checking every flight one by one."""
    batch: list[dict[str, Any]] = [dict(VALID) for _ in range(COLUMNAR_MIN_FLIGHTS + 10)]
    for flight, position in zip(odd, positions, strict=False):
        batch[position] = flight
    features = model.features
    spec = FEATURE_SETS[features.feature_set]
    codes = features.category_codes()
    allowed = {"OPERA": ("airline", codes["airline"])}
    minimal = spec.name == "minimal"
    screened = check_records(batch, spec.required_fields, allowed, minimal)
    one_by_one = [
        issue
        for index, flight in enumerate(batch)
        for issue in _check_record(index, flight, spec.required_fields, allowed, minimal)
    ]
    assert screened == one_by_one


#: the fields whose case carries no meaning: codes, and the airline's name
CASELESS = ("Vlo-I", "Des-I", "Emp-I", "OPERA", "TIPOVUELO", "Ori-I")
KNOWN_FLIGHTS = [
    VALID,
    {**VALID, "Des-I": "SCFA", "Emp-I": "LAN", "OPERA": "Grupo LATAM", "Vlo-I": "100"},
    {**VALID, "Des-I": "SAEZ", "TIPOVUELO": "I", "Emp-I": "ARG", "OPERA": "Aerolineas Argentinas"},
]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    flight=st.sampled_from(KNOWN_FLIGHTS),
    cases=st.fixed_dictionaries(
        {
            field: st.sampled_from([str.lower, str.upper, str.swapcase, str.title])
            for field in CASELESS
        }
    ),
)
def test_codes_and_the_airline_in_any_case_predict_the_same(
    model: TrainedModel, flight: dict[str, Any], cases: dict[str, Any]
) -> None:
    written = {**flight, "Ori-I": "SCEL"}
    recased = {k: cases[k](v) if k in cases else v for k, v in written.items()}
    expected = model.predict_proba([written])
    for batch in ([recased], [recased] * (FAST_PATH_MAX_FLIGHTS + 1)):
        np.testing.assert_array_equal(model.predict_proba(batch)[:1], expected)
    np.testing.assert_array_equal(frame_codes(model, [recased]), frame_codes(model, [written]))
    assert model.warnings([recased]) == model.warnings([written])


def test_training_reads_codes_and_airlines_in_any_case_as_one(
    synthetic_flights: pd.DataFrame,
) -> None:
    """A file that writes some codes and names in another case trains the same model."""
    mixed = synthetic_flights.copy()
    odd = mixed.index % 3 == 0
    for column in ("Des-I", "Emp-I", "Vlo-I"):
        mixed.loc[odd, column] = mixed.loc[odd, column].astype(str).str.lower()
    mixed.loc[odd, "OPERA"] = mixed.loc[odd, "OPERA"].str.upper()
    settings_ = {"features": "schedule_delay_rates", "params": {"n_estimators": 40}}
    plain, recased = train(synthetic_flights, settings_), train(mixed, settings_)
    assert recased.features.categories_ == plain.features.categories_
    np.testing.assert_allclose(
        recased.predict_proba(KNOWN_FLIGHTS), plain.predict_proba(KNOWN_FLIGHTS), atol=1e-12
    )
