"""Where trained models live: an artifact store shared by every host, and a cache on each.

- ``store``: the interface (publish, fetch, delete, list) and ``open_store(url)``;
- ``local``: a folder (the default, what ``make run`` uses);
- ``s3``: any S3-compatible object store, through boto3;
- ``cache``: a host's verified copies of the models it loads.
"""

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
    "ModelNotPublished",
    "open_store",
]
