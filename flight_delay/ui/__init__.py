"""The dashboard at /ui: server-rendered pages (Jinja) with charts drawn as SVG on the server.

A plain Flask blueprint, not a smorest one: its pages are HTML for people, not part of the REST
API's OpenAPI document. The pages read through the same registry, stores and presenters as the
API, under the same read rule (FLIGHT_DELAY_READ_SCOPE). What changes state (deploy, roll back,
run a schedule, start a comparison) is a call from the page's script to the REST API with the
key the user typed in, kept in the tab's sessionStorage and sent as the X-api-key header: never
in a URL, a cookie or the server's pages.
"""

from flight_delay.ui.views import blp, error_page, secure

__all__ = ["blp", "error_page", "secure"]
