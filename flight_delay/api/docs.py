"""The docs page's own files (Swagger UI), served by the app: /docs works without internet.

The files come from the ``swagger-ui-bundle`` package (PyPI), so no CDN is contacted; flask-smorest
renders /docs and points it here (``OPENAPI_SWAGGER_UI_URL``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, send_from_directory

#: where the docs page's scripts and styles are served
ASSETS_URL = "/docs/assets/"


def docs_assets_blueprint() -> Blueprint:
    """GET /docs/assets/<file>: Swagger UI's distribution files (nothing else is reachable:
    ``send_from_directory`` refuses paths that leave the folder)."""
    import swagger_ui_bundle

    assets = Blueprint("docs_assets", __name__)

    @assets.get(ASSETS_URL + "<path:filename>")
    def asset(filename: str) -> Response:
        response = send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=3600)
        return response

    return assets


#: the name a generated client gives each operation (openapi-python-client: ``list_models``);
#: an operation missing here stops the app from starting, so none goes out unnamed
OPERATION_IDS: dict[tuple[str, str], str] = {
    ("get", "/models"): "listModels",
    ("post", "/models"): "trainModel",
    ("get", "/models/{model_id}"): "getModel",
    ("delete", "/models/{model_id}"): "deleteModel",
    ("get", "/models/{model_id}/artifact"): "downloadModelArtifact",
    ("get", "/models/{model_id}/performance"): "getModelPerformance",
    ("get", "/models/{model_id}/drift"): "getModelDrift",
    ("get", "/models/{model_id}/drift.png"): "getModelDriftChart",
    ("post", "/comparisons"): "compareModels",
    ("get", "/comparisons/{comparison_id}"): "getComparison",
    ("get", "/schedules"): "listSchedules",
    ("post", "/schedules"): "createSchedule",
    ("get", "/schedules/{schedule_id}"): "getSchedule",
    ("patch", "/schedules/{schedule_id}"): "updateSchedule",
    ("delete", "/schedules/{schedule_id}"): "deleteSchedule",
    ("get", "/schedules/{schedule_id}/runs"): "listScheduleRuns",
    ("post", "/schedules/{schedule_id}/runs"): "runScheduleNow",
    ("get", "/schedules/{schedule_id}/runs/{run_id}"): "getScheduleRun",
    ("put", "/deploy"): "deployModel",
    ("get", "/deployment"): "getDeployment",
    ("post", "/predict"): "predict",
    ("post", "/predictions"): "predictAlias",
    ("get", "/predictions"): "listLoggedPredictions",
    ("get", "/predictions/{request_id}"): "getLoggedPrediction",
    ("post", "/outcomes"): "recordOutcomes",
    ("post", "/departures"): "recordDepartures",
    ("get", "/departures"): "getDepartureFeed",
    ("get", "/healthz"): "getHealth",
    ("get", "/readyz"): "getReadiness",
    ("get", "/metrics"): "getMetrics",
}

#: set by ``guarded`` on operations whose key is needed only when a setting names a scope
KEY_SETTING = "x-key-setting"

_METHODS = ("get", "put", "post", "delete", "patch")


def finish_document(paths: dict[str, dict[str, Any]], config: Mapping[str, Any]) -> None:
    """What the decorators cannot say, written into the registered operations once per app.

    Every operation gets its ``operationId``. An operation whose key is optional says what this
    server asks: no security requirement while its setting (``FLIGHT_DELAY_READ_SCOPE``,
    ``..._PREDICT_SCOPE``) is empty, the key otherwise -- generated clients type the first as
    callable without a key, which ``[{}, {key}]`` would not give them."""
    from flight_delay.api.security import KEY_REQUIREMENT

    missing = []
    for path, operations in paths.items():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            name = OPERATION_IDS.get((method, path))
            if name is None:
                missing.append(f"{method.upper()} {path}")
                continue
            operation["operationId"] = name
            setting = operation.pop(KEY_SETTING, None)
            if setting is not None:
                if config.get(setting):
                    operation["security"] = KEY_REQUIREMENT
                else:
                    operation.pop("security", None)
    if missing:
        raise RuntimeError(f"no operationId in OPERATION_IDS for {', '.join(missing)}")
