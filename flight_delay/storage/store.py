"""The artifact store's interface, its errors, and the choice of store by URL.

A model is a folder of files: the payload (``model.joblib``, the compiled forest) and
``model.json``, which records each payload file's sha256. A store publishes the payload first
and ``model.json`` last, and creates ``model.json`` only where none exists: a reader that sees
``model.json`` sees a whole model, and a retried training attempt never replaces a model another
attempt already published.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from flight_delay.errors import Conflict, FlightDelayError, NotFound

METADATA_FILE = "model.json"  # flight_delay.ml.artifacts writes it; the store only reads it
#: what a model id may be: the registry's ids, nothing that can leave a folder or a prefix
MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class ModelNotPublished(NotFound):
    """The store holds no model of that id (never published, or deleted)."""


class ModelAlreadyPublished(Conflict):
    """A model of that id is already published; it is never overwritten."""


class CorruptArtifact(FlightDelayError):
    """A fetched file differs from the sha256 that ``model.json`` records for it."""

    http_status = 502


class ArtifactStoreUnavailable(FlightDelayError):
    """The store cannot be reached or refused the request (not a missing model)."""

    http_status = 503


def check_model_id(model_id: str) -> str:
    if not isinstance(model_id, str) or not MODEL_ID.fullmatch(model_id) or ".." in model_id:
        raise ValueError(f"not a model id: {model_id!r}")
    return model_id


def payload_digests(metadata: Mapping[str, Any]) -> dict[str, str]:
    """The payload files ``model.json`` describes, by name, with their recorded sha256."""
    files: dict[str, str] = {}
    for section in ("artifact", "compiled_trees"):
        entry = metadata.get(section)
        if not isinstance(entry, Mapping) or not entry.get("file") or not entry.get("sha256"):
            continue
        if section == "compiled_trees" and not entry.get("compiled"):
            continue
        name = str(entry["file"])
        if "/" in name or name in (".", "..", METADATA_FILE):
            raise CorruptArtifact(f"{METADATA_FILE} names a file outside its model: {name!r}")
        files[name] = str(entry["sha256"])
    if not files:
        raise CorruptArtifact(f"{METADATA_FILE} lists no payload file")
    return files


def read_metadata(raw: bytes, where: str) -> dict[str, Any]:
    try:
        metadata = json.loads(raw)
    except ValueError as exc:
        raise CorruptArtifact(f"{where}: {METADATA_FILE} is not JSON ({exc})") from exc
    if not isinstance(metadata, dict):
        raise CorruptArtifact(f"{where}: {METADATA_FILE} is not an object")
    return metadata


class ArtifactStore(Protocol):
    """Where every host finds the models (a folder on one machine, an object store on many)."""

    #: where it is, for logs and /readyz (no credentials)
    description: str

    def publish(self, model_id: str, directory: Path) -> None:
        """Publish the model saved in ``directory``: payload first, ``model.json`` last and only
        if none exists (:class:`ModelAlreadyPublished` otherwise). ``directory`` may be consumed."""

    def fetch(self, model_id: str, destination: Path) -> Path:
        """A local folder holding the model's files, each checked against ``model.json``.
        ``destination`` (absent; its parent exists) is where a remote store writes them; a
        local store answers with its own folder. :class:`ModelNotPublished` when absent."""

    def metadata(self, model_id: str) -> dict[str, Any]:
        """The model's ``model.json``. :class:`ModelNotPublished` when absent."""

    def delete(self, model_id: str) -> None:
        """Remove the model's files, ``model.json`` first (readers stop seeing it); a model
        that is not there is not an error."""

    def model_ids(self) -> list[str]:
        """Ids of the published models (those whose ``model.json`` exists), sorted."""

    def check(self) -> None:
        """Raise :class:`ArtifactStoreUnavailable` when the store cannot be used now."""


def open_store(url: str, s3_settings: Mapping[str, Any] | None = None) -> ArtifactStore:
    """``s3://bucket/prefix`` -> :class:`~flight_delay.storage.s3.S3Store`; anything else is
    a folder (``file:///srv/models`` or a plain path) -> :class:`~flight_delay.storage.local.LocalStore`."""
    if url.startswith("s3://"):
        from flight_delay.storage.s3 import S3Store  # boto3 only where it is used

        return S3Store.from_url(url, s3_settings or {})
    if "://" in url and not url.startswith("file://"):
        raise ValueError(f"artifact store URL: unsupported scheme in {url!r} (s3:// or a folder)")
    return _local(url.removeprefix("file://"))


def _local(path: str) -> ArtifactStore:
    from flight_delay.storage.local import LocalStore

    return LocalStore(Path(path))
