"""The API key: the OpenAPI security schemes, and the decorators that check a caller's scope
before anything else runs (argument parsing included)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask_smorest import Blueprint as SmorestBlueprint

from flight_delay.api.docs import KEY_SETTING
from flight_delay.api.errors import ErrorSchema
from flight_delay.auth import Forbidden, require_configured_scope, require_scope

#: the OpenAPI security schemes of the key (registered by create_app): the X-api-key header,
#: or ``Authorization: Bearer <key>`` (what generated clients send by default); either will do
SECURITY_SCHEME = "ApiKeyAuth"
BEARER_SCHEME = "BearerAuth"
KEY_REQUIREMENT: list[dict[str, list[str]]] = [{SECURITY_SCHEME: []}, {BEARER_SCHEME: []}]


def guarded(
    blp: SmorestBlueprint, check: Callable[[], None], when: str, setting: str | None = None
) -> Any:
    """Run ``check`` (which raises Unauthorized/Forbidden) before anything else, argument parsing
    included, and document the 401 and 403 answers and the API-key security requirement (so the
    docs page's "Authorize" sends the key). Put it above ``@blp.arguments``: a caller without the
    right key learns nothing about what a valid request looks like.

    Args:
        setting: the operation is open unless this setting names a scope.
    """

    def decorate(view: Any) -> Any:
        if setting is None:
            view = blp.doc(security=KEY_REQUIREMENT)(view)
        else:  # finish_document writes what this configuration asks
            view = blp.doc(security=KEY_REQUIREMENT, **{KEY_SETTING: setting})(view)
        view = blp.alt_response(
            401, schema=ErrorSchema, description=f"missing or unknown key ({when})"
        )(view)
        view = blp.alt_response(
            403, schema=ErrorSchema, description=f"the key lacks the needed scope ({when})"
        )(view)

        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            check()
            return view(*args, **kwargs)

        return checked

    return decorate


def requires_scope(blp: SmorestBlueprint, *scopes: str) -> Any:
    """The request needs a key with every one of ``scopes`` (or ``admin``)."""

    def check() -> None:
        for scope in scopes:
            require_scope(scope)

    needs = " and ".join(f"'{scope}'" for scope in scopes)
    return guarded(blp, check, f"needs the {needs} scope{'s' if len(scopes) > 1 else ''}")


def requires_any_scope(blp: SmorestBlueprint, *scopes: str) -> Any:
    """The request needs a key with one of ``scopes`` (or ``admin``)."""

    needs = " or ".join(f"'{scope}'" for scope in scopes)

    def check() -> None:
        for scope in scopes:
            try:
                require_scope(scope)
                return
            except Forbidden:
                continue
        raise Forbidden(f"the API key lacks the {needs} scope")

    return guarded(blp, check, f"needs the {needs} scope")


def requires_configured_scope(blp: SmorestBlueprint, setting: str) -> Any:
    """Reads and predictions: a key is needed only when FLIGHT_DELAY_<setting> names a scope."""
    return guarded(
        blp,
        lambda: require_configured_scope(setting),
        f"only when FLIGHT_DELAY_{setting} names a scope",
        setting=setting,
    )
