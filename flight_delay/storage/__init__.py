"""Where trained models live: an artifact store shared by every host, and a cache on each.

- ``store``: the interface (publish, fetch, delete, list) and ``open_store(url)``;
- ``local``: a folder (the default, what ``make run`` uses);
- ``s3``: any S3-compatible object store, through boto3;
- ``cache``: a host's checked copies of the models it loads.

Every process reads models through ``app.extensions["model_cache"]`` and writes them through
``app.extensions["artifact_store"]`` (:func:`init_app`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flight_delay.storage.cache import ModelCache
from flight_delay.storage.local import LocalStore
from flight_delay.storage.store import (
    ArtifactStore,
    ArtifactStoreUnavailable,
    CorruptArtifact,
    ModelAlreadyPublished,
    ModelNotPublished,
    open_store,
)

__all__ = [
    "ArtifactStore",
    "ArtifactStoreUnavailable",
    "CorruptArtifact",
    "ModelAlreadyPublished",
    "ModelCache",
    "ModelNotPublished",
    "init_app",
    "open_store",
    "scratch_root",
    "store_from_config",
]


def store_from_config(config: Mapping[str, Any]) -> ArtifactStore:
    url = str(config.get("ARTIFACT_URL") or "")
    if not url:
        return LocalStore(Path(config["MODEL_DIR"]))
    return open_store(
        url,
        {
            "endpoint_url": config.get("S3_ENDPOINT_URL"),
            "region": config.get("S3_REGION"),
            "access_key_id": config.get("S3_ACCESS_KEY_ID"),
            "secret_access_key": config.get("S3_SECRET_ACCESS_KEY"),
            "connect_timeout": float(config.get("S3_CONNECT_TIMEOUT_SECONDS", 3.0)),
            "read_timeout": float(config.get("S3_READ_TIMEOUT_SECONDS", 5.0)),
            "max_attempts": int(config.get("S3_MAX_ATTEMPTS", 2)),
        },
    )


def init_app(app: Any) -> None:
    """``app.extensions["artifact_store"]`` and ``["model_cache"]`` from the app's settings
    (nothing is contacted here: an object store's client is made on first use)."""
    store = store_from_config(app.config)
    app.extensions["artifact_store"] = store
    app.extensions["model_cache"] = ModelCache(store, Path(app.config["MODEL_CACHE_DIR"]))


def scratch_root(config: Mapping[str, Any], store: ArtifactStore) -> Path:
    """Where a worker builds a model before publishing it: inside a local store's folder (so
    publishing is one rename), else in this host's cache folder."""
    if isinstance(store, LocalStore):
        return store.root
    return Path(config["MODEL_CACHE_DIR"])
