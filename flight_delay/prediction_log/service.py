"""The prediction log as an app extension: the buffer ``/predict`` writes to and the store the
read endpoints query, both built from the app's configuration."""

from __future__ import annotations

from typing import Any

from flight_delay.prediction_log.buffer import LogBuffer
from flight_delay.prediction_log.store import PredictionStore
from flight_delay.prediction_log.writer import stream_key


class PredictionLog:
    """Created unbound; ``init_app`` gives each app its own (``app.extensions["prediction_log"]``)."""

    def __init__(self) -> None:
        self.buffer: LogBuffer | None = None
        self._url = ""
        self._store: PredictionStore | None = None

    def init_app(self, app: Any) -> None:
        bound = PredictionLog()
        bound._url = str(app.config["PREDICTION_LOG_URL"])
        if app.config["PREDICTION_LOG"]:
            registry = app.extensions["model_registry"]
            bound.buffer = LogBuffer(
                registry.redis,
                stream_key(str(app.config["KEY_PREFIX"])),
                max_bytes=int(app.config["PREDICTION_LOG_BUFFER_BYTES"]),
                backlog_bytes=int(app.config["PREDICTION_LOG_BACKLOG_BYTES"]),
            )
        app.extensions["prediction_log"] = bound

    @property
    def store(self) -> PredictionStore:
        """The database, connected on first use (reads only: the writer process writes)."""
        if self._store is None:
            self._store = PredictionStore.from_url(self._url)
        return self._store
