"""The docs page's own files (Swagger UI), served by the app: /docs works without internet.

The files come from the ``swagger-ui-bundle`` package (PyPI), so no CDN is contacted; flask-smorest
renders /docs and points it here (``OPENAPI_SWAGGER_UI_URL``).
"""

from __future__ import annotations

from flask import Blueprint, Response, send_from_directory

#: where the docs page's scripts and styles are served
ASSETS_URL = "/docs/assets/"


def docs_assets_blueprint() -> Blueprint:
    """GET /docs/assets/<file>: Swagger UI's distribution files (nothing else is reachable:
    ``send_from_directory`` refuses paths that leave the folder)."""
    import swagger_ui_bundle

    assets = Blueprint("docs_assets", __name__)

    @assets.get(ASSETS_URL + "<path:filename>")
    def asset(filename: str) -> Response:
        response = send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=3600)
        return response

    return assets
