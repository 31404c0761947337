"""Scheduled runs: the beat's tick that starts them and moves them along, and the Celery task
that evaluates a challenger against the deployed champion and promotes it when the rule holds.

A run trains its challenger as an ordinary training job (a model record like any other, with
``schedule_run`` naming the run), always with ``split=time`` and ``refit=false``: the most
recent ``test_size`` of the dataset's flights is a holdout the challenger never saw. The
evaluation scores the challenger and the model deployed at that moment on that holdout (and on
the prediction log's flights with outcomes, when the rule's ``min_outcome_flights`` of both
classes are there), decides with the schedule's rule (flight_delay.ml.promotion) and either
completes the run as ``kept`` or deploys the challenger and completes it as ``promoted`` in one
atomic step that also checks the deployment did not change meanwhile.

Nothing is lost to a dead process: recovery re-sends an evaluation whose message was lost or
whose worker stopped renewing its lease (at most JOB_MAX_ATTEMPTS attempts), and a challenger's
training job is recovered like every training job (flight_delay.tasks.recovery).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import redis
from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from flight_delay.data.download import redact
from flight_delay.data.schema import DELAY_THRESHOLD_MINUTES
from flight_delay.data.sources import fetch_dataset
from flight_delay.errors import FlightDelayError, InvalidFlights, scrub_paths
from flight_delay.ml import TrainedModel
from flight_delay.ml.comparison import (
    EmptyHoldout,
    compare,
    fitted_positions,
    scores,
)
from flight_delay.ml.config import TrainConfig
from flight_delay.ml.promotion import Decision, PromotionRule, decide, refusals
from flight_delay.ml.splits import split_positions
from flight_delay.registry import ModelDeployed, ModelNotFound, ModelRegistry, Status
from flight_delay.scheduling.lifecycle import RunStatus
from flight_delay.scheduling.store import RunNotFound, ScheduleStore
from flight_delay.scheduling.timing import InvalidTiming, Timing
from flight_delay.storage import ModelCache
from flight_delay.tasks import names
from flight_delay.tasks.lease import Attempt, JobCancelled, holder_name, now_iso
from flight_delay.tasks.training import discard_files, send_job

log = logging.getLogger(__name__)

#: newest logged flights with outcomes an evaluation re-predicts
MAX_OUTCOME_FLIGHTS = 50_000
#: the settings every challenger is trained with: its holdout is the most recent flights, unseen
RUN_SETTINGS = {"split": "time", "time_cutoff": None, "refit": False}


def schedule_store(app: Flask) -> ScheduleStore:
    store: ScheduleStore = app.extensions["schedules"]
    return store


def timing_of(schedule: dict[str, Any]) -> Timing:
    return Timing(
        every_seconds=schedule.get("every_seconds") or None,
        cron=schedule.get("cron") or None,
        timezone=schedule.get("timezone") or "UTC",
    )


def promoter(run: dict[str, Any]) -> str:
    """Who a promotion names in the deployment history."""
    name = run.get("schedule_name") or ""
    label = f"'{name}' " if name else ""
    return f"schedule {label}#{run['schedule_id'][:8]}, run {run['number']}"


# -- the tick -----------------------------------------------------------------------------------
def tick(app: Flask, beat: str = "") -> dict[str, list[str]]:
    """One beat: claim the due times and send one task per run started (its worker creates the
    challenger). Nothing else: moving runs along is recovery's (:func:`recover_runs`).

    Safe from any number of beats at once: a due time is claimed by one compare-and-set.

    Returns:
        what was done: ``started`` run ids, ``skipped`` schedule ids.
    """
    store = schedule_store(app)
    done: dict[str, list[str]] = {"started": [], "skipped": []}
    now = time.time()
    who = beat or f"beat {socket.gethostname()}:{os.getpid()}"
    for schedule_id, due in store.due(now):
        try:
            schedule = store.get(schedule_id)
            following = timing_of(schedule).following(due, now)
        except FlightDelayError:
            following = due  # deleted meanwhile: the claim below sees it gone
        except InvalidTiming as exc:  # a cron expression that stopped firing: pause, say why
            log.warning("schedule %s paused: %s", schedule_id, exc)
            store.update(schedule_id, {"paused": True, "paused_reason": str(exc)}, None)
            continue
        outcome, detail = store.claim_due(schedule_id, due, following, who)
        if outcome == "started":
            log.info("schedule %s: due %s claimed by %s, run %s", schedule_id, due, who, detail)
            done["started"].append(detail)
            store.trim_runs(schedule_id, int(app.config["SCHEDULE_RUNS_KEPT"]))
            app.extensions["celery"].send_task(names.START_RUN, args=[detail])
        elif outcome == "skipped":
            log.warning(
                "schedule %s: due %s claimed by %s, skipped: run %s has not finished",
                schedule_id, due, who, detail,
            )  # fmt: skip
            done["skipped"].append(schedule_id)
        elif outcome == "taken":
            log.warning(
                "schedule %s: due %s was claimed by another beat before %s: is a second beat "
                "running? (harmless: each due time runs once)",
                schedule_id, due, who,
            )  # fmt: skip
    return done


def start_run(app: Flask, run_id: str) -> str:
    """The task a started run sends: create its challenger and queue its training."""
    try:
        run = schedule_store(app).get_run(run_id)
    except RunNotFound:
        return "gone"
    if run["status"] != RunStatus.QUEUED:
        return str(run["status"])  # a duplicate message, or recovery started it already
    return "started" if start_challenger(app, run) else "taken"


def recover_runs(app: Flask) -> dict[str, list[str]]:
    """Move along every run a lost message or a killed worker left behind (flight_delay.tasks
    .recovery runs this in every API process and worker): a queued run whose start message was
    lost long ago is started; a run whose challenger failed is failed; an evaluation that was
    lost, or whose worker stopped renewing its lease, is sent again (its claim takes over).

    Returns:
        the runs acted on: ``started`` and ``sent`` (an evaluation sent again).
    """
    store = schedule_store(app)
    done: dict[str, list[str]] = {"started": [], "sent": []}
    stale = time.time() - float(app.config["PENDING_RESEND_SECONDS"])
    for run in store.unfinished():
        try:
            if run["status"] == RunStatus.QUEUED:
                created = _epoch(run.get("created_at"))
                if created is not None and created < stale and start_challenger(app, run):
                    done["started"].append(run["id"])
            elif advance(app, run):
                done["sent"].append(run["id"])
        except (redis.RedisError, FlightDelayError):
            log.warning("moving run %s along failed; retried next round", run["id"], exc_info=True)
    return done


def advance(app: Flask, run: dict[str, Any]) -> bool:
    """Move a run whose challenger trains or is evaluated a step: fail it when the challenger
    failed, or (re)send its evaluation; True when an evaluation was sent."""
    store = schedule_store(app)
    registry: ModelRegistry = app.extensions["model_registry"]
    status = run["status"]
    lease = float(app.config["JOB_LEASE_SECONDS"])
    now = _redis_now(store)
    if status == RunStatus.TRAINING:
        try:
            challenger = registry.get(run["challenger_id"])
        except ModelNotFound:
            store.lifecycle.fail_training(
                run, f"the challenger model {run['challenger_id']} was deleted while training"
            )
            return False
        if challenger["status"] == Status.FAILED:
            store.lifecycle.fail_training(
                run, f"the challenger failed to train: {challenger.get('error') or 'no reason'}"
            )
            prune_rejected_challengers(app, run["schedule_id"])
            return False
        if challenger["status"] != Status.COMPLETED:
            return False
        # the evaluation follows the training job's message; send it again only when no
        # evaluation took it within a lease (a lost message, or a challenger that recovery
        # queued again without its evaluation)
        finished = _epoch(challenger.get("finished_at"))
        sent = float(run.get("evaluation_sent_at") or 0)
        if max(finished or 0.0, sent) + lease > now:
            return False
    elif status == RunStatus.EVALUATING:
        sent = float(run.get("evaluation_sent_at") or 0)
        if float(run.get("lease_until") or 0) > now or sent + lease > now:
            return False  # its worker renews the lease, or a resent evaluation is on its way
    else:
        return False
    store.set_run_fields(run["id"], evaluation_sent_at=now)
    app.extensions["celery"].send_task(names.EVALUATE_RUN, args=[run["id"]])
    return True


def start_challenger(app: Flask, run: dict[str, Any]) -> str | None:
    """Record the run's challenger (a pending model) and queue its training job; the model id,
    or None when another tick did it first."""
    store = schedule_store(app)
    registry: ModelRegistry = app.extensions["model_registry"]
    try:
        settings = TrainConfig.from_dict({**run["settings"], **RUN_SETTINGS}).to_dict()
    except FlightDelayError as exc:  # settings this version no longer accepts
        store.lifecycle.reject_settings(run, str(exc))
        return None
    name = run.get("schedule_name") or run["schedule_id"][:8]
    record = registry.create(
        settings,
        run["dataset"],
        description=f"challenger of schedule {name}, run {run['number']}",
        extra={"schedule_run": run["id"], "schedule_id": run["schedule_id"]},
    )
    if not store.lifecycle.start_training(run["id"], record["id"]):
        registry.delete(record["id"])
        return None
    # the evaluation follows the training job's message (a lost one is resent by recovery,
    # which then sends the evaluation too: recover_runs)
    celery = app.extensions["celery"]
    evaluate = celery.signature(names.EVALUATE_RUN, args=[run["id"]], immutable=True)
    send_job(celery, record["id"], then=evaluate)
    return str(record["id"])


def _redis_now(store: ScheduleStore) -> float:
    seconds, micro = store.redis.time()
    return float(seconds) + micro / 1_000_000


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


# -- the evaluation ------------------------------------------------------------------------------
class RunFailed(Exception):
    """The run cannot be evaluated; the message says why (shown to API callers)."""


def run_evaluation(app: Flask, run_id: str) -> str:
    store = schedule_store(app)
    registry: ModelRegistry = app.extensions["model_registry"]
    config = app.config
    try:
        run = store.get_run(run_id)
    except RunNotFound:
        return "gone"
    if run["status"] not in (RunStatus.TRAINING, RunStatus.EVALUATING):
        return str(run["status"])
    try:
        challenger = registry.get(run["challenger_id"])
    except ModelNotFound:
        challenger = {"status": "deleted"}
    if challenger["status"] != Status.COMPLETED:
        advance(app, run)  # fails the run when the challenger failed or is gone
        return "waiting"
    token = uuid.uuid4().hex[:12]
    lease = float(config["JOB_LEASE_SECONDS"])
    claimed = store.lifecycle.claim_evaluation(
        run, token, lease, int(config["JOB_MAX_ATTEMPTS"]), holder_name()
    )
    if claimed != "claimed":
        log.info("evaluation of run %s not run: %s", run_id, claimed)
        return claimed
    roots = {n: config[n] for n in ("MODEL_DIR", "MODEL_CACHE_DIR", "DATA_ROOT")}
    with Attempt(
        lambda: store.lifecycle.renew_evaluation(run_id, token, lease), lease, run_id
    ) as held:
        try:
            decided = _evaluate_and_decide(app, run, challenger, token, held)
            prune_rejected_challengers(app, run["schedule_id"])
            return decided
        except JobCancelled:  # the lease was lost: the attempt that holds the run records it
            log.info("evaluation %s of run %s lost its lease", token, run_id)
            return "cancelled"
        except (RunFailed, FlightDelayError, EmptyHoldout) as exc:
            reason = scrub_paths(str(exc), roots)
        except Exception as exc:
            log.exception("evaluating run %s crashed", run_id)
            reason = scrub_paths(f"internal error: {type(exc).__name__}: {exc}", roots)
        held.retrying(
            lambda: store.lifecycle.fail_evaluation(run, token, reason[:2000]),
            f"recording the failure of run {run_id}",
        )
        prune_rejected_challengers(app, run["schedule_id"])
        return RunStatus.FAILED


def prune_rejected_challengers(app: Flask, schedule_id: str) -> list[str]:
    """Delete the challengers of the schedule's finished runs that were not promoted (kept out,
    or whose run failed), all but the newest SCHEDULE_KEEP_REJECTED: every run trains a model,
    and a schedule that runs for months must not keep them all. A challenger that was deployed
    at some point (by hand, say) is kept: the deployment history may roll back to it. The run
    keeps its figures and says when its challenger was deleted. Returns the ids deleted."""
    store = schedule_store(app)
    registry: ModelRegistry = app.extensions["model_registry"]
    keep = int(app.config["SCHEDULE_KEEP_REJECTED"])
    try:
        runs = store.runs(schedule_id, int(app.config["SCHEDULE_RUNS_KEPT"]))
        rejected = [
            r for r in runs
            if r.get("challenger_id") and not r.get("challenger_deleted_at")
            and (r["status"] == RunStatus.FAILED
                 or (r["status"] == RunStatus.COMPLETED and r.get("decision") != "promoted"))
        ]  # fmt: skip
        if len(rejected) <= keep:
            return []
        deployed = {event["model_id"] for event in registry.deployment_history()}
        deployed.add(registry.deployed_id() or "")
    except redis.RedisError:
        log.warning("pruning the challengers of schedule %s failed", schedule_id, exc_info=True)
        return []
    deleted = []
    for run in rejected[keep:]:
        model_id = str(run["challenger_id"])
        if model_id in deployed:
            continue
        try:
            registry.delete(model_id)
        except ModelNotFound:
            pass  # deleted by hand already
        except (ModelDeployed, redis.RedisError):
            continue
        discard_files(app, model_id)
        deleted.append(model_id)
        with contextlib.suppress(redis.RedisError):  # informative: the model is gone either way
            store.set_run_fields(run["id"], challenger_deleted_at=now_iso())
    if deleted:
        log.info(
            "schedule %s: %d rejected challengers deleted (FLIGHT_DELAY_SCHEDULE_KEEP_REJECTED=%d)",
            schedule_id, len(deleted), keep,
        )  # fmt: skip
    return deleted


def _evaluate_and_decide(
    app: Flask, run: dict[str, Any], challenger: dict[str, Any], token: str, held: Attempt
) -> str:
    """``challenger`` is its completed record (a completed record no longer changes)."""
    store = schedule_store(app)
    registry: ModelRegistry = app.extensions["model_registry"]
    config = app.config
    cache: ModelCache = app.extensions["model_cache"]
    challenger_id = str(run["challenger_id"])
    flights = fetch_dataset(config, run["dataset"])
    held.checkpoint()
    if (challenger.get("data") or {}).get("sha256") != flights.fingerprint.sha256:
        raise RunFailed(
            "the dataset changed between the challenger's training and its evaluation; the "
            "next run trains on the new data"
        )
    settings = TrainConfig.from_dict(challenger["settings"])
    # the challenger's own holdout: the most recent test_size of the flights, never fitted on
    _, holdout = split_positions(flights.frame, "time", settings.test_size, settings.seed, None)
    models: dict[str, TrainedModel] = {challenger_id: cache.load_model(challenger_id)}
    trained_on = {
        challenger_id: fitted_positions(challenger["settings"], flights.fingerprint.sha256, flights)
    }
    champion_id = registry.deployed_id()
    if champion_id:
        try:
            champion = registry.get(champion_id)
        except ModelNotFound:
            raise RunFailed(f"the deployed model {champion_id} has no record") from None
        models[champion_id] = cache.load_model(champion_id)
        trained_on[champion_id] = fitted_positions(
            champion["settings"], (champion.get("data") or {}).get("sha256"), flights
        )
    compared = compare(models, flights, holdout, trained_on)
    held.checkpoint()
    by_id = {entry["model_id"]: entry for entry in compared.pop("models")}
    holdout_set = {
        **compared,
        "champion": by_id.get(champion_id) if champion_id else None,
        "challenger": by_id[challenger_id],
    }
    evaluation: dict[str, Any] = {"holdout": holdout_set}
    sets: dict[str, dict[str, Any]] = {
        "holdout": {
            "champion": holdout_set["champion"]["metrics"] if holdout_set["champion"] else None,
            "challenger": holdout_set["challenger"]["metrics"],
        }
    }
    rule = PromotionRule.from_dict(run["rule"])
    blockers: list[str] = []
    if champion_id:
        # never a challenger that would refuse flights the deployed model serves
        blockers = refusals(models[champion_id].input_schema, models[challenger_id].input_schema)
        own = champion_data_scores(app, champion, models, champion_id, challenger_id, run)
        held.checkpoint()
        if own is not None:
            evaluation["champion_data"] = own
            if own.get("used"):
                sets["champion_data"] = {
                    "champion": own["champion"]["metrics"],
                    "challenger": own["challenger"]["metrics"],
                }
            else:
                blockers.append(
                    f"the deployed model's own data could not be scored: {own['reason']}"
                )
    outcomes = outcome_scores(app, models, champion_id, challenger_id, rule.min_outcome_flights)
    evaluation["outcomes"] = outcomes
    if outcomes.get("used"):
        sets["outcomes"] = {
            "champion": (outcomes.get("champion") or {}).get("metrics"),
            "challenger": outcomes["challenger"]["metrics"],
        }
    decision = decide(rule, sets, guards=("champion_data",))
    if blockers:
        decision = Decision(False, [f"not promoted: {b}" for b in blockers] + decision.reasons)
    held.checkpoint()
    reasons = list(decision.reasons)
    seen = (holdout_set["champion"] or {}).get("holdout_flights_in_training")
    if seen:  # a champion refit on every row, say: said, not hidden, and not held against it
        reasons.append(
            f"holdout: the champion was fitted on {seen} of these {holdout_set['flights']} "
            "flights, so its figures there are optimistic"
        )
    own = evaluation.get("champion_data") or {}
    seen_own = (own.get("champion") or {}).get("holdout_flights_in_training")
    if seen_own:
        reasons.append(
            f"champion_data: the champion was fitted on {seen_own} of these {own['flights']} "
            "flights, so its figures there are optimistic"
        )
    fields = {
        "champion_id": champion_id or "",
        "decision": decision.verdict,
        "reason": "; ".join(reasons),
        "reasons": reasons,
        "evaluation": evaluation,
    }
    run_id = run["id"]
    if not decision.promote:
        held.retrying(
            lambda: store.lifecycle.keep(run, token, fields),
            f"recording run {run_id}",
        )
        log.info("run %s: challenger %s kept out: %s", run_id, challenger_id, fields["reason"])
        return "kept"
    outcome, detail = store.lifecycle.promote(run, token, champion_id, promoter(run), fields)
    if outcome == "promoted":
        log.info("run %s: challenger %s promoted: %s", run_id, challenger_id, fields["reason"])
        return "promoted"
    if outcome == "lost":
        return "cancelled"  # another evaluation took the run over; it records the outcome
    why = {
        "moved": f"the deployment changed during the run (now {detail or 'nothing'}); the "
        "challenger was scored against the previous model",
        "schedule_gone": "the schedule was deleted during the run",
        "not_completed": f"the challenger is {detail} now",
    }[outcome]
    fields.update(
        decision="kept",
        reason=f"not promoted: {why}; the rule held: {fields['reason']}",
        reasons=[f"not promoted: {why}", *reasons],
    )
    held.retrying(
        lambda: store.lifecycle.keep(run, token, fields),
        f"recording run {run_id}",
    )
    return "kept"


def champion_data_scores(
    app: Flask,
    champion: dict[str, Any],
    models: dict[str, TrainedModel],
    champion_id: str,
    challenger_id: str,
    run: dict[str, Any],
) -> dict[str, Any] | None:
    """Both models on the holdout of the data the deployed model was made for, when the
    schedule reads another dataset (a challenger of generated flights must not replace a model
    of real ones on the strength of a generated holdout): its own split of its own dataset, the
    flights both models can read. None when the schedule reads the champion's own dataset."""
    if champion.get("dataset") == run["dataset"]:
        return None
    shown = redact(str(champion.get("dataset", "")))
    try:
        flights = fetch_dataset(app.config, champion["dataset"])
        settings = TrainConfig.from_dict(champion["settings"])
        _, holdout = split_positions(
            flights.frame, settings.split, settings.test_size, settings.seed, settings.time_cutoff
        )
        records = flights.frame.iloc[holdout].to_dict("records")
        readable = holdout[readable_by_all(models.values(), records)]
        trained_on = {
            champion_id: fitted_positions(
                champion["settings"], (champion.get("data") or {}).get("sha256"), flights
            ),
            challenger_id: None,
        }
        compared = compare(models, flights, readable, trained_on)
    except (FlightDelayError, EmptyHoldout) as exc:
        return {"used": False, "dataset": shown, "reason": str(exc)[:500]}
    by_id: dict[str, dict[str, Any]] = {}
    for entry in compared.pop("models"):
        entry.pop("curves", None)  # a run keeps the curves of its own holdout only
        by_id[entry["model_id"]] = entry
    return {
        "used": True,
        "dataset": shown,
        **compared,
        "held_out_flights": len(holdout),
        "champion": by_id[champion_id],
        "challenger": by_id[challenger_id],
    }


