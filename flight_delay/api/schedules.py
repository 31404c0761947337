"""/schedules: retraining schedules with champion/challenger promotion, and their runs."""

from __future__ import annotations

import time
from typing import Any

from flask import current_app, url_for
from flask.views import MethodView

from flight_delay.api.base import Blueprint
from flight_delay.api.presenters import present_run, present_schedule
from flight_delay.api.presenters import schedule_store_of_request as store
from flight_delay.api.schemas import (
    EXAMPLE_SCHEDULE,
    ScheduleCreateSchema,
    SchedulePatchSchema,
    ScheduleRunQuerySchema,
    ScheduleRunSchema,
    ScheduleSchema,
)
from flight_delay.api.security import requires_configured_scope, requires_scope
from flight_delay.auth import caller_name
from flight_delay.scheduling.runs import start_challenger, timing_of
from flight_delay.scheduling.store import KEEP_DUE, TooManySchedules
from flight_delay.scheduling.timing import Timing
from flight_delay.scheduling.validation import checked_fields

blp = Blueprint(
    "schedules",
    __name__,
    url_prefix="/schedules",
    description="Retrain on a schedule; promote the challenger when it beats the deployed model.",
)


@blp.route("")
class Schedules(MethodView):
    @requires_configured_scope(blp, "READ_SCOPE")
    @blp.response(200, ScheduleSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """List schedules, newest first"""
        return [present_schedule(schedule) for schedule in store().schedules()]

    @requires_scope(blp, "train", "deploy")
    @blp.arguments(ScheduleCreateSchema, example=EXAMPLE_SCHEDULE)
    @blp.response(
        201,
        ScheduleSchema,
        headers={"Location": {"description": "URL of the schedule", "schema": {"type": "string"}}},
    )
    @blp.alt_response(
        400, description="an invalid dataset, timing, model setting or rule (the field says which)"
    )
    @blp.alt_response(409, description="FLIGHT_DELAY_SCHEDULE_MAX schedules exist already")
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Create a retraining schedule

        Needs a key with the `train` and `deploy` scopes: its runs train models and may deploy
        them. Celery beat starts a run at every due time (`every_seconds`, or `cron` in
        `timezone`): it trains a challenger on the dataset as it is then (split time, no refit:
        the most recent `test_size` of the flights is a holdout it never saw), scores it and the
        deployed model on that holdout (and on the prediction log's flights with outcomes, when
        the rule's `min_outcome_flights` of both classes exist) and deploys the challenger only
        when `rule` holds on every one. The first run is one interval (or the next cron time) from now.
        """
        if store().count() >= int(current_app.config["SCHEDULE_MAX"]):
            raise TooManySchedules(int(current_app.config["SCHEDULE_MAX"]))
        fields = checked_fields(body, current_app.config)
        fields["created_by"] = caller_name()
        fields.setdefault("paused_reason", "")
        timing = Timing(fields["every_seconds"] or None, fields["cron"] or None, fields["timezone"])
        due = None if fields["paused"] else timing.first_run(time.time())
        schedule = store().create(fields, due)
        location = url_for("schedules.Schedule", schedule_id=schedule["id"])
        return present_schedule(schedule), 201, {"Location": location}


@blp.route("/<uuid:schedule_id>")
class Schedule(MethodView):
    @requires_configured_scope(blp, "READ_SCOPE")
    @blp.response(200, ScheduleSchema)
    @blp.alt_response(404, description="no schedule with this id")
    def get(self, schedule_id: Any) -> dict[str, Any]:
        """Show a schedule"""
        return present_schedule(store().get(str(schedule_id)))

    @requires_scope(blp, "train", "deploy")
    @blp.arguments(SchedulePatchSchema, example={"model": {"model_type": "lightgbm"}})
    @blp.response(200, ScheduleSchema)
    @blp.alt_response(400, description="an invalid field (the field says which)")
    @blp.alt_response(404, description="no schedule with this id")
    def patch(self, body: dict[str, Any], schedule_id: Any) -> dict[str, Any]:
        """Change a schedule

        Needs the `train` and `deploy` scopes. Only the given fields change; `model` and `rule`
        are replaced whole. A new timing, or resuming (`paused: false`), sets the next run one
        interval (or the next cron time) from now; a run under way finishes with the settings
        it started with.
        """
        current = store().get(str(schedule_id))
        fields = checked_fields(body, current_app.config, current)
        merged = {**current, **fields}
        timing_changed = bool({"every_seconds", "cron", "timezone"} & set(body))
        resumed = current.get("paused") and "paused" in body and not body["paused"]
        due: int | str | None = KEEP_DUE  # never the value read above: a beat may move it
        if merged.get("paused"):
            due = None
        elif timing_changed or resumed:
            due = timing_of(merged).first_run(time.time())
        store().update(str(schedule_id), fields, due)
        return present_schedule(store().get(str(schedule_id)))

    @requires_scope(blp, "train", "deploy")
    @blp.response(204)
    @blp.alt_response(404, description="no schedule with this id")
    def delete(self, schedule_id: Any) -> None:
        """Delete a schedule

        Needs the `train` and `deploy` scopes. Its finished runs go with it; a run under way
        completes without promoting. The models its runs trained stay (delete them one by one).
        """
        store().delete(str(schedule_id))


@blp.route("/<uuid:schedule_id>/runs")
class Runs(MethodView):
    @requires_configured_scope(blp, "READ_SCOPE")
    @blp.arguments(ScheduleRunQuerySchema, location="query")
    @blp.response(200, ScheduleRunSchema(many=True))
    @blp.alt_response(404, description="no schedule with this id")
    def get(self, query: dict[str, Any], schedule_id: Any) -> list[dict[str, Any]]:
        """List a schedule's runs, newest first

        Each run: both models' metrics on the holdout (and on logged outcomes), the decision
        and why. Curves are left out here: `GET /schedules/{id}/runs/{run_id}` has them. Page
        with `before` = the last run's number.
        """
        store().get(str(schedule_id))  # 404 for an unknown schedule
        runs = store().runs(str(schedule_id), query["limit"], query.get("before"))
        return [present_run(run, curves=False) for run in runs]

    @requires_scope(blp, "train", "deploy")
    @blp.response(
        202,
        ScheduleRunSchema,
        headers={"Location": {"description": "URL of the run", "schema": {"type": "string"}}},
    )
    @blp.alt_response(404, description="no schedule with this id")
    @blp.alt_response(409, description="the schedule has a run under way")
    def post(self, schedule_id: Any) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Run a schedule now

        Needs the `train` and `deploy` scopes. Starts a run at once (its due times stay as
        they are) and queues its challenger's training; 409 while a run is under way.
        """
        run = store().start_now(str(schedule_id), caller_name())
        start_challenger(current_app._get_current_object(), run)  # type: ignore[attr-defined]
        run = store().get_run(run["id"])
        location = url_for("schedules.Run", schedule_id=run["schedule_id"], run_id=run["id"])
        return present_run(run), 202, {"Location": location}


@blp.route("/<uuid:schedule_id>/runs/<uuid:run_id>")
class Run(MethodView):
    @requires_configured_scope(blp, "READ_SCOPE")
    @blp.response(200, ScheduleRunSchema)
    @blp.alt_response(404, description="no such run of this schedule")
    def get(self, schedule_id: Any, run_id: Any) -> dict[str, Any]:
        """Show a run"""
        return present_run(store().get_run(str(run_id), str(schedule_id)))
