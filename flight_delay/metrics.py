"""Prometheus metrics of the API and the worker (issue 11).

gunicorn runs several API processes and Celery runs jobs in pool processes, so both use
prometheus_client's multiprocess mode: each process writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` and the process that answers a scrape sums them. The directory
must be named before prometheus_client is first imported in a process and before the
processes that record are forked: gunicorn's config (flight_delay.gunicorn_conf) and the
worker's ``worker_init`` signal (worker/celery_app.py) call ``prepare_multiprocess_dir``, and
this module imports prometheus_client only inside functions. Without the variable (a test's
Flask client, the CLI) the metrics live in the process that records them.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request

ENVIRONMENT = "PROMETHEUS_MULTIPROC_DIR"
#: request latency buckets, in seconds: single flights take ~1 ms, 10,000 flights ~90 ms
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
JOB_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
#: request methods counted under their own name; any other method a caller invents is counted as
#: "other": a label value never comes from the caller, or each new name is a new time series
#: kept in every process's file and in every scrape (10,000 invented names made /metrics 20 MB)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"


def prepare_multiprocess_dir(base: str | None, role: str) -> str:
    """Make a fresh ``<base>/<role>-<pid>`` (or a new temporary folder) the multiprocess
    directory of this process and the ones it forks. One folder per gunicorn master or worker
    main process: two of them on one machine must not sum, or delete, each other's files.
    Folders of processes that are gone are removed (their counts would be summed forever)."""
    if base:
        root = Path(base)
        root.mkdir(parents=True, exist_ok=True)
        for earlier in root.glob(f"{role}-*"):
            pid = earlier.name.rsplit("-", 1)[-1]
            if not pid.isdigit() or not _alive(int(pid)):
                shutil.rmtree(earlier, ignore_errors=True)
        folder = root / f"{role}-{os.getpid()}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
    else:
        folder = Path(tempfile.mkdtemp(prefix=f"flight-delay-metrics-{role}-"))
    os.environ[ENVIRONMENT] = str(folder)
    values = sys.modules.get("prometheus_client.values")
    if values is not None:
        # prometheus_client chooses where values live when it is imported, and it can be in
        # already: Flower, installed beside Celery, is a plugin of the celery command and
        # imports it before the worker runs any of our code (seen: every job metric stayed in
        # the pool process, none reached the folder). Metrics made from here on use the folder.
        values.ValueClass = values.get_value_class()  # type: ignore[attr-defined]
    return str(folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_gone(pid: int) -> None:
    """A recording process exited: its live gauges stop counting (multiprocess mode)."""
    if os.environ.get(ENVIRONMENT):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def serve_worker_metrics(config: Any) -> str | None:
    """In the Celery worker's main process, before its pool forks: a multiprocess folder for
    the job metrics (METRICS_DIR/worker, else a temporary one) and, when WORKER_METRICS_BIND
    (host:port) is set, an HTTP server of them. Returns the address served, if any."""
    prepare_multiprocess_dir(str(config.get("METRICS_DIR") or "") or None, "worker")
    bind = str(config.get("WORKER_METRICS_BIND") or "")
    if not bind:
        return None
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    host, _, port = bind.rpartition(":")
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    job_metrics()  # the families exist (at zero) before the first job
    try:
        start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
    except OSError as exc:  # the worker works without its metrics; say why they are missing
        logging.getLogger(__name__).error(
            "worker metrics not served on %s: %s (FLIGHT_DELAY_WORKER_METRICS_BIND)", bind, exc
        )
        return None
    return bind


def worker_process_gone(pid: int | None = None) -> None:
    """A pool process ended (Celery names it: the signal may be sent from the parent)."""
    process_gone(pid if pid is not None else os.getpid())


@dataclass(frozen=True)
class ApiMetrics:
    requests: Any
    latency: Any
    predicted_flights: Any
    warnings: Any
    log_buffered: Any


#: metrics are made once per process, under this lock: the log buffer's thread and a request can
#: ask first at the same moment, and two objects for one metric lose each other's counts (seen)
_CREATING = threading.Lock()


def api_metrics() -> ApiMetrics:
    """This process's API metrics (created once: prometheus_client registers them globally)."""
    with _CREATING:
        return _api_metrics()


