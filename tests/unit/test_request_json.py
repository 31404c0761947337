"""orjson reads request bodies and writes /predict's answer (issue 10); the standard library's
reading stays the contract: the same bodies are accepted with the same values and refused with
the same messages, and answers decode to the same values."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flight_delay.api.base import parse_request_json
from flight_delay.api.predict import dump_json

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # beyond 64 bits too: orjson would read those as floats
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=2),
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


def outcome(data: bytes) -> Any:
    try:
        return ("ok", parse_request_json(data))
    except json.JSONDecodeError as exc:
        return ("error", exc.msg)


def stdlib(data: bytes) -> Any:
    def refuse(name: str) -> Any:
        raise json.JSONDecodeError(f"{name} is not JSON", name, 0)

    try:
        return ("ok", json.loads(data.decode("utf-8"), parse_constant=refuse))
    except UnicodeDecodeError as exc:
        return ("error", f"not UTF-8 ({exc.reason})")
    except RecursionError:
        return ("error", "nested too deeply")
    except json.JSONDecodeError as exc:
        return ("error", exc.msg)


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types (1 and 1.0 differ: a flight number 1 is not "1.0")."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@settings(max_examples=500, deadline=None)
@given(document=documents, ascii_only=st.booleans(), indent=st.sampled_from([None, 1]))
def test_documents_read_as_the_standard_library_reads_them(
    document: Any, ascii_only: bool, indent: int | None
) -> None:
    data = json.dumps(document, ensure_ascii=ascii_only, indent=indent).encode(
        "utf-8", "surrogatepass"
    )
    ours, theirs = outcome(data), stdlib(data)
    assert ours[0] == theirs[0]
    assert same(ours[1], theirs[1]) if ours[0] == "ok" else ours == theirs


@settings(max_examples=500, deadline=None)
@given(
    data=st.binary(max_size=40)
    | st.text(alphabet='{}[]":,0123456789.eE+-tfnul \\ud', max_size=30).map(str.encode)
)
def test_malformed_bodies_are_refused_with_the_same_message(data: bytes) -> None:
    ours, theirs = outcome(data), stdlib(data)
    assert ours[0] == theirs[0]
    assert same(ours[1], theirs[1]) if ours[0] == "ok" else ours == theirs


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"Vlo-I": 123456789012345678901234567890}',
            ("ok", {"Vlo-I": 123456789012345678901234567890}),
        ),
        (b"[NaN]", ("error", "NaN is not JSON")),
        (b"[-Infinity]", ("error", "-Infinity is not JSON")),
        (b"[1e400]", ("ok", [float("inf")])),
        (b'"\\ud800"', ("ok", "\ud800")),
        (b"\xff", ("error", "not UTF-8 (invalid start byte)")),
        (b"[" * 100_000 + b"]" * 100_000, ("error", "nested too deeply")),
        (b'{"a": 1, "a": 2}', ("ok", {"a": 2})),
    ],
)
def test_edge_bodies(body: bytes, expected: Any) -> None:
    assert outcome(body) == expected == stdlib(body)


@settings(max_examples=300, deadline=None)
@given(
    probabilities=st.lists(st.floats(0, 1), max_size=20),
    warning=st.text(),
)
def test_answers_decode_to_what_the_standard_library_wrote(
    probabilities: list[float], warning: str
) -> None:
    payload = {
        "model_id": "m",
        "threshold": 0.19,
        "predictions": [
            {"delay_probability": round(p, 6), "delayed": p >= 0.19} for p in probabilities
        ],
        "warnings": [{"index": 0, "field": "Des-I", "problem": warning}],
    }
    assert json.loads(dump_json(payload)) == json.loads(json.dumps(payload))
