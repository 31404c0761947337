"""What API tests share: a flight every model accepts, and the one error shape checked."""

from __future__ import annotations

from typing import Any

FLIGHT = {
    "Fecha-I": "2017-12-20 21:00:00", "Vlo-I": "100", "Des-I": "SCIE", "Emp-I": "JMR",
    "OPERA": "Latin American Wings", "TIPOVUELO": "N",
}  # fmt: skip


def error_of(response: Any) -> dict[str, Any]:
    """Every error has the same shape; return it after checking so."""
    body = response.get_json()
    assert set(body) == {"code", "status", "message", "errors"}, body
    assert body["code"] == response.status_code
    return body
