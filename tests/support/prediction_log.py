"""The prediction log, driven by hand: what the API's buffer thread and the writer process do."""

from __future__ import annotations

import contextlib
from typing import Any

import redis
from flask import Flask

from flight_delay.prediction_log.store import PredictionStore
from flight_delay.prediction_log.writer import BacklogFull, LogWriter, stream_key


def write_log(app: Flask, stack_settings: dict[str, Any]) -> None:
    """What the buffer's thread and the writer process do, now: stream, then SQL."""
    with contextlib.suppress(BacklogFull):  # the stream's budget is spent: the rest waits
        app.extensions["prediction_log"].buffer.flush()
    client = redis.Redis.from_url(stack_settings["REDIS_URL"], decode_responses=True)
    store = PredictionStore.from_url(stack_settings["PREDICTION_LOG_URL"])
    writer = LogWriter(client, store, stream_key(stack_settings["KEY_PREFIX"]), consumer="test")
    writer.ensure_group()
    while client.xlen(writer.stream):
        writer.run_once(block_ms=100)
    store.engine.dispose()
