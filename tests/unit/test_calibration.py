"""Calibration chosen on out-of-fold predictions (issue 8)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flight_delay.data import make_synthetic_flights
from flight_delay.ml import train
from flight_delay.ml.calibration import (
    METHODS,
    Calibration,
    choose_calibration,
    fit_calibration,
)
from flight_delay.ml.evaluation import classification_metrics, expected_calibration_error


def miscalibrated(seed: int, size: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from sigmoid(z), predictions sigmoid(2.5 z + 1): overconfident and high."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-1.0, 1.0, size)
    labels = (rng.random(size) < 1 / (1 + np.exp(-z))).astype(int)
    return labels, 1 / (1 + np.exp(-(2.5 * z + 1.0)))


def test_calibration_lowers_ece_on_a_miscalibrated_case() -> None:
    folds = [miscalibrated(seed) for seed in range(4)]
    calibration, report = choose_calibration([y for y, _ in folds], [p for _, p in folds])
    assert calibration.method in ("platt", "isotonic")
    assert (
        report["cross_fitted"]["none"]["brier"]
        > report["cross_fitted"][calibration.method]["brier"]
    )
    labels, raw = miscalibrated(seed=99)  # fresh flights
    before = expected_calibration_error(labels, raw)
    after = expected_calibration_error(labels, calibration.apply(raw))
    assert after < before / 3, (before, after)
    # monotone: the ranking is kept
    order = np.argsort(raw)
    assert np.all(np.diff(calibration.apply(raw)[order]) >= -1e-12)


def test_a_calibrated_case_keeps_no_calibration_or_one_as_good() -> None:
    rng = np.random.default_rng(1)
    folds = []
    for _ in range(4):
        p = rng.uniform(0.01, 0.6, 4000)
        folds.append(((rng.random(4000) < p).astype(int), p))
    calibration, report = choose_calibration([y for y, _ in folds], [p for _, p in folds])
    best = min(report["cross_fitted"][m]["brier"] for m in METHODS)
    assert report["cross_fitted"][calibration.method]["brier"] == best


def test_the_served_probability_is_the_recorded_calibration_applied() -> None:
    flights = make_synthetic_flights(6000, seed=8)
    model = train(flights, {"params": {"n_estimators": 80}})
    recorded = model.metadata["calibration"]
    assert recorded["method"] in METHODS
    assert model.metadata["cross_validation"]["calibration"]["method"] == recorded["method"]
    rows = flights.drop(columns=["Fecha-O"]).head(50)
    raw = model.pipeline.predict_proba(rows)[:, 1]
    expected = Calibration.from_dict(recorded).apply(raw)
    assert np.allclose(model.predict_proba(rows), expected, atol=1e-12)
    assert np.allclose(model.predict_proba(rows.to_dict("records")), expected, atol=1e-9)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_a_calibration_survives_json(method: str) -> None:
    labels, raw = miscalibrated(seed=3)
    fitted = fit_calibration(method, labels, raw)
    again = Calibration.from_dict(json.loads(json.dumps(fitted.as_dict())))
    assert np.allclose(again.apply(raw), fitted.apply(raw))


def test_the_reliability_table_adds_up() -> None:
    labels, raw = miscalibrated(seed=4)
    metrics = classification_metrics(labels, raw, 0.5)
    table = metrics["reliability"]
    assert sum(row["flights"] for row in table) == len(labels)
    assert all(row["from"] <= row["mean_predicted"] <= row["to"] for row in table)
    weighted = sum(row["flights"] * abs(row["mean_predicted"] - row["delay_rate"]) for row in table)
    assert weighted / len(labels) == pytest.approx(metrics["ece"])
    assert metrics["mean_predicted"] == pytest.approx(raw.mean())
