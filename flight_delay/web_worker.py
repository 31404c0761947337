"""gunicorn's gevent worker, answering the errors gunicorn itself finds in the API's one shape.

A request gunicorn refuses before the app sees it (a request line over 4,094 bytes: 414; header
fields too large: 431; a malformed line: 400) was answered as an HTML page; every other error of
the API is JSON ``{"code", "status", "message", "errors"}``, and clients generated from the
OpenAPI document expect that.
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    body = json.dumps(
        {"code": status_int, "status": reason, "message": mesg or reason, "errors": []}
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "X-Content-Type-Options: nosniff\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


class JsonErrorGeventWorker(GeventWorker):
    """The gevent worker, with gunicorn's own error answers in JSON (set in the worker process
    only: gunicorn's module-level writer is what every worker's error handling calls)."""

    def init_process(self) -> None:
        util.write_error = write_json_error
        super().init_process()
