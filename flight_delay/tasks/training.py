"""The training task: a thin caller of the model library, holding the job's lease.

A job message carries a model id, never objects. Every delivery of it first *claims* the model
record (the lease every job has, flight_delay.tasks.lease): a finished job is never run again,
and while one attempt holds the job's lease no other runs it. The attempt renews its lease from
a heartbeat thread; an attempt whose worker was killed stops renewing, and recovery
(flight_delay.tasks.recovery) queues the job again or, after ``JOB_MAX_ATTEMPTS``, marks it
failed with the reason. Each attempt has its own scratch folder and writes the record only while
it holds the lease. The task knows nothing of what asked for the model: a scheduled run links its
evaluation to the message (flight_delay.scheduling.runs).
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from celery import Celery, shared_task
from celery.canvas import Signature
from celery.exceptions import SoftTimeLimitExceeded
from flask import Flask, current_app

from flight_delay.data.download import AllowList
from flight_delay.data.sources import check_reference, fetch
from flight_delay.errors import FlightDelayError, scrub_paths
from flight_delay.metrics import record_job
from flight_delay.ml import train
from flight_delay.registry import ModelNotFound, ModelRegistry, Status
from flight_delay.storage import (
    ArtifactStore,
    ArtifactStoreUnavailable,
    ModelAlreadyPublished,
    ModelCache,
    scratch_root,
)
from flight_delay.tasks import names
from flight_delay.tasks.lease import Attempt as LeaseAttempt
from flight_delay.tasks.lease import ClaimResult, JobCancelled, holder_name, now_iso

log = logging.getLogger(__name__)

SCRATCH_PREFIX = ".work-"


def work_dir(model_dir: Path, model_id: str, token: str) -> Path:
    """Scratch space of one attempt; the finished model is renamed from here into place."""
    return model_dir / f"{SCRATCH_PREFIX}{model_id}-{token}"


def remove_scratch(model_dir: Path, model_id: str, keep: str | None = None) -> None:
    """Remove the scratch folders of a job's attempts (but ``keep``'s)."""
    for folder in model_dir.glob(f"{SCRATCH_PREFIX}{model_id}-*"):
        if keep is None or folder.name != f"{SCRATCH_PREFIX}{model_id}-{keep}":
            shutil.rmtree(folder, ignore_errors=True)


def discard_files(app: Flask, model_id: str) -> None:
    """Remove a deleted model's files: from the store, this host's cache and scratch space. A
    store that is down leaves them (logged): files without a record are never served."""
    store: ArtifactStore = app.extensions["artifact_store"]
    cache: ModelCache = app.extensions["model_cache"]
    try:
        store.delete(model_id)
    except (ArtifactStoreUnavailable, OSError) as exc:
        log.warning("model %s: its files stay in the store: %s", model_id, exc)
    cache.discard(model_id)
    remove_scratch(scratch_root(app.config, store), model_id)


def send_job(celery: Celery, model_id: str, then: Signature | None = None) -> None:
    """Queue a training job (by task name: the given app's broker and queue carry it); ``then``
    is sent when the task returns (completed, failed, or a duplicate delivery)."""
    celery.send_task(names.TRAIN, args=[model_id], link=then)


class Attempt(LeaseAttempt):
    """One attempt at a training job: holds its lease, and stops the job (raises JobCancelled at
    the next progress report or boosting round) once the lease is lost: the model was deleted,
    or another attempt took over."""

    def __init__(self, registry: ModelRegistry, model_id: str, token: str, lease: float) -> None:
        super().__init__(lambda: registry.attempt_update(model_id, token, lease), lease, model_id)
        self.registry, self.model_id, self.token = registry, model_id, token

    def progress(self, stage: str, percent: int) -> None:
        self.checkpoint()
        try:
            held = self.registry.attempt_update(
                self.model_id, self.token, self.lease, stage=stage, percent=percent
            )
        except redis.RedisError as exc:  # progress is informative; the heartbeat keeps trying
            log.warning("reporting progress of %s failed: %s", self.model_id, exc)
            return
        if not held:
            self.lost.set()
            raise JobCancelled(self.model_id)

    def finish(self, status: str, **fields: Any) -> bool:
        """Record the outcome, retrying while Redis is away for up to one lease; False when
        this attempt no longer holds the job (or Redis never came back: recovery redoes it)."""
        return bool(
            self.retrying(
                lambda: self.registry.attempt_finish(self.model_id, self.token, status, **fields),
                f"recording {status} of {self.model_id}",
            )
        )


@shared_task(name=names.TRAIN)
def train_model(model_id: str) -> str:
    """Train the model whose record is ``model_id``; record completed or failed with the reason."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    started, outcome = time.monotonic(), "error"
    try:
        outcome = run_job(app, model_id)
        return outcome
    finally:
        record_job(str(outcome), time.monotonic() - started)


def run_job(app: Flask, model_id: str) -> str:
    registry: ModelRegistry = app.extensions["model_registry"]
    config = app.config
    token = uuid.uuid4().hex[:12]
    lease = float(config["JOB_LEASE_SECONDS"])
    outcome, number = registry.claim(
        model_id, token, holder_name(), lease, int(config["JOB_MAX_ATTEMPTS"])
    )
    if outcome != ClaimResult.CLAIMED:
        log.info("job %s not run: %s", model_id, outcome)
        return outcome
    log.info("job %s: attempt %d (%s) started", model_id, number, token)
    store: ArtifactStore = app.extensions["artifact_store"]
    scratch_dir = scratch_root(config, store)
    scratch_dir.mkdir(parents=True, exist_ok=True)
    remove_scratch(scratch_dir, model_id, keep=token)  # left by attempts whose worker died
    scratch = work_dir(scratch_dir, model_id, token)
    roots = {
        "MODEL_DIR": config["MODEL_DIR"],
        "MODEL_CACHE_DIR": config["MODEL_CACHE_DIR"],
        "DATA_ROOT": config["DATA_ROOT"],
    }
    with Attempt(registry, model_id, token, lease) as attempt:
        try:
            # a failover can fall right after the claim: wait for Redis as finish() does
            record = attempt.retrying(lambda: registry.get(model_id), f"reading {model_id}")
            if record is None:
                return _interrupted(model_id, token, "Redis did not come back")
            scratch.mkdir(parents=True)
            attempt.progress("fetching dataset", 2)
            allow = AllowList.parse(config["DOWNLOAD_ALLOW_HOSTS"])
            reference = check_reference(record["dataset"], config["DATA_ROOT"], allow)
            data = fetch(
                reference,
                scratch,
                config["DOWNLOAD_MAX_BYTES"],
                config["DOWNLOAD_TIMEOUT_SECONDS"],
                allow,
            )
            attempt.checkpoint()
            model = train(
                data, record["settings"], progress=attempt.progress, checkpoint=attempt.checkpoint
            )
            model.metadata["model_id"] = model_id
            attempt.progress("compiling trees", 95)
            model.save(
                scratch / "model",
                compile_trees=bool(config["COMPILED_TREES"]),
                compile_timeout_seconds=float(config["COMPILE_TIMEOUT_SECONDS"]),
            )
            attempt.progress("saving", 98)  # still ours: only the lease holder publishes
            try:
                store.publish(model_id, scratch / "model")  # whole or not at all, never replaced
            except ModelAlreadyPublished:
                # an earlier attempt published it and died before recording it: that model is
                # the job's (a reader may already hold it), and its figures are recorded
                log.info("job %s: an earlier attempt published the model; recording it", model_id)
                cache: ModelCache = app.extensions["model_cache"]
                model = cache.load_model(model_id)
            headline = model.metrics["holdout"]
            if not attempt.finish(
                Status.COMPLETED,
                finished_at=now_iso(),
                stage="done",
                percent=100,
                metrics=model.metrics,
                input_schema=model.input_schema,
                importances=model.metadata.get("importances") or {},
                cross_validation=model.metadata.get("cross_validation"),
                data=model.metadata["data"],
                threshold=model.threshold,
                roc_auc=headline["roc_auc"],
            ):
                raise JobCancelled(model_id)
            return Status.COMPLETED
        except (JobCancelled, ModelNotFound):
            if _deleted(registry, model_id):
                log.info("model %s was deleted while training; discarding its files", model_id)
                discard_files(app, model_id)
            else:
                log.info(
                    "attempt %s at %s lost its lease; another attempt owns it", token, model_id
                )
            return "cancelled"
        except FlightDelayError as exc:
            _fail(attempt, scrub_paths(str(exc), roots))
            return Status.FAILED
        except SoftTimeLimitExceeded:
            limit = config["JOB_TIME_LIMIT_SECONDS"]
            _fail(attempt, f"stopped: training took longer than the {limit} s limit")
            return Status.FAILED
        except redis.RedisError as exc:
            # Redis away mid-attempt (a restart, a failover): not the job's fault; recording a
            # failure would turn a lost connection into a lost job
            return _interrupted(model_id, token, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            _fail(attempt, scrub_paths(f"internal error: {type(exc).__name__}: {exc}", roots))
            log.exception("training %s crashed", model_id)
            raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _interrupted(model_id: str, token: str, reason: str) -> str:
    """Stop an attempt that lost Redis; its lease lapses and recovery runs the job again."""
    log.warning(
        "job %s: attempt %s stopped, Redis unreachable (%s); it runs again once its lease lapses",
        model_id,
        token,
        reason,
    )
    return "interrupted"


def _fail(attempt: Attempt, reason: str) -> None:
    attempt.finish(Status.FAILED, finished_at=now_iso(), stage="failed", error=reason[:2000])


def _deleted(registry: ModelRegistry, model_id: str) -> bool:
    try:
        registry.get(model_id)
    except ModelNotFound:
        return True
    except redis.RedisError:
        return False
    return False
