"""The artifact store in any S3-compatible object store (AWS S3, SeaweedFS, MinIO, Ceph), via boto3.

Layout under ``s3://<bucket>/<prefix>``::

    <model id>/model.json                    written last, only if absent (If-None-Match: *)
    <model id>/files/<sha256>/<file name>    the payload, addressed by content

The payload is addressed by its sha256, so two attempts at one model never overwrite each
other's bytes: whichever creates ``model.json`` first is the model, and the other's files are
removed (unless they are the same bytes). Clients are made in the process that uses them (after
a fork, never inherited), with bounded timeouts and retries.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import botocore.config
import botocore.exceptions

from flight_delay.storage.store import (
    METADATA_FILE,
    ArtifactStoreUnavailable,
    CorruptArtifact,
    ModelAlreadyPublished,
    ModelNotPublished,
    check_model_id,
    payload_digests,
    read_metadata,
)

log = logging.getLogger(__name__)

#: the error codes of an absent object or of a lost conditional create
MISSING = {"NoSuchKey", "404", "NotFound"}
ALREADY_THERE = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
BUFFER = 1 << 20


class S3Store:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 5.0,
        max_attempts: int = 2,
    ) -> None:
        if not bucket:
            raise ValueError("artifact store URL: s3:// needs a bucket (s3://bucket/prefix)")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client_settings: dict[str, Any] = {
            "endpoint_url": endpoint_url or None,
            "region_name": region or None,
            "aws_access_key_id": access_key_id or None,
            "aws_secret_access_key": secret_access_key or None,
            "config": botocore.config.Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"max_attempts": max_attempts, "mode": "standard"},
                s3={"addressing_style": "path"},  # what S3-compatible servers all answer
            ),
        }
        where = f" at {endpoint_url}" if endpoint_url else ""
        self.description = f"s3://{bucket}/{self.prefix}".rstrip("/") + where
        self._client: Any = None
        self._client_pid = -1
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, settings: Mapping[str, Any]) -> S3Store:
        """``s3://bucket/prefix``; ``settings``: endpoint_url, region, access_key_id,
        secret_access_key, connect_timeout, read_timeout, max_attempts (unset ones come from
        boto3's usual sources: AWS_* variables, ~/.aws, an instance role)."""
        parsed = urlparse(url)
        known = {
            "endpoint_url", "region", "access_key_id", "secret_access_key",
            "connect_timeout", "read_timeout", "max_attempts",
        }  # fmt: skip
        return cls(
            parsed.netloc,
            parsed.path,
            **{k: v for k, v in settings.items() if k in known and v not in (None, "")},
        )

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """This process's client: one made before a fork is never used after it."""
        with self._lock:
            if self._client is None or self._client_pid != os.getpid():
                self._client = boto3.session.Session().client("s3", **self._client_settings)
                self._client_pid = os.getpid()
            return self._client

    def key(self, model_id: str, *parts: str) -> str:
        return "/".join(filter(None, [self.prefix, check_model_id(model_id), *parts]))

    def _unavailable(self, doing: str, exc: Exception) -> ArtifactStoreUnavailable:
        if isinstance(exc, botocore.exceptions.ClientError):
            error = exc.response.get("Error", {})
            reason = f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
        else:
            reason = type(exc).__name__
        return ArtifactStoreUnavailable(f"{self.description}: {doing} failed ({reason})")

    @staticmethod
    def _code(exc: Exception) -> str:
        if isinstance(exc, botocore.exceptions.ClientError):
            return str(exc.response.get("Error", {}).get("Code", ""))
        return ""

    # -- the interface -------------------------------------------------------------------------
    def publish(self, model_id: str, directory: Path) -> None:
        directory = Path(directory)
        meta_bytes = (directory / METADATA_FILE).read_bytes()
        digests = payload_digests(read_metadata(meta_bytes, str(directory)))
        try:
            for name, sha in digests.items():
                with (directory / name).open("rb") as handle:
                    self.client.put_object(
                        Bucket=self.bucket, Key=self.key(model_id, "files", sha, name), Body=handle
                    )
            self.client.put_object(
                Bucket=self.bucket, Key=self.key(model_id, METADATA_FILE), Body=meta_bytes,
                IfNoneMatch="*", ContentType="application/json",
            )  # fmt: skip
        except botocore.exceptions.ClientError as exc:
            if self._code(exc) in ALREADY_THERE:
                self._remove_losing_payload(model_id, digests)
                raise ModelAlreadyPublished(f"model {model_id} is already published") from exc
            raise self._unavailable(f"publishing model {model_id}", exc) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._unavailable(f"publishing model {model_id}", exc) from exc

    def _remove_losing_payload(self, model_id: str, ours: Mapping[str, str]) -> None:
        try:
            kept = payload_digests(self.metadata(model_id))
        except Exception:  # cleanup only: better to leave our files than to guess
            return
        for name, sha in ours.items():
            if kept.get(name) != sha:
                self.client.delete_object(
                    Bucket=self.bucket, Key=self.key(model_id, "files", sha, name)
                )

    def metadata(self, model_id: str) -> dict[str, Any]:
        return read_metadata(self._metadata_bytes(model_id), model_id)

    def _metadata_bytes(self, model_id: str) -> bytes:
        try:
            body = self.client.get_object(
                Bucket=self.bucket, Key=self.key(model_id, METADATA_FILE)
            )["Body"]
            return bytes(body.read())
        except botocore.exceptions.ClientError as exc:
            if self._code(exc) in MISSING:
                raise ModelNotPublished(f"model {model_id} is not in the store") from exc
            raise self._unavailable(f"reading model {model_id}", exc) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._unavailable(f"reading model {model_id}", exc) from exc

    def fetch(self, model_id: str, destination: Path) -> Path:
        """Downloads into a temporary folder beside ``destination``, checks every file's sha256
        while it streams, then renames: ``destination`` holds a whole, checked model or nothing."""
        destination = Path(destination)
        raw = self._metadata_bytes(model_id)
        digests = payload_digests(read_metadata(raw, model_id))
        staging = destination.parent / f".fetch-{model_id}-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        try:
            for name, sha in digests.items():
                self._download(
                    self.key(model_id, "files", sha, name), staging / name, sha, model_id
                )
            (staging / METADATA_FILE).write_bytes(raw)
            try:
                os.rename(staging, destination)
            except OSError:
                if not (destination / METADATA_FILE).is_file():
                    raise
                shutil.rmtree(staging, ignore_errors=True)  # another fetch of it finished first
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, botocore.exceptions.ClientError):
                if self._code(exc) in MISSING:  # deleted while we fetched
                    raise ModelNotPublished(f"model {model_id} is not in the store") from exc
                raise self._unavailable(f"fetching model {model_id}", exc) from exc
            if isinstance(exc, botocore.exceptions.BotoCoreError):
                raise self._unavailable(f"fetching model {model_id}", exc) from exc
            raise
        return destination

    def _download(self, key: str, target: Path, sha: str, model_id: str) -> None:
        digest = hashlib.sha256()
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        with target.open("wb") as handle:
            for block in iter(lambda: body.read(BUFFER), b""):
                digest.update(block)
                handle.write(block)
            handle.flush()
            os.fsync(handle.fileno())
        if digest.hexdigest() != sha:
            raise CorruptArtifact(
                f"model {model_id}: {target.name} differs from the sha256 in {METADATA_FILE}"
            )

    def delete(self, model_id: str) -> None:
        try:
            # model.json first: from here on no reader takes the model for published
            self.client.delete_object(Bucket=self.bucket, Key=self.key(model_id, METADATA_FILE))
            batch: list[dict[str, str]] = []
            for key in self._keys(self.key(model_id) + "/"):
                batch.append({"Key": key})
                if len(batch) == 1000:  # the most one request deletes
                    self.client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                    )
                    batch = []
            if batch:
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._unavailable(f"deleting model {model_id}", exc) from exc

    def _keys(self, prefix: str) -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            for entry in page.get("Contents", []):
                yield entry["Key"]

    def model_ids(self) -> list[str]:
        root = f"{self.prefix}/" if self.prefix else ""
        found = set()
        try:
            for key in self._keys(root):
                parts = key[len(root) :].split("/")
                if len(parts) == 2 and parts[1] == METADATA_FILE:
                    found.add(parts[0])
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._unavailable("listing models", exc) from exc
        return sorted(found)

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._unavailable("reaching the bucket", exc) from exc
