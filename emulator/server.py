"""The emulator core: one threaded HTTP/1.1 server, providers under path prefixes.

Tests run it in-process (background thread); the demo and benchmarks run it as a
process (``python -m emulator``) and drive it through ``/_emulator/...``.

Data can also move in time: with a simulated clock set (``Emulator.set_now``,
``advance``, ``/_emulator/clock``, ``--now``) every provider serves only the records
delivered by then (each has a seeded ``visible_at``, listed by ``expected()``), and a
Conpeek summary stays OPEN until its closure is delivered. No clock (the default)
serves everything in its final state.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from emulator.base import (
    PROVIDERS,
    Instant,
    Provider,
    Request,
    Response,
    Routes,
    SimClock,
    parse_query,
)
from emulator.faults import FaultConfig, FaultDecision

_UNAVAILABLE_HTML = (
    b"<html><head><title>503 Service Unavailable</title></head><body>"
    b"<h1>503 Service Unavailable</h1><p>The server is temporarily unable to service "
    b"your request.</p></body></html>"
)
_BAD_GATEWAY_HTML = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


@dataclass
class _Outcome:
    """What happened to a request, for ``requests_log``."""

    status: int | None
    provider: str
    fault: str | None
    response: Response | None


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers its open sockets so ``stop`` can cut them.

    Without that, keep-alive connections would keep being served by the old
    handler threads after a "restart".
    """

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        """Shut down every open client socket (handler threads then see EOF)."""
        with self.sockets_lock:
            sockets = list(self.open_sockets)
            self.open_sockets.clear()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """Parses the request, applies faults, dispatches to a provider, logs the outcome."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "callcenter-emulator/1.0"
    server: _Server
    _headers_buffer: list[bytes]

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the emulator keeps its own structured ``requests_log``."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        emu = self.server.emulator
        started = time.time()
        split = urlsplit(self.path)
        query = parse_query(split.query)
        request = Request(
            method=self.command,
            path=split.path,
            full_path=split.path,
            query=query,
            headers=self.headers,
            body=self._read_body(),
        )
        if split.path.startswith("/_emulator/") or split.path == "/_emulator":
            self._send(emu.handle_control(request))
            return
        outcome = self._serve_data(emu, request)
        # Logged BEFORE the answer goes out: a client that reads the log right after
        # its response must find its request there.
        emu.log_request(
            {
                "method": self.command,
                "path": split.path,
                "query": {k: v[-1] for k, v in query.items()},
                "status": outcome.status,
                "provider": outcome.provider,
                "fault": outcome.fault,
                "ts": started,
            }
        )
        if outcome.response is None:
            self.close_connection = True  # "drop": hang up without a byte
        else:
            self._send(outcome.response, truncate=outcome.fault == "truncate")

    def _serve_data(self, emu: Emulator, request: Request) -> _Outcome:
        """Decide the fault and build the answer (sent by the caller after logging)."""
        provider, handler, sub_path = emu.route(request.method, request.full_path)
        if provider is None:
            resp = Response.json({"errors": [{"code": 404, "message": "Not Found"}]}, 404)
            return _Outcome(404, "", None, resp)
        request.path = sub_path
        decision = emu.faults.decide(request.full_path)
        if decision.latency_s:
            time.sleep(decision.latency_s)
        kind = decision.kind
        if kind == "drop":
            return _Outcome(None, provider.name, kind, None)
        if kind == "rate_limit":
            resp = provider.error_response(429, "Too Many Requests: rate limit exceeded")
            resp.headers.append(("Retry-After", str(decision.retry_after)))
            return _Outcome(429, provider.name, kind, resp)
        if kind == "unavailable":
            resp = Response(503, _UNAVAILABLE_HTML, "text/html; charset=utf-8")
            return _Outcome(503, provider.name, kind, resp)
        if kind == "slow":
            time.sleep(decision.slow_s)
        if handler is None:
            resp = provider.error_response(404, f"Not Found: {request.full_path}")
        else:
            try:
                resp = handler(request)
            except Exception as exc:  # the emulator must answer, like a real server would
                resp = provider.error_response(500, f"Internal Server Error: {exc}")
        if kind == "malformed":
            resp = self._malformed(resp, decision)
        return _Outcome(resp.status, provider.name, kind, resp)

    @staticmethod
    def _malformed(resp: Response, decision: FaultDecision) -> Response:
        """A 200 whose body is not JSON: a proxy error page, or a JSON cut in half."""
        if decision.variant % 2 == 0 or len(resp.body) < 4:
            return Response(200, _BAD_GATEWAY_HTML, "application/json; charset=utf-8")
        return Response(200, resp.body[: len(resp.body) // 2], resp.content_type)

    def _send(self, resp: Response, truncate: bool = False) -> None:
        """Always with Content-Length; ``truncate`` sends half the body and hangs up."""
        try:
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(resp.body)))
            for name, value in resp.headers:
                self.send_header(name, value)
            if truncate:
                self.send_header("Connection", "close")
            body = resp.body[: len(resp.body) // 2] if truncate else resp.body
            # Headers and body in ONE write: two small writes hit Nagle + delayed ACK
            # (40 ms per request on loopback).
            self._headers_buffer.append(b"\r\n")
            if self.command != "HEAD":
                self._headers_buffer.append(body)
            self.flush_headers()
        except OSError:
            self.close_connection = True
            return
        if truncate:
            self.close_connection = True


class Emulator:
    """Call-center API emulator on 127.0.0.1 with fault injection.

    Every registered provider is served; pass its config by name
    (``thulium=ThuliumConfig(...)``). ``stop()`` then ``start()`` listens again on
    the same port with the same data (tests restart it mid-sync).

    ``now`` starts the simulated clock every provider shares (see :meth:`set_now`);
    None, the default, means no clock: all data visible in its final state.

    ``loose_types`` makes every provider serve loosely typed values, as some real
    servers do: numbers as strings, booleans as 0/1, numeric ids as strings, "" for
    absent values (ECSS, whose values are text anyway: whole seconds as "45.0"). The data
    is the same; ``/_emulator/loose_types`` (GET, POST ``{"on": bool}``) reads or flips it.
    """

    def __init__(
        self,
        seed: int = 1,
        port: int = 0,
        faults: FaultConfig | None = None,
        host: str = "127.0.0.1",
        now: Instant = None,
        *,
        loose_types: bool = False,
        **provider_configs: Any,
    ) -> None:
        unknown = sorted(set(provider_configs) - set(PROVIDERS))
        if unknown:
            raise TypeError(f"unknown provider(s): {', '.join(unknown)}")
        self.seed = seed
        self.host = host
        self.port = port
        self.faults = faults if faults is not None else FaultConfig()
        self.faults.seed_default(seed)
        self.requests_log: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()
        self.sim_clock = SimClock(now)
        self._providers: dict[str, Provider] = {}
        for name, spec in PROVIDERS.items():
            config = provider_configs.get(name)
            if config is None:
                config = spec.config_type()
            provider = self._providers[name] = spec.factory(config, seed)
            provider.sim_clock = self.sim_clock
            provider.loose_types = loose_types
        self._routes: dict[str, Routes] = {n: p.routes() for n, p in self._providers.items()}
        self._control: dict[tuple[str, str], Any] = {
            ("GET", "/_emulator/health"): self._health,
            ("GET", "/_emulator/faults"): self._get_faults,
            ("POST", "/_emulator/faults"): self._set_faults,
            ("POST", "/_emulator/reset_faults"): self._reset_faults,
            ("GET", "/_emulator/requests_log"): self._get_log,
            ("POST", "/_emulator/clear_requests_log"): self._clear_log,
            ("GET", "/_emulator/clock"): self._get_clock,
            ("POST", "/_emulator/clock"): self._set_clock,
            ("GET", "/_emulator/loose_types"): self._loose_types,
            ("POST", "/_emulator/loose_types"): self._loose_types,
        }
        for name, provider in self._providers.items():
            for (method, path), handler in provider.control_routes().items():
                self._control[(method, f"/_emulator/{name}{path}")] = handler
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> Emulator:
        """Listen (first time on ``port``, 0 = a free one; later on the same port)."""
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        for provider in self._providers.values():
            provider.on_start(self)
        return self

    def stop(self) -> None:
        """Stop listening and cut open connections; data and log are kept."""
        server, self._server = self._server, None
        if server is None:
            return
        for provider in self._providers.values():
            provider.on_stop()
        server.shutdown()
        server.cut_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses and providers ---------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def providers(self) -> dict[str, Provider]:
        return dict(self._providers)

    def provider(self, name: str) -> Any:
        """The provider object (``emu.thulium`` is the same thing)."""
        return self._providers[name]

    def api_url(self, name: str) -> str:
        """Base URL a client is configured with (``emu.thulium_api_url``)."""
        return self.url + self._providers[name].api_path

    def describe(self) -> dict[str, Any]:
        """Connection details of every provider (the CLI prints this)."""
        info: dict[str, Any] = {"url": self.url}
        for name, provider in self._providers.items():
            info[name] = provider.describe(self.url)
        return info

    def __getattr__(self, name: str) -> Any:
        """``emu.<provider>`` and ``emu.<provider>_api_url`` for every registered provider."""
        providers = self.__dict__.get("_providers", {})
        if name in providers:
            return providers[name]
        if name.endswith("_api_url") and name[: -len("_api_url")] in providers:
            return self.api_url(name[: -len("_api_url")])
        raise AttributeError(name)

    # -- the simulated clock ---------------------------------------------------------

    @property
    def now(self) -> int | None:
        """The simulated now (UTC epoch seconds), or None when no clock is set."""
        return self.sim_clock.now

    def set_now(self, value: Instant) -> int | None:
        """Set the simulated now every provider answers at: an aware datetime, an ISO
        string with ``Z`` or an offset, epoch seconds, or None (no clock: everything
        visible in its final state). Whole seconds; returns the epoch value."""
        return self.sim_clock.set(value)

    def advance(self, seconds: float) -> int:
        """Move the simulated now forward by ``seconds`` (a clock must be set)."""
        return self.sim_clock.advance(seconds)

    # -- routing -------------------------------------------------------------------

    def route(self, method: str, path: str) -> tuple[Provider | None, Any, str]:
        """(provider, handler or None, path below the provider prefix)."""
        name, _, rest = path.lstrip("/").partition("/")
        provider = self._providers.get(name)
        if provider is None:
            return None, None, path
        sub_path = "/" + rest
        return provider, self._routes[name].get((method, sub_path.rstrip("/") or "/")), sub_path

    def log_request(self, entry: dict[str, Any]) -> None:
        with self._log_lock:
            self.requests_log.append(entry)

    def clear_requests_log(self) -> None:
        with self._log_lock:
            self.requests_log.clear()

    # -- control endpoints ---------------------------------------------------------

    def handle_control(self, request: Request) -> Response:
        handler = self._control.get((request.method, request.full_path.rstrip("/")))
        if handler is None:
            return Response.json({"error": f"no control endpoint {request.full_path}"}, 404)
        try:
            result: Response = handler(request)
            return result
        except (ValueError, KeyError, TypeError) as exc:
            return Response.json({"error": str(exc)}, 400)

    def _health(self, request: Request) -> Response:
        return Response.json({"status": "ok", "url": self.url, "providers": list(self._providers)})

    def _get_faults(self, request: Request) -> Response:
        return Response.json(self.faults.snapshot())

    def _set_faults(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object of fault knobs")
        self.faults.set(**body)
        return Response.json(self.faults.snapshot())

    def _reset_faults(self, request: Request) -> Response:
        self.faults.reset()
        return Response.json(self.faults.snapshot())

    def _get_log(self, request: Request) -> Response:
        """``?since=N`` returns entries from index N on (poll without re-reading all)."""
        since = int(request.arg("since", "0") or 0)
        with self._log_lock:
            entries = self.requests_log[since:]
        return Response.json(entries)

    def _clear_log(self, request: Request) -> Response:
        self.clear_requests_log()
        return Response.json({"cleared": True})

    def set_loose_types(self, on: bool) -> None:
        """Serve loosely typed values (or not) from the next request on, every provider."""
        for provider in self._providers.values():
            provider.loose_types = on

    def _loose_types(self, request: Request) -> Response:
        """GET: ``{"on": bool}``; POST ``{"on": bool}`` sets it."""
        if request.method == "POST":
            body = request.json()
            if not isinstance(body, dict) or not isinstance(body.get("on"), bool):
                raise ValueError('expected {"on": true | false}')
            self.set_loose_types(body["on"])
        return Response.json({"on": all(p.loose_types for p in self._providers.values())})

    def _get_clock(self, request: Request) -> Response:
        return Response.json({"now": self.sim_clock.iso()})

    def _set_clock(self, request: Request) -> Response:
        """Body ``{"now": "<ISO>" | null}`` or ``{"advance_seconds": N}``."""
        body = request.json()
        if not isinstance(body, dict) or len(body) != 1 or set(body) - {"now", "advance_seconds"}:
            raise ValueError('expected {"now": "<ISO 8601>" | null} or {"advance_seconds": N}')
        if "now" in body:
            self.set_now(body["now"])
        else:
            seconds = body["advance_seconds"]
            if not isinstance(seconds, int | float) or isinstance(seconds, bool):
                raise ValueError(f"advance_seconds must be a number, not {seconds!r}")
            self.advance(seconds)
        return Response.json({"now": self.sim_clock.iso()})
