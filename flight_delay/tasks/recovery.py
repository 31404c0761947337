"""Recovery: notice jobs whose lease lapsed (their worker was killed, or cut off from Redis) and
send them again; resend messages Redis may have lost. Every API process and worker runs it
(:func:`start_recovery`); each decision is one lease script (flight_delay.tasks.lease), so any
number of them may run at once, and a duplicate message only meets a claim that refuses it.

Training jobs and analysis jobs are requeued here when their lease lapsed; a scheduled run's
evaluation is sent again (flight_delay.scheduling.runs.recover_runs) and its claim takes the
lapsed lease over. Either way the lease scripts decide, and count the attempt.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery
from flask import Flask

from flight_delay.registry import ModelNotFound, ModelRegistry, Status
from flight_delay.scheduling.runs import recover_runs
from flight_delay.storage import scratch_root
from flight_delay.tasks import analysis
from flight_delay.tasks.training import remove_scratch, send_job

log = logging.getLogger(__name__)


def recover_jobs(app: Flask) -> dict[str, list[str]]:
    """Queue again, or fail, every job whose worker is gone; resend messages Redis may have lost.

    Returns:
        the ids acted on: ``requeued``, ``failed`` and ``resent`` (training jobs by model id,
        analysis jobs by their record's key).
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
            remove_scratch(scratch_root(config, app.extensions["artifact_store"]), model_id)
            done["failed"].append(model_id)
    stale = time.time() - float(config["PENDING_RESEND_SECONDS"])
    for model_id in unfinished[Status.PENDING]:
        enqueued = _enqueued_at(registry, model_id)
        if restarted or (enqueued is not None and enqueued < stale):
            # Redis restarted (its queue may have lost the message) or the job waited too long
            registry.update(model_id, enqueued_at=time.time())
            send_job(celery, model_id)
            done["resent"].append(model_id)
    for action, keys in analysis.recover(app).items():
        done[action].extend(keys)
    runs = recover_runs(app)
    done["resent"].extend(runs["sent"] + runs["started"])
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
