"""The deployed model inside one API process: load, cache by deployment version, predict.

Each process asks Redis for the deployment pointer at most once per ``DEPLOYMENT_POLL_SECONDS``
(not on every request), so a new deployment is served everywhere within that interval plus the
load time, and Redis round trips do not dominate prediction latency. A model that fails to load
leaves the previous one serving; the failure shows in ``/readyz``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flight_delay.errors import FlightDelayError
from flight_delay.ml import TrainedModel, load_model
from flight_delay.registry import ModelRegistry

log = logging.getLogger(__name__)


class NoDeployedModel(FlightDelayError):
    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "no model is deployed"
            + (f" ({detail})" if detail else "")
            + "; train one with POST /models and deploy it with PUT /deploy?model-id=<id>"
        )


@dataclass
class LoadedModel:
    model_id: str
    version: int
    model: TrainedModel


class DeployedModelCache:
    """The process's view of the deployed model. Thread-safe; created unbound."""

    def __init__(self) -> None:
        self._registry: ModelRegistry | None = None
        self._model_dir = Path("models")
        self._poll_seconds = 0.25
        self._lock = threading.Lock()
        self._current: LoadedModel | None = None
        self._seen_version = -1
        self._checked_at = 0.0
        self._background: threading.Thread | None = None
        self.load_error: str | None = None

    def init_app(self, app: Any) -> None:
        """Give ``app`` its own cache (``app.extensions["deployed_model"]``)."""
        cache = DeployedModelCache()
        cache._registry = app.extensions["model_registry"]
        cache._model_dir = Path(app.config["MODEL_DIR"])
        cache._poll_seconds = float(app.config["DEPLOYMENT_POLL_SECONDS"])
        app.extensions["deployed_model"] = cache

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def get(self) -> LoadedModel:
        """The model to predict with. Without the background refresher (tests, a plain Flask
        server), the request that finds the interval passed does the check itself."""
        if self._background is None and time.monotonic() - self._checked_at >= self._poll_seconds:
            try:
                self.refresh()
            except Exception:  # Redis away for a moment: keep serving what is loaded
                if self._current is None:
                    raise
                log.exception("checking the deployment failed; serving %s", self._current.model_id)
        current = self._current
        if current is None:
            raise NoDeployedModel(self.load_error or "")
        return current

    def start_background_refresh(self) -> None:
        """Check for new deployments every poll interval in a daemon thread of this process, so
        every process switches within the interval plus the load time, whether or not requests
        reach it, and no request waits for a model to load. Call it after fork."""
        if self._background is not None:
            return

        def loop() -> None:
            while True:
                try:
                    self.refresh(force=True)
                except Exception:  # Redis away for a moment: keep serving, try again
                    log.exception("checking the deployment failed")
                time.sleep(self._poll_seconds)

        self._background = threading.Thread(target=loop, name="deployment-refresh", daemon=True)
        self._background.start()

    def refresh(self, force: bool = False) -> None:
        """Load the deployed model if the deployment changed since the last look."""
        assert self._registry is not None, "init_app was not called"
        with self._lock:
            if not force and time.monotonic() - self._checked_at < self._poll_seconds:
                return  # another thread just looked
            model_id, version = self._registry.deployment()
            self._checked_at = time.monotonic()
            if version == self._seen_version or model_id is None:
                return
            try:
                model = load_model(self._model_dir / model_id)
                model.limit_threads(1)
            except (FlightDelayError, OSError) as exc:
                # keep serving the previous model; remember the version so we do not retry a
                # broken artifact on every poll
                self.load_error = f"model {model_id} (deployment {version}) failed to load: {exc}"
                log.error(self.load_error)
                self._seen_version = version
                return
            self._current = LoadedModel(model_id, version, model)
            self._seen_version = version
            self.load_error = None
            log.info("serving model %s (deployment %d)", model_id, version)
