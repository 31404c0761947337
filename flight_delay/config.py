"""Configuration objects and ``FLIGHT_DELAY_*`` environment overrides.

Every setting of :class:`DefaultConfig` can be overridden by the environment variable
``FLIGHT_DELAY_<NAME>`` (``FLIGHT_DELAY_MODEL_DIR=/data/models``), parsed to the type of its default.
Nothing here is read at import time: :func:`load_config` is called by the application factory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

ENV_PREFIX = "FLIGHT_DELAY_"


class DefaultConfig:
    """Production defaults. Paths are relative to the working directory unless absolute."""

    #: Redis for the broker, the model records and the deployment pointer
    REDIS_URL = "redis://127.0.0.1:6379/0"
    #: Redis behind Sentinel: host:port,host:port,... of the Sentinels (empty: REDIS_URL is the
    #: server). With Sentinels, REDIS_URL gives only the database number, user and password
    REDIS_SENTINELS = ""
    #: the name the Sentinels monitor the master under
    REDIS_MASTER = "flight-delay"
    #: the Sentinels' own password (requirepass in sentinel.conf), if they have one
    REDIS_SENTINEL_PASSWORD = ""
    #: bounds on every Redis command: connecting, and waiting for an answer. A hung master
    #: (SIGSTOP, a dead link) fails a command after about 3 x the socket timeout (two retries,
    #: each on a new connection that asks the Sentinels for the master again)
    REDIS_SOCKET_TIMEOUT_SECONDS = 5.0
    REDIS_CONNECT_TIMEOUT_SECONDS = 2.0
    #: a write (a model record, a deploy, a job's outcome) is acknowledged only once this many
    #: replicas have it (WAIT), so a failover cannot lose it; -1: one behind Sentinel, none with
    #: a single server. A master with no replica at all accepts writes alone (and logs it)
    REDIS_WAIT_REPLICAS = -1
    #: how long a write waits for the replicas before it is refused (503)
    REDIS_WAIT_TIMEOUT_MS = 1000
    #: most departures the live feed keeps (POST /departures); past it the oldest go first
    DEPARTURES_MAX_EVENTS = 20_000
    #: the airport's clock: a live model asked without as_of is asked at its "now"
    AIRPORT_TIMEZONE = "America/Santiago"
    #: a feed whose newest departure before as_of is older than this, in minutes, has stopped:
    #: a live model then predicts with nothing observed, and says so in the warnings
    LIVE_FEED_MAX_AGE_MINUTES = 180
    #: the model folder: one folder per model id (with no ARTIFACT_URL, the store itself)
    MODEL_DIR = "models"
    #: where models are published for every host: empty keeps them in MODEL_DIR (one machine, or
    #: a volume every host mounts); s3://bucket/prefix puts them in any S3-compatible object
    #: store (endpoint, region and credentials: the S3_* settings below, else boto3's usual AWS_*
    #: variables, ~/.aws or an instance role)
    ARTIFACT_URL = ""
    #: with an object store: where this host keeps the models it fetched (the deployed one and
    #: the previous one stay, older copies are evicted), and its workers' scratch space
    MODEL_CACHE_DIR = "model-cache"
    S3_ENDPOINT_URL = ""
    S3_REGION = ""
    S3_ACCESS_KEY_ID = ""
    S3_SECRET_ACCESS_KEY = ""
    #: bounds on every object store call: connecting, waiting for the next bytes of an answer,
    #: attempts in all. A hung store fails a call after about (attempts + 1) x the read
    #: timeout (measured: 15 s with these defaults)
    S3_CONNECT_TIMEOUT_SECONDS = 3.0
    S3_READ_TIMEOUT_SECONDS = 5.0
    S3_MAX_ATTEMPTS = 2
    #: local datasets named in POST /models must resolve inside this folder
    DATA_ROOT = "datasets"
    #: ?export=true writes model files inside this folder (created on first export; git-ignored)
    EXPORT_DIR = "exports"
    #: API keys and their scopes: "key=scope,scope;key2=scope" (see README, "Keys and scopes")
    API_KEYS = ""
    #: scopes that reads and predictions need; empty means open
    READ_SCOPE = ""
    PREDICT_SCOPE = ""
    #: most flights in one POST /predict
    MAX_BATCH = 10_000
    #: largest request body in bytes (413 beyond, before it is parsed); 10,000 flights with every
    #: column of the SCL file take about 3.5 MB
    MAX_CONTENT_LENGTH = 8 * 1024 * 1024
    #: share of DELETE /models/{id} requests answered 500 before anything changes (the original
    #: spec's fault injection); 0 turns it off
    DELETE_FAULT_RATE = 0.005
    #: how often each API process checks Redis for a new deployment, in seconds
    DEPLOYMENT_POLL_SECONDS = 0.25
    #: datasets fetched by URL: size limit, and one deadline for the whole download
    DOWNLOAD_MAX_BYTES = 500 * 1024 * 1024
    DOWNLOAD_TIMEOUT_SECONDS = 120
    #: hosts a dataset URL may name although they are not public addresses (internal mirrors):
    #: comma-separated host names, IP addresses or networks ("mirror.internal,10.2.0.0/16")
    DOWNLOAD_ALLOW_HOSTS = ""
    #: training jobs: a running job renews a lease this long (seconds) every sixth of it; a job
    #: whose lease runs out (its worker was killed or lost Redis) is queued again, at most
    #: JOB_MAX_ATTEMPTS attempts in all, then marked failed with the reason
    JOB_LEASE_SECONDS = 30.0
    JOB_MAX_ATTEMPTS = 2
    #: a job running longer is stopped and marked failed
    JOB_TIME_LIMIT_SECONDS = 1800
    #: compile each trained LightGBM forest to machine code (lleaves) for fast batch
    #: predictions; a compilation that fails or takes longer than COMPILE_TIMEOUT_SECONDS is
    #: recorded in model.json and LightGBM predicts instead. API processes use a compiled forest
    #: only when this is true
    COMPILED_TREES = True
    COMPILE_TIMEOUT_SECONDS = 300.0
    #: keep every POST /predict request and answer in the prediction log (sent through Redis to
    #: the writer process, python -m flight_delay.prediction_log.writer, which make run and
    #: compose start; without a writer the entries wait in Redis)
    PREDICTION_LOG = True
    #: the prediction log's database (SQLAlchemy URL): SQLite by default (make run keeps it in
    #: its state directory), PostgreSQL in docker-compose
    PREDICTION_LOG_URL = "sqlite:///predictions.db"
    #: the log's retention, applied by the writer at start and every PREDICTION_LOG_PRUNE_SECONDS:
    #: requests older than this many days go (0: kept whatever their age), and beyond
    #: PREDICTION_LOG_MAX_FLIGHTS flights the oldest requests go, down to nine tenths of it (0: no
    #: bound; a flight takes about 0.7 kB in SQLite: about 0.7 GB at the bound)
    PREDICTION_LOG_RETENTION_DAYS = 90.0
    PREDICTION_LOG_MAX_FLIGHTS = 1_000_000
    PREDICTION_LOG_PRUNE_SECONDS = 300.0
    #: bytes of request bodies an API process keeps queued for the log while Redis is away or
    #: refuses writes, and bytes of logged requests Redis holds for the writer; past either bound
    #: the oldest entries are dropped and counted, never memory or disk without end
    PREDICTION_LOG_BUFFER_BYTES = 64 * 1024 * 1024
    PREDICTION_LOG_BACKLOG_BYTES = 128 * 1024 * 1024
    #: where API and worker processes keep their metrics files (prometheus_client's
    #: multiprocess mode; <dir>/api and <dir>/worker, emptied at start); empty: a temporary folder
    METRICS_DIR = ""
    #: host:port on which the Celery worker serves its job metrics (Prometheus); empty: off
    WORKER_METRICS_BIND = ""
    #: how long a comparison (POST /comparisons) and its result are kept, in seconds
    COMPARISON_KEEP_SECONDS = 7 * 24 * 3600
    #: how long a drift report (GET /models/{id}/drift) is kept before it is computed again
    DRIFT_CACHE_SECONDS = 600
    #: how long a live performance report is kept (new outcomes make a new one at once)
    PERFORMANCE_CACHE_SECONDS = 600
    #: reports (drift, live performance) computed at once; a request for a new window beyond
    #: this is a 429 with Retry-After: ANALYSIS_RETRY_AFTER_SECONDS
    ANALYSIS_MAX_ACTIVE = 4
    ANALYSIS_RETRY_AFTER_SECONDS = 10
    #: the queues this process's Celery worker consumes: "training" (training jobs and schedule
    #: evaluations), "analysis" (drift, live performance, comparisons), or both. make run and
    #: compose run one worker for each, so training never waits behind reports
    WORKER_QUEUES = "training,analysis"
    #: retraining schedules: how often Celery beat claims due runs and moves runs along (s)
    SCHEDULE_TICK_SECONDS = 5.0
    #: the shortest interval (every_seconds) a schedule may have
    SCHEDULE_MIN_INTERVAL_SECONDS = 60
    #: most schedules; runs kept per schedule (the oldest finished ones are deleted)
    SCHEDULE_MAX = 100
    SCHEDULE_RUNS_KEPT = 200
    #: challengers that were not promoted (kept out, or their run failed) kept per schedule, the
    #: newest; older ones are deleted, record and files (their runs keep the figures)
    SCHEDULE_KEEP_REJECTED = 3
    #: training jobs waiting for a worker at most; POST /models beyond is a 429 with
    #: Retry-After: JOB_QUEUE_RETRY_AFTER_SECONDS (a schedule's challengers are never refused)
    MAX_PENDING_JOBS = 20
    JOB_QUEUE_RETRY_AFTER_SECONDS = 30
    #: how often API processes and workers look for jobs to recover, in seconds
    RECOVERY_INTERVAL_SECONDS = 10.0
    #: a job still pending after this long has its message sent again (a lost message is not
    #: waited for; a duplicate is harmless)
    PENDING_RESEND_SECONDS = 300.0
    #: how long /readyz trusts a worker ping, in seconds
    WORKER_PING_CACHE_SECONDS = 5.0
    #: Redis key prefix, so several deployments can share one Redis
    KEY_PREFIX = "fd"
    LOG_LEVEL = "INFO"

    # flask-smorest / OpenAPI
    API_TITLE = "flight-delay"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "/docs"
    # served by the app from the swagger-ui-bundle package (flight_delay/api/docs.py): no CDN
    OPENAPI_SWAGGER_UI_URL = "/docs/assets/"
    # no call to validator.swagger.io (Swagger UI's default): the page works offline
    OPENAPI_SWAGGER_UI_CONFIG: ClassVar[dict[str, Any]] = {"validatorUrl": None}
    JSON_SORT_KEYS = False


class TestingConfig(DefaultConfig):
    """For tests: no random DELETE faults; tests give their own Redis and folders."""

    TESTING = True
    DELETE_FAULT_RATE = 0.0


def _parse(name: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{ENV_PREFIX}{name}: expected true or false, got {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{ENV_PREFIX}{name}: expected an integer, got {raw!r}") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{ENV_PREFIX}{name}: expected a number, got {raw!r}") from None
    return raw


def settings_of(config: type) -> dict[str, Any]:
    return {name: getattr(config, name) for name in dir(config) if name.isupper()}


def load_config(
    base: type = DefaultConfig,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Defaults, then ``FLIGHT_DELAY_*`` variables, then explicit ``overrides``."""
    environ = os.environ if environ is None else environ
    settings = settings_of(base)
    for name, default in settings.items():
        raw = environ.get(ENV_PREFIX + name)
        if raw is not None:
            settings[name] = _parse(name, raw, default)
    settings.update(overrides or {})
    return settings


