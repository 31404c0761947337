"""API keys and scopes.

``FLIGHT_DELAY_API_KEYS`` holds ``key=scope,scope`` entries separated by ``;``, for example
``FLIGHT_DELAY_API_KEYS="admin-7f3c=admin;ci-91ab=train,deploy;ops-22d0=predict"``. Scopes:
``train`` (POST /models), ``deploy`` (PUT /deploy), ``delete`` (DELETE /models/{id}), ``read`` and
``predict`` (only when ``FLIGHT_DELAY_READ_SCOPE`` / ``FLIGHT_DELAY_PREDICT_SCOPE`` make them
required), ``export`` (GET /models/{id}?export=true writes a file on the server), ``outcomes``
(POST /outcomes), ``departures`` (POST /departures: the live feed; an ``outcomes`` key may
send it too) and ``admin`` (all of them). Keys are compared in constant time and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from flask import current_app, request

from flight_delay.errors import FlightDelayError

HEADER = "X-api-key"
SCOPES = (
    "train", "deploy", "delete", "read", "predict", "export", "outcomes", "departures", "admin",
)  # fmt: skip


class Unauthorized(FlightDelayError):
    """No key, or a key that is not configured."""

    http_status = 401


class Forbidden(FlightDelayError):
    """A valid key without the needed scope."""

    http_status = 403


def parse_api_keys(spec: str) -> dict[str, frozenset[str]]:
    """Parse ``key=scope,scope;key2=scope``; raises ValueError naming the bad entry (not the key)."""
    keys: dict[str, frozenset[str]] = {}
    for position, entry in enumerate((e.strip() for e in spec.split(";")), start=1):
        if not entry:
            continue
        key, sep, scopes_text = entry.partition("=")
        key = key.strip()
        scopes = frozenset(s.strip() for s in scopes_text.split(",") if s.strip())
        if not sep or not key or not scopes:
            raise ValueError(f"FLIGHT_DELAY_API_KEYS entry {position}: expected key=scope[,scope]")
        unknown = scopes - set(SCOPES)
        if unknown:
            raise ValueError(
                f"FLIGHT_DELAY_API_KEYS entry {position}: unknown scope(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(SCOPES)}"
            )
        keys[key] = scopes
    return keys


def _scopes_of(presented: str, keys: Mapping[str, frozenset[str]]) -> frozenset[str] | None:
    found = None
    presented_bytes = presented.encode()
    # compare against every key, in constant time each, without stopping at a match
    for key, scopes in keys.items():
        if hmac.compare_digest(presented_bytes, key.encode()):
            found = scopes
    return found


def presented_key() -> str | None:
    """The key of the request: the X-api-key header, or ``Authorization: Bearer <key>`` (what
    clients generated from the OpenAPI document send). Two different keys are refused."""
    header = request.headers.get(HEADER) or None
    scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
    token = bearer.strip() if scheme.lower() == "bearer" and bearer.strip() else None
    if header and token and not hmac.compare_digest(header.encode(), token.encode()):
        raise Unauthorized(f"two different keys: give one, in {HEADER} or Authorization")
    return header or token


def require_scope(scope: str) -> None:
    """Raise Unauthorized/Forbidden unless the request's key carries ``scope``."""
    presented = presented_key()
    if not presented:
        raise Unauthorized(
            f"this operation needs an API key in the {HEADER} header "
            "(or Authorization: Bearer <key>)"
        )
    scopes = _scopes_of(presented, current_app.extensions["api_keys"])
    if scopes is None:
        raise Unauthorized("the API key is not valid")
    if scope not in scopes and "admin" not in scopes:
        raise Forbidden(f"the API key lacks the '{scope}' scope")


def require_configured_scope(setting: str) -> None:
    """For reads and predictions: check a scope only when the configuration asks for one."""
    scope = current_app.config[setting]
    if scope:
        require_scope(scope)


def caller_name() -> str:
    """Who made this request, for records such as the deployment history: the name of the key's
    first scope plus a short fingerprint of the key (never the key), else the address."""
    return caller()[0]


def caller() -> tuple[str, bool]:
    """(``caller_name()``, whether the request came with a valid key)."""
    try:
        presented = presented_key()
    except Unauthorized:
        presented = None
    if presented:
        scopes = _scopes_of(presented, current_app.extensions["api_keys"])
        if scopes is not None:
            digest = hashlib.sha256(presented.encode()).hexdigest()[:8]
            return f"key {'+'.join(sorted(scopes))} #{digest}", True
    return request.remote_addr or "", False
