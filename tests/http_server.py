"""A real HTTP file server on 127.0.0.1 for download tests, with Range support and fault knobs.

    with serve({"/zoo.tar.xz": data}) as srv:
        srv.route("/zoo.tar.xz").drop_after = 1000   # close the connection mid-body, once
        fetch(srv.url("/zoo.tar.xz"), dest)

Nothing here ever leaves the loopback interface.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Route:
    """One served path and its fault knobs (counters are used up as requests arrive)."""

    body: bytes
    content_type: str = "application/octet-stream"
    ranges: bool = True
    statuses: list[int] = field(default_factory=list)
    drop_after: int | None = None
    drops: int = 1
    stall_after: int | None = None
    stall: float = 0.0
    stalls: int = 1
    delay: float = 0.0


@dataclass
class Hit:
    method: str
    path: str
    range: str | None
    status: int


class _QuietServer(ThreadingHTTPServer):
    """Daemon handler threads; a client hanging up on a stalled reply is expected, not logged."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 (port chosen by the OS) serving in-memory routes."""

    def __init__(self, files: dict[str, bytes] | None = None):
        self.routes: dict[str, Route] = {p: Route(b) for p, b in (files or {}).items()}
        self.hits: list[Hit] = []
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def route(self, path: str) -> Route:
        return self.routes[path]

    def add(self, path: str, body: bytes, **knobs: Any) -> Route:
        self.routes[path] = Route(body, **knobs)
        return self.routes[path]

    def add_json(self, path: str, obj: Any) -> Route:
        return self.add(path, json.dumps(obj).encode(), content_type="application/json")

    def gets(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.method == "GET" and h.path == path]

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            route = server.routes.get(self.path)
            range_header = self.headers.get("Range")
            if route is None:
                return self._status(404, range_header)
            if route.delay:
                time.sleep(route.delay)
            if route.statuses:
                return self._status(route.statuses.pop(0), range_header)
            data, start, status = route.body, 0, 200
            etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
            if_range = self.headers.get("If-Range")
            if route.ranges and range_header and (if_range in (None, etag)):
                start = int(range_header.split("=")[1].split("-")[0])
                if start >= len(data):
                    self._record(range_header, 416)
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                status = 206
            self._record(range_header, status)
            self.send_response(status)
            self.send_header("Content-Type", route.content_type)
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("ETag", etag)
            if route.ranges:
                self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if body:
                self._body(route, data[start:])
            return None

        def _body(self, route: Route, rest: bytes) -> None:
            if route.drop_after is not None and route.drops > 0:
                route.drops -= 1
                self.wfile.write(rest[: route.drop_after])
                self.wfile.flush()
                self.close_connection = True
                return
            if route.stall_after is not None and route.stalls > 0:
                route.stalls -= 1
                self.wfile.write(rest[: route.stall_after])
                self.wfile.flush()
                time.sleep(route.stall)
                self.close_connection = True
                return
            self.wfile.write(rest)

        def _status(self, status: int, range_header: str | None) -> None:
            self._record(range_header, status)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _record(self, range_header: str | None, status: int) -> None:
            server.hits.append(Hit(self.command, self.path, range_header, status))

    return Handler


@contextmanager
def serve(files: dict[str, bytes] | None = None) -> Iterator[LoopbackServer]:
    """Run a LoopbackServer for the duration of a with-block."""
    srv = LoopbackServer(files).start()
    try:
        yield srv
    finally:
        srv.stop()
