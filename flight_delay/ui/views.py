"""The dashboard's pages. Each view checks the read rule, reads what the API reads, and renders."""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import datetime
from http import HTTPStatus
from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request
from flask.typing import ResponseReturnValue
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from flight_delay.api.errors import ComparisonNotFound, handle_domain_error, handle_redis_error
from flight_delay.api.presenters import present, present_run, present_schedule, registry
from flight_delay.api.presenters import schedule_store_of_request as schedule_store
from flight_delay.auth import Forbidden, Unauthorized, require_configured_scope
from flight_delay.errors import FlightDelayError
from flight_delay.features import FEATURE_SETS
from flight_delay.ml.families import FAMILIES
from flight_delay.registry import Status
from flight_delay.scheduling.lifecycle import RunStatus
from flight_delay.tasks import performance as performance_jobs
from flight_delay.tasks.analysis import TooManyReports
from flight_delay.tasks.comparison import read_comparison
from flight_delay.tasks.drift import lookup_or_queue
from flight_delay.ui.charts import Series, bar_chart, line_chart

blp = Blueprint(
    "ui",
    __name__,
    url_prefix="/ui",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

#: what the dashboard's responses may load and run: its own files only, no inline script
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
#: models a comparison takes (POST /comparisons' limit)
MAX_COMPARED = 10
#: seconds between reloads of a page that waits for a job
REFRESH_SECONDS = 3


def app_object() -> Flask:
    return current_app._get_current_object()  # type: ignore[attr-defined]


@blp.before_request
def check_read_scope() -> None:
    # static files are the same for everyone, and the key box's no-script answer reads
    # nothing; every page follows the API's read rule
    if request.endpoint not in ("ui.static", "ui.key_without_script"):
        require_configured_scope("READ_SCOPE")


def secure(response: Response) -> Response:
    """The dashboard's headers, on every answer under /ui: pages, static files, and the
    redirects and errors of paths that match no page (set by the app for the whole /ui tree,
    flight_delay.app)."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    if request.endpoint != "ui.static":
        response.headers["Cache-Control"] = "no-store"
    return response


def error_page(error: HTTPException) -> ResponseReturnValue | None:
    """The HTML page of an HTTP error (404, 405, ...) under /ui, None elsewhere: a path under
    /ui that matches no page is answered as a page, not as the API's JSON."""
    if not (request.path == "/ui" or request.path.startswith("/ui/")):
        return None
    return http_error(error)


# the API's own mappings (status, scrubbed message), shown as a page instead of JSON
@blp.errorhandler(FlightDelayError)
def domain_error(exc: FlightDelayError) -> ResponseReturnValue:
    body, status, headers = handle_domain_error(exc)
    needs_key = isinstance(exc, Unauthorized | Forbidden)
    page = render_template(
        "ui/error.html", status=HTTPStatus(status), message=body["message"], needs_key=needs_key
    )
    return page, status, headers


@blp.errorhandler(redis.RedisError)
def redis_error(exc: redis.RedisError) -> ResponseReturnValue:
    body, status = handle_redis_error(exc)
    return render_template(
        "ui/error.html", status=HTTPStatus(status), message=body["message"]
    ), status


@blp.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> ResponseReturnValue:
    status = HTTPStatus(exc.code or 500)
    return render_template("ui/error.html", status=status, message=exc.description), status


@blp.app_template_filter("when")
def when(value: str | None) -> str:
    """An ISO time as "2026-12-01 13:18 UTC" (or the text as it is)."""
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.strftime("%Y-%m-%d %H:%M %Z").replace("+00:00", "").strip()


@blp.app_template_filter("figure")
def figure(value: Any, digits: int = 4) -> str:
    if value is None or isinstance(value, bool):
        return "—"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


@blp.app_template_filter("setting")
def setting(value: Any) -> str:
    """A setting as the API writes it (JSON: null, true, {"num_leaves": 31}), never Python's
    ``None`` or ``True``; text as it is."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


# -- pages --------------------------------------------------------------------------------------
@blp.get("/")
def index() -> ResponseReturnValue:
    return redirect("/ui/models")


@blp.post("/key")
def key_without_script() -> ResponseReturnValue:
    """The key box submitted without JavaScript: the key is kept by the page's script in the
    tab's sessionStorage, so without it nothing can be kept. Nothing is stored; the key came in
    a POST body, never in a URL."""
    message = (
        "Using an API key in the dashboard needs JavaScript: the key is kept only in this tab "
        "(sessionStorage) and sent as the X-api-key header of the actions you take. Nothing was "
        "kept. Without JavaScript, call the REST API with the X-api-key header (see /docs)."
    )
    return render_template(
        "ui/error.html", status=HTTPStatus.BAD_REQUEST, message=message
    ), HTTPStatus.BAD_REQUEST


@blp.get("/models")
def models() -> ResponseReturnValue:
    filters = {
        name: request.args.get(name, "")
        for name in ("status", "model_type", "features", "deployed")
    }
    deployed_id = registry().deployed_id()
    shown = []
    for record in registry().models(filters["status"] or None):
        if filters["model_type"] and record.get("model_type") != filters["model_type"]:
            continue
        if filters["features"] and record.get("features") != filters["features"]:
            continue
        if filters["deployed"] == "yes" and record["id"] != deployed_id:
            continue
        shown.append(present(record, deployed_id))
    return render_template(
        "ui/models.html",
        models=shown,
        filters=filters,
        statuses=Status.ALL,
        families=sorted(FAMILIES),
        feature_sets=sorted(FEATURE_SETS),
        deployed_id=deployed_id,
    )


@blp.get("/models/<uuid:model_id>")
def model(model_id: Any) -> ResponseReturnValue:
    record = registry().get(str(model_id))
    shown = present(record, registry().deployed_id())
    holdout = (record.get("metrics") or {}).get("holdout") or {}
    charts = []
    if holdout:
        recorded = holdout.get("curves")
        if recorded:
            charts.append(roc_chart([("holdout", holdout["roc_auc"], recorded)]))
            charts.append(pr_chart([("holdout", holdout["pr_auc"], recorded)]))
        charts.append(reliability_chart([("holdout", holdout.get("reliability") or [])]))
    importances = record.get("importances") or {}
    if importances:
        top = sorted(importances.items(), key=lambda item: -item[1])[:15]
        charts.append(bar_chart("Feature importance (share of split gain)", top, "gain share"))
    live = _live_performance(str(model_id)) if record["status"] == Status.COMPLETED else None
    waiting = record["status"] in Status.UNFINISHED or bool(live and live.get("pending"))
    return render_template(
        "ui/model.html",
        model=shown,
        holdout=holdout,
        charts=charts,
        curves_recorded=bool(holdout.get("curves")),
        live=live,
        refresh=REFRESH_SECONDS if waiting else None,
    )


def _live_performance(model_id: str) -> dict[str, Any]:
    """The model's live performance from logged outcomes (computed by a worker, as the API's),
    or why there is none yet."""
    if not current_app.config["PREDICTION_LOG"]:
        return {"note": "the prediction log is off (FLIGHT_DELAY_PREDICTION_LOG)"}
    try:
        found = performance_jobs.lookup_or_queue(app_object(), model_id, None, None)
    except TooManyReports as exc:
        return {"note": f"not computed now: {exc.message}"}
    if found["status"] == "failed":
        return {"note": f"not computed: {found['error']}"}
    if found["status"] != "completed":
        return {"note": "being computed by a worker; this page reloads", "pending": True}
    report: dict[str, Any] = found["report"]
    if not report["flights"]:
        return {"note": "no logged prediction of this model has an outcome yet (POST /outcomes)"}
    return report


@blp.get("/models/<uuid:model_id>/drift")
def drift(model_id: Any) -> ResponseReturnValue:
    registry().get(str(model_id))  # 404 first
    found = lookup_or_queue(app_object(), str(model_id), None, None)
    chart = None
    if found["status"] == "completed" and found.get("png"):
        chart = "data:image/png;base64," + base64.b64encode(found["png"]).decode()
    return render_template(
        "ui/drift.html",
        model_id=str(model_id),
        found=found,
        chart=chart,
        refresh=REFRESH_SECONDS if found["status"] == "pending" else None,
    )


@blp.get("/compare")
def compare() -> ResponseReturnValue:
    ids = list(dict.fromkeys(request.args.getlist("model")))[:MAX_COMPARED]
    records = []
    for model_id in ids:
        with contextlib.suppress(FlightDelayError):
            records.append(registry().get(model_id))
    completed = [r for r in records if r["status"] == Status.COMPLETED]
    deployed_id = registry().deployed_id()
    entries: list[dict[str, Any]] = [
        {
            "record": present(r, deployed_id),
            "holdout": (r.get("metrics") or {}).get("holdout") or {},
            "label": _label(r),
        }
        for r in completed
    ]
    charts = []
    if entries:
        drawn = [e for e in entries if e["holdout"].get("curves")]
        charts = [
            roc_chart(
                [(e["label"], e["holdout"]["roc_auc"], e["holdout"]["curves"]) for e in drawn]
            ),
            pr_chart([(e["label"], e["holdout"]["pr_auc"], e["holdout"]["curves"]) for e in drawn]),
            reliability_chart(
                [(e["label"], e["holdout"].get("reliability") or []) for e in entries]
            ),
        ]
    return render_template(
        "ui/compare.html",
        entries=entries,
        charts=charts,
        missing=[m for m in ids if m not in {r["id"] for r in completed}],
        candidates=[present(r, deployed_id) for r in registry().models(Status.COMPLETED)[:50]],
        chosen=set(ids),
        dataset=completed[0]["dataset"] if completed else "",
    )


@blp.get("/comparisons/<uuid:comparison_id>")
def comparison(comparison_id: Any) -> ResponseReturnValue:
    found = read_comparison(app_object(), str(comparison_id))
    if found is None:
        raise ComparisonNotFound(str(comparison_id))
    charts = []
    if found["status"] == "completed":
        models = found["models"]
        charts = [
            roc_chart([(_label(m), m["metrics"]["roc_auc"], m["curves"]) for m in models]),
            pr_chart([(_label(m), m["metrics"]["pr_auc"], m["curves"]) for m in models]),
            reliability_chart([(_label(m), m["curves"]["reliability"]) for m in models]),
        ]
    return render_template(
        "ui/comparison.html",
        comparison=found,
        charts=charts,
        refresh=REFRESH_SECONDS if found["status"] in ("pending", "running") else None,
    )


@blp.get("/deployment")
def deployment() -> ResponseReturnValue:
    model_id, version = registry().deployment()
    history = registry().deployment_history()[:100]
    current = None
    if model_id:
        with contextlib.suppress(FlightDelayError):
            current = present(registry().get(model_id), model_id)
    completed = [present(r, model_id) for r in registry().models(Status.COMPLETED)[:100]]
    return render_template(
        "ui/deployment.html",
        model_id=model_id,
        version=version,
        current=current,
        history=history,
        completed=completed,
    )


@blp.get("/schedules")
def schedules() -> ResponseReturnValue:
    store = schedule_store()
    shown = []
    for schedule in store.schedules():
        last = None
        if schedule.get("last_run_id"):
            with contextlib.suppress(FlightDelayError):
                last = store.get_run(schedule["last_run_id"])
        shown.append({**present_schedule(schedule), "last_run": last})
    return render_template("ui/schedules.html", schedules=shown)


@blp.get("/schedules/<uuid:schedule_id>")
def schedule(schedule_id: Any) -> ResponseReturnValue:
    store = schedule_store()
    found = present_schedule(store.get(str(schedule_id)))
    recorded = store.runs(str(schedule_id), 50)
    runs = [present_run(run, curves=False) for run in recorded]
    charts = []
    # the newest decided run, as recorded: its evaluation still holds the curves
    latest = next((r for r in recorded if r["status"] == RunStatus.COMPLETED), None)
    if latest:
        holdout = latest["evaluation"]["holdout"]
        lines = [
            (
                f"{role}: {_label(holdout[role])}",
                holdout[role]["metrics"]["roc_auc"],
                holdout[role]["curves"],
            )
            for role in ("champion", "challenger")
            if holdout.get(role) and holdout[role].get("curves")
        ]
        charts = [roc_chart(lines, f"ROC of run {latest['number']} on its holdout")]
    unfinished = any(r["status"] in RunStatus.UNFINISHED for r in runs)
    return render_template(
        "ui/schedule.html",
        schedule=found,
        runs=runs,
        charts=charts,
        latest=latest,
        refresh=REFRESH_SECONDS if unfinished else None,
    )


# -- charts from recorded curves ------------------------------------------------------------------
#: one model on a chart: its legend name, its headline figure (ROC AUC or PR AUC) and its curves
Curve = tuple[str, float, dict[str, Any]]


def roc_chart(lines: list[Curve], title: str = "ROC curve (holdout)") -> Markup:
    return line_chart(
        title,
        [
            Series(name, [(p["fpr"], p["tpr"]) for p in curves["roc"]], f"AUC {auc:.3f}")
            for name, auc, curves in lines
        ],
        "false positive rate",
        "true positive rate (recall)",
        diagonal=True,
    )


def pr_chart(lines: list[Curve]) -> Markup:
    return line_chart(
        "Precision-recall (holdout)",
        [
            Series(
                name,
                [(p["recall"], p["precision"]) for p in curves["precision_recall"]],
                f"AP {average_precision:.3f}",
            )
            for name, average_precision, curves in lines
        ],
        "recall",
        "precision",
    )


def reliability_chart(tables: list[tuple[str, list[dict[str, Any]]]]) -> Markup:
    return line_chart(
        "Reliability (holdout, 10 bins)",
        [
            Series(name, [(b["mean_predicted"], b["delay_rate"]) for b in table])
            for name, table in tables
        ],
        "mean predicted probability",
        "observed delay rate",
        diagonal=True,
        markers=True,
    )


def _label(entry: dict[str, Any]) -> str:
    """A model as a chart legend names it: short id, family and feature set."""
    model_id = str(entry.get("model_id") or entry.get("id") or "")
    family = entry.get("model_type") or ""
    features = entry.get("features") or ""
    return f"{model_id[:8]} {family}/{features}".strip()
