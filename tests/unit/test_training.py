"""Training and evaluation on synthetic flights: the model learns the planted pattern, the holdout
is only measured, and the configuration is validated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flight_delay.data import flights_from_frame, schema
from flight_delay.errors import ExplanationUnavailable, InvalidConfig, UnknownModelFamily
from flight_delay.features import FlightFeatures
from flight_delay.ml import TrainConfig, TrainedModel, evaluate, train
from flight_delay.ml.evaluation import (
    best_f1_threshold,
    classification_metrics,
    expected_calibration_error,
)
from flight_delay.ml.families import FAMILIES, get_family

FAST_LGBM = {"n_estimators": 300, "learning_rate": 0.1}


@pytest.fixture(scope="module")
def lightgbm_model(synthetic_flights: pd.DataFrame) -> TrainedModel:
    return train(synthetic_flights, {"params": FAST_LGBM})


def flight(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "Fecha-I": "2017-05-10 12:00:00", "Vlo-I": "100", "Des-I": "SCIE", "Emp-I": "SKU",
        "OPERA": "Sky Airline", "TIPOVUELO": "N",
    }  # fmt: skip
    return {**base, **fields}


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
@pytest.mark.parametrize("features", ["schedule", "minimal"])
def test_every_family_and_feature_set_learns_the_planted_pattern(
    synthetic_flights: pd.DataFrame, model_type: str, features: str
) -> None:
    params = FAST_LGBM if model_type == "lightgbm" else {}
    model = train(
        synthetic_flights, {"model_type": model_type, "features": features, "params": params}
    )
    holdout = model.metrics["holdout"]
    # minimal sees airline, type and month but not the hour, half of the planted signal
    assert holdout["roc_auc"] > (0.7 if features == "schedule" else 0.55), holdout
    assert model.metadata["model_type"] == model_type
    late = flight(
        **{
            "Fecha-I": "2017-12-20 21:00:00",
            "OPERA": "Latin American Wings",
            "Emp-I": "JMR",
            "MES": 12,
        }
    )
    punctual = flight(**{"Fecha-I": "2017-05-10 07:00:00", "MES": 5})
    late_p, punctual_p = model.predict_proba([late, punctual])
    assert late_p > punctual_p


def test_a_known_late_flight_scores_higher_than_a_known_punctual_one(
    lightgbm_model: TrainedModel,
) -> None:
    late = flight(
        **{"Fecha-I": "2017-12-20 21:00:00", "OPERA": "Latin American Wings", "Emp-I": "JMR"}
    )
    punctual = flight(**{"Fecha-I": "2017-05-10 07:00:00"})
    late_p, punctual_p = lightgbm_model.predict_proba([late, punctual])
    assert late_p > punctual_p + 0.2
    assert lightgbm_model.predict([late, punctual]).tolist() == [True, False]


def test_holdout_metrics_are_complete(lightgbm_model: TrainedModel) -> None:
    holdout = lightgbm_model.metrics["holdout"]
    for key in ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "base_rate", "threshold"):
        assert 0.0 <= holdout[key] <= 1.0 or key == "log_loss"
    matrix = holdout["confusion_matrix"]
    assert (
        sum(matrix.values())
        == holdout["rows"]
        == lightgbm_model.metadata["evaluation"]["holdout_rows"]
    )
    assert set(holdout["classes"]) == {"on_time", "delayed"}


def test_time_split_holds_out_the_latest_fifth(
    lightgbm_model: TrainedModel, synthetic_flights: pd.DataFrame
) -> None:
    evaluation = lightgbm_model.metadata["evaluation"]
    assert evaluation["holdout_rows"] == round(len(synthetic_flights) * 0.2)
    scheduled = pd.to_datetime(synthetic_flights["Fecha-I"]).sort_values()
    first_held_out = scheduled.iloc[len(scheduled) - evaluation["holdout_rows"]]
    assert evaluation["holdout_scheduled_from"] == first_held_out.strftime(schema.DATETIME_FORMAT)


def test_the_threshold_never_sees_the_holdout(synthetic_flights: pd.DataFrame) -> None:
    settings = {"params": FAST_LGBM, "refit": False}
    before = train(synthetic_flights, settings)
    # flip the label of every held-out flight (the latest fifth) by moving its operated time
    flipped = synthetic_flights.copy()
    held_out = before.metadata["evaluation"]["holdout_rows"]
    order = pd.to_datetime(flipped["Fecha-I"]).sort_values(kind="stable").index[-held_out:]
    scheduled = pd.to_datetime(flipped.loc[order, "Fecha-I"])
    was_late = (
        pd.to_datetime(flipped.loc[order, "Fecha-O"]) - scheduled
    ).dt.total_seconds() > 15 * 60
    new_operated = scheduled + pd.to_timedelta(np.where(was_late, 0, 60), unit="m")
    flipped.loc[order, "Fecha-O"] = new_operated.dt.strftime(schema.DATETIME_FORMAT)
    after = train(flipped, settings)
    assert after.threshold == before.threshold
    assert after.metrics["validation"] == before.metrics["validation"]
    assert after.metrics["holdout"]["roc_auc"] < 0.5 < before.metrics["holdout"]["roc_auc"]


def test_random_split_is_stratified_and_seeded(synthetic_flights: pd.DataFrame) -> None:
    settings = {
        "split": "random",
        "test_size": 0.33,
        "seed": 42,
        "params": FAST_LGBM,
        "refit": False,
        "cv_folds": 0,  # the split is what is tested; the folds are test_capacity.py's
    }
    first, second = train(synthetic_flights, settings), train(synthetic_flights, settings)
    overall = flights_from_frame(synthetic_flights).labels.mean()
    assert first.metrics["holdout"]["base_rate"] == pytest.approx(overall, abs=0.005)
    assert first.metrics["holdout"] == second.metrics["holdout"]


def test_refit_uses_every_row_and_says_so(
    lightgbm_model: TrainedModel, synthetic_flights: pd.DataFrame
) -> None:
    assert lightgbm_model.metadata["final_model"] == {
        "refit_on_all_rows": True,
        "rows": len(synthetic_flights),
    }
    assert "refit on all rows" in lightgbm_model.metadata["evaluation"]["note"]


def test_evaluate_scores_a_model_on_new_labelled_data(
    lightgbm_model: TrainedModel, synthetic_flights: pd.DataFrame
) -> None:
    metrics = evaluate(lightgbm_model, synthetic_flights.iloc[:500])
    assert metrics["rows"] == 500
    assert metrics["threshold"] == lightgbm_model.threshold


def test_fixed_threshold_is_used_as_given(synthetic_flights: pd.DataFrame) -> None:
    model = train(
        synthetic_flights, {"threshold_strategy": "fixed", "threshold": 0.4, "params": FAST_LGBM}
    )
    assert model.threshold == 0.4


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"model_type": "random_forest"}, "model_type"),
        ({"features": "all"}, "features"),
        ({"split": "kfold"}, "split"),
        ({"test_size": 0.9}, "test_size"),
        ({"colour": "blue"}, "colour"),
        ({"params": {"num_leaves": 1}}, "params.num_leaves"),
        ({"params": {"num_leaves": True}}, "params.num_leaves"),
        ({"params": {"learning_rate": "fast"}}, "params.learning_rate"),
        ({"params": {"max_leaves": 8}}, "params.max_leaves"),
        ({"model_type": "logistic_regression", "params": {"C": -1}}, "params.C"),
        ({"threshold_strategy": "fixed"}, "threshold"),
        ({"split": "random", "time_cutoff": "2017-11-01"}, "time_cutoff"),
        ({"features": "live", "split": "random"}, "split"),
        ({"features": "live", "model_type": "logistic_regression"}, "features"),
    ],
)
def test_invalid_settings_name_the_field(settings: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidConfig) as info:
        TrainConfig.from_dict(settings)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}:")


def test_unknown_family_lists_the_known_ones() -> None:
    with pytest.raises(UnknownModelFamily, match="choose one of lightgbm, logistic_regression"):
        get_family("xgboost")


def test_a_split_with_one_class_is_refused(synthetic_flights: pd.DataFrame) -> None:
    on_time = synthetic_flights.assign(**{"Fecha-O": synthetic_flights["Fecha-I"]})
    with pytest.raises(InvalidConfig, match="only one class"):
        train(on_time, {"params": FAST_LGBM})


def test_best_f1_threshold_and_calibration_on_known_values() -> None:
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.6, 0.7, 0.9])
    assert best_f1_threshold(labels, scores) == 0.7
    assert expected_calibration_error(np.array([0, 1]), np.array([0.05, 0.95])) == pytest.approx(
        0.05
    )
    metrics = classification_metrics(labels, scores, 0.5)
    assert metrics["confusion_matrix"] == {"tn": 2, "fp": 1, "fn": 0, "tp": 2}
    assert metrics["classes"]["delayed"]["recall"] == 1.0


def test_dataset_references_are_checked_before_anything_runs(tmp_path: Path) -> None:
    from flight_delay.data.sources import check_reference
    from flight_delay.errors import InvalidDataset

    (tmp_path / "f.csv").write_text("x")
    assert check_reference("f.csv", tmp_path).kind == "local"
    drive = check_reference("https://drive.google.com/file/d/1AbC_d-9/view?usp=sharing", tmp_path)
    assert drive.location == "https://drive.google.com/uc?export=download&id=1AbC_d-9"
    assert check_reference("synthetic:5000", tmp_path).location == "5000"
    for bad, reason in [("../f.csv", "outside the data root"), ("nope.csv", 'no such file.*"synthetic" trains on generated'),
                        ("s3://bucket/f.csv", "unsupported scheme"), ("synthetic:10", "between 1000"),
                        ("https://drive.google.com/drive/folders", "must name a file")]:  # fmt: skip
        with pytest.raises(InvalidDataset, match=reason):
            check_reference(bad, tmp_path)


def test_symlinks_inside_the_data_root_are_followed_callers_cannot_leave_it(
    tmp_path: Path,
) -> None:
    """Issue 9: `ln -s /big/dataset_SCL.csv datasets/` works; `..` and absolute paths do not,
    not even through a link."""
    from flight_delay.data.sources import check_reference
    from flight_delay.errors import InvalidDataset

    root, elsewhere = tmp_path / "datasets", tmp_path / "big-disk"
    root.mkdir()
    elsewhere.mkdir()
    (elsewhere / "dataset_SCL.csv").write_text("x")
    (elsewhere / "secret.txt").write_text("x")
    (root / "dataset_SCL.csv").symlink_to(elsewhere / "dataset_SCL.csv")
    (root / "disk").symlink_to(elsewhere, target_is_directory=True)
    found = check_reference("dataset_SCL.csv", root)
    assert found.kind == "local"
    assert Path(found.location) == (elsewhere / "dataset_SCL.csv").resolve()
    assert check_reference("disk/dataset_SCL.csv", root).kind == "local"
    for bad in ("../big-disk/secret.txt", str(elsewhere / "secret.txt"), "disk/../../big-disk/secret.txt",
                "disk/../dataset_SCL.csv"):  # fmt: skip
        with pytest.raises(InvalidDataset, match="outside the data root"):
            check_reference(bad, root)


def bad_days(flights: pd.DataFrame, share: float = 0.3, seed: int = 5) -> pd.DataFrame:
    """The synthetic flights, with every flight of a random ``share`` of days 40 minutes late:
    a day that starts late goes on late, which only departures already seen can tell."""
    out = flights.copy()
    scheduled = pd.to_datetime(out[schema.SCHEDULED_AT])
    days = scheduled.dt.normalize()
    unique = days.unique()
    rng = np.random.default_rng(seed)
    late = set(rng.choice(unique, size=int(len(unique) * share), replace=False))
    on_bad_day = days.isin(late)
    operated = pd.to_datetime(out[schema.OPERATED_AT])
    operated[on_bad_day] = scheduled[on_bad_day] + pd.Timedelta(minutes=40)
    out[schema.OPERATED_AT] = operated.dt.strftime(schema.DATETIME_FORMAT)
    return out


def test_a_live_model_is_scored_at_each_lead_time_on_the_same_holdout_flights(
    synthetic_flights: pd.DataFrame,
) -> None:
    flights = bad_days(synthetic_flights)
    model = train(flights, {"features": "live", "params": FAST_LGBM})
    evaluation = model.metadata["evaluation"]
    by_lead = model.metrics["holdout"]["by_lead"]
    assert list(by_lead) == ["30", "60", "120", "180", "none"]
    assert evaluation["flights"] == len(flights)
    assert evaluation["holdout_rows"] == 4 * by_lead["30"]["rows"]  # the lead-time rows
    assert {metrics["rows"] for metrics in by_lead.values()} == {by_lead["30"]["rows"]}
    # the departures already seen tell a bad day: close to the flight, far better than blind
    assert by_lead["30"]["roc_auc"] > by_lead["none"]["roc_auc"] + 0.05, by_lead
    # each flight counts once in how busy the schedule is, not once per lead time
    schedule = train(flights, {"features": "schedule", "params": {"n_estimators": 20}})
    np.testing.assert_allclose(
        model.features.slot_flights_per_week_, schedule.features.slot_flights_per_week_
    )
    assert (
        model.features.flight_number_flights_per_week_
        == schedule.features.flight_number_flights_per_week_
    )


def test_a_live_model_answers_flights_with_nothing_observed_with_its_schedule_model(
    synthetic_flights: pd.DataFrame,
) -> None:
    """No departure seen: the schedule model trained in the same run answers, on the schedule
    columns of the live matrix, with its own calibration; its holdout is the 'none' row."""
    model = train(bad_days(synthetic_flights), {"features": "live", "params": FAST_LGBM})
    flights = synthetic_flights.head(40)
    schedule_features = FlightFeatures("schedule").fit(
        synthetic_flights, synthetic_flights["Fecha-O"].notna()
    )
    estimator = model.pipeline.steps[-1][1]
    expected = model.blind_calibration.apply(
        estimator.blind.booster_.predict(
            schedule_features.codes_matrix(schedule_features.transform(flights))
        )
    )
    np.testing.assert_allclose(model.predict_proba(flights), expected, atol=1e-12)
    blind = model.metadata["blind"]
    assert blind["metrics"]["holdout"] == model.metrics["holdout"]["by_lead"]["none"]
    assert blind["calibration"] != model.metadata["calibration"]
    with pytest.raises(ExplanationUnavailable, match="live models"):
        model.explain(flights.head(2))
