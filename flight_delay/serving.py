"""The deployed model inside one API process: load, cache by deployment version, predict.

Each process asks Redis for the deployment pointer at most once per ``DEPLOYMENT_POLL_SECONDS``
(not on every request), so a new deployment is served everywhere within that interval plus the
load time, and Redis round trips do not dominate prediction latency. A model that fails to load
leaves the previous one serving; the failure shows in ``/readyz``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from flight_delay import tracing
from flight_delay.errors import FlightDelayError
from flight_delay.ml import TrainedModel
from flight_delay.registry import ModelRegistry
from flight_delay.storage import ArtifactStoreUnavailable, ModelCache

log = logging.getLogger(__name__)


class NoDeployedModel(FlightDelayError):
    http_status = 503

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


#: how often a process asks the artifact store whether the served model's files are still there
FILES_CHECK_SECONDS = 5.0
#: a failed load is tried again after this many seconds, doubling up to the maximum
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0


class DeployedModelCache:
    """The process's view of the deployed model. Thread-safe; created unbound.

    The deployment is identified by (model id, version): a Redis that lost its data and counts
    versions again from 1 is still noticed. Redis calls and model loads happen outside the lock
    that guards the loaded model, so requests never wait for them; one load runs at a time. A
    model that fails to load (corrupt, or its files gone) is tried again with backoff, and
    meanwhile the process keeps serving what it has.
    """

    def __init__(self) -> None:
        self._registry: ModelRegistry | None = None
        self._models: ModelCache | None = None
        self._poll_seconds = 0.25
        self._compiled_trees = True
        self._lock = threading.Lock()  # guards the fields below; held for assignments only
        self._loading = threading.Lock()  # one load at a time
        self._current: LoadedModel | None = None
        self._checked_at = 0.0
        self._failed: tuple[str, int] | None = None
        self._retry_at = 0.0
        self._retry_delay = RETRY_FIRST_SECONDS
        self._background: threading.Thread | None = None
        self.load_error: str | None = None
        self._served_id: str | None = None
        #: the last look at the served model's files: (when, model id, present, store problem)
        self._files: tuple[float, str | None, bool | None, str | None] = (-1e9, None, None, None)
        self._previous_id: str | None = None
        #: the deployment Redis named at the last look, (model id, version)
        self.wanted: tuple[str | None, int] = (None, 0)

    def init_app(self, app: Any) -> None:
        """Give ``app`` its own cache (``app.extensions["deployed_model"]``)."""
        cache = DeployedModelCache()
        cache._registry = app.extensions["model_registry"]
        cache._models = app.extensions["model_cache"]
        cache._poll_seconds = float(app.config["DEPLOYMENT_POLL_SECONDS"])
        cache._compiled_trees = bool(app.config["COMPILED_TREES"])
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
                log.warning("checking the deployment failed; serving %s", self._current.model_id)
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
                    log.warning("checking the deployment failed", exc_info=True)
                time.sleep(self._poll_seconds)

        def check_loop() -> None:
            # its own thread: a hung store holds this one, never the deployment refresh, and
            # /readyz never waits on the store
            while True:
                try:
                    self.check_files()
                except Exception:
                    log.warning("checking the served model's files failed", exc_info=True)
                time.sleep(FILES_CHECK_SECONDS)

        self._background = threading.Thread(target=loop, name="deployment-refresh", daemon=True)
        self._background.start()
        threading.Thread(target=check_loop, name="artifact-check", daemon=True).start()

    def refresh(self, force: bool = False) -> None:
        """Load the deployed model if the deployment changed since the last look."""
        assert self._registry is not None, "init_app was not called"
        if not force and time.monotonic() - self._checked_at < self._poll_seconds:
            return  # another thread just looked
        model_id, version = self._registry.deployment()  # outside the lock
        self._checked_at = time.monotonic()
        self.wanted = (model_id, version)
        current = self._current
        if model_id is None or (
            current and (current.model_id, current.version) == (model_id, version)
        ):
            return
        if (model_id, version) == self._failed and time.monotonic() < self._retry_at:
            return  # failed before: wait for the backoff, even when forced
        if not self._loading.acquire(blocking=False):
            return  # another thread is loading
        try:
            self._load(model_id, version)
        finally:
            self._loading.release()

    def load(self, model_id: str) -> TrainedModel:
        """The model as this process serves it (compiled trees when configured, one thread);
        raises ModelArtifactError (or OSError) when its files do not load."""
        assert self._models is not None, "init_app was not called"
        model = self._models.load_model(model_id, compiled_trees=self._compiled_trees)
        model.limit_threads(1)
        return model

    def install(self, model_id: str, version: int, model: TrainedModel) -> None:
        """Serve ``model``, loaded by :meth:`load`, as deployment ``version`` (what PUT /deploy
        does with the model it checked, instead of loading it again); an older version than
        the one served is ignored."""
        with self._lock:
            current = self._current
            if current is not None and current.version > version:
                return
            self._current = LoadedModel(model_id, version, model)
            self._failed = None
            self.load_error = None
        log.info(
            "serving model %s (deployment %d); trees: %s", model_id, version, model.forest_status
        )
        self._served(model_id)

    def _load(self, model_id: str, version: int) -> None:
        carrier: dict[str, str] = {}
        if tracing.is_on() and self._registry is not None:
            with contextlib.suppress(Exception):  # tracing never stops a load
                carrier = self._registry.deploy_trace(version)
        try:
            with tracing.span_from(
                "load deployed model", carrier, model_id=model_id, version=version
            ):
                model = self.load(model_id)
        except (FlightDelayError, OSError) as exc:
            # keep serving the previous model; try this one again later, backing off
            with self._lock:
                again = self._failed == (model_id, version)
                self._retry_delay = (
                    min(self._retry_delay * 2, RETRY_MAX_SECONDS) if again else RETRY_FIRST_SECONDS
                )
                self._failed = (model_id, version)
                self._retry_at = time.monotonic() + self._retry_delay
                self.load_error = f"model {model_id} (deployment {version}) failed to load: {exc}"
            log.error("%s; trying again in %.0f s", self.load_error, self._retry_delay)
            return
        with self._lock:
            self._current = LoadedModel(model_id, version, model)
            self._failed = None
            self.load_error = None
        log.info(
            "serving model %s (deployment %d); trees: %s", model_id, version, model.forest_status
        )
        self._served(model_id)

    def check_files(self) -> None:
        """Ask the artifact store whether it still holds the served model's files."""
        current = self._current
        if current is None or self._models is None:
            return
        try:
            present, problem = self._models.is_published(current.model_id), None
        except ArtifactStoreUnavailable as exc:
            present, problem = None, str(exc)
        except OSError as exc:  # a local store's folder that cannot be read
            present, problem = None, f"{type(exc).__name__}: {exc.strerror or exc}"
        self._files = (time.monotonic(), current.model_id, present, problem)

    def files_status(self) -> tuple[bool | None, str | None]:
        """(whether the store still holds the served model's files, why it cannot say), as
        the background thread last found (every FILES_CHECK_SECONDS); without that thread,
        checked now when the last look is older."""
        current = self._current
        checked_at, model_id, present, problem = self._files
        if self._background is None and current is not None:
            stale = time.monotonic() - checked_at >= FILES_CHECK_SECONDS
            if stale or model_id != current.model_id:
                self.check_files()
                _, _, present, problem = self._files
                model_id = current.model_id
        if current is None or model_id != current.model_id:
            return None, None  # not looked at yet: the background thread does within seconds
        return present, problem

    def _served(self, model_id: str) -> None:
        """A model is served: this host's copies of models other than it and the one before
        it are evicted (a rollback finds the previous one at hand)."""
        with self._lock:
            if model_id != self._served_id:
                self._previous_id, self._served_id = self._served_id, model_id
            keep = [i for i in (self._served_id, self._previous_id) if i]
        if self._models is not None:
            try:
                evicted = self._models.evict(keep)
            except OSError:
                log.warning("evicting cached models failed", exc_info=True)
                return
            if evicted:
                log.info("evicted cached models %s", ", ".join(evicted))
