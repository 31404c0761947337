"""Request and response schemas: they validate and they document (OpenAPI examples included)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from flight_delay.departures import (
    EARLIEST_DEPARTURE_HOURS,
    LATEST_DEPARTURE_HOURS,
    MAX_CODE_LENGTH,
)
from flight_delay.features import FEATURE_SETS
from flight_delay.features.values import parse_scheduled, scheduled_problem
from flight_delay.ml.config import (
    MAX_CUTOFF_LENGTH,
    MAX_CV_FOLDS,
    MAX_SEED,
    MIN_CV_FOLDS,
    SPLITS,
    TrainConfig,
)
from flight_delay.ml.families import FAMILIES
from flight_delay.ml.promotion import (
    MAX_MARGIN,
    MAX_OUTCOME_FLIGHTS,
    MIN_OUTCOME_FLIGHTS,
    RULE_METRICS,
    PromotionRule,
)
from flight_delay.registry import Status
from flight_delay.scheduling.timing import MAX_CRON_LENGTH, MAX_INTERVAL_SECONDS

#: export file names: plain names only, so a name can never leave the export directory
EXPORT_NAME = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"
EXAMPLE_ID = "3f1c2a9e-8d7b-4c55-9a61-2b7e0f4d8c10"
EXAMPLE_FLIGHT = {
    "Fecha-I": "2018-01-15 19:30:00",
    "Vlo-I": "1234",
    "Des-I": "SPJC",
    "Emp-I": "LAN",
    "OPERA": "Grupo LATAM",
    "TIPOVUELO": "I",
}
EXAMPLE_MINIMAL_FLIGHT = {"OPERA": "Aerolineas Argentinas", "TIPOVUELO": "N", "MES": 3}


_TRAIN_DEFAULTS = TrainConfig.defaults()


def _scalar(value: object) -> None:
    if isinstance(value, dict | list) or (isinstance(value, float) and not math.isfinite(value)):
        raise ValidationError("must be one finite number, text or boolean")


def _cv_folds(value: int) -> None:
    if value != 0 and not MIN_CV_FOLDS <= value <= MAX_CV_FOLDS:
        raise ValidationError(f"must be 0 or from {MIN_CV_FOLDS} to {MAX_CV_FOLDS}")


#: documents a JSON scalar (flight fields and hyperparameters take no lists, objects or null)
SCALAR = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}
#: documents a code sent as text or a number (a flight number 800 and "800" are one flight)
CODE = {"anyOf": [{"type": "string"}, {"type": "number"}]}


class StrictSchema(Schema):
    """Unknown fields are an error, never silently dropped."""

    class Meta:
        unknown = RAISE


class TrainingSettingsSchema(StrictSchema):
    """The training settings POST /models and a schedule's ``model`` share."""

    # defaults come from TrainConfig: one source for the API, the CLI and the library
    model_type = fields.String(
        load_default=_TRAIN_DEFAULTS["model_type"],
        validate=validate.OneOf(sorted(FAMILIES)),
        metadata={"example": "lightgbm"},
    )
    features = fields.String(
        load_default=_TRAIN_DEFAULTS["features"],
        validate=validate.OneOf(sorted(FEATURE_SETS)),
        metadata={"example": "schedule"},
    )
    test_size = fields.Float(
        load_default=_TRAIN_DEFAULTS["test_size"],
        validate=validate.Range(0.05, 0.5),
        metadata={"description": "held-out share, 0.05-0.5"},
    )
    seed = fields.Integer(
        load_default=_TRAIN_DEFAULTS["seed"], strict=True, validate=validate.Range(0, MAX_SEED)
    )
    cv_folds = fields.Integer(
        load_default=_TRAIN_DEFAULTS["cv_folds"],
        strict=True,
        validate=_cv_folds,
        metadata={
            "description": "cross-validation folds inside the training part that choose the "
            "tree count and threshold (monthly rolling-origin windows with split=time); 0: one "
            "validation slice"
        },
    )
    min_recall = fields.Float(
        load_default=_TRAIN_DEFAULTS["min_recall"],
        validate=validate.Range(0.0, 1.0),
        metadata={
            "description": "the best-F1 threshold must flag at least this share of delayed "
            "flights in cross-validation"
        },
    )
    params = fields.Dict(
        keys=fields.String(validate=validate.Length(max=64)),
        values=fields.Raw(validate=_scalar, metadata=SCALAR),
        load_default=dict,
        validate=validate.Length(max=64),
        metadata={
            "description": "hyperparameters of the model family: names and ranges in "
            "flight_delay.ml.families (unknown names, non-finite or out-of-range values are a 400)",
            "example": {"num_leaves": 31},
        },
    )


DATASET_REFERENCE = (
    "a path inside the data root (FLIGHT_DELAY_DATA_ROOT; a folder reads every CSV or Parquet "
    "file in it), an http(s) URL, a public Google Drive file link, or synthetic[:N] for N "
    "generated flights"
)