@cache
def _api_metrics() -> ApiMetrics:
    from prometheus_client import Counter, Gauge, Histogram

    return ApiMetrics(
        requests=Counter(
            "flight_delay_http_requests_total",
            "HTTP requests answered, by route, method and status",
            ["endpoint", "method", "status"],
        ),
        latency=Histogram(
            "flight_delay_http_request_duration_seconds",
            "time from the request to the response in the API process, by route and method",
            ["endpoint", "method"],
            buckets=LATENCY_BUCKETS,
        ),
        predicted_flights=Counter(
            "flight_delay_predicted_flights_total", "flights predicted, by model", ["model_id"]
        ),
        warnings=Counter(
            "flight_delay_prediction_warnings_total",
            "warnings about predicted flights (unseen values), by model and field",
            ["model_id", "field"],
        ),
        log_buffered=Gauge(
            "flight_delay_prediction_log_buffered",
            "prediction-log entries queued in API processes, not yet sent to Redis",
            multiprocess_mode="livesum",
        ),
    )


@dataclass(frozen=True)
class JobMetrics:
    duration: Any
    finished: Any


def job_metrics() -> JobMetrics:
    with _CREATING:
        return _job_metrics()


@cache
def _job_metrics() -> JobMetrics:
    from prometheus_client import Counter, Histogram

    return JobMetrics(
        duration=Histogram(
            "flight_delay_training_job_seconds",
            "training job attempts, start to end, by outcome",
            ["outcome"],
            buckets=JOB_BUCKETS,
        ),
        finished=Counter(
            "flight_delay_training_jobs_total",
            "training job attempts ended, by outcome (completed, failed, cancelled, interrupted, error)",
            ["outcome"],
        ),
    )


def record_job(outcome: str, seconds: float) -> None:
    metrics = job_metrics()
    metrics.duration.labels(outcome).observe(seconds)
    metrics.finished.labels(outcome).inc()


def record_prediction(model_id: str, flights: int, warnings: list[dict[str, Any]]) -> None:
    metrics = api_metrics()
    metrics.predicted_flights.labels(model_id).inc(flights)
    for warning in warnings:
        metrics.warnings.labels(model_id, str(warning.get("field", ""))).inc()


def init_app(app: Flask) -> None:
    """Count and time every request of ``app`` by its route (the rule, not the path: bounded)."""

    @app.before_request
    def start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def observe(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is not None:
            rule, method, status = request_labels(response.status_code)
            metrics = api_metrics()
            metrics.requests.labels(rule, method, status).inc()
            metrics.latency.labels(rule, method).observe(time.perf_counter() - started)
        return response


def request_labels(status_code: int) -> tuple[str, str, str]:
    """(route, method, status) of the current request, each from a closed set: the route is
    the matched rule (a path that matches none is "(no route)"), the method one of
    KNOWN_METHODS or "other", the status a code from 100 to 599 or "other"."""
    rule = request.url_rule.rule if request.url_rule is not None else "(no route)"
    method = request.method if request.method in KNOWN_METHODS else OTHER
    status = str(status_code) if 100 <= status_code <= 599 else OTHER
    return rule, method, status


def exposition(extra: list[Any]) -> tuple[bytes, str]:
    """The text format of every process's metrics (or this one's), plus ``extra`` collectors."""
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
    )
    from prometheus_client.multiprocess import MultiProcessCollector

    api_metrics()  # the families exist (at zero) before the first request counts
    if os.environ.get(ENVIRONMENT):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_Forward(REGISTRY))
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Forward:
    """This process's registry inside a per-scrape one (so per-scrape collectors do not stay)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> Any:
        return self.registry.collect()


class LogStreamCollector:
    """Depth of the prediction log's Redis stream (waiting for the writer) and of its dead
    letters, read at scrape time."""

    def __init__(self, client: Any, stream: str) -> None:
        self.client, self.stream = client, stream

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        waiting = GaugeMetricFamily(
            "flight_delay_prediction_log_stream_messages",
            "prediction-log messages in Redis waiting for the log writer (-1: Redis unreachable)",
        )
        dead = GaugeMetricFamily(
            "flight_delay_prediction_log_dead_letters",
            "prediction-log entries set aside as unwritable (-1: Redis unreachable)",
        )
        try:
            pipeline = self.client.pipeline(transaction=False)
            pipeline.xlen(self.stream)
            pipeline.xlen(f"{self.stream}:dead")
            stream_length, dead_length = pipeline.execute()
        except Exception:  # a scrape never fails for Redis
            stream_length = dead_length = -1
        waiting.add_metric([], stream_length)
        dead.add_metric([], dead_length)
        yield waiting
        yield dead
