"""Schemathesis over the whole OpenAPI document, against the app on a real Redis with a real
worker, without a key and with an admin key: no 5xx, every response in its documented status codes
and schema (issue 7)."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from flight_delay import create_app
from tests.integration.conftest import ADMIN, copy_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def contract_app(stack_settings: dict[str, Any], worker: Any, train_module: Any) -> Flask:
    """The app under its own key prefix, whose queues no worker consumes: the training jobs,
    reports and comparisons the fuzzer asks for are recorded and queued (the quota and the cap
    bound them) but never run, so they do not occupy the session's worker for the tests after
    this one. The session's trained model is recorded and deployed there."""
    app = create_app(
        {"TESTING": True, **stack_settings, "KEY_PREFIX": f"fdfuzz{uuid.uuid4().hex[:8]}"}
    )
    deployed = train_module()
    copy_model(deployed, app.extensions["model_registry"], Path(stack_settings["MODEL_DIR"]))
    return app


#: examples per operation and key; the whole document with both keys takes about a minute here
EXAMPLES = 40


def excluded(operation: Any) -> list[Any]:
    """The checks an operation is not held to here. positive_data_acceptance for all: a
    schema-valid dataset name still has to exist in the data root, and a schema-valid flight
    still has to fit the deployed model. /readyz: not_a_server_error too, since no worker serves
    this app's queues, so it answers its documented 503 "0 worker(s)"."""
    checks = [schemathesis.checks.positive_data_acceptance]
    if operation.path == "/readyz":
        checks.append(schemathesis.checks.not_a_server_error)
    return checks


def run_operation(
    operation: Any, mode: GenerationMode, headers: dict[str, str], failures: list[str]
) -> int:
    """Fuzz one operation with schema-valid (positive) or schema-invalid (negative) requests;
    every failing check is appended to ``failures``. Returns the cases run."""
    ran = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    def fuzz(case: Any) -> None:
        nonlocal ran
        ran += 1
        try:
            case.call_and_validate(headers=headers, excluded_checks=excluded(operation))
        except Exception as exc:  # collected, so that one run reports every operation
            failures.append(
                f"{operation.label} ({mode.value}): {type(exc).__name__}: {str(exc)[:600]}"
            )

    with contextlib.suppress(Unsatisfiable):  # nothing to make invalid (no parameters)
        fuzz()
    return ran


@pytest.mark.parametrize("key", [None, ADMIN], ids=["anonymous", "admin-key"])
def test_every_operation_keeps_its_contract(contract_app: Flask, key: str | None) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", contract_app)
    headers = {"X-api-key": key} if key else {}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    cases = sum(
        run_operation(operation, mode, headers, failures)
        for operation in operations
        for mode in GenerationMode
    )
    print(
        f"\nschemathesis ({'admin key' if key else 'no key'}): {len(operations)} operations, {cases} cases, {len(failures)} failures"
    )
    assert not failures, "\n".join(failures[:20])
