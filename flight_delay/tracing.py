"""OpenTelemetry tracing across hosts: off by default, on with the standard ``OTEL_*`` variables.

Tracing starts when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``) or an
OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``..._TRACES_ENDPOINT``); everything else
(``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, the exporter's headers and timeouts, the
sampler) is the SDK's own. Flask requests, Celery tasks (the trace travels in the task message's
headers, so a job's spans on a worker join the request that queued it), Redis commands, SQL and
the object store's calls (botocore) become spans; each process says which host it runs on.
``OTEL_SDK_DISABLED=true`` turns it off again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from typing import Any

log = logging.getLogger(__name__)

_configured: str | None = None  # the role this process was configured for


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(
        exporter
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure(role: str, environ: Mapping[str, str] | None = None) -> bool:
    """Set this process's tracer provider and instrument its libraries, once per process;
    ``role`` (``api``, ``worker``) is the default service name's suffix. False when off."""
    global _configured
    environ = os.environ if environ is None else environ
    if _configured is not None:
        return True
    if not enabled(environ):
        return False
    # imported here: a process without tracing never loads the SDK
    from opentelemetry import trace
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create(
        {
            "service.name": environ.get("OTEL_SERVICE_NAME") or f"flight-delay-{role}",
            "host.name": socket.gethostname(),
            "process.pid": os.getpid(),
            "flight_delay.role": role,
        }
    )
    provider = TracerProvider(resource=resource)
    for name in (environ.get("OTEL_TRACES_EXPORTER") or "otlp").split(","):
        name = name.strip().lower()
        if name == "console":  # one JSON object per line (the SDK's default spans many lines)
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            console = ConsoleSpanExporter(formatter=_one_line)
            provider.add_span_processor(SimpleSpanProcessor(console))
        elif name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            raise ValueError(f"OTEL_TRACES_EXPORTER: {name!r} is not otlp, console or none")
    trace.set_tracer_provider(provider)
    RedisInstrumentor().instrument()
    SQLAlchemyInstrumentor().instrument()
    BotocoreInstrumentor().instrument()
    CeleryInstrumentor().instrument()
    _configured = role
    log.info("tracing on: service %s", resource.attributes["service.name"])
    return True


def instrument_app(app: Any) -> None:
    """Spans for the app's requests (when tracing is on)."""
    if _configured is None:
        return
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    FlaskInstrumentor().instrument_app(app, excluded_urls="healthz,readyz,metrics")


def _one_line(span: Any) -> str:
    return str(span.to_json(indent=None)) + os.linesep


def is_on() -> bool:
    return _configured is not None


def current_carrier() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``), to be picked up elsewhere;
    empty when tracing is off."""
    if _configured is None:
        return {}
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier


@contextlib.contextmanager
def span_from(name: str, carrier: Mapping[str, str], **attributes: Any) -> Iterator[None]:
    """A span of this process whose parent is the context in ``carrier`` (another process's,
    another host's); nothing when tracing is off."""
    if _configured is None:
        yield
        return
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    tracer = trace.get_tracer("flight_delay")
    with tracer.start_as_current_span(name, context=extract(dict(carrier)), attributes=attributes):
        yield