def outcome_scores(
    app: Flask,
    models: dict[str, TrainedModel],
    champion_id: str | None,
    challenger_id: str,
    min_flights: int,
) -> dict[str, Any]:
    """Both models on the prediction log's flights that have an outcome (the newest
    MAX_OUTCOME_FLIGHTS, whichever model answered them), re-predicted from the flights as
    sent; ``used`` says whether ``min_flights`` of both classes are there, ``reason`` why not."""
    if not app.config["PREDICTION_LOG"]:
        return {"used": False, "flights": 0, "reason": "the prediction log is off"}
    try:
        logged = app.extensions["prediction_log"].store.flights_with_outcomes(MAX_OUTCOME_FLIGHTS)
    except SQLAlchemyError as exc:
        return {
            "used": False,
            "flights": 0,
            "reason": f"the prediction log could not be read ({type(exc).__name__})",
        }
    records = [flight for flight, _ in logged]
    labels = np.asarray([minutes > DELAY_THRESHOLD_MINUTES for _, minutes in logged], dtype=int)
    usable = readable_by_all(models.values(), records)
    records = [records[i] for i in usable]
    labels = labels[usable]
    summary: dict[str, Any] = {"flights": len(records), "logged_with_outcomes": len(logged)}
    if len(records) < min_flights or len(np.unique(labels)) < 2:
        return {
            **summary,
            "used": False,
            "reason": f"fewer than {min_flights} logged flights with outcomes of both classes "
            "that both models can read (the rule's min_outcome_flights)",
        }
    frame = pd.DataFrame.from_records(records)
    result: dict[str, Any] = {**summary, "used": True, "delay_rate": float(labels.mean())}
    for role, model_id in (("challenger", challenger_id), ("champion", champion_id)):
        if model_id is None:
            result[role] = None
            continue
        scored = scores(models[model_id], frame, labels)
        scored.pop("curves")
        result[role] = {"model_id": model_id, **scored}
    return result


def readable_by_all(models: Any, records: list[dict[str, Any]]) -> np.ndarray:
    """Positions of the records every model accepts (a flight logged for a model with fewer
    inputs may lack a field another one needs)."""
    keep = np.ones(len(records), dtype=bool)
    for model in models:
        for _ in range(3):
            inside = np.flatnonzero(keep)
            if not len(inside):
                break
            try:
                model.features.check_flights([records[i] for i in inside])
                break
            except InvalidFlights as exc:
                keep[inside[[issue.index for issue in exc.issues]]] = False
    return np.flatnonzero(keep)
