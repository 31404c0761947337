"""Celery tasks: thin callers of the model library. They take ids, never objects."""

from __future__ import annotations

import logging
import os
import shutil
import traceback
from pathlib import Path

from flask import current_app

from flight_delay.data.download import AllowList
from flight_delay.data.sources import check_reference, fetch
from flight_delay.errors import FlightDelayError
from flight_delay.extensions import celery
from flight_delay.ml import train
from flight_delay.registry import JobCancelled, ModelNotFound, ModelRegistry, Status, now_iso

log = logging.getLogger(__name__)


def work_dir(model_dir: Path, model_id: str) -> Path:
    """Scratch space of a job; the finished model is renamed from here into place."""
    return model_dir / f".work-{model_id}"


@celery.task(name="flight_delay.train_model")
def train_model(model_id: str) -> str:
    """Train the model whose record is ``model_id``; record completed or failed with the reason."""
    registry: ModelRegistry = current_app.extensions["model_registry"]
    config = current_app.config
    try:
        record = registry.get(model_id)
    except ModelNotFound:
        return "deleted"  # cancelled before it started
    if record["status"] in (Status.COMPLETED, Status.FAILED):
        return record["status"]  # a redelivered message for a finished job
    model_dir = Path(config["MODEL_DIR"])
    scratch = work_dir(model_dir, model_id)
    final = model_dir / model_id

    def progress(stage: str, percent: int) -> None:
        if not registry.update(model_id, stage=stage, percent=percent):
            raise JobCancelled(model_id)

    try:
        if not registry.update(
            model_id, status=Status.RUNNING, started_at=now_iso(), stage="starting", percent=1
        ):
            raise JobCancelled(model_id)
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        progress("fetching dataset", 2)
        allow = AllowList.parse(config["DOWNLOAD_ALLOW_HOSTS"])
        reference = check_reference(record["dataset"], config["DATA_ROOT"], allow)
        data = fetch(
            reference,
            scratch,
            config["DOWNLOAD_MAX_BYTES"],
            config["DOWNLOAD_TIMEOUT_SECONDS"],
            allow,
        )
        model = train(data, record["settings"], progress=progress)
        model.metadata["model_id"] = model_id
        model.save(scratch / "model")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(scratch / "model", final)  # the model appears whole or not at all
        headline = model.metrics["holdout"]
        done = registry.update(
            model_id,
            status=Status.COMPLETED,
            finished_at=now_iso(),
            stage="done",
            percent=100,
            metrics=model.metrics,
            input_schema=model.input_schema,
            data=model.metadata["data"],
            threshold=model.threshold,
            roc_auc=headline["roc_auc"],
        )
        if not done:
            raise JobCancelled(model_id)
        return Status.COMPLETED
    except JobCancelled:
        log.info("model %s was deleted while training; discarding its files", model_id)
        shutil.rmtree(final, ignore_errors=True)
        return "deleted"
    except FlightDelayError as exc:
        registry.update(model_id, status=Status.FAILED, finished_at=now_iso(), error=str(exc))
        return Status.FAILED
    except Exception as exc:
        registry.update(
            model_id,
            status=Status.FAILED,
            finished_at=now_iso(),
            error=f"internal error: {type(exc).__name__}: {exc}",
        )
        log.error("training %s crashed:\n%s", model_id, traceback.format_exc())
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
