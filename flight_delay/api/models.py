"""/models: create (train), list, inspect, export, download and delete models."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

from flask import current_app, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask.views import MethodView
from werkzeug.exceptions import InternalServerError, ServiceUnavailable

from flight_delay.api.base import Blueprint
from flight_delay.api.errors import ArtifactGone, ExportConflict
from flight_delay.api.presenters import present, registry
from flight_delay.api.schemas import (
    ModelCreatedSchema,
    ModelCreateSchema,
    ModelDetailSchema,
    ModelGetQuerySchema,
    ModelListQuerySchema,
    ModelSummarySchema,
)
from flight_delay.api.security import guarded, requires_configured_scope, requires_scope
from flight_delay.auth import require_configured_scope, require_scope
from flight_delay.data.download import AllowList
from flight_delay.data.sources import check_reference
from flight_delay.ml.artifacts import MODEL_FILE
from flight_delay.ml.config import TrainConfig
from flight_delay.registry import ModelNotReady, Status
from flight_delay.storage import ModelCache, ModelNotPublished
from flight_delay.tasks.training import discard_files, send_job

blp = Blueprint(
    "models",
    __name__,
    url_prefix="/models",
    description="Train, inspect, export and delete models.",
)


def _require_export_scope() -> None:
    """Reads may be open, but ?export=true writes a file on the server: it needs `export`.

    Looked up in the raw query, before the query is parsed, so that validation never runs for
    a caller who may not export."""
    require_configured_scope("READ_SCOPE")
    if request.args.get("export", "").strip().lower() not in _NOT_EXPORTING:
        require_scope("export")


_NOT_EXPORTING = ("", "false", "0", "no", "off", "n", "f")


@blp.route("")
class Models(MethodView):
    @requires_configured_scope(blp, "READ_SCOPE")
    @blp.arguments(ModelListQuerySchema, location="query")
    @blp.alt_response(404, description="`after` names no model (deleted since)")
    @blp.response(
        200,
        ModelSummarySchema(many=True),
        headers={
            "Link": {
                "description": 'the next page, `<URL>; rel="next"`; absent on the last page',
                "schema": {"type": "string"},
            }
        },
    )
    def get(self, query: dict[str, Any]) -> ResponseReturnValue:
        """List models, newest first

        Filter with `?status=pending|running|completed|failed`. At most `limit` models (100 by
        default) per answer; the `Link` header names the next page while there is one.
        """
        after = str(query["after"]) if query.get("after") else None
        records, last = registry().models_page(query.get("status"), query["limit"], after)
        deployed_id = registry().deployed_id()
        shown = [present(r, deployed_id) for r in records]
        if last is None:
            return shown
        arguments = {k: v for k, v in (("status", query.get("status")),) if v}
        following = url_for("models.Models", limit=query["limit"], after=last, **arguments)
        return shown, 200, {"Link": f'<{following}>; rel="next"'}

    @requires_scope(blp, "train")
    @blp.alt_response(
        400,
        description="invalid settings, unknown model type, or a dataset path missing or outside the data root",
    )
    @blp.alt_response(
        429,
        description="FLIGHT_DELAY_MAX_PENDING_JOBS training jobs wait for a worker already; "
        "nothing was created: ask again after Retry-After seconds",
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
        check_reference(
            dataset,
            current_app.config["DATA_ROOT"],
            AllowList.parse(current_app.config["DOWNLOAD_ALLOW_HOSTS"]),
        )
        record = registry().create(
            config.to_dict(),
            dataset,
            description,
            max_pending=int(current_app.config["MAX_PENDING_JOBS"]),
            retry_after=int(current_app.config["JOB_QUEUE_RETRY_AFTER_SECONDS"]),
        )
        try:
            send_job(current_app.extensions["celery"], record["id"])
        except Exception as exc:  # broker down: do not leave a pending record nobody will run
            with contextlib.suppress(Exception):
                registry().delete(record["id"])
            raise ServiceUnavailable(
                f"the job queue is unreachable ({type(exc).__name__}); nothing was created"
            ) from exc
        location = url_for("models.Model", model_id=record["id"], _external=False)
        return {"id": record["id"], "status": record["status"]}, 202, {"Location": location}


@blp.route("/<uuid:model_id>")
class Model(MethodView):
    @guarded(
        blp,
        _require_export_scope,
        "reads: when FLIGHT_DELAY_READ_SCOPE names a scope; ?export=true: the 'export' scope",
        setting="READ_SCOPE",
    )
    @blp.arguments(ModelGetQuerySchema, location="query")
    @blp.response(200, ModelDetailSchema)
    @blp.alt_response(
        400, description="an unknown query parameter, or a file-name that is not a plain name"
    )
    @blp.alt_response(404, description="no model with this id")
    @blp.alt_response(
        409,
        description="?export=true on a model that is not completed, or a different file of that name exists",
    )
    @blp.alt_response(
        410, description="?export=true: the model's files are gone from the model directory"
    )
    @blp.alt_response(503, description="?export=true: the artifact store cannot be reached")
    def get(self, query: dict[str, Any], model_id: Any) -> dict[str, Any]:
        """Show a model

        Status `pending`, `running` (with `progress`), `completed` (with full metrics and the input
        schema) or `failed` (with `error`). `?export=true[&file-name=NAME]` also writes the model
        file to NAME (default `<id>.joblib`) inside the export directory (FLIGHT_DELAY_EXPORT_DIR);
        that needs a key with the `export` scope. NAME is a plain file name; an existing file is
        never replaced (409, unless it holds exactly this model).
        """
        record = registry().get(str(model_id))
        shown = present(record, registry().deployed_id())
        if query["export"]:
            shown["path"] = export_model(record, query.get("file_name"))
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
        # one atomic step: never the deployed model, never half deleted; a running job notices
        # within a heartbeat (JOB_LEASE_SECONDS / 6) and stops at its next boosting round
        registry().delete(model_id)
        discard_files(current_app, model_id)


@blp.route("/<uuid:model_id>/artifact")
class Artifact(MethodView):
    @requires_configured_scope(blp, "READ_SCOPE")
    @blp.response(
        200,
        description="the fitted pipeline (joblib), loadable with flight_delay.ml.load_model's format",
    )
    @blp.alt_response(404, description="no model with this id")
    @blp.alt_response(409, description="the model is not completed")
    @blp.alt_response(410, description="the model's files are gone from the model directory")
    @blp.alt_response(503, description="the artifact store cannot be reached")
    def get(self, model_id: Any) -> Any:
        """Download a model file"""
        record = registry().get(str(model_id))
        path = model_file(record).resolve()
        try:
            # opened here: a model deleted from now on is still sent whole (the open file
            # keeps its bytes), and one deleted since the check above is a 404, not a 500
            handle = path.open("rb")
        except FileNotFoundError:
            raise files_gone(record["id"]) from None
        return send_file(handle, as_attachment=True, download_name=f"{record['id']}.joblib")


def files_gone(model_id: str) -> ArtifactGone:
    """What a model's missing files mean: a 404 when the model was deleted meanwhile (records
    go before files), otherwise a completed model whose files are gone (410)."""
    registry().get(model_id)  # raises ModelNotFound: deleted meanwhile
    return ArtifactGone(model_id)


def model_file(record: dict[str, Any]) -> Path:
    """The model file of a completed record; ArtifactGone when it is no longer on disk."""
    if record["status"] != Status.COMPLETED:
        raise ModelNotReady(record["id"], record["status"], "this")
    models: ModelCache = current_app.extensions["model_cache"]
    try:  # this host's checked copy (a local store's own folder)
        path = models.folder(record["id"]) / MODEL_FILE
    except ModelNotPublished:
        raise ArtifactGone(record["id"]) from None
    if not path.is_file():
        raise ArtifactGone(record["id"])
    return path


def export_model(record: dict[str, Any], file_name: str | None) -> str:
    """Copy a completed model's file into the export directory under a plain ``file_name``.

    Never replaces a file: an existing file with the same bytes is the same export (answered
    again), any other existing file is a conflict. The copy appears whole or not at all: it is
    written to a temporary file and hard-linked into place, which fails if the name is taken.

    Returns:
        the file's name inside the export directory.
    """
    source = model_file(record)
    name = file_name or f"{record['id']}.joblib"
    root = Path(current_app.config["EXPORT_DIR"])
    root.mkdir(parents=True, exist_ok=True)
    target = root / name  # the schema admits plain names only: no separators, no leading dot
    if target.exists() or target.is_symlink():
        try:
            same = target.is_file() and not target.is_symlink() and _same_bytes(source, target)
        except FileNotFoundError:  # the model (or the export) went away meanwhile
            raise files_gone(record["id"]) from None
        if same:
            return name
        raise ExportConflict(name)
    descriptor, temporary = tempfile.mkstemp(dir=root, prefix=".export-")
    os.close(descriptor)
    try:
        shutil.copyfile(source, temporary)
        os.link(temporary, target)
    except FileExistsError:  # another request took the name meanwhile
        raise ExportConflict(name) from None
    except FileNotFoundError:  # the model was deleted since model_file looked
        raise files_gone(record["id"]) from None
    finally:
        Path(temporary).unlink(missing_ok=True)
    return name


def _same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as left, b.open("rb") as right:
        while block := left.read(1 << 20):
            if block != right.read(len(block)):
                return False
    return True
