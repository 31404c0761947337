"""Metric labels never come from the caller (issue 19, finding 2): invented HTTP methods and
paths that match no route are counted under closed-set labels, so /metrics cannot be grown by
a caller. No Redis is needed: the requests are refused before any view runs."""

from __future__ import annotations

import random
import string

from prometheus_client.parser import text_string_to_metric_families

from flight_delay import create_app, metrics


def _label_values(text: str, family_name: str, label: str) -> set[str]:
    values = set()
    for family in text_string_to_metric_families(text):
        if family.name == family_name:
            values |= {s.labels[label] for s in family.samples if label in s.labels}
    return values


def test_invented_methods_and_paths_add_no_series() -> None:
    app = create_app({"TESTING": True, "REDIS_URL": "redis://127.0.0.1:1/0"})
    client = app.test_client()
    rng = random.Random(19)
    before, _ = metrics.exposition([])
    for _ in range(300):
        method = "".join(rng.choices(string.ascii_uppercase, k=12))
        path = "/" + "".join(rng.choices(string.ascii_lowercase, k=10))
        assert client.open("/healthz", method=method).status_code == 405
        assert client.open(path, method=method).status_code in (404, 405)
    after, _ = metrics.exposition([])
    text = after.decode()
    methods = _label_values(text, "flight_delay_http_requests", "method")
    standard = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert methods <= standard, sorted(methods - standard)[:5]
    assert _label_values(text, "flight_delay_http_requests", "endpoint") <= {
        "/healthz",
        "(no route)",
        "/metrics",
        "/openapi.json",
    } | {rule.rule for rule in app.url_map.iter_rules()}
    # 300 invented methods and paths add a few series at most, not one per name
    assert len(after) - len(before) < 5_000, (len(before), len(after))
