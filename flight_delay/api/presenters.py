"""How records are shown: models, schedules and runs as the API answers them and the dashboard
renders them (one module both use), and the request's handles on the stores."""

from __future__ import annotations

from typing import Any

from flask import current_app

from flight_delay.data.download import redact
from flight_delay.registry import ModelRegistry, Status
from flight_delay.scheduling.runs import schedule_store, timing_of
from flight_delay.scheduling.store import ScheduleStore
from flight_delay.scheduling.timing import iso


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
    shown["dataset"] = redact(record["dataset"])
    shown["deployed"] = record["id"] == deployed_id
    shown["headline"] = headline(record)
    if record["status"] in Status.UNFINISHED:
        shown["progress"] = {"stage": record.get("stage", ""), "percent": record.get("percent", 0)}
    for name in ("started_at", "finished_at", "error"):
        shown[name] = record.get(name) or None
    # every field the views and schemas name is there, null until the job sets it
    shown["threshold"] = float(record["threshold"]) if record.get("threshold") else None
    return shown


def schedule_store_of_request() -> ScheduleStore:
    return schedule_store(current_app)


def present_schedule(schedule: dict[str, Any]) -> dict[str, Any]:
    """A schedule as the API and the dashboard show it."""
    shown = dict(schedule)
    shown["dataset"] = redact(schedule["dataset"])
    shown["model"] = schedule.get("settings") or {}
    shown["timing"] = timing_of(schedule).describe()
    next_run = schedule.get("next_run_at")
    shown["next_run_at"] = iso(int(next_run)) if next_run not in (None, "") else None
    for name in ("every_seconds", "cron", "active_run", "last_run_id", "paused_reason"):
        shown[name] = schedule.get(name) or None
    return shown


def present_run(run: dict[str, Any], curves: bool = True) -> dict[str, Any]:
    """A run as the API shows it; lists leave the curves out (tens of kB per run)."""
    shown = dict(run)
    shown["dataset"] = redact(run.get("dataset", ""))
    for name in ("challenger_id", "champion_id", "decision", "reason", "error", "finished_at",
                 "challenger_deleted_at"):  # fmt: skip
        shown[name] = run.get(name) or None
    shown.setdefault("reasons", [])
    shown.setdefault("evaluation", None)
    shown["deployment_version"] = run.get("deployment_version") or None
    if not curves and shown["evaluation"]:
        holdout = dict(shown["evaluation"].get("holdout") or {})
        for role in ("champion", "challenger"):
            if holdout.get(role):
                holdout[role] = {k: v for k, v in holdout[role].items() if k != "curves"}
        shown["evaluation"] = {**shown["evaluation"], "holdout": holdout}
    return shown
