"""The artifact store as a folder: ``<root>/<model id>/`` (the default; one machine or a
shared volume)."""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from flight_delay.storage.store import (
    METADATA_FILE,
    ArtifactStoreUnavailable,
    CorruptArtifact,
    ModelAlreadyPublished,
    ModelNotPublished,
    check_model_id,
    read_metadata,
)

#: folders being published or deleted; never listed as models
HIDDEN_PREFIX = "."


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.description = f"folder {self.root}"

    def path(self, model_id: str) -> Path:
        return self.root / check_model_id(model_id)

    def publish(self, model_id: str, directory: Path) -> None:
        """One rename: the model appears whole or not at all, and a rename onto a folder that
        holds files fails, so of two publishers of one id exactly one wins. ``directory`` is
        moved (copied first when it is on another file system)."""
        final = self.path(model_id)
        directory = Path(directory)
        if not (directory / METADATA_FILE).is_file():
            raise CorruptArtifact(f"{directory}: no {METADATA_FILE} to publish")
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(directory, final)
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise self._refused(model_id, exc) from exc
        staged = self.root / f"{HIDDEN_PREFIX}publish-{model_id}-{uuid.uuid4().hex[:8]}"
        shutil.copytree(directory, staged)
        try:
            os.rename(staged, final)
        except OSError as exc:
            shutil.rmtree(staged, ignore_errors=True)
            raise self._refused(model_id, exc) from exc
        shutil.rmtree(directory, ignore_errors=True)

    def _refused(self, model_id: str, exc: OSError) -> Exception:
        if (self.path(model_id) / METADATA_FILE).is_file():
            return ModelAlreadyPublished(f"model {model_id} is already published")
        return ArtifactStoreUnavailable(
            f"{self.description}: cannot publish model {model_id} ({exc.strerror or exc})"
        )

    def fetch(self, model_id: str, destination: Path) -> Path:
        """The store's own folder (no copy); the loader checks each file's sha256."""
        folder = self.path(model_id)
        if not (folder / METADATA_FILE).is_file():
            raise ModelNotPublished(f"model {model_id} is not in the store")
        return folder

    def metadata(self, model_id: str) -> dict[str, Any]:
        meta = self.path(model_id) / METADATA_FILE
        try:
            return read_metadata(meta.read_bytes(), model_id)
        except FileNotFoundError as exc:
            raise ModelNotPublished(f"model {model_id} is not in the store") from exc

    def delete(self, model_id: str) -> None:
        folder = self.path(model_id)
        if not folder.exists():
            return
        # out of sight first (one rename), then removed: a reader sees all of it or nothing
        doomed = self.root / f"{HIDDEN_PREFIX}delete-{model_id}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(folder, doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def model_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if not entry.name.startswith(HIDDEN_PREFIX) and (entry / METADATA_FILE).is_file()
        )

    def check(self) -> None:
        if not self.root.is_dir():
            raise ArtifactStoreUnavailable(f"{self.description}: not a folder")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise ArtifactStoreUnavailable(f"{self.description}: not readable")
