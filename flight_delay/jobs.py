"""Training jobs: a Celery task that is a thin caller of the model library, and job recovery.

A job message carries a model id, never objects. Every delivery of it first *claims* the job in
the registry (one atomic step, see :meth:`ModelRegistry.claim`): a finished job is never run
again, and while one attempt holds the job's lease no other runs it. The attempt renews its lease
from a heartbeat thread; an attempt whose worker was killed, or cut off from Redis, stops renewing,
and :func:`recover_jobs` (run periodically by every API process and worker) queues the job again or,
after ``JOB_MAX_ATTEMPTS``, marks it failed with the reason. Each attempt has its own scratch
folder and writes the record only while it holds the lease.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

import redis
from celery import Celery, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from flask import Flask, current_app

from flight_delay.data import FlightData
from flight_delay.data.download import AllowList
from flight_delay.data.sources import check_reference, fetch
from flight_delay.errors import FlightDelayError, scrub_paths
from flight_delay.extensions import EVALUATE_RUN_TASK, TRAIN_TASK
from flight_delay.metrics import record_job
from flight_delay.ml import train
from flight_delay.registry import (
    ClaimResult,
    JobCancelled,
    ModelNotFound,
    ModelRegistry,
    Status,
    now_iso,
)

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


def send_job(celery: Celery, model_id: str) -> None:
    """Queue a training job (by task name: the given app's broker and queue carry it)."""
    celery.send_task(TRAIN_TASK, args=[model_id])


class Lease:
    """Holds a job's lease while it runs: a heartbeat thread calls ``renew`` every sixth of the
    lease; once ``renew`` says the lease is lost, ``checkpoint`` raises JobCancelled."""

    def __init__(self, renew: Callable[[], bool], seconds: float, name: str) -> None:
        self.renew, self.lease, self.name = renew, seconds, name
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{name}", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.lease / 6):
            try:
                held = self.renew()
            except redis.RedisError as exc:  # Redis away for a moment: the lease decides
                log.warning("renewing the lease of %s failed: %s", self.name, exc)
                continue
            if not held:
                self.lost.set()
                return

    def checkpoint(self) -> None:
        if self.lost.is_set():
            raise JobCancelled(self.name)

    def retrying(self, call: Callable[[], Any], what: str) -> Any:
        """``call`` (a Redis write that ends the job), retried while Redis is away for up to one
        lease; None when it never came back (the lease runs out and recovery redoes the job)."""
        deadline = time.monotonic() + self.lease
        delay = 0.2
        while True:
            try:
                return call()
            except redis.RedisError as exc:
                if time.monotonic() + delay > deadline:
                    log.error("%s failed: %s", what, exc)
                    return None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)


class Attempt(Lease):
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


