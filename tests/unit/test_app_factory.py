"""The factory makes each app's extensions its own (issue 7): two apps in one process never share
a broker, a queue, a registry or an OpenAPI document, and FLIGHT_DELAY_LOG_LEVEL reaches the
loggers. Building an app opens no connection, so no Redis is needed here."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from flight_delay import create_app
from flight_delay.api.schemas import ModelCreateSchema
from flight_delay.ml.config import TrainConfig


def test_two_apps_keep_their_own_celery_registry_and_api() -> None:
    first = create_app({"TESTING": True, "REDIS_URL": "redis://127.0.0.1:1/0", "KEY_PREFIX": "a"})
    second = create_app({"TESTING": True, "REDIS_URL": "redis://127.0.0.1:2/0", "KEY_PREFIX": "b"})

    celery_a, celery_b = first.extensions["celery"], second.extensions["celery"]
    assert celery_a is not celery_b
    # the first app's broker is still its own after the second app was built
    assert celery_a.conf.broker_url == "redis://127.0.0.1:1/0"
    assert celery_b.conf.broker_url == "redis://127.0.0.1:2/0"
    assert celery_a.conf.task_default_queue == "a-training"
    assert celery_b.conf.task_default_queue == "b-training"
    assert "flight_delay.train_model" in celery_a.tasks
    assert "flight_delay.train_model" in celery_b.tasks

    registry_a, registry_b = first.extensions["model_registry"], second.extensions["model_registry"]
    assert registry_a is not registry_b
    assert registry_a.prefix == "a" and registry_b.prefix == "b"

    assert first.extensions["flask-smorest"] is not second.extensions["flask-smorest"]
    assert first.test_client().get("/openapi.json").status_code == 200


@pytest.fixture
def package_log_level() -> Iterator[None]:
    logger = logging.getLogger("flight_delay")
    before = logger.level
    yield
    logger.setLevel(before)


@pytest.mark.usefixtures("package_log_level")
@pytest.mark.parametrize("level", ["DEBUG", "warning"])
def test_the_log_level_reaches_the_loggers(level: str) -> None:
    app = create_app({"TESTING": True, "LOG_LEVEL": level})
    expected = logging.getLevelName(level.upper())
    assert app.logger.level == expected
    assert logging.getLogger("flight_delay").level == expected


def test_an_unknown_log_level_is_refused_with_the_setting_named() -> None:
    with pytest.raises(ValueError, match="FLIGHT_DELAY_LOG_LEVEL"):
        create_app({"TESTING": True, "LOG_LEVEL": "LOUD"})


def test_the_request_schema_takes_its_defaults_from_train_config() -> None:
    defaults = TrainConfig.defaults()
    loaded = ModelCreateSchema().load({"dataset": "synthetic:1000"})
    shared = set(defaults) & set(loaded)
    assert {"seed", "split", "test_size", "features", "model_type"} <= shared
    for name in shared:
        assert loaded[name] == defaults[name], name


@pytest.mark.parametrize(
    ("setting", "value"),
    [("SCHEDULE_TICK_SECONDS", 0), ("SCHEDULE_RUNS_KEPT", 0), ("SCHEDULE_MIN_INTERVAL_SECONDS", -5),
     ("SCHEDULE_MAX", "many")],
)  # fmt: skip
def test_scheduling_settings_no_schedule_could_run_with_are_refused(
    setting: str, value: object
) -> None:
    with pytest.raises(ValueError, match=f"FLIGHT_DELAY_{setting}"):
        create_app({"TESTING": True, setting: value})
