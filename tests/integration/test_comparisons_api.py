"""POST /comparisons (issue 12): several models scored by the real worker on one common
holdout; the figures equal each model's own predictions scored independently here."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flask.testing import FlaskClient
from sklearn.metrics import roc_auc_score

from flight_delay.data import load_flights, schema
from flight_delay.ml import load_model
from tests.integration.conftest import READER, admin

pytestmark = pytest.mark.integration


def finished_comparison(client: FlaskClient, location: str, timeout: float = 600) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(location).get_json()
        if body["status"] in ("completed", "failed"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.3)


def test_two_models_on_one_holdout(
    client: FlaskClient, train: Callable[..., dict[str, Any]], stack_settings: dict[str, Any]
) -> None:
    boosted = train()
    linear = train(model_type="logistic_regression", features="minimal")
    request = {"model_ids": [boosted["id"], linear["id"]], "dataset": "flights.csv",
               "holdout": {"since": "2017-10-01"}}  # fmt: skip
    response = client.post("/comparisons", json=request, headers=admin())
    assert response.status_code == 202, response.get_json()
    location = response.headers["Location"]
    body = finished_comparison(client, location)
    assert body["status"] == "completed", body

    flights = load_flights(Path(stack_settings["DATA_ROOT"]) / "flights.csv")
    frame = flights.frame
    inside = (frame[schema.SCHEDULED_AT] >= pd.Timestamp("2017-10-01")).to_numpy()
    labels = flights.labels.to_numpy()[inside]
    assert body["flights"] == int(inside.sum())
    assert [m["model_id"] for m in body["models"]] == [boosted["id"], linear["id"]]
    for shown in body["models"]:
        model = load_model(Path(stack_settings["MODEL_DIR"]) / shown["model_id"])
        probability = model.predict_proba(frame[inside].reset_index(drop=True))
        assert shown["metrics"]["roc_auc"] == pytest.approx(
            roc_auc_score(labels, probability), abs=1e-9
        )
        # refit on every row by default: the holdout was in its training data, and it says so
        assert shown["holdout_flights_in_training"] == body["flights"]
        roc = shown["curves"]["roc"]
        assert len(roc) <= 101 and roc[0] == {"fpr": 0.0, "tpr": 0.0}
        assert roc[-1] == {"fpr": 1.0, "tpr": 1.0}
        assert shown["curves"]["reliability"]
    assert body["models"][1]["features"] == "minimal"
    # and in words, in the API and on the page: these figures are in-sample
    assert len(body["warnings"]) == 2 and all("in-sample" in w for w in body["warnings"])
    assert boosted["id"] in body["warnings"][0]
    page = client.get(f"/ui/comparisons/{body['id']}").get_data(as_text=True)
    assert page.count("In-sample: model ") == 2, page[:2000]


def test_bad_comparisons_are_refused_before_any_job(
    client: FlaskClient, train: Callable[..., dict[str, Any]]
) -> None:
    model = train()
    other = "3f1c2a9e-8d7b-4c55-9a61-2b7e0f4d8c10"
    good = {"model_ids": [model["id"], model["id"]], "dataset": "flights.csv"}
    assert client.post("/comparisons", json=good).status_code == 401
    assert client.post("/comparisons", json=good, headers=admin(READER)).status_code == 403
    repeated = client.post("/comparisons", json=good, headers=admin())
    assert repeated.status_code == 400
    one = {"model_ids": [model["id"]], "dataset": "flights.csv"}
    assert client.post("/comparisons", json=one, headers=admin()).status_code == 400
    unknown = {"model_ids": [model["id"], other], "dataset": "flights.csv"}
    assert client.post("/comparisons", json=unknown, headers=admin()).status_code == 404
    outside = {"model_ids": [model["id"], model["id"]], "dataset": "../outside.csv"}
    assert client.post("/comparisons", json=outside, headers=admin()).status_code == 400
    assert client.get(f"/comparisons/{other}").status_code == 404


def test_an_empty_holdout_fails_with_the_reason(
    client: FlaskClient, train: Callable[..., dict[str, Any]]
) -> None:
    first, second = train(), train()
    request = {"model_ids": [first["id"], second["id"]], "dataset": "flights.csv",
               "holdout": {"since": "2030-01-01"}}  # fmt: skip
    response = client.post("/comparisons", json=request, headers=admin())
    body = finished_comparison(client, response.headers["Location"])
    assert body["status"] == "failed"
    assert "0 flights" in body["error"]


@pytest.mark.realdata
def test_three_real_data_models_compared_in_one_request(
    client: FlaskClient, stack_settings: dict[str, Any], real_dataset: Path
) -> None:
    """Issue 12: three models trained through the API on the flights before November (no
    refit), compared on November-December in one request: each one's figures equal its own
    holdout metrics recorded at training (same flights, same pipeline), and none of them saw
    those flights."""
    from tests.integration.conftest import wait_for

    link = Path(stack_settings["DATA_ROOT"]) / "dataset_SCL.csv"
    if not link.exists():
        link.symlink_to(real_dataset.resolve())
    common = {
        "dataset": "dataset_SCL.csv",
        "time_cutoff": "2017-11-01",
        "refit": False,
        "cv_folds": 0,
    }
    kinds = [
        {"model_type": "lightgbm", "features": "schedule"},
        {"model_type": "lightgbm", "features": "minimal"},
        {"model_type": "logistic_regression", "features": "schedule"},
    ]
    records = []
    for kind in kinds:
        response = client.post("/models", json={**common, **kind}, headers=admin())
        assert response.status_code == 202, response.get_json()
        records.append(
            wait_for(
                client,
                response.get_json()["id"],
                lambda r: r["status"] in ("completed", "failed"),
                timeout=900,
            )
        )
    assert [r["status"] for r in records] == ["completed"] * 3, records
    request = {"model_ids": [r["id"] for r in records], "dataset": "dataset_SCL.csv",
               "holdout": {"since": "2017-11-01"}}  # fmt: skip
    response = client.post("/comparisons", json=request, headers=admin())
    assert response.status_code == 202, response.get_json()
    body = finished_comparison(client, response.headers["Location"])
    assert body["status"] == "completed", body
    assert body["flights"] == 12_438
    for record, shown in zip(records, body["models"], strict=True):
        holdout = record["metrics"]["holdout"]
        assert shown["holdout_flights_in_training"] == 0
        assert body["warnings"] == []
        for name in ("roc_auc", "pr_auc", "brier", "ece"):
            assert shown["metrics"][name] == pytest.approx(holdout[name], abs=1e-9), name
        print(
            f"comparison: {shown['model_type']}/{shown['features']}: "
            + ", ".join(f"{k} {v:.4f}" for k, v in shown["metrics"].items())
        )
