"""A host's copies of the models it loads, fetched from the artifact store and checked.

Each copy is ``<cache dir>/<model id>/``, written by the store under a temporary name and
renamed when every file matched its sha256 in ``model.json``: a copy that exists is whole. A
copy found damaged later (a disk that filled, a truncated file) is removed and fetched again,
never loaded. With a local store the store's own folder is used, without a copy.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from flight_delay.errors import ModelArtifactError
from flight_delay.storage.local import LocalStore
from flight_delay.storage.store import (
    METADATA_FILE,
    ArtifactStore,
    CorruptArtifact,
    ModelNotPublished,
    check_model_id,
)

if TYPE_CHECKING:
    from flight_delay.ml import TrainedModel

log = logging.getLogger(__name__)
Loaded = TypeVar("Loaded")
#: a staging folder older than this was left by a process that died while fetching
STALE_STAGING_SECONDS = 3600.0


class ModelCache:
    def __init__(self, store: ArtifactStore, directory: Path) -> None:
        self.store = store
        self.directory = Path(directory)

    @property
    def copies(self) -> bool:
        """False for a local store: its folder is read in place."""
        return not isinstance(self.store, LocalStore)

    def folder(self, model_id: str) -> Path:
        """A local folder with the model's checked files, fetched if this host has none.

        A fetch whose file does not match its sha256 is logged and tried once more (a
        transfer can be cut); a second mismatch raises :class:`CorruptArtifact`."""
        check_model_id(model_id)
        if not self.copies:
            return self.store.fetch(model_id, self.directory / model_id)
        cached = self.directory / model_id
        if (cached / METADATA_FILE).is_file():
            return cached
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            return self.store.fetch(model_id, cached)
        except CorruptArtifact as exc:
            log.warning("model %s: %s; fetching it again", model_id, exc)
            return self.store.fetch(model_id, cached)

    def load(self, model_id: str, loader: Callable[[Path], Loaded]) -> Loaded:
        """``loader(folder)``; a cached copy the loader finds damaged is removed, fetched again
        and loaded once more."""
        folder = self.folder(model_id)
        try:
            return loader(folder)
        except ModelArtifactError as exc:
            if not self.copies:
                raise
            log.warning("cached copy of model %s is damaged (%s); fetching it again", model_id, exc)
            self.discard(model_id)
            return loader(self.folder(model_id))

    def load_model(self, model_id: str, compiled_trees: bool = False) -> TrainedModel:
        """The model, loaded from this host's checked copy (see :meth:`load`)."""
        from flight_delay.ml import load_model  # the model library only where models are loaded

        return self.load(model_id, lambda folder: load_model(folder, compiled_trees=compiled_trees))

    def is_published(self, model_id: str) -> bool:
        """Whether the store still holds the model (ArtifactStoreUnavailable when it cannot say)."""
        try:
            self.store.metadata(model_id)
        except (ModelNotPublished, CorruptArtifact):
            return False
        return True

    def discard(self, model_id: str) -> None:
        """Remove this host's copy (out of sight in one rename, then deleted)."""
        if not self.copies:
            return
        cached = self.directory / check_model_id(model_id)
        doomed = self.directory / f".discard-{model_id}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(cached, doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def cached_ids(self) -> list[str]:
        if not self.copies or not self.directory.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.directory.iterdir()
            if not entry.name.startswith(".") and (entry / METADATA_FILE).is_file()
        )

    def evict(self, keep: Iterable[str]) -> list[str]:
        """Remove every copy but ``keep``'s (the deployed model and the previous one), and
        staging folders left by fetches that died; returns the evicted ids."""
        if not self.copies or not self.directory.is_dir():
            return []
        wanted = set(keep)
        evicted = [model_id for model_id in self.cached_ids() if model_id not in wanted]
        for model_id in evicted:
            self.discard(model_id)
        cutoff = time.time() - STALE_STAGING_SECONDS
        for entry in self.directory.iterdir():
            if entry.name.startswith((".fetch-", ".discard-")):
                try:
                    if entry.stat().st_mtime < cutoff:
                        shutil.rmtree(entry, ignore_errors=True)
                except FileNotFoundError:
                    continue
        return evicted
