"""A loopback HTTP server for tests that need a server to misbehave in one precise way.

``http_server(answer)`` answers every request with ``answer(request)``: echo what was
received, refuse the first few, serve pages of a list, and so on. It records when each
request arrived.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    """What the server received in one request."""

    method: str
    #: The request target: path and query string.
    path: str
    headers: dict[str, str]
    body: str
    #: ``time.monotonic()`` when the request arrived.
    at: float = field(default_factory=time.monotonic)

    @property
    def route(self) -> str:
        """The path without its query string."""
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)

    def echo(self) -> str:
        auth = self.headers.get("Authorization", "")
        return f"{self.method} {self.path} Authorization: {auth} body: {self.body}"


#: An answer: (status, content type, body, extra headers).
Answer = tuple[int, str, str, dict[str, str]]


@contextlib.contextmanager
def http_server(answer: Callable[[Seen], Answer]) -> Iterator[str]:
    """A loopback HTTP server whose every answer is ``answer(request)``; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            seen = Seen(self.command, self.path, dict(self.headers.items()), body)
            status, kind, text, headers = answer(seen)
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
