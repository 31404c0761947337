"""Compiled forests (issue 10): lleaves' probabilities equal LightGBM's, and every way compiling or
loading can fail leaves a model that LightGBM serves, with the reason recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flight_delay.data import make_synthetic_flights
from flight_delay.ml import TrainedModel, load_model, train
from flight_delay.ml import compiled as compiled_module
from flight_delay.ml.artifacts import FAST_PATH_MAX_FLIGHTS, METADATA_FILE
from flight_delay.ml.compiled import COMPILED_FILE

pytestmark = pytest.mark.skipif(
    compiled_module.available() is not None, reason=str(compiled_module.available())
)

REQUEST_FIELDS = ["Fecha-I", "Vlo-I", "Des-I", "Emp-I", "OPERA", "TIPOVUELO", "MES"]


def as_requests(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Flights as a JSON client sends them."""
    return frame[REQUEST_FIELDS].to_dict("records")  # type: ignore[no-any-return]


@pytest.fixture(scope="module", params=["schedule", "minimal", "schedule_delay_rates"])
def saved(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    flights = make_synthetic_flights(3000, seed=11)
    model = train(flights, {"features": request.param, "params": {"n_estimators": 80}})
    return model.save(tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def unseen_flights() -> pd.DataFrame:
    """Flights the models never saw, with unseen destinations, codes and flight numbers."""
    flights = make_synthetic_flights(6000, seed=99)
    flights.loc[::7, "Des-I"] = "ZZZZ"
    flights.loc[::11, "Emp-I"] = "QQQ"
    flights.loc[::13, "Vlo-I"] = "99999X"
    return flights


def test_saving_compiles_the_forest_and_records_it(saved: Path) -> None:
    record = json.loads((saved / METADATA_FILE).read_text())["compiled_trees"]
    assert record["compiled"] is True, record
    assert record["file"] == COMPILED_FILE and (saved / COMPILED_FILE).is_file()
    assert len(record["sha256"]) == 64
    assert set(record["versions"]) == {"lleaves", "llvmlite"}
    assert record["cpu"] == "generic"


def test_compiled_probabilities_equal_lightgbm(saved: Path, unseen_flights: pd.DataFrame) -> None:
    fast = load_model(saved)
    reference = load_model(saved, compiled_trees=False)
    assert fast.forest is not None and fast.forest_status == "compiled"
    assert reference.forest is None
    records = as_requests(unseen_flights)
    for flights in (
        unseen_flights,  # a frame (training, evaluation, the CLI)
        records,  # a large request batch: the columnar path
        records[:FAST_PATH_MAX_FLIGHTS],  # a small one: the record path
        records[:1],
    ):
        expected = reference.predict_proba(flights)
        np.testing.assert_allclose(fast.predict_proba(flights), expected, rtol=0, atol=1e-9)
    # and against the plain scikit-learn pipeline: the numbers served before issue 10
    pipeline = reference.pipeline.predict_proba(unseen_flights)[:, 1]
    np.testing.assert_allclose(
        fast.predict_proba(records), reference.calibration.apply(pipeline), rtol=0, atol=1e-9
    )


def test_one_thread_and_all_threads_agree(saved: Path, unseen_flights: pd.DataFrame) -> None:
    model = load_model(saved)
    records = as_requests(unseen_flights)
    all_threads = model.predict_proba(records)
    model.limit_threads(1)
    np.testing.assert_array_equal(model.predict_proba(records), all_threads)


@pytest.fixture
def model() -> TrainedModel:
    return train(make_synthetic_flights(2000, seed=3), {"params": {"n_estimators": 30}})


def served_alike(directory: Path, model: TrainedModel) -> None:
    """The model loads, LightGBM predicts, and its answers are the trained model's."""
    loaded = load_model(directory)
    assert loaded.forest is None
    flights = make_synthetic_flights(500, seed=8)
    np.testing.assert_allclose(
        loaded.predict_proba(flights), model.predict_proba(flights), rtol=0, atol=1e-12
    )


def test_without_lleaves_the_model_is_saved_and_served_by_lightgbm(
    model: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compiled_module, "available", lambda: "lleaves is not usable here (test)")
    model.save(tmp_path)
    record = json.loads((tmp_path / METADATA_FILE).read_text())["compiled_trees"]
    assert record == {"compiled": False, "reason": "lleaves is not usable here (test)"}
    assert not (tmp_path / COMPILED_FILE).exists()
    served_alike(tmp_path, model)
    assert load_model(tmp_path).forest_status == "lleaves is not usable here (test)"


def test_a_crashing_compiler_costs_only_the_compiled_file(
    model: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compiled_module, "_CHILD", "import os; os.abort()")
    model.save(tmp_path)
    record = json.loads((tmp_path / METADATA_FILE).read_text())["compiled_trees"]
    assert record["compiled"] is False
    assert record["reason"].startswith("the compiler exited with -6")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.joblib", "model.json"]
    served_alike(tmp_path, model)


def test_a_compiler_over_its_time_is_stopped(
    model: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compiled_module, "_CHILD", "import time; time.sleep(60)")
    model.save(tmp_path, compile_timeout_seconds=0.5)
    record = json.loads((tmp_path / METADATA_FILE).read_text())["compiled_trees"]
    assert record == {"compiled": False, "reason": "compiling took longer than 0.5 s"}
    served_alike(tmp_path, model)


def test_not_compiling_is_recorded(model: TrainedModel, tmp_path: Path) -> None:
    model.save(tmp_path)
    assert (tmp_path / COMPILED_FILE).is_file()
    model.save(tmp_path, compile_trees=False)  # saving again without: the old file goes
    assert not (tmp_path / COMPILED_FILE).exists()
    record = json.loads((tmp_path / METADATA_FILE).read_text())["compiled_trees"]
    assert record == {"compiled": False, "reason": "not requested"}
    served_alike(tmp_path, model)


def test_a_corrupt_compiled_file_is_not_run(model: TrainedModel, tmp_path: Path) -> None:
    model.save(tmp_path)
    path = tmp_path / COMPILED_FILE
    path.write_bytes(path.read_bytes()[:-16] + b"\x00" * 16)
    served_alike(tmp_path, model)
    assert "corrupt" in load_model(tmp_path).forest_status


def test_a_missing_compiled_file_falls_back(model: TrainedModel, tmp_path: Path) -> None:
    model.save(tmp_path)
    (tmp_path / COMPILED_FILE).unlink()
    served_alike(tmp_path, model)
    assert load_model(tmp_path).forest_status == f"{COMPILED_FILE} is missing"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("versions", {"lleaves": "0.1", "llvmlite": "0.1"}, "compiled with"),
        ("target", "riscv64-unknown-linux-gnu", "compiled for riscv64"),
        ("trees", 1, "does not belong to this model"),
    ],
)
def test_a_compiled_file_from_elsewhere_is_not_run(
    model: TrainedModel, tmp_path: Path, field: str, value: Any, reason: str
) -> None:
    model.save(tmp_path)
    meta_path = tmp_path / METADATA_FILE
    meta = json.loads(meta_path.read_text())
    meta["compiled_trees"][field] = value
    meta_path.write_text(json.dumps(meta))
    served_alike(tmp_path, model)
    assert reason in load_model(tmp_path).forest_status


def test_logistic_regression_has_no_forest(tmp_path: Path) -> None:
    model = train(make_synthetic_flights(1500, seed=4), {"model_type": "logistic_regression"})
    model.save(tmp_path)
    assert "compiled_trees" not in json.loads((tmp_path / METADATA_FILE).read_text())
    assert load_model(tmp_path).forest is None


def test_no_room_for_the_scratch_copy_falls_back(
    model: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model.save(tmp_path)

    def full_disk(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(compiled_module.tempfile, "TemporaryDirectory", full_disk)
    served_alike(tmp_path, model)
    assert "No space left on device" in load_model(tmp_path).forest_status