@shared_task(name=TRAIN_TASK)
def train_model(model_id: str) -> str:
    """Train the model whose record is ``model_id``; record completed or failed with the reason."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    started, outcome = time.monotonic(), "error"
    try:
        outcome = run_job(app, model_id)
        return outcome
    finally:
        record_job(str(outcome), time.monotonic() - started)
        if outcome in (Status.COMPLETED, Status.FAILED):
            notify_schedule_run(app, model_id)


def notify_schedule_run(app: Flask, model_id: str) -> None:
    """A scheduled run's challenger finished training: queue the run's evaluation now (the beat
    would find it within a tick; this saves the wait). By task name: no import of the
    scheduling package here, which imports this module."""
    try:
        run_id = app.extensions["model_registry"].get(model_id).get("schedule_run")
        if run_id:
            app.extensions["celery"].send_task(EVALUATE_RUN_TASK, args=[run_id])
    except (redis.RedisError, ModelNotFound) as exc:  # the beat's tick sends it later
        log.warning("could not queue the evaluation of %s's run: %s", model_id, exc)


def run_job(app: Flask, model_id: str) -> str:
    registry: ModelRegistry = app.extensions["model_registry"]
    config = app.config
    token = uuid.uuid4().hex[:12]
    lease = float(config["JOB_LEASE_SECONDS"])
    worker = f"{socket.gethostname()}:{os.getpid()}"
    outcome, number = registry.claim(
        model_id, token, worker, lease, int(config["JOB_MAX_ATTEMPTS"])
    )
    if outcome != ClaimResult.CLAIMED:
        log.info("job %s not run: %s", model_id, outcome)
        return outcome
    log.info("job %s: attempt %d (%s) started", model_id, number, token)
    model_dir = Path(config["MODEL_DIR"])
    model_dir.mkdir(parents=True, exist_ok=True)
    remove_scratch(model_dir, model_id, keep=token)  # left by attempts whose worker died
    scratch = work_dir(model_dir, model_id, token)
    final = model_dir / model_id
    roots = {"MODEL_DIR": config["MODEL_DIR"], "DATA_ROOT": config["DATA_ROOT"]}
    with Attempt(registry, model_id, token, lease) as attempt:
        try:
            record = registry.get(model_id)
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
            attempt.progress("saving", 98)  # still ours: only the lease holder moves files
            shutil.rmtree(final, ignore_errors=True)
            os.replace(scratch / "model", final)  # the model appears whole or not at all
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
                shutil.rmtree(final, ignore_errors=True)
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
        except Exception as exc:
            _fail(attempt, scrub_paths(f"internal error: {type(exc).__name__}: {exc}", roots))
            log.exception("training %s crashed", model_id)
            raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def fetch_dataset(config: Mapping[str, Any], dataset: str) -> FlightData:
    """The flights a dataset reference names (a data-root path, an allow-listed URL or
    synthetic[:N]), checked and fetched as training does, through a scratch folder removed
    afterwards; what drift and comparison jobs read."""
    allow = AllowList.parse(config["DOWNLOAD_ALLOW_HOSTS"])
    scratch = Path(tempfile.mkdtemp(prefix="dataset-"))
    try:
        reference = check_reference(dataset, config["DATA_ROOT"], allow)
        return fetch(
            reference,
            scratch,
            config["DOWNLOAD_MAX_BYTES"],
            config["DOWNLOAD_TIMEOUT_SECONDS"],
            allow,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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


# -- recovery -------------------------------------------------------------------------------------
def recover_jobs(app: Flask) -> dict[str, list[str]]:
    """Queue again, or fail, every job whose worker is gone; resend messages Redis may have lost.

    Safe to run from any number of processes at once: each decision is one atomic registry step,
    and a duplicate message only meets a claim that refuses it.

    Returns:
        the ids acted on: ``requeued``, ``failed`` and ``resent``.
    """
    registry: ModelRegistry = app.extensions["model_registry"]
    celery: Celery = app.extensions["celery"]
    config = app.config
    done: dict[str, list[str]] = {"requeued": [], "failed": [], "resent": []}
    restarted = registry.server_restarted()
    unfinished = registry.unfinished_ids()
    for model_id in unfinished[Status.RUNNING]:
        outcome = registry.expire_lease(model_id, int(config["JOB_MAX_ATTEMPTS"]))
        if outcome == "requeue":
            registry.update(model_id, enqueued_at=time.time())
            send_job(celery, model_id)
            done["requeued"].append(model_id)
        elif outcome == "failed":
            remove_scratch(Path(config["MODEL_DIR"]), model_id)
            done["failed"].append(model_id)
    stale = time.time() - float(config["PENDING_RESEND_SECONDS"])
    for model_id in unfinished[Status.PENDING]:
        enqueued = _enqueued_at(registry, model_id)
        if restarted or (enqueued is not None and enqueued < stale):
            # Redis restarted (its queue may have lost the message) or the job waited too long
            registry.update(model_id, enqueued_at=time.time())
            send_job(celery, model_id)
            done["resent"].append(model_id)
    for action, ids in done.items():
        if ids:
            log.warning("job recovery: %s %s", action, ", ".join(ids))
    return done


def _enqueued_at(registry: ModelRegistry, model_id: str) -> float | None:
    try:
        value = registry.get(model_id).get("enqueued_at")
    except ModelNotFound:
        return None
    try:
        return float(value) if value else None
    except ValueError:
        return None


def start_recovery(app: Flask, interval: float | None = None) -> threading.Thread:
    """Run :func:`recover_jobs` every ``RECOVERY_INTERVAL_SECONDS`` in a daemon thread."""
    every = float(interval if interval is not None else app.config["RECOVERY_INTERVAL_SECONDS"])

    def loop() -> None:
        while True:
            try:
                recover_jobs(app)
            except Exception:  # Redis away: try again next round
                log.warning("job recovery failed; retrying in %.0f s", every, exc_info=True)
            time.sleep(every)

    thread = threading.Thread(target=loop, name="job-recovery", daemon=True)
    thread.start()
    return thread
