"""The one-pass flight list (issue 10) answers and documents exactly as List(Dict(String, Raw))."""

from __future__ import annotations

from typing import Any

import pytest
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError, fields, validate

from flight_delay.api.schemas import SCALAR, FlightList, PredictRequestSchema


class Reference(Schema):
    """What PredictRequestSchema's flights were before: marshmallow walks every value."""

    flights = fields.List(
        fields.Dict(keys=fields.String(), values=fields.Raw(metadata=SCALAR)),
        required=True,
        validate=validate.Length(min=1),
    )


def outcome(schema: Schema, body: Any) -> tuple[str, Any]:
    try:
        return "ok", schema.load(body)
    except ValidationError as error:
        return "error", error.messages


@pytest.mark.parametrize(
    "body",
    [
        {"flights": [{"OPERA": "Grupo LATAM", "TIPOVUELO": "N", "MES": 3}]},
        {"flights": [{"a": None, "b": [1, 2], "c": {"d": 1}, "e": True, "f": 1.5}]},
        {"flights": []},
        {"flights": "not a list"},
        {"flights": {"0": {}}},
        {"flights": [{}, "text", 3, None, [], {"ok": 1}, ["x"]]},
        {"flights": None},
        {"flights": [{"a": None}, {"x": None, "y": 1, "z": None}]},
        {},
    ],
)
def test_the_fast_list_loads_and_refuses_exactly_as_marshmallow_did(body: Any) -> None:
    fast = outcome(PredictRequestSchema(), body)
    reference = outcome(Reference(), body)
    assert fast == reference


def test_the_fast_list_is_documented_as_the_list_it_replaces() -> None:
    def documented(field: fields.Field) -> dict[str, Any]:
        plugin = MarshmallowPlugin()
        APISpec("t", "1", "3.0.3", plugins=[plugin])
        assert plugin.converter is not None
        return plugin.converter.field2property(field)

    inner = fields.Dict(keys=fields.String(), values=fields.Raw(metadata=SCALAR))
    assert documented(FlightList(inner)) == documented(fields.List(inner))
    assert documented(FlightList(inner))["items"]["additionalProperties"] == SCALAR


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    flights=JSON
    | st.lists(JSON | st.dictionaries(st.text(max_size=4), JSON, max_size=4), max_size=5)
)
def test_any_json_gets_the_answer_marshmallow_gave(flights: Any) -> None:
    """Every JSON body the API can receive: the same data or the same errors as before."""
    body = {"flights": flights}
    assert outcome(PredictRequestSchema(), body) == outcome(Reference(), body)
