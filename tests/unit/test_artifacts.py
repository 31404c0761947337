"""Saving and loading models: identical predictions, atomic writes, clear errors on bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flight_delay.errors import InvalidFlights, ModelArtifactError
from flight_delay.ml import TrainedModel, load_model, train
from flight_delay.ml.artifacts import METADATA_FILE, MODEL_FILE
from flight_delay.ml.compiled import COMPILED_FILE


@pytest.fixture(scope="module")
def model(synthetic_flights: pd.DataFrame) -> TrainedModel:
    return train(synthetic_flights, {"params": {"n_estimators": 200, "learning_rate": 0.1}})


@pytest.fixture
def saved(tmp_path: Path, model: TrainedModel) -> Path:
    return model.save(tmp_path / "model")


def test_a_loaded_model_predicts_exactly_like_the_saved_one(
    saved: Path, model: TrainedModel, synthetic_flights: pd.DataFrame
) -> None:
    loaded = load_model(saved)
    flights = synthetic_flights.iloc[:300]
    np.testing.assert_array_equal(loaded.predict_proba(flights), model.predict_proba(flights))
    assert loaded.threshold == model.threshold


def test_metadata_describes_the_model(saved: Path, synthetic_flights: pd.DataFrame) -> None:
    meta = json.loads((saved / METADATA_FILE).read_text())
    assert meta["model_type"] == "lightgbm"
    assert meta["feature_set"]["name"] == "schedule"
    assert "Grupo LATAM" in meta["feature_set"]["input_schema"]["allowed_values"]["OPERA"]
    assert meta["data"]["rows"] == len(synthetic_flights)
    assert len(meta["data"]["sha256"]) == 64
    assert {"scikit-learn", "lightgbm", "pandas", "numpy", "python"} <= set(meta["versions"])
    assert meta["metrics"]["holdout"]["roc_auc"] > 0.5
    assert 0 < meta["threshold"]["value"] < 1
    assert meta["created_at"].endswith("+00:00")


def test_save_leaves_no_temporary_files(saved: Path) -> None:
    assert sorted(p.name for p in saved.iterdir()) == sorted(
        [MODEL_FILE, METADATA_FILE, COMPILED_FILE]
    )


def test_predicting_with_one_thread(saved: Path, synthetic_flights: pd.DataFrame) -> None:
    loaded = load_model(saved)
    expected = loaded.predict_proba(synthetic_flights.iloc[:50])
    loaded.limit_threads(1)
    assert loaded.pipeline.named_steps["model"].get_params()["n_jobs"] == 1
    np.testing.assert_allclose(loaded.predict_proba(synthetic_flights.iloc[:50]), expected)


def test_a_corrupt_model_file_is_refused(saved: Path) -> None:
    (saved / MODEL_FILE).write_bytes(b"garbage")
    with pytest.raises(ModelArtifactError, match="corrupt model file"):
        load_model(saved)


def test_corrupt_metadata_is_refused(saved: Path) -> None:
    (saved / METADATA_FILE).write_text("{not json")
    with pytest.raises(ModelArtifactError, match="corrupt metadata"):
        load_model(saved)


def test_a_missing_model_is_refused(tmp_path: Path, saved: Path) -> None:
    with pytest.raises(ModelArtifactError, match="no model metadata"):
        load_model(tmp_path / "elsewhere")
    (saved / MODEL_FILE).unlink()
    with pytest.raises(ModelArtifactError, match="model file is missing"):
        load_model(saved)


def test_incompatible_library_versions_are_refused(saved: Path) -> None:
    meta = json.loads((saved / METADATA_FILE).read_text())
    meta["versions"]["scikit-learn"] = "0.24.2"
    (saved / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(
        ModelArtifactError, match=r"saved with scikit-learn 0\.24\.2, but .* is installed"
    ):
        load_model(saved)


def test_another_format_version_is_refused(saved: Path) -> None:
    meta = json.loads((saved / METADATA_FILE).read_text())
    meta["format_version"] = 99
    (saved / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelArtifactError, match="unsupported model format 99"):
        load_model(saved)


def test_predicting_on_bad_input_lists_the_rows(model: TrainedModel) -> None:
    with pytest.raises(InvalidFlights) as info:
        model.predict_proba([{"OPERA": "Grupo LATAM"}, "not a flight"])  # type: ignore[list-item]
    assert [(i.index, i.field) for i in info.value.issues] == [(1, "flight")]
    with pytest.raises(InvalidFlights, match="must be a list of flight objects"):
        model.predict_proba({"OPERA": "Grupo LATAM"})  # type: ignore[arg-type]