class ModelCreateSchema(TrainingSettingsSchema):
    dataset = fields.String(
        required=True,
        validate=validate.Length(min=1, max=2048),
        metadata={"description": DATASET_REFERENCE, "example": "dataset_SCL.csv"},
    )
    split = fields.String(
        load_default=_TRAIN_DEFAULTS["split"],
        validate=validate.OneOf(SPLITS),
        metadata={"example": "time"},
    )
    time_cutoff = fields.String(
        load_default=_TRAIN_DEFAULTS["time_cutoff"],
        allow_none=True,
        validate=validate.Length(max=MAX_CUTOFF_LENGTH),
        metadata={
            "description": "with split=time: hold out flights scheduled from this local SCL "
            "date-time on (YYYY-MM-DD[ HH:MM:SS], no UTC offset, 1950-2100)",
            "example": "2017-11-01",
        },
    )
    refit = fields.Boolean(
        load_default=_TRAIN_DEFAULTS["refit"],
        metadata={"description": "refit on all rows after the evaluation"},
    )
    description = fields.String(load_default="", validate=validate.Length(max=1000))


class ModelCreatedSchema(Schema):
    id = fields.String(metadata={"example": EXAMPLE_ID})
    status = fields.String(metadata={"example": Status.PENDING})


class ModelListQuerySchema(StrictSchema):
    status = fields.String(
        validate=validate.OneOf(Status.ALL), metadata={"description": "only models in this status"}
    )
    limit = fields.Integer(
        load_default=100,
        validate=validate.Range(1, 1000),
        metadata={"description": "at most this many models (1-1000, default 100)"},
    )
    after = fields.UUID(
        metadata={
            "description": "the next page: the models created before this one (the last id of "
            "the previous page; the Link header names the next page's URL)"
        }
    )


class ModelGetQuerySchema(StrictSchema):
    export = fields.Boolean(
        load_default=False,
        metadata={"description": "write the model file into the export directory"},
    )
    file_name = fields.String(
        data_key="file-name",
        validate=validate.Regexp(
            EXPORT_NAME,
            error="must be a plain file name: 1-128 letters, digits, '.', '_' or '-', not "
            "starting with '.'",
        ),
        metadata={
            "description": "a plain file name inside the export directory (default: "
            "<model id>.joblib); 1-128 letters, digits, '.', '_' or '-', not starting with '.'",
            "example": "my-model.joblib",
        },
    )


class HeadlineMetricsSchema(Schema):
    roc_auc = fields.Float()
    pr_auc = fields.Float()
    f1_delayed = fields.Float()
    recall_delayed = fields.Float()


class ModelSummarySchema(Schema):
    id = fields.String(metadata={"example": EXAMPLE_ID})
    status = fields.String(metadata={"example": Status.COMPLETED})
    created_at = fields.String()
    started_at = fields.String(allow_none=True)
    finished_at = fields.String(allow_none=True)
    model_type = fields.String(metadata={"example": "lightgbm"})
    features = fields.String(metadata={"example": "schedule"})
    dataset = fields.String()
    description = fields.String()
    deployed = fields.Boolean()
    metrics = fields.Nested(HeadlineMetricsSchema, allow_none=True, attribute="headline")


class ProgressSchema(Schema):
    stage = fields.String(metadata={"example": "fitting lightgbm (validation)"})
    percent = fields.Integer(metadata={"example": 25})


class ModelDetailSchema(ModelSummarySchema):
    settings = fields.Dict(metadata={"description": "the validated training settings"})
    progress = fields.Nested(ProgressSchema, allow_none=True)
    threshold = fields.Float(allow_none=True)
    # the detail shows every metric where the summary shows the headline ones
    metrics = fields.Dict(  # type: ignore[assignment]
        allow_none=True, metadata={"description": "holdout and validation metrics"}
    )
    input_schema = fields.Dict(
        allow_none=True, metadata={"description": "required fields and allowed values"}
    )
    importances = fields.Dict(
        keys=fields.String(),
        values=fields.Float(),
        allow_none=True,
        metadata={
            "description": "each feature's share of the total split gain (LightGBM), largest first",
            "example": {"hour": 0.21, "airline": 0.15},
        },
    )
    cross_validation = fields.Dict(
        allow_none=True,
        metadata={
            "description": "the folds that chose the tree count and threshold: each fold's "
            "window, rows and scores, their mean and spread"
        },
    )
    data = fields.Dict(
        allow_none=True, metadata={"description": "fingerprint of the training data"}
    )
    error = fields.String(allow_none=True, metadata={"description": "why the job failed"})
    attempts = fields.Integer(
        metadata={"description": "attempts at training it so far (a lost worker's job is retried)"}
    )
    download = fields.String(metadata={"description": "'OK' when ?export=true wrote the file"})
    path = fields.String(
        metadata={"description": "the file ?export=true wrote, relative to the export directory"}
    )


class DeployQuerySchema(StrictSchema):
    model_id = fields.String(data_key="model-id", required=True, metadata={"example": EXAMPLE_ID})


class DeploymentEventSchema(Schema):
    model_id = fields.String()
    deployed_at = fields.String()
    version = fields.Integer(metadata={"description": "the deployment version this event made"})
    by = fields.String(
        metadata={"description": "who deployed: the key's scopes and fingerprint, or an address"}
    )
    previous_model_id = fields.String(allow_none=True)


class DeploymentSchema(Schema):
    model_id = fields.String(allow_none=True, metadata={"example": EXAMPLE_ID})
    version = fields.Integer(metadata={"description": "increases with every deploy"})
    deployed_at = fields.String(allow_none=True)
    model = fields.Nested(ModelSummarySchema, allow_none=True)
    history = fields.List(
        fields.Nested(DeploymentEventSchema), metadata={"description": "newest first"}
    )