def documented_settings() -> dict[str, Any]:
    """Every FLIGHT_DELAY_* variable and its default (README and consistency tests use this)."""
    return {
        ENV_PREFIX + name: value
        for name, value in settings_of(DefaultConfig).items()
        if not name.startswith(("OPENAPI_", "API_TITLE", "API_VERSION", "JSON_"))
    }


#: variables read by the launchers (make run, gunicorn's config, the tests), not by create_app
LAUNCHER_VARIABLES: dict[str, str] = {
    "FLIGHT_DELAY_BIND": "gunicorn's listen address; default 127.0.0.1:$PORT (containers: 0.0.0.0:8000)",
    "FLIGHT_DELAY_WEB_WORKERS": "gunicorn worker processes; default 2",
    "FLIGHT_DELAY_WEB_THREADS": "threads per gunicorn worker; default 1, more selects gthread "
    "workers",
    "FLIGHT_DELAY_WEB_WORKER_CLASS": "gunicorn's worker class: gevent (default; slow clients "
    "hold no worker), or sync / gthread behind a buffering proxy",
    "FLIGHT_DELAY_REDIS_PORT": "port of make run's embedded Redis; default 6380",
    "FLIGHT_DELAY_REDIS_SERVER": "another redis-server binary for make run and the tests",
    "FLIGHT_DELAY_DATASET": "the real SCL file of make run, make test, make notebook and make "
    "benchmark; default datasets/dataset_SCL.csv, then ../shared/datasets/dataset_SCL.csv",
    "FLIGHT_DELAY_STATE_DIR": "make run's admin key, embedded Redis data and run state; "
    "default .flight-delay",
    "FLIGHT_DELAY_TEST_REDIS_URL": "a Redis server for the integration tests (CI's service container)",
    "PORT": "the API port of make run; default 8000",
    "FLIGHT_DELAY_WORKER_METRICS_PORT": "port of make run's worker metrics on 127.0.0.1; "
    "default 9808",
    "FLOWER": "1: make run also starts Flower, the Celery dashboard, on 127.0.0.1",
    "FLOWER_PORT": "Flower's port under make run; default 5555",
    "FLOWER_BASIC_AUTH": "user:password Flower asks for; Flower does not start without it "
    "(compose: set it in .env; make run: made for you unless set)",
    "PROMETHEUS_MULTIPROC_DIR": "set by the gunicorn config and the worker from "
    "FLIGHT_DELAY_METRICS_DIR; not to be set by hand",
    "POSTGRES_PASSWORD": "the password of the prediction log's PostgreSQL in docker compose",
    "S3_ACCESS_KEY_ID": "the object store's access key in docker compose (SeaweedFS is made with it)",
    "S3_SECRET_ACCESS_KEY": "the object store's secret key in docker compose",
}


def known_variables() -> set[str]:
    """Every environment variable the project reads."""
    return set(documented_settings()) | set(LAUNCHER_VARIABLES)
