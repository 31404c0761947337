"""The artifact store against a real folder and a real S3-compatible server (SeaweedFS): the same
contract for both, then what only an object store can do wrong (a corrupted object, a server
that is down, wrong credentials), and a host's cache."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flight_delay.ml import TrainedModel, load_model, train
from flight_delay.storage import (
    ArtifactStoreUnavailable,
    CorruptArtifact,
    ModelAlreadyPublished,
    ModelNotPublished,
    open_store,
)
from flight_delay.storage.cache import ModelCache
from flight_delay.storage.s3 import S3Store
from flight_delay.storage.store import ArtifactStore, payload_digests
from tests.support.object_store import BUCKET, ObjectStore, free_ports

FLIGHTS = [{"Fecha-I": "2017-05-10 12:00:00", "Vlo-I": "100", "Des-I": "SCIE", "Emp-I": "SKU",
            "OPERA": "Sky Airline", "TIPOVUELO": "N"}]  # fmt: skip


@pytest.fixture(scope="module")
def models(synthetic_flights: pd.DataFrame) -> list[TrainedModel]:
    """Two different small models (two seeds): a store must never mix their files."""
    return [
        train(
            synthetic_flights,
            {"params": {"n_estimators": 20}, "cv_folds": 0, "refit": False, "seed": seed},
        )
        for seed in (1, 2)
    ]


def saved(model: TrainedModel, folder: Path, compiled: bool = False) -> Path:
    return model.save(folder, compile_trees=compiled)


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "folder":
        return open_store(str(tmp_path / "store"))
    running: ObjectStore = request.getfixturevalue("object_store")
    prefix = f"t{abs(hash(request.node.nodeid)) % 10**8}"  # each test its own prefix
    return open_store(f"s3://{BUCKET}/{prefix}", running.settings())


def same_predictions(folder: Path, model: TrainedModel) -> bool:
    return bool(np.array_equal(load_model(folder, compiled_trees=False).predict_proba(FLIGHTS),
                               model.predict_proba(FLIGHTS)))  # fmt: skip


def test_a_published_model_is_fetched_whole_and_predicts_the_same(
    store: ArtifactStore, models: list[TrainedModel], tmp_path: Path
) -> None:
    store.publish("m1", saved(models[0], tmp_path / "out" / "m1"))
    assert store.model_ids() == ["m1"]
    assert store.metadata("m1")["artifact"]["sha256"] == models[0].metadata["artifact"]["sha256"]
    folder = store.fetch("m1", tmp_path / "fetched")
    assert same_predictions(folder, models[0])


def test_a_published_model_is_never_overwritten(
    store: ArtifactStore, models: list[TrainedModel], tmp_path: Path
) -> None:
    store.publish("m1", saved(models[0], tmp_path / "a" / "m1"))
    with pytest.raises(ModelAlreadyPublished):
        store.publish("m1", saved(models[1], tmp_path / "b" / "m1"))
    assert same_predictions(store.fetch("m1", tmp_path / "fetched"), models[0])


def test_of_concurrent_publishers_of_one_id_exactly_one_wins_and_its_files_stay(
    store: ArtifactStore, models: list[TrainedModel], tmp_path: Path
) -> None:
    folders = [saved(models[i % 2], tmp_path / f"p{i}" / "m1") for i in range(8)]
    barrier, outcomes = threading.Barrier(len(folders)), []

    def publish(folder: Path) -> None:
        barrier.wait()
        try:
            store.publish("m1", folder)
            outcomes.append(folder)
        except ModelAlreadyPublished:
            outcomes.append(None)

    threads = [threading.Thread(target=publish, args=(f,)) for f in folders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [folder for folder in outcomes if folder is not None]
    assert len(outcomes) == 8 and len(winners) == 1
    winner = models[folders.index(winners[0]) % 2]
    assert same_predictions(store.fetch("m1", tmp_path / "fetched"), winner)
    if isinstance(store, S3Store):  # the losers' payload is gone: only the winner's files remain
        keys = sorted(store._keys(store.key("m1") + "/"))
        digests = payload_digests(store.metadata("m1"))
        assert keys == sorted([store.key("m1", "model.json")] + [
            store.key("m1", "files", sha, name) for name, sha in digests.items()])  # fmt: skip


def test_a_deleted_model_is_gone_and_deleting_again_is_no_error(
    store: ArtifactStore, models: list[TrainedModel], tmp_path: Path
) -> None:
    store.publish("m1", saved(models[0], tmp_path / "a" / "m1"))
    store.publish("m2", saved(models[1], tmp_path / "a" / "m2"))
    store.delete("m1")
    store.delete("m1")
    assert store.model_ids() == ["m2"]
    with pytest.raises(ModelNotPublished):
        store.fetch("m1", tmp_path / "fetched")
    with pytest.raises(ModelNotPublished):
        store.metadata("m1")
    assert not (tmp_path / "fetched").exists()
    if isinstance(store, S3Store):
        assert list(store._keys(store.key("m1") + "/")) == []


def test_the_compiled_forest_travels_with_its_model(
    store: ArtifactStore, models: list[TrainedModel], tmp_path: Path
) -> None:
    folder = saved(models[0], tmp_path / "a" / "m1", compiled=True)
    if not models[0].metadata["compiled_trees"].get("compiled"):
        pytest.skip(f"no forest compiled here: {models[0].metadata['compiled_trees']}")
    store.publish("m1", folder)
    fetched = store.fetch("m1", tmp_path / "fetched")
    assert sorted(p.name for p in fetched.iterdir()) == ["forest.o", "model.joblib", "model.json"]
    loaded = load_model(fetched)
    assert loaded.forest is not None, loaded.forest_status


@pytest.mark.parametrize("model_id", ["../escape", "a/b", "", ".hidden", "x" * 200, "a\nb"])
def test_a_model_id_that_could_leave_its_place_is_refused(
    store: ArtifactStore, model_id: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="not a model id"):
        store.fetch(model_id, tmp_path / "fetched")
    with pytest.raises(ValueError, match="not a model id"):
        store.delete(model_id)


def test_a_model_json_naming_a_file_outside_its_model_is_refused() -> None:
    with pytest.raises(CorruptArtifact, match="outside its model"):
        payload_digests({"artifact": {"file": "../../etc/passwd", "sha256": "0" * 64}})
    with pytest.raises(CorruptArtifact, match="no payload"):
        payload_digests({"format_version": 1})


# -- what only an object store can do wrong ----------------------------------------------------
@pytest.fixture
def s3(object_store: ObjectStore, request: pytest.FixtureRequest) -> S3Store:
    store = open_store(
        f"s3://{BUCKET}/t{abs(hash(request.node.nodeid)) % 10**8}", object_store.settings()
    )
    assert isinstance(store, S3Store)
    return store


def corrupt(store: S3Store, model_id: str, name: str = "model.joblib") -> None:
    sha = payload_digests(store.metadata(model_id))[name]
    key = store.key(model_id, "files", sha, name)
    body = bytearray(store.client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    store.client.put_object(Bucket=BUCKET, Key=key, Body=bytes(body))


def test_a_corrupted_object_is_refused_and_leaves_nothing_behind(
    s3: S3Store, models: list[TrainedModel], tmp_path: Path
) -> None:
    s3.publish("m1", saved(models[0], tmp_path / "a" / "m1"))
    corrupt(s3, "m1")
    with pytest.raises(CorruptArtifact, match=r"model\.joblib differs from the sha256"):
        s3.fetch("m1", tmp_path / "fetched" / "m1")
    assert list((tmp_path / "fetched").iterdir()) == []  # no half model, no staging folder


def test_the_cache_refetches_a_damaged_copy_and_never_loads_it(
    s3: S3Store, models: list[TrainedModel], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s3.publish("m1", saved(models[0], tmp_path / "a" / "m1"))
    cache = ModelCache(s3, tmp_path / "cache")
    first = cache.load("m1", lambda folder: load_model(folder, compiled_trees=False))
    copy = tmp_path / "cache" / "m1" / "model.joblib"
    copy.write_bytes(copy.read_bytes()[: copy.stat().st_size // 2])  # a disk that filled up
    with caplog.at_level(logging.WARNING):
        again = cache.load("m1", lambda folder: load_model(folder, compiled_trees=False))
    assert "damaged" in caplog.text and "fetching it again" in caplog.text
    assert np.array_equal(again.predict_proba(FLIGHTS), first.predict_proba(FLIGHTS))
    assert payload_digests(load_model(tmp_path / "cache" / "m1").metadata)  # whole again


def test_the_cache_refuses_an_object_corrupted_in_the_store(
    s3: S3Store, models: list[TrainedModel], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s3.publish("m1", saved(models[0], tmp_path / "a" / "m1"))
    corrupt(s3, "m1")
    cache = ModelCache(s3, tmp_path / "cache")
    with caplog.at_level(logging.WARNING), pytest.raises(CorruptArtifact):
        cache.load("m1", lambda folder: load_model(folder, compiled_trees=False))
    assert "fetching it again" in caplog.text  # tried twice, then refused
    assert cache.cached_ids() == [] and list((tmp_path / "cache").iterdir()) == []


def test_the_cache_keeps_what_it_is_told_and_evicts_the_rest(
    s3: S3Store, models: list[TrainedModel], tmp_path: Path
) -> None:
    for index in range(4):
        s3.publish(f"m{index}", saved(models[index % 2], tmp_path / "a" / f"m{index}"))
    cache = ModelCache(s3, tmp_path / "cache")
    for index in range(4):
        cache.folder(f"m{index}")
    stale = tmp_path / "cache" / ".fetch-m9-dead"
    stale.mkdir()
    os.utime(stale, (0, 0))  # left by a process that died mid-fetch, long ago
    assert cache.evict(keep=["m3", "m2"]) == ["m0", "m1"]
    assert cache.cached_ids() == ["m2", "m3"]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["m2", "m3"]


def test_a_store_that_is_down_answers_unavailable_within_its_timeouts(tmp_path: Path) -> None:
    (closed,) = free_ports(1)  # nothing listens there
    store = S3Store("models", "p", endpoint_url=f"http://127.0.0.1:{closed}", access_key_id="a",
                    secret_access_key="b", region="us-east-1", connect_timeout=1, max_attempts=2)  # fmt: skip
    import time

    started = time.monotonic()
    for call in (lambda: store.fetch("m1", tmp_path / "m1"), store.model_ids, store.check,
                 lambda: store.delete("m1")):  # fmt: skip
        with pytest.raises(ArtifactStoreUnavailable, match=r"s3://models/p at http://127\.0\.0\.1"):
            call()
    assert time.monotonic() - started < 30
    assert not (tmp_path / "m1").exists()


def test_wrong_credentials_are_refused_without_showing_them(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    settings: dict[str, Any] = {**object_store.settings(), "secret_access_key": "wrong-secret"}
    store = open_store(f"s3://{BUCKET}/creds", settings)
    with pytest.raises(ArtifactStoreUnavailable) as refused:
        store.model_ids()
    assert "wrong-secret" not in str(refused.value) and "flight-delay-tests" not in str(
        refused.value
    )


def test_a_client_made_before_a_fork_is_not_used_after_it(s3: S3Store) -> None:
    parent = id(s3.client)
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            ok = id(s3.client) != parent and s3.model_ids() == []
            os.write(writer, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    assert os.read(reader, 1) == b"1"


def test_urls_choose_the_store() -> None:
    assert type(open_store("models")).__name__ == "LocalStore"
    assert type(open_store("file:///srv/models")).__name__ == "LocalStore"
    s3 = open_store("s3://bucket/a/b/", {"endpoint_url": "http://127.0.0.1:9"})
    assert isinstance(s3, S3Store) and (s3.bucket, s3.prefix) == ("bucket", "a/b")
    assert s3.key("m1", "model.json") == "a/b/m1/model.json"
    for bad in ("s3://", "http://example.com/x", "ftp://x/y"):
        with pytest.raises(ValueError):
            open_store(bad)


def test_a_local_store_publishes_across_folders_and_devices(
    models: list[TrainedModel], tmp_path: Path
) -> None:
    store = open_store(str(tmp_path / "store"))
    store.publish("m1", saved(models[0], tmp_path / "scratch" / "anything"))  # one rename
    assert not (tmp_path / "scratch" / "anything").exists()
    shm = Path("/dev/shm")
    if shm.is_dir() and shm.stat().st_dev != tmp_path.stat().st_dev:
        with tempfile.TemporaryDirectory(dir=shm) as other_device:
            store.publish("m2", saved(models[1], Path(other_device) / "m2"))  # copied, then renamed
            assert not (Path(other_device) / "m2").exists()
    assert store.model_ids() in (["m1"], ["m1", "m2"])
    assert (
        sorted(p.name for p in (tmp_path / "store").iterdir()) == store.model_ids()
    )  # no staging left
    assert same_predictions(store.fetch("m1", tmp_path / "unused"), models[0])
    if "m2" in store.model_ids():
        assert same_predictions(store.fetch("m2", tmp_path / "unused"), models[1])
