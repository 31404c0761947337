"""/models: create (train), list, inspect, export, download and delete models."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

from flask import current_app, send_file, url_for
from flask.typing import ResponseReturnValue
from flask.views import MethodView
from werkzeug.exceptions import InternalServerError, ServiceUnavailable

from flight_delay.api.errors import Blueprint, ExportPathError, requires_scope
from flight_delay.api.schemas import (
    ModelCreatedSchema,
    ModelCreateSchema,
    ModelDetailSchema,
    ModelGetQuerySchema,
    ModelListQuerySchema,
    ModelSummarySchema,
)
from flight_delay.auth import require_configured_scope
from flight_delay.data.sources import check_reference
from flight_delay.jobs import train_model, work_dir
from flight_delay.ml.artifacts import MODEL_FILE
from flight_delay.ml.config import TrainConfig
from flight_delay.registry import ModelDeployed, ModelNotReady, ModelRegistry, Status

blp = Blueprint(
    "models",
    __name__,
    url_prefix="/models",
    description="Train, inspect, export and delete models.",
)


def registry() -> ModelRegistry:
    registry: ModelRegistry = current_app.extensions["model_registry"]
    return registry


def headline(record: dict[str, Any]) -> dict[str, float] | None:
    holdout = (record.get("metrics") or {}).get("holdout")
    if not holdout:
        return None
    delayed = holdout["classes"]["delayed"]
    return {
        "roc_auc": holdout["roc_auc"],
        "pr_auc": holdout["pr_auc"],
        "f1_delayed": delayed["f1"],
        "recall_delayed": delayed["recall"],
    }


def present(record: dict[str, Any], deployed_id: str | None) -> dict[str, Any]:
    """A record as the API shows it."""
    shown = dict(record)
    shown["deployed"] = record["id"] == deployed_id
    shown["headline"] = headline(record)
    if record["status"] in Status.UNFINISHED:
        shown["progress"] = {"stage": record.get("stage", ""), "percent": record.get("percent", 0)}
    for name in ("started_at", "finished_at", "error"):
        shown[name] = record.get(name) or None
    if record.get("threshold"):
        shown["threshold"] = float(record["threshold"])
    return shown


@blp.route("")
class Models(MethodView):
    @blp.arguments(ModelListQuerySchema, location="query")
    @blp.response(200, ModelSummarySchema(many=True))
    def get(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """List models, newest first

        Filter with `?status=pending|running|completed|failed`.
        """
        require_configured_scope("READ_SCOPE")
        deployed_id = registry().deployed_id()
        return [present(r, deployed_id) for r in registry().models(query.get("status"))]

    @requires_scope(blp, "train")
    @blp.alt_response(
        400,
        description="invalid settings, unknown model type, or a dataset path missing or outside the data root",
    )
    @blp.alt_response(503, description="the job queue (Redis) is unreachable; nothing was created")
    @blp.arguments(
        ModelCreateSchema,
        example={
            "dataset": "dataset_SCL.csv",
            "model_type": "lightgbm",
            "features": "schedule",
            "split": "time",
        },
    )
    @blp.response(
        202,
        ModelCreatedSchema,
        headers={"Location": {"description": "URL of the new model", "schema": {"type": "string"}}},
    )
    def post(self, body: dict[str, Any]) -> ResponseReturnValue:
        """Train a model

        Needs an `X-api-key` with the `train` scope. Validates everything, records the model as
        `pending`, queues the job and answers at once; poll `GET /models/{id}` for progress.
        """
        dataset = body.pop("dataset")
        description = body.pop("description")
        config = TrainConfig.from_dict(body)
        check_reference(dataset, current_app.config["DATA_ROOT"])
        record = registry().create(config.to_dict(), dataset, description)
        try:
            train_model.apply_async(args=[record["id"]], task_id=record["id"])
        except Exception as exc:  # broker down: do not leave a pending record nobody will run
            registry().delete(record["id"])
            raise ServiceUnavailable(
                f"the job queue is unreachable ({type(exc).__name__}); nothing was created"
            ) from exc
        location = url_for("models.Model", model_id=record["id"], _external=False)
        return {"id": record["id"], "status": record["status"]}, 202, {"Location": location}


@blp.route("/<uuid:model_id>")
class Model(MethodView):
    @blp.arguments(ModelGetQuerySchema, location="query")
    @blp.response(200, ModelDetailSchema)
    @blp.alt_response(400, description="the export file name escapes the export directory")
    @blp.alt_response(404, description="no model with this id")
    @blp.alt_response(409, description="?export=true on a model that is not completed")
    def get(self, query: dict[str, Any], model_id: Any) -> dict[str, Any]:
        """Show a model

        Status `pending`, `running` (with `progress`), `completed` (with full metrics and the input
        schema) or `failed` (with `error`). `?export=true[&file-name=NAME]` also writes the model
        file to NAME (default `<id>.joblib`) inside the export directory (FLIGHT_DELAY_EXPORT_DIR).
        """
        require_configured_scope("READ_SCOPE")
        record = registry().get(str(model_id))
        shown = present(record, registry().deployed_id())
        if query["export"]:
            shown["path"] = str(export_model(record, query.get("file_name")))
            shown["download"] = "OK"
        return shown

    @requires_scope(blp, "delete")
    @blp.response(204)
    @blp.alt_response(404, description="no model with this id")
    @blp.alt_response(409, description="the model is deployed")
    @blp.alt_response(
        500,
        description="injected fault: a share FLIGHT_DELAY_DELETE_FAULT_RATE (default 0.5 %) of DELETE "
        "requests fail before anything changes, as the original specification asks; retry",
    )
    def delete(self, model_id: Any) -> None:
        """Delete a model

        Needs the `delete` scope. Removes the record and its files; a pending or running job is
        cancelled. The deployed model cannot be deleted (deploy another one first).
        """
        if random.random() < current_app.config["DELETE_FAULT_RATE"]:
            raise InternalServerError(
                "injected fault (FLIGHT_DELAY_DELETE_FAULT_RATE): nothing was changed; retry"
            )
        model_id = str(model_id)
        record = registry().get(model_id)
        if registry().deployed_id() == model_id:
            raise ModelDeployed(model_id)
        registry().delete(model_id)
        if record["status"] in Status.UNFINISHED:
            current_app.extensions["celery"].control.revoke(model_id)
        model_dir = Path(current_app.config["MODEL_DIR"])
        shutil.rmtree(model_dir / model_id, ignore_errors=True)
        shutil.rmtree(work_dir(model_dir, model_id), ignore_errors=True)


@blp.route("/<uuid:model_id>/artifact")
class Artifact(MethodView):
    @blp.response(
        200,
        description="the fitted pipeline (joblib), loadable with flight_delay.ml.load_model's format",
    )
    @blp.alt_response(404, description="no model with this id")
    @blp.alt_response(409, description="the model is not completed")
    def get(self, model_id: Any) -> Any:
        """Download a model file"""
        require_configured_scope("READ_SCOPE")
        record = registry().get(str(model_id))
        if record["status"] != Status.COMPLETED:
            raise ModelNotReady(record["id"], record["status"], "downloading")
        path = Path(current_app.config["MODEL_DIR"]).resolve() / record["id"] / MODEL_FILE
        return send_file(path, as_attachment=True, download_name=f"{record['id']}.joblib")


def export_model(record: dict[str, Any], file_name: str | None) -> Path:
    """Copy a completed model's file into the export directory, atomically."""
    if record["status"] != Status.COMPLETED:
        raise ModelNotReady(record["id"], record["status"], "export")
    root = Path(current_app.config["EXPORT_DIR"]).resolve()
    name = file_name or f"{record['id']}.joblib"
    target = (root / name).resolve()
    if not target.is_relative_to(root) or target == root:
        raise ExportPathError(
            f"file-name {name!r} resolves outside the export directory {root}",
            [{"field": "file-name", "problem": "outside the export directory"}],
        )
    if not target.parent.is_dir():
        raise ExportPathError(
            f"file-name {name!r}: folder {target.parent} does not exist",
            [{"field": "file-name", "problem": "folder does not exist"}],
        )
    source = Path(current_app.config["MODEL_DIR"]) / record["id"] / MODEL_FILE
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(descriptor)
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
