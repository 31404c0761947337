"""Features: only schedule-time columns, single-flight computable, strict input checks."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from flight_delay.data import flights_from_frame, schema
from flight_delay.errors import InvalidConfig, InvalidFlights
from flight_delay.features import FEATURE_SETS, FlightFeatures, delay_rates
from flight_delay.features.calendar import holiday_distances, is_high_season


@pytest.fixture(scope="module")
def training_frame(synthetic_flights: pd.DataFrame) -> pd.DataFrame:
    return flights_from_frame(synthetic_flights).frame


@pytest.mark.parametrize("feature_set", sorted(FEATURE_SETS))
def test_changing_any_operated_column_leaves_the_training_matrix_unchanged(
    synthetic_flights: pd.DataFrame, feature_set: str
) -> None:
    """Every feature of every set: scrambling the operated columns changes the labels but no
    feature value, while training (labels held fixed: the delay rates learn from labels, by
    design) or predicting."""
    original = flights_from_frame(synthetic_flights).frame
    scrambled_raw = synthetic_flights.copy()
    rng = np.random.default_rng(1)
    for column in schema.OPERATED_COLUMNS:
        if column == schema.OPERATED_AT:
            # shift every operated time: a different label, but features must not move
            shifted = pd.to_datetime(scrambled_raw[column]) + pd.to_timedelta(
                rng.integers(-300, 300, len(scrambled_raw)), unit="m"
            )
            scrambled_raw[column] = shifted.dt.strftime(schema.DATETIME_FORMAT)
        else:
            scrambled_raw[column] = rng.permutation(scrambled_raw[column].to_numpy())
    scrambled = flights_from_frame(scrambled_raw).frame
    labels = original[schema.LABEL]
    assert not scrambled[schema.LABEL].equals(labels)

    fitted_before, fitted_after = FlightFeatures(feature_set), FlightFeatures(feature_set)
    before = fitted_before.fit_transform(original, labels)
    after = fitted_after.fit_transform(scrambled, labels)
    pd.testing.assert_frame_equal(before, after)
    pd.testing.assert_frame_equal(
        fitted_before.transform(original), fitted_after.transform(scrambled)
    )


def test_no_training_row_sees_its_own_label_in_its_delay_rates(
    training_frame: pd.DataFrame,
) -> None:
    """Out-of-fold rates: flipping one row's label never moves that row's own rates (it moves
    rows of the other folds, which do learn from it)."""
    labels = training_frame[schema.LABEL].to_numpy().copy()
    rates = ["flight_delay_rate", "route_delay_rate", "airline_hour_delay_rate"]
    before = FlightFeatures("schedule_delay_rates").fit_transform(training_frame, labels)[rates]
    for row in (0, 7, 311):
        flipped = labels.copy()
        flipped[row] = 1 - flipped[row]
        after = FlightFeatures("schedule_delay_rates").fit_transform(training_frame, flipped)[rates]
        pd.testing.assert_series_equal(after.iloc[row], before.iloc[row])
        assert (after != before).any(axis=None)  # the label does reach other rows


def test_delay_rates_need_labels(training_frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="pass the labels"):
        FlightFeatures("schedule_delay_rates").fit(training_frame)


def test_features_never_read_operated_columns(training_frame: pd.DataFrame) -> None:
    without = training_frame.drop(
        columns=[c for c in schema.OPERATED_COLUMNS if c in training_frame]
    )
    fitted = FlightFeatures().fit(training_frame)
    pd.testing.assert_frame_equal(fitted.transform(training_frame), fitted.transform(without))


@pytest.mark.parametrize("feature_set", sorted(FEATURE_SETS))
def test_a_single_flight_gets_the_same_features_as_in_a_batch(
    training_frame: pd.DataFrame, feature_set: str
) -> None:
    fitted = FlightFeatures(feature_set).fit(training_frame, training_frame[schema.LABEL])
    batch = fitted.transform(training_frame.iloc[:50])
    for i in (0, 17, 49):
        alone = fitted.transform(training_frame.iloc[[i]])
        pd.testing.assert_frame_equal(alone, batch.iloc[[i]])


def test_schedule_features_are_known_columns(training_frame: pd.DataFrame) -> None:
    out = FlightFeatures("schedule").fit(training_frame).transform(training_frame)
    spec = FEATURE_SETS["schedule"]
    assert list(out.columns) == list(spec.columns)
    for name in spec.categorical:
        assert isinstance(out[name].dtype, pd.CategoricalDtype)
    assert out[list(spec.numeric)].notna().all().all()


def test_busyness_is_a_lookup_learned_at_training_time(training_frame: pd.DataFrame) -> None:
    fitted = FlightFeatures("schedule").fit(training_frame)
    one = training_frame.iloc[[0]]
    alone = fitted.transform(one)["slot_flights_per_week"].iloc[0]
    with_more = fitted.transform(pd.concat([one] * 20))["slot_flights_per_week"].iloc[0]
    assert alone == with_more > 0


def test_delay_rates_are_smoothed_lookups_learned_at_training_time(
    training_frame: pd.DataFrame,
) -> None:
    labels = training_frame[schema.LABEL]
    fitted = FlightFeatures("schedule_delay_rates").fit(training_frame, labels)
    one = training_frame.iloc[[0]]
    alone = fitted.transform(one)["flight_delay_rate"].iloc[0]
    with_more = fitted.transform(pd.concat([one] * 20))["flight_delay_rate"].iloc[0]
    assert alone == with_more
    # the flight's smoothed rate: its delayed share pulled toward the overall rate
    key = f"{one[schema.CARRIER_CODE].iloc[0]}-{one[schema.FLIGHT_NUMBER].iloc[0]}"
    same = training_frame[schema.CARRIER_CODE] + "-" + training_frame[schema.FLIGHT_NUMBER] == key
    prior = labels.mean()
    expected = (labels[same].sum() + delay_rates.SMOOTHING * prior) / (
        same.sum() + delay_rates.SMOOTHING
    )
    assert alone == pytest.approx(expected)
    # an unseen flight, route and hour key gets the overall rate
    new = one.assign(**{schema.FLIGHT_NUMBER: "99999", schema.DESTINATION: "ZZZZ"})
    assert fitted.transform(new)["flight_delay_rate"].iloc[0] == pytest.approx(prior)
    assert fitted.transform(new)["route_delay_rate"].iloc[0] == pytest.approx(prior)


def test_minimal_month_comes_from_the_scheduled_date_not_mes(training_frame: pd.DataFrame) -> None:
    fitted = FlightFeatures("minimal").fit(training_frame)
    row = training_frame.iloc[[0]].copy()
    row[schema.MONTH] = "12" if row[schema.SCHEDULED_AT].iloc[0].month != 12 else "1"
    assert fitted.transform(row)["month"].iloc[0] == str(row[schema.SCHEDULED_AT].iloc[0].month)


def test_minimal_accepts_only_the_three_challenge_fields(training_frame: pd.DataFrame) -> None:
    fitted = FlightFeatures("minimal").fit(training_frame)
    flights = pd.DataFrame([{"OPERA": "Grupo LATAM", "TIPOVUELO": "N", "MES": 3}])
    fitted.check_flights(flights)
    out = fitted.transform(flights)
    assert out.iloc[0].tolist() == ["Grupo LATAM", "N", "3"]


def test_every_bad_field_is_listed_with_its_flight_index(training_frame: pd.DataFrame) -> None:
    fitted = FlightFeatures("schedule").fit(training_frame)
    good = training_frame.iloc[0][list(FEATURE_SETS["schedule"].required_fields)].to_dict()
    good[schema.SCHEDULED_AT] = "2017-05-01 10:00:00"
    flights = pd.DataFrame(
        [
            good,
            {**good, "OPERA": "Air Nowhere"},
            {**good, "TIPOVUELO": "X", "Fecha-I": "not a date"},
            {**good, "Des-I": "ZZZZ"},
            {k: v for k, v in good.items() if k != "Vlo-I"},
            {**good, "Ori-I": "SAEZ"},
        ]
    )
    with pytest.raises(InvalidFlights) as info:
        fitted.check_flights(flights)
    found = {(i.index, i.field) for i in info.value.issues}
    assert found == {
        (1, "OPERA"),
        (2, "TIPOVUELO"),
        (2, "Fecha-I"),
        (4, "Vlo-I"),
        (5, "Ori-I"),
    }
    message = str(info.value)
    assert "flight 1, OPERA: unknown airline 'Air Nowhere'" in message
    assert "flight 2, TIPOVUELO: must be I or N, got 'X'" in message
    assert "flight 2, Fecha-I: unparsable date 'not a date'" in message
    assert "flight 4, Vlo-I: required field is missing" in message


@pytest.mark.parametrize(
    ("month", "problem"), [(13, "got 13"), (0, "got 0"), ("x", "got 'x'"), (2.5, "got 2.5")]
)
def test_minimal_rejects_a_month_outside_1_to_12(
    training_frame: pd.DataFrame, month: object, problem: str
) -> None:
    fitted = FlightFeatures("minimal").fit(training_frame)
    flights = pd.DataFrame([{"OPERA": "Grupo LATAM", "TIPOVUELO": "N", "MES": month}])
    with pytest.raises(
        InvalidFlights, match=f"flight 0, MES: must be a whole month number 1-12, {problem}"
    ):
        fitted.check_flights(flights)


def test_minimal_needs_mes_or_a_scheduled_date(training_frame: pd.DataFrame) -> None:
    fitted = FlightFeatures("minimal").fit(training_frame)
    with pytest.raises(InvalidFlights, match="flight 0, MES: required field is missing"):
        fitted.check_flights(pd.DataFrame([{"OPERA": "Grupo LATAM", "TIPOVUELO": "N"}]))
    fitted.check_flights(
        pd.DataFrame([{"OPERA": "Grupo LATAM", "TIPOVUELO": "N", "Fecha-I": "2017-03-01 10:00:00"}])
    )


def test_unknown_feature_set_is_a_config_error() -> None:
    with pytest.raises(InvalidConfig, match="unknown feature set 'everything'"):
        FlightFeatures("everything").fit(pd.DataFrame())


def test_high_season_boundaries() -> None:
    months = np.array([12, 12, 3, 3, 7, 7, 9, 9, 5])
    days = np.array([14, 15, 3, 4, 14, 15, 10, 11, 20])
    assert is_high_season(months, days).tolist() == [
        False,
        True,
        True,
        False,
        False,
        True,
        False,
        True,
        False,
    ]


def test_holiday_distances_use_the_chilean_calendar() -> None:
    # 2017-09-18 and 2017-09-19 are Chile's national holidays (Fiestas Patrias)
    days = np.array(["2017-09-16", "2017-09-18", "2017-09-21"], dtype="datetime64[D]").astype(
        np.int64
    )
    to_next, since_last = holiday_distances(days)
    assert to_next.tolist()[:2] == [2.0, 0.0]
    assert since_last.tolist()[1:] == [0.0, 2.0]


def test_open_fields_are_predicted_with_a_warning_closed_ones_refused(
    training_frame: pd.DataFrame,
) -> None:
    """Destinations, airline codes and flight numbers are open (a new route is predicted as
    unseen, with a warning); the airline (OPERA) stays closed (issue 8)."""
    fitted = FlightFeatures("schedule").fit(training_frame)
    good = training_frame.iloc[0].to_dict()
    flights = [
        good,
        {**good, "Des-I": "SAWH-NEW"},
        {**good, "Emp-I": "ZZ", "Vlo-I": "9999"},
    ]
    fitted.check_flights(flights)  # no error: open fields only
    found = {(w.index, w.field) for w in fitted.flight_warnings(flights)}
    assert found == {(1, "Des-I"), (2, "Emp-I"), (2, "Vlo-I")}
    frame = fitted.transform(pd.DataFrame(flights))
    assert pd.isna(frame.loc[1, "destination"]) and pd.isna(frame.loc[2, "carrier_code"])
    assert frame.loc[2, "flight_number_flights_per_week"] == 0.0
    with pytest.raises(InvalidFlights) as info:
        fitted.check_flights([{**good, "OPERA": "Grupo LATAN"}])
    assert [(i.index, i.field) for i in info.value.issues] == [(0, "OPERA")]


def test_a_transformer_pickled_under_its_old_module_path_still_loads(
    training_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Models saved before the features package name ``flight_delay.ml.features.FlightFeatures``
    in their pickle; they must load and transform as they did."""
    fitted = FlightFeatures().fit(training_frame)
    with monkeypatch.context() as patched:
        patched.setattr(FlightFeatures, "__module__", "flight_delay.ml.features")
        blob = pickle.dumps(fitted)
    assert b"flight_delay.ml.features" in blob
    assert b"flight_delay.features.transformer" not in blob
    loaded = pickle.loads(blob)
    assert type(loaded) is FlightFeatures
    pd.testing.assert_frame_equal(
        loaded.transform(training_frame), fitted.transform(training_frame)
    )