class FlightList(fields.List):
    """A list of flight objects, documented exactly as ``List(Dict(String, Raw))`` but checked in
    one pass: marshmallow deserialising every value of 10,000 flights cost more than predicting
    them. JSON object keys are always text and Raw values pass through, so what is left to check
    here is a list of objects; the values are checked by the model's input checks
    (``check_records``), with the flight index and field."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> list[Any]:
        if not isinstance(value, list):
            raise self.make_error("invalid")
        null = fields.Field.default_error_messages["null"]
        errors: dict[int, Any] = {}
        for index, item in enumerate(value):
            if item is None:
                errors[index] = [null]
            elif not isinstance(item, dict) or not all(isinstance(k, str) for k in item):
                errors[index] = [fields.Dict.default_error_messages["invalid"]]
            elif None in item.values():  # Raw values do not allow null, as before
                errors[index] = {k: {"value": [null]} for k, v in item.items() if v is None}
        if errors:
            raise ValidationError(errors)
        return value


def _as_of(value: Any) -> None:
    if not isinstance(value, str):
        raise ValidationError("a local SCL time as text, YYYY-MM-DD HH:MM:SS")
    if parse_scheduled(value) is None:
        raise ValidationError(scheduled_problem(value))
    try:
        offset = datetime.fromisoformat(value.strip()).tzinfo
    except ValueError:
        offset = None
    if offset is not None:
        raise ValidationError(
            "give the airport's local time without a UTC offset, as Fecha-I is written"
        )


class PredictRequestSchema(StrictSchema):
    as_of = fields.Raw(
        validate=_as_of,
        metadata={
            "type": "string",
            "description": "when the question is asked, YYYY-MM-DD HH:MM:SS, local SCL time "
            "(a live model; default: the airport's clock now). Each flight then sees the "
            "departures the feed (POST /departures) holds from before it; a flight scheduled "
            "before as_of is a 400. Models without live features ignore it, with a warning.",
            "example": "2017-11-02 06:30:00",
        },
    )
    flights = FlightList(
        fields.Dict(keys=fields.String(), values=fields.Raw(metadata=SCALAR)),
        required=True,
        validate=validate.Length(min=1),
        metadata={
            "description": "1 to FLIGHT_DELAY_MAX_BATCH (default 10,000) flights in the SCL "
            "schema; what a model needs is in its input_schema (GET /models/{id}). A minimal model "
            "takes OPERA, TIPOVUELO and MES. Field values are text or numbers (a field not sent "
            "is missing; null is refused).",
            "example": [EXAMPLE_FLIGHT],
        },
    )


class PredictQuerySchema(StrictSchema):
    explain = fields.Boolean(
        load_default=False,
        metadata={
            "description": "add each flight's explanation: the top 5 feature contributions in "
            "log-odds (LightGBM models)"
        },
    )


class ContributionSchema(Schema):
    feature = fields.String(metadata={"example": "hour"})
    value = fields.Raw(
        metadata={
            **SCALAR,
            "description": "what the model saw: a category, a number, or null (missing or unseen)",
            "example": 19,
        }
    )
    contribution = fields.Float(metadata={"description": "in log-odds", "example": 0.31})


class ExplanationSchema(Schema):
    base_value = fields.Float(
        metadata={"description": "log-odds before any feature is known", "example": -1.45}
    )
    log_odds = fields.Float(
        metadata={"description": "base_value plus every contribution: the model's raw score"}
    )
    contributions = fields.List(
        fields.Nested(ContributionSchema), metadata={"description": "the 5 largest, by size"}
    )


class PredictionSchema(Schema):
    delay_probability = fields.Float(metadata={"example": 0.27})
    delayed = fields.Boolean(metadata={"example": False})
    lead_minutes = fields.Integer(
        allow_none=True,
        metadata={
            "description": "live models only: minutes from as_of to the scheduled departure, "
            "as the model used them; null: predicted with nothing observed (see warnings)"
        },
    )
    explanation = fields.Nested(
        ExplanationSchema, metadata={"description": "only with ?explain=true"}
    )


class PredictionWarningSchema(Schema):
    index = fields.Integer(metadata={"description": "the flight's position in the request"})
    field = fields.String(metadata={"example": "Des-I"})
    problem = fields.String(
        metadata={
            "example": "destination 'SAWH' never seen in training: predicted as an unseen "
            "destination"
        }
    )


class FeedStateSchema(Schema):
    as_of = fields.String(metadata={"example": "2017-11-02 06:30:00"})
    departures = fields.Integer(
        metadata={"description": "departures the feed held from the 48 h before as_of"}
    )
    newest_departure = fields.String(
        allow_none=True, metadata={"description": "the latest of them (null: none)"}
    )
    age_minutes = fields.Integer(
        allow_none=True, metadata={"description": "minutes from it to as_of"}
    )
    fresh = fields.Boolean(
        metadata={
            "description": "false when the feed has nothing within "
            "FLIGHT_DELAY_LIVE_FEED_MAX_AGE_MINUTES of as_of: every flight is then predicted "
            "with nothing observed"
        }
    )


class PredictResponseSchema(Schema):
    request_id = fields.String(
        metadata={
            "description": "this request in the prediction log (also the X-Request-Id header): "
            "GET /predictions/{request_id}",
            "example": "9b2f0c4e1d7a4f6b8c3e5a7d9f1b2c4d",
        }
    )
    model_id = fields.String(metadata={"example": EXAMPLE_ID})
    threshold = fields.Float(metadata={"example": 0.19})
    predictions = fields.List(
        fields.Nested(PredictionSchema), metadata={"description": "in request order"}
    )
    warnings = fields.List(
        fields.Nested(PredictionWarningSchema),
        metadata={
            "description": "flights predicted although an open field (Des-I, Emp-I, the flight "
            "number) holds a value the model never saw, and (field as_of) flights a live model "
            "predicted with nothing observed; empty when there is none"
        },
    )
    feed = fields.Nested(
        FeedStateSchema,
        metadata={"description": "live models only: what the departures feed had seen by as_of"},
    )


#: request times a window may name: the prediction log holds nothing outside these, and a time
#: at the edge of Python's range with an offset (0001-01-01T00:00:00+21:21) has no UTC value
EARLIEST_RECEIVED = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_RECEIVED = datetime(9000, 1, 1, tzinfo=UTC)


def _received_time(value: datetime) -> None:
    try:
        moment = value.astimezone(UTC)
    except (OverflowError, ValueError):
        moment = None
    if moment is None or not EARLIEST_RECEIVED <= moment <= LATEST_RECEIVED:
        raise ValidationError(
            f"must be from {EARLIEST_RECEIVED:%Y-%m-%d} to {LATEST_RECEIVED:%Y-%m-%d} (UTC)"
        )


#: the years a window may name, as the document says it (so that generated clients and fuzzers
#: send what the server takes)
RECEIVED_YEARS = r"^(19[7-9][0-9]|[2-8][0-9]{3})-"


class ReceivedWindowQuerySchema(StrictSchema):
    """A window of request time (the prediction log's received_at)."""

    since = fields.AwareDateTime(
        default_timezone=UTC,
        validate=_received_time,
        metadata={
            "description": "received at or after this time (ISO 8601; no offset: UTC), "
            "1970-01-01 to 9000-01-01",
            "pattern": RECEIVED_YEARS,
        },
    )
    until = fields.AwareDateTime(
        default_timezone=UTC,
        validate=_received_time,
        metadata={
            "description": "received before this time (ISO 8601; no offset: UTC), "
            "1970-01-01 to 9000-01-01",
            "pattern": RECEIVED_YEARS,
        },
    )


class PredictionLogQuerySchema(ReceivedWindowQuerySchema):
    model_id = fields.String(
        validate=validate.Length(1, 64), metadata={"description": "only this model's requests"}
    )
    limit = fields.Integer(
        load_default=50,
        validate=validate.Range(1, 500),
        metadata={"description": "requests per page, 1-500"},
    )
    cursor = fields.String(
        validate=validate.Length(1, 200),
        metadata={"description": "next_cursor of the previous page"},
    )


class LoggedRequestSchema(Schema):
    request_id = fields.String(metadata={"example": "9b2f0c4e1d7a4f6b8c3e5a7d9f1b2c4d"})
    received_at = fields.String(metadata={"example": "2026-11-25T13:00:00.123456+00:00"})
    model_id = fields.String(metadata={"example": EXAMPLE_ID})
    deployment_version = fields.Integer(metadata={"example": 3})
    caller = fields.String(
        metadata={
            "description": "the key's scopes and a fingerprint of it (never the key), or the "
            "caller's address when no key was sent",
            "example": "key predict #1a2b3c4d",
        }
    )
    latency_ms = fields.Float(
        metadata={"description": "time in the API process from the checked request to the answer"}
    )
    flight_count = fields.Integer()


class LoggedFlightSchema(Schema):
    index = fields.Integer(metadata={"description": "position in the request"})
    flight = fields.Dict(metadata={"description": "the flight as sent"})
    delay_probability = fields.Float(
        metadata={"description": "the model's probability, unrounded (the answer rounds it)"}
    )
    delayed = fields.Boolean()
    warnings = fields.List(fields.Dict())
    departed_at = fields.String(
        allow_none=True,
        metadata={"description": "the actual departure (Fecha-O) once POST /outcomes sent it"},
    )
    delay_minutes = fields.Float(
        allow_none=True, metadata={"description": "departed_at - Fecha-I in minutes"}
    )


class LoggedRequestDetailSchema(LoggedRequestSchema):
    flights = fields.List(fields.Nested(LoggedFlightSchema))


class PredictionLogPageSchema(Schema):
    items = fields.List(
        fields.Nested(LoggedRequestSchema), metadata={"description": "newest first"}
    )
    next_cursor = fields.String(
        allow_none=True, metadata={"description": "pass as cursor for the next page; null: last"}
    )


class HealthSchema(Schema):
    status = fields.String(metadata={"example": "ok"})


class ReadinessSchema(Schema):
    ready = fields.Boolean()
    checks = fields.Dict(
        metadata={
            "example": {"redis": "ok", "workers": "1 worker(s)", "model": "serving 3f1c2a9e-..."}
        }
    )


def _departure(value: Any) -> None:
    if parse_scheduled(value) is None:
        raise ValidationError(scheduled_problem(value))


class OutcomeSchema(StrictSchema):
    """One flight's actual departure, naming the flight one of two ways."""

    request_id = fields.String(
        validate=validate.Length(1, 64),
        metadata={"description": "the request that predicted the flight (with index)"},
    )
    index = fields.Integer(
        validate=validate.Range(0, 1_000_000),
        metadata={"description": "the flight's position in that request"},
    )
    scheduled = fields.Raw(
        data_key="Fecha-I",
        validate=_departure,
        metadata={
            "description": "scheduled departure, YYYY-MM-DD HH:MM:SS (with Vlo-I and Des-I)",
            "type": "string",
            "example": "2017-11-02 07:00:00",
        },
    )
    flight_number = fields.Raw(data_key="Vlo-I", validate=_scalar, metadata=CODE)
    destination = fields.Raw(data_key="Des-I", validate=_scalar, metadata=CODE)
    carrier = fields.Raw(
        data_key="Emp-I",
        validate=_scalar,
        metadata={
            **CODE,
            "description": "the airline code (with Fecha-I, Vlo-I and Des-I): the departure "
            "then also goes to the live feed, as POST /departures would keep it",
        },
    )
    airline = fields.String(
        data_key="OPERA",
        validate=validate.Length(0, 200),
        metadata={"description": "the operating airline's name (with Emp-I; kept, not used)"},
    )
    departed = fields.Raw(
        data_key="Fecha-O",
        required=True,
        validate=_departure,
        metadata={
            "description": "actual departure, YYYY-MM-DD HH:MM:SS (local SCL time, as Fecha-I)",
            "type": "string",
            "example": "2017-11-02 07:20:00",
        },
    )

    @validates_schema
    def _one_way(self, data: dict[str, Any], **_: Any) -> None:
        by_request = [name for name in ("request_id", "index") if name in data]
        by_schedule = [
            key
            for name, key in (
                ("scheduled", "Fecha-I"),
                ("flight_number", "Vlo-I"),
                ("destination", "Des-I"),
            )
            if name in data
        ]
        if by_request and ("carrier" in data or "airline" in data):
            raise ValidationError(
                "the logged flight has its airline: Emp-I and OPERA go with Fecha-I, Vlo-I and "
                "Des-I only",
                "Emp-I" if "carrier" in data else "OPERA",
            )
        if by_request and by_schedule:
            raise ValidationError(
                "name the flight by request_id and index or by Fecha-I, Vlo-I and Des-I, not both",
                by_schedule[0],
            )
        if by_request and len(by_request) < 2:
            missing = "index" if "request_id" in data else "request_id"
            raise ValidationError("required with " + by_request[0], missing)
        if not by_request and len(by_schedule) < 3:
            missing = next(key for key in ("Fecha-I", "Vlo-I", "Des-I") if key not in by_schedule)
            raise ValidationError(
                "name the flight by request_id and index, or by Fecha-I, Vlo-I and Des-I",
                missing,
            )


class OutcomesRequestSchema(StrictSchema):
    outcomes = fields.List(
        fields.Nested(OutcomeSchema),
        required=True,
        validate=validate.Length(1, 10_000),
        metadata={"description": "1-10,000 outcomes"},
    )


class DepartureSchema(StrictSchema):
    """A flight that left SCL, and when."""

    scheduled = fields.Raw(
        data_key="Fecha-I",
        required=True,
        validate=_departure,
        metadata={
            "description": "scheduled departure, YYYY-MM-DD HH:MM:SS (local SCL time)",
            "type": "string",
            "example": "2017-11-02 07:00:00",
        },
    )
    flight_number = fields.Raw(data_key="Vlo-I", required=True, validate=_scalar, metadata=CODE)
    destination = fields.Raw(data_key="Des-I", required=True, validate=_scalar, metadata=CODE)
    carrier = fields.Raw(data_key="Emp-I", required=True, validate=_scalar, metadata=CODE)
    airline = fields.String(
        data_key="OPERA",
        validate=validate.Length(0, 200),
        metadata={"description": "the operating airline's name (kept, not used)"},
    )
    departed = fields.Raw(
        data_key="Fecha-O",
        required=True,
        validate=_departure,
        metadata={
            "description": "actual departure, YYYY-MM-DD HH:MM:SS (local SCL time, as Fecha-I)",
            "type": "string",
            "example": "2017-11-02 07:20:00",
        },
    )

    @validates_schema
    def _plausible(self, data: dict[str, Any], **_: Any) -> None:
        scheduled, departed = parse_scheduled(data["scheduled"]), parse_scheduled(data["departed"])
        if scheduled is None or departed is None:
            return  # the fields' own errors say why
        hours = (departed - scheduled).total_seconds() / 3600
        if hours < -EARLIEST_DEPARTURE_HOURS:
            raise ValidationError(
                f"{-hours:.1f} h before Fecha-I: a flight leaves at most "
                f"{EARLIEST_DEPARTURE_HOURS} h before its scheduled time",
                "Fecha-O",
            )
        if hours > LATEST_DEPARTURE_HOURS:
            raise ValidationError(
                f"{hours:.1f} h after Fecha-I: at most {LATEST_DEPARTURE_HOURS} h late",
                "Fecha-O",
            )
        for name in ("carrier", "flight_number", "destination"):
            text = str(data[name]).strip()
            if not text or len(text) > MAX_CODE_LENGTH:
                key = {"carrier": "Emp-I", "flight_number": "Vlo-I", "destination": "Des-I"}[name]
                raise ValidationError(f"must be 1-{MAX_CODE_LENGTH} characters", key)


class DeparturesRequestSchema(StrictSchema):
    departures = fields.List(
        fields.Nested(DepartureSchema),
        required=True,
        validate=validate.Length(1, 10_000),
        metadata={"description": "1-10,000 departures, in any order"},
    )


class DeparturesRecordedSchema(Schema):
    stored = fields.Integer(metadata={"description": "scheduled flights new to the feed"})
    replaced = fields.Integer(metadata={"description": "flights sent before, now corrected"})
    unchanged = fields.Integer(metadata={"description": "flights sent before, the same again"})
    too_old = fields.Integer(
        metadata={
            "description": "departures older than the feed keeps (49 h behind its newest); not kept"
        }
    )
    evicted = fields.Integer(metadata={"description": "departures the feed let go to make room"})
    size = fields.Integer(metadata={"description": "departures the feed holds now"})
    newest = fields.String(
        metadata={"description": "the newest departure's actual time, YYYY-MM-DD HH:MM:SS"}
    )


class DepartureFeedSchema(Schema):
    size = fields.Integer(metadata={"description": "departures the feed holds"})
    oldest = fields.String(
        allow_none=True, metadata={"description": "the oldest one's actual time (null: empty)"}
    )
    newest = fields.String(
        allow_none=True, metadata={"description": "the newest one's actual time (null: empty)"}
    )


class OutcomesRecordedSchema(Schema):
    matched = fields.Integer(metadata={"description": "outcomes that named a logged flight"})
    flights_updated = fields.Integer(
        metadata={
            "description": "distinct scheduled flights given an outcome (each once, however "
            "often it was predicted)"
        }
    )
    unmatched = fields.List(
        fields.Integer(),
        metadata={
            "description": "positions of the outcomes no logged flight matched (not logged "
            "yet, or never predicted); send them again later"
        },
    )
    departures = fields.Integer(
        metadata={
            "description": "outcomes that went to the live feed too (GET /departures): those "
            "naming a logged flight by request id, or a flight with its Emp-I"
        }
    )


class LocalDateTime(fields.DateTime):
    """A local SCL wall-clock time, as Fecha-I: an ISO 8601 time whose UTC offset, if any, is
    dropped (as the flights' own scheduled times drop it)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        return parsed.replace(tzinfo=None)


class PerformanceQuerySchema(StrictSchema):
    since = LocalDateTime(
        metadata={
            "description": "flights scheduled at or after (local SCL time, as Fecha-I; an "
            "offset is dropped)"
        }
    )
    until = LocalDateTime(
        metadata={
            "description": "flights scheduled before (local SCL time, as Fecha-I; an offset "
            "is dropped)"
        }
    )


class _LiveMetricsSchema(Schema):
    flights = fields.Integer(metadata={"description": "logged predictions with an outcome"})
    delay_rate = fields.Float(allow_none=True, metadata={"description": "share delayed > 15 min"})
    mean_predicted = fields.Float(allow_none=True)
    roc_auc = fields.Float(allow_none=True, metadata={"description": "null without both classes"})
    pr_auc = fields.Float(
        allow_none=True, metadata={"description": "average precision; null without both classes"}
    )
    brier = fields.Float(allow_none=True)
    ece = fields.Float(
        allow_none=True, metadata={"description": "expected calibration error, 10 bins"}
    )


class WeekPerformanceSchema(_LiveMetricsSchema):
    week = fields.String(metadata={"example": "2017-W45"})
    from_ = fields.String(
        data_key="from", attribute="from", metadata={"description": "the week's Monday"}
    )


class PerformanceSchema(_LiveMetricsSchema):
    model_id = fields.String()
    since = fields.String(allow_none=True)
    until = fields.String(allow_none=True)
    weeks = fields.List(fields.Nested(WeekPerformanceSchema))
    computed_at = fields.String(metadata={"description": "when the worker computed it"})


class PerformancePendingSchema(Schema):
    status = fields.String(metadata={"example": "pending"})
    retry_after_seconds = fields.Integer()


class DriftQuerySchema(ReceivedWindowQuerySchema):
    """The logged requests a drift report compares with the training rows."""


class SeparatingFeatureSchema(Schema):
    feature = fields.String()
    gain_share = fields.Float(metadata={"description": "share of the adversary's split gain"})


class AdversarialSchema(Schema):
    roc_auc = fields.Float(
        metadata={
            "description": "out-of-fold ROC AUC of a classifier telling logged requests from "
            "training rows: ~0.5 alike, near 1 separable"
        }
    )
    folds = fields.Integer()
    separating_features = fields.List(fields.Nested(SeparatingFeatureSchema))


class DriftSchema(Schema):
    status = fields.String(metadata={"example": "completed"})
    model_id = fields.String()
    since = fields.String(allow_none=True)
    until = fields.String(allow_none=True)
    computed_at = fields.String()
    reference_rows = fields.Integer(metadata={"description": "training rows compared (sampled)"})
    current_rows = fields.Integer(metadata={"description": "logged flights compared"})
    adversarial = fields.Nested(AdversarialSchema)
    psi = fields.Dict(
        keys=fields.String(),
        values=fields.Float(),
        metadata={"description": "population stability index per feature, largest first"},
    )
    chart = fields.String(metadata={"description": "the PNG chart's path"})


class DriftPendingSchema(Schema):
    status = fields.String(metadata={"example": "pending"})
    retry_after_seconds = fields.Integer()


class ComparisonHoldoutSchema(StrictSchema):
    since = fields.Date(metadata={"description": "flights scheduled on or after this day"})
    until = fields.Date(metadata={"description": "flights scheduled before this day"})


class ComparisonCreateSchema(StrictSchema):
    model_ids = fields.List(
        fields.UUID(),
        required=True,
        validate=validate.Length(2, 10),
        metadata={"description": "2-10 completed models, compared in this order"},
    )
    dataset = fields.String(
        required=True,
        validate=validate.Length(min=1, max=2048),
        metadata={
            "description": "as for POST /models: a path inside the data root, an http(s) URL, "
            "or synthetic[:N]",
            "example": "dataset_SCL.csv",
        },
    )
    holdout = fields.Nested(
        ComparisonHoldoutSchema,
        load_default=dict,
        metadata={"description": "which flights of the dataset; default: all of them"},
    )


class ComparisonCreatedSchema(Schema):
    id = fields.String()
    status = fields.String(metadata={"example": "pending"})


class ComparisonSchema(Schema):
    id = fields.String()
    status = fields.String(metadata={"description": "pending, running, completed or failed"})
    request = fields.Dict()
    error = fields.String(metadata={"description": "why it failed"})
    flights = fields.Integer(metadata={"description": "holdout flights every model scored"})
    delay_rate = fields.Float()
    scheduled_from = fields.String()
    scheduled_to = fields.String()
    warnings = fields.List(
        fields.String(),
        metadata={
            "description": "in words: a model scored on flights it was fitted on (in-sample "
            "figures, not an estimate for new flights)"
        },
    )
    models = fields.List(
        fields.Dict(),
        metadata={
            "description": "per model, in the requested order: model_id, model_type, features, "
            "threshold, metrics (roc_auc, pr_auc, brier, log_loss, ece, mean_predicted, "
            "precision, recall, f1 at its threshold), holdout_flights_in_training (null: "
            "unknown, the dataset is not the model's own) and curves (roc, precision_recall, "
            "reliability points)"
        },
    )


# -- retraining schedules (issue 12) ---------------------------------------------------------------
_RULE_DEFAULTS = PromotionRule().to_dict()
EXAMPLE_SCHEDULE = {
    "name": "monthly",
    "dataset": "dataset_SCL.csv",
    "cron": "0 3 1 * *",
    "timezone": "America/Santiago",
    "model": {"model_type": "lightgbm", "features": "schedule"},
    "rule": {"metric": "roc_auc", "min_margin": 0.005, "calibration_not_worse": True},
}


class PromotionRuleSchema(StrictSchema):
    metric = fields.String(
        load_default=_RULE_DEFAULTS["metric"],
        validate=validate.OneOf(list(RULE_METRICS)),
        metadata={"description": "compared on each evaluation set (higher AUCs, lower losses win)"},
    )
    min_margin = fields.Float(
        load_default=_RULE_DEFAULTS["min_margin"],
        validate=validate.Range(0.0, MAX_MARGIN),
        metadata={
            "description": "the challenger must beat the champion on the metric by at least "
            "this much (and by more than nothing)"
        },
    )
    calibration_not_worse = fields.Boolean(
        load_default=_RULE_DEFAULTS["calibration_not_worse"],
        metadata={"description": "the challenger's ECE must not exceed the champion's"},
    )
    ece_tolerance = fields.Float(
        load_default=_RULE_DEFAULTS["ece_tolerance"],
        validate=validate.Range(0.0, MAX_MARGIN),
        metadata={"description": "how much higher the challenger's ECE may be"},
    )
    min_outcome_flights = fields.Integer(
        load_default=_RULE_DEFAULTS["min_outcome_flights"],
        strict=True,
        validate=validate.Range(MIN_OUTCOME_FLIGHTS, MAX_OUTCOME_FLIGHTS),
        metadata={
            "description": "the prediction log's flights with outcomes are a second evaluation "
            "set once this many (of both classes) are readable by both models"
        },
    )


class ChallengerSettingsSchema(TrainingSettingsSchema):
    """A schedule's challengers always hold out the most recent flights (split time, no
    cutoff) and are never refit, so these settings leave those out."""


_TIMING_FIELDS: dict[str, Any] = {
    "every_seconds": {
        "validate": validate.Range(1, MAX_INTERVAL_SECONDS),
        "metadata": {
            "description": "run every N seconds (at least FLIGHT_DELAY_SCHEDULE_MIN_INTERVAL_SECONDS, "
            "60 by default); or give cron",
            "example": 86400,
        },
    },
    "cron": {
        "validate": validate.Length(1, MAX_CRON_LENGTH),
        "metadata": {
            "description": "five fields, minute hour day-of-month month day-of-week, in "
            "timezone; or give every_seconds",
            "example": "0 3 1 * *",
        },
    },
    "timezone": {
        "validate": validate.Length(1, 64),
        "metadata": {"description": "IANA time zone of cron", "example": "America/Santiago"},
    },
}


class ScheduleCreateSchema(StrictSchema):
    name = fields.String(
        load_default="",
        validate=validate.Length(max=100),
        metadata={"description": "for people (the dashboard, the deployment history)"},
    )
    dataset = fields.String(
        required=True,
        validate=validate.Length(min=1, max=2048),
        metadata={
            "description": DATASET_REFERENCE + "; read again at every run, so a folder where "
            "new monthly files land trains on the latest data",
            "example": "dataset_SCL.csv",
        },
    )
    every_seconds = fields.Integer(strict=True, **_TIMING_FIELDS["every_seconds"])
    cron = fields.String(**_TIMING_FIELDS["cron"])
    timezone = fields.String(load_default="UTC", **_TIMING_FIELDS["timezone"])
    model = fields.Nested(
        ChallengerSettingsSchema,
        load_default=dict,
        metadata={"description": "the challenger's training settings (POST /models' defaults)"},
    )
    rule = fields.Nested(
        PromotionRuleSchema,
        load_default=dict,
        metadata={"description": "when a challenger replaces the deployed model"},
    )
    paused = fields.Boolean(
        load_default=False, metadata={"description": "created without a next run"}
    )


class SchedulePatchSchema(StrictSchema):
    """Only the given fields change; ``model`` and ``rule`` are replaced whole (defaults for
    what they leave out); every_seconds replaces cron and the other way round. At least one
    field (minProperties 1 in the document): an empty change is a mistake, not a no-op."""

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError("give at least one field to change")

    name = fields.String(validate=validate.Length(max=100))
    dataset = fields.String(validate=validate.Length(min=1, max=2048))
    every_seconds = fields.Integer(strict=True, **_TIMING_FIELDS["every_seconds"])
    cron = fields.String(**_TIMING_FIELDS["cron"])
    timezone = fields.String(**_TIMING_FIELDS["timezone"])
    model = fields.Nested(ChallengerSettingsSchema)
    rule = fields.Nested(PromotionRuleSchema)
    paused = fields.Boolean(metadata={"description": "true: no further runs until false"})


class ScheduleSchema(Schema):
    id = fields.String(metadata={"example": EXAMPLE_ID})
    name = fields.String()
    dataset = fields.String()
    every_seconds = fields.Integer(allow_none=True)
    cron = fields.String(allow_none=True)
    timezone = fields.String()
    timing = fields.String(metadata={"example": "cron '0 3 1 * *' (America/Santiago)"})
    model = fields.Dict(metadata={"description": "the challengers' training settings"})
    rule = fields.Dict(metadata={"description": "the promotion rule"})
    paused = fields.Boolean()
    paused_reason = fields.String(allow_none=True)
    next_run_at = fields.String(allow_none=True, metadata={"description": "UTC; null while paused"})
    runs = fields.Integer(metadata={"description": "runs started so far"})
    skipped = fields.Integer(
        metadata={"description": "due times skipped because the previous run had not finished"}
    )
    active_run = fields.String(allow_none=True, metadata={"description": "the unfinished run"})
    last_run_id = fields.String(allow_none=True)
    created_at = fields.String()
    created_by = fields.String(metadata={"description": "the key's scopes and fingerprint"})
    updated_at = fields.String()


class ScheduleRunQuerySchema(StrictSchema):
    limit = fields.Integer(
        load_default=20, validate=validate.Range(1, 100), metadata={"description": "1-100"}
    )
    before = fields.Integer(
        validate=validate.Range(1, 2**31),
        metadata={"description": "only runs numbered below this (the next page)"},
    )


class ScheduleRunSchema(Schema):
    id = fields.String()
    schedule_id = fields.String()
    number = fields.Integer()
    trigger = fields.String(metadata={"description": "schedule (a due time) or manual"})
    requested_by = fields.String(metadata={"description": "the beat, or the key that asked"})
    scheduled_for = fields.String(metadata={"description": "the due time it ran for (UTC)"})
    created_at = fields.String()
    status = fields.String(
        metadata={"description": "queued, training, evaluating, completed or failed"}
    )
    challenger_id = fields.String(allow_none=True)
    challenger_deleted_at = fields.String(
        allow_none=True,
        metadata={
            "description": "when the challenger, not promoted, was deleted (beyond "
            "FLIGHT_DELAY_SCHEDULE_KEEP_REJECTED); the run keeps its figures"
        },
    )
    champion_id = fields.String(
        allow_none=True, metadata={"description": "the model deployed when it was evaluated"}
    )
    decision = fields.String(allow_none=True, metadata={"description": "promoted or kept"})
    reason = fields.String(allow_none=True, metadata={"description": "why, in one line"})
    reasons = fields.List(fields.String(), metadata={"description": "why, one line per check"})
    evaluation = fields.Dict(
        allow_none=True,
        metadata={
            "description": "holdout: the flights, and each model's metrics (and, for one run, "
            "curves) on them; outcomes: the same on the prediction log's flights with "
            "outcomes, or why they were not used"
        },
    )
    error = fields.String(allow_none=True, metadata={"description": "why the run failed"})
    attempts = fields.Integer(
        metadata={"description": "evaluation attempts (a lost worker's evaluation is retried)"}
    )
    finished_at = fields.String(allow_none=True)
    deployment_version = fields.Integer(
        allow_none=True, metadata={"description": "the deployment a promotion made"}
    )
    dataset = fields.String()
    settings = fields.Dict(metadata={"description": "the schedule's model settings it ran with"})
    rule = fields.Dict(metadata={"description": "the rule it decided with"})
