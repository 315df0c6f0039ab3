"""The hostile cases, as data: name, streams, a function building the server(s), and what
a run against them must show. Tests and (later) the fault matrix iterate :data:`CASES`.

Every case that expects an error requires, besides its own checks (:func:`problems`):
the tap ends by itself (the harness kills it at ``time_bound_s`` + 15 s or 700 MiB
resident), exits non-zero, writes no traceback, its LAST stderr line names the provider
and the stream (plus the case's ``needles``), no secret in any form appears in stdout or
stderr, and its wall time and the child's own peak RSS stay under the case's bounds.

Streams (target keys, see ``servers.TARGETS``): ``thulium`` (thulium_connections),
``conpeek`` (conpeek_cdr_dialog), ``ecss_http`` and ``ecss_ws``
(ecss_operator_call_history over HTTP or the websocket).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.hostile.runner import Measured, catalog_for, run_measured, secret_forms, tap_config
from harness.hostile.servers import (
    CONPEEK_RECORD,
    ECSS_ATTRIBUTES,
    OP_BINARY,
    OP_TEXT,
    TARGETS,
    THULIUM_RECORD,
    HostileServer,
    Peer,
    Request,
    Target,
    conpeek_body,
    counting_server,
    ecss_json,
    ecss_xml,
    good_answer,
    gzip_bomb,
    head,
    nested_arrays,
    private_ca,
    provider_server,
    response_frame_text,
    thulium_body,
    ws_frame,
)

ALL = ("thulium", "conpeek", "ecss_http", "ecss_ws")
HTTP = ("thulium", "conpeek", "ecss_http")
JSON_HTTP = ("thulium", "conpeek")

#: A value in a redirect's query: the error names the origin, never the query.
QUERY_TOKEN = "Query-Token-Hostile-31337"
#: Settings of the deadline cases: one attempt may last 2 s, two attempts in all.
SLOW: dict[str, Any] = {"request_timeout": 2, "max_tries": 2, "backoff_factor": 0.1}
#: Settings of the size cases.
CAPPED: dict[str, Any] = {"max_response_mib": 1}


@dataclass
class Scenario:
    """What a built case gives the runner: the config, extra environment, and the
    case's own checks (each returns a list of problems; empty means fine)."""

    config: dict
    env: dict[str, str] = field(default_factory=dict)
    checks: list[Callable[[Measured], list[str]]] = field(default_factory=list)


Builder = Callable[[Target, Path], AbstractContextManager[Scenario]]


@dataclass(frozen=True)
class HostileCase:
    name: str
    #: Which tests module runs it (redirect, deadline, size, paging, tls, parsing, control).
    group: str
    streams: tuple[str, ...]
    build: Builder
    #: "error" (non-zero exit and one clear last line), "ok" (exit 0, the record arrives)
    #: or "any" (either, the case's own checks decide).
    outcome: str = "error"
    #: Each tuple: one of these words must be in the last stderr line (case-insensitive).
    needles: tuple[tuple[str, ...], ...] = ()
    #: None of these may appear in the last stderr line.
    not_in_last_line: tuple[str, ...] = ()
    #: None of these may appear anywhere in stderr.
    not_in_stderr: tuple[str, ...] = ()
    time_bound_s: float = 15.0
    rss_bound_mib: float = 300.0


# ------------------------------------------------------------------ helpers


def _data_requests(server: HostileServer, target: Target) -> list[Request]:
    if target.websocket:
        return [r for r in server.requests if r.is_websocket]
    return server.requests_to(target.data_path)


def at_most_requests(server: HostileServer, target: Target, limit: int, why: str) -> Callable:
    def check(run: Measured) -> list[str]:
        n = len(_data_requests(server, target))
        return [] if n <= limit else [f"{n} data requests/handshakes, at most {limit} ({why})"]

    return check


def _records(target: Target, records: list[dict]) -> bytes:
    return thulium_body(records) if target.key == "thulium" else conpeek_body(records)


def _empty_body(target: Target) -> bytes:
    if target.provider == "ecss":
        return ecss_xml([])
    return _records(target, [])


def _content_type(target: Target) -> str:
    return "text/xml; charset=utf-8" if target.provider == "ecss" else "application/json"


# ------------------------------------------------------------------ 1. redirects


def redirect_elsewhere(status: int, where: str = "port") -> Builder:
    """Data request (ECSS: the command; websocket: the handshake) answered by a
    redirect to another origin: another port, or (``where="host"``) the same port under
    the host name ``localhost``. The other origin must see nothing at all."""

    @contextlib.contextmanager
    def build(target: Target, tmp: Path) -> Iterator[Scenario]:
        with counting_server() as other:
            location_origin = other.origin if where == "port" else "http://localhost:{port}"

            def redirect(request: Request, peer: Peer) -> bool:
                origin = location_origin.format(port=server.port)
                if target.websocket:
                    origin = origin.replace("http://", "ws://")
                peer.respond(status, b"", headers={"Location": f"{origin}/moved?t={QUERY_TOKEN}"})
                return False

            server = provider_server(
                target,
                data=None if target.websocket else redirect,
                handshake=redirect if target.websocket else None,
            )
            with server:
                named = location_origin.format(port=server.port).replace("http://", "")

                def nothing_reached_the_other_origin(run: Measured) -> list[str]:
                    if where == "port":
                        reached = other.connections
                    else:
                        reached = sum(
                            r.headers.get("host", "").startswith("localhost")
                            for r in server.requests
                        )
                    return (
                        [f"the other origin received {reached} connection(s)/request(s)"]
                        if reached
                        else []
                    )

                def names_the_origin_not_the_query(run: Measured) -> list[str]:
                    found = []
                    if named not in run.last_line:
                        found.append(f"the last line does not name where it pointed ({named})")
                    if QUERY_TOKEN in run.stdout + run.stderr:
                        found.append("the redirect's query was printed")
                    return found

                yield Scenario(
                    tap_config(target, server.origin, ws_url=server.ws_url),
                    checks=[
                        nothing_reached_the_other_origin,
                        names_the_origin_not_the_query,
                        at_most_requests(server, target, 1, "a refused redirect is not retried"),
                    ],
                )

    return build


def login_redirect(status: int) -> Builder:
    """The ECSS login POST answered 307/308 to another origin: following it would POST
    the form, api_key included, there."""

    @contextlib.contextmanager
    def build(target: Target, tmp: Path) -> Iterator[Scenario]:
        with counting_server() as other:

            def login(request: Request, peer: Peer) -> None:
                peer.respond(
                    status, b"", headers={"Location": f"{other.origin}/login?t={QUERY_TOKEN}"}
                )

            with provider_server(target, login=login) as server:

                def checks(run: Measured) -> list[str]:
                    found = []
                    if other.connections:
                        found.append(f"the other origin received {other.connections} connection(s)")
                    if other.origin.replace("http://", "") not in run.last_line:
                        found.append(f"the last line does not name {other.origin}")
                    if QUERY_TOKEN in run.stdout + run.stderr:
                        found.append("the redirect's query was printed")
                    logins = len(server.requests_to("/login"))
                    if logins > 1:
                        found.append(f"{logins} logins: a refused redirect is not retried")
                    return found

                yield Scenario(
                    tap_config(target, server.origin, ws_url=server.ws_url), checks=[checks]
                )

    return build


@contextlib.contextmanager
def redirect_loop(target: Target, tmp: Path) -> Iterator[Scenario]:
    """Every data request redirected (302) to the same path on the same origin."""
    hops = iter(range(10**9))

    def data(request: Request, peer: Peer) -> None:
        peer.respond(
            302, b"", headers={"Location": f"{server.origin}{request.path}?hop={next(hops)}"}
        )

    with provider_server(target, data=data) as server:
        yield Scenario(
            tap_config(target, server.origin),
            checks=[at_most_requests(server, target, 100, "a loop ends, however it is detected")],
        )


@contextlib.contextmanager
def same_origin_redirect(target: Target, tmp: Path) -> Iterator[Scenario]:
    """Thulium answering 301 to the same URL with a trailing slash: still followed."""

    def data(request: Request, peer: Peer) -> None:
        if request.path.endswith("/"):
            good_answer(target, request, peer)
            return
        query = request.target.partition("?")[2]
        peer.respond(301, b"", headers={"Location": f"{server.origin}{request.path}/?{query}"})

    with provider_server(target, data=data) as server:
        yield Scenario(tap_config(target, server.origin))


# ------------------------------------------------------------------ 2. deadlines


@contextlib.contextmanager
def slow_headers(target: Target, tmp: Path) -> Iterator[Scenario]:
    """The status line and headers, one byte a second (never finished)."""

    def data(request: Request, peer: Peer) -> None:
        peer.trickle(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: " + b"a" * 600)

    with provider_server(target, data=data) as server:
        yield Scenario(
            tap_config(target, server.origin, **SLOW),
            checks=[at_most_requests(server, target, 2, "max_tries is 2")],
        )


@contextlib.contextmanager
def slow_body(target: Target, tmp: Path) -> Iterator[Scenario]:
    """A 200 with ``Content-Length: 1000``, the body one byte a second."""

    def data(request: Request, peer: Peer) -> None:
        peer.send(head(200, {"Content-Type": _content_type(target)}, 1000))
        peer.trickle(b" " * 1000)

    with provider_server(target, data=data) as server:
        yield Scenario(
            tap_config(target, server.origin, **SLOW),
            checks=[at_most_requests(server, target, 2, "max_tries is 2")],
        )


@contextlib.contextmanager
def ws_slow_frame(target: Target, tmp: Path) -> Iterator[Scenario]:
    """The answer frame (header included) one byte a second."""

    def answer(peer: Peer, request_id: int) -> None:
        text = response_frame_text(request_id, 200, ecss_json([ECSS_ATTRIBUTES]))
        peer.trickle(ws_frame(OP_TEXT, text.encode()))

    with provider_server(target, ws_answer=answer) as server:
        yield Scenario(
            tap_config(target, server.origin, ws_url=server.ws_url, **SLOW),
            checks=[at_most_requests(server, target, 2, "max_tries is 2")],
        )


@contextlib.contextmanager
def ws_foreign_frames(target: Target, tmp: Path) -> Iterator[Scenario]:
    """Frames answering other request ids, five a second, never ours."""

    def answer(peer: Peer, request_id: int) -> None:
        other = request_id % 9000 + 1
        while not peer.server.stopping.wait(0.2):
            text = response_frame_text(other, 200, ecss_json([ECSS_ATTRIBUTES]))
            peer.send(ws_frame(OP_TEXT, text.encode()))

    with provider_server(target, ws_answer=answer) as server:
        yield Scenario(
            tap_config(target, server.origin, ws_url=server.ws_url, **SLOW),
            checks=[at_most_requests(server, target, 2, "max_tries is 2")],
        )


# ------------------------------------------------------------------ 3. sizes
# With max_response_mib 1 (CAPPED); the "-default-cap" variants leave the setting out,
# so the 64 MiB default must hold (and the unfixed tap shows its real behaviour: it
# balloons, where with the setting it only rejects the unknown setting).


def _prefix(target: Target) -> bytes:
    if target.provider == "ecss":
        return b'<?xml version="1.0" encoding="UTF-8"?>\n<out><response><history>'
    return b'{"count": 1, "result": [' if target.key == "thulium" else b'{"data": ['


def endless_body(capped: bool = True) -> Builder:
    """A chunked 200 whose body never ends (64 KiB chunks as fast as the tap reads)."""

    @contextlib.contextmanager
    def build(target: Target, tmp: Path) -> Iterator[Scenario]:
        def data(request: Request, peer: Peer) -> None:
            peer.send(
                head(200, {"Content-Type": _content_type(target), "Transfer-Encoding": "chunked"})
            )
            prefix = _prefix(target)
            peer.send(f"{len(prefix):x}\r\n".encode() + prefix + b"\r\n")
            peer.endless(f"{1 << 16:x}\r\n".encode() + b" " * (1 << 16) + b"\r\n")

        with provider_server(target, data=data) as server:
            settings: dict[str, Any] = CAPPED if capped else {}
            yield Scenario(
                tap_config(target, server.origin, **settings),
                checks=[at_most_requests(server, target, 1, "a body over the cap is fatal")],
            )

    return build


def gzip_bomb_body(capped: bool = True) -> Builder:
    """``Content-Encoding: gzip``: about 400 KB on the wire, 400 MiB decoded."""

    @contextlib.contextmanager
    def build(target: Target, tmp: Path) -> Iterator[Scenario]:
        bomb = gzip_bomb(_prefix(target))

        def data(request: Request, peer: Peer) -> None:
            peer.respond(200, bomb, _content_type(target), {"Content-Encoding": "gzip"})

        with provider_server(target, data=data) as server:
            settings: dict[str, Any] = CAPPED if capped else {}
            yield Scenario(
                tap_config(target, server.origin, **settings),
                checks=[at_most_requests(server, target, 1, "a body over the cap is fatal")],
            )

    return build


@contextlib.contextmanager
def length_over_cap(target: Target, tmp: Path) -> Iterator[Scenario]:
    """A VALID empty page padded with whitespace to 2 MiB, ``Content-Length`` exact: the
    unfixed tap accepts it; over a 1 MiB cap it is an error."""
    body = _empty_body(target) + b" " * (2 << 20)

    def data(request: Request, peer: Peer) -> None:
        peer.respond(200, body, _content_type(target))

    with provider_server(target, data=data) as server:
        yield Scenario(
            tap_config(target, server.origin, **CAPPED),
            checks=[at_most_requests(server, target, 1, "a body over the cap is fatal")],
        )


def ws_huge_frame(capped: bool = True) -> Builder:
    """A text frame whose header claims 2^62 bytes, then data as fast as the tap reads."""

    @contextlib.contextmanager
    def build(target: Target, tmp: Path) -> Iterator[Scenario]:
        def answer(peer: Peer, request_id: int) -> None:
            start = response_frame_text(request_id, 200, "")[:19].encode()
            peer.send(ws_frame(OP_TEXT, start, claimed=1 << 62))
            peer.endless(b" " * (1 << 16))

        with provider_server(target, ws_answer=answer) as server:
            settings: dict[str, Any] = CAPPED if capped else {}
            yield Scenario(
                tap_config(target, server.origin, ws_url=server.ws_url, **settings),
                checks=[at_most_requests(server, target, 1, "a frame over the cap is fatal")],
            )

    return build


# ------------------------------------------------------------------ 4-5. paging


@contextlib.contextmanager
def offset_ignored(target: Target, tmp: Path) -> Iterator[Scenario]:
    """The same full page whatever the offset (Thulium: with a count of 100,000)."""
    if target.key == "thulium":
        page = [{**THULIUM_RECORD, "connection_id": f"1711760400.{i}"} for i in range(100)]
        body = thulium_body(page, count=100_000)
    else:
        page = [{**CONPEEK_RECORD, "dialog_uuid": f"dialog-{i:04d}"} for i in range(500)]
        body = conpeek_body(page)

    def data(request: Request, peer: Peer) -> None:
        peer.respond(200, body)

    with provider_server(target, data=data) as server:
        yield Scenario(
            tap_config(target, server.origin),
            checks=[
                at_most_requests(
                    server,
                    target,
                    20,
                    "a page of repeats ends paging (up to max_concurrency "
                    "Thulium pages may be in flight)",
                )
            ],
        )


@contextlib.contextmanager
def absurd_count(target: Target, tmp: Path) -> Iterator[Scenario]:
    """Thulium ``count`` 10^9, one record on the first page, then empty pages."""

    def data(request: Request, peer: Peer) -> None:
        records = [THULIUM_RECORD] if request.param("offset", "0") == "0" else []
        peer.respond(200, thulium_body(records, count=10**9))

    with provider_server(target, data=data) as server:
        yield Scenario(
            tap_config(target, server.origin),
            checks=[at_most_requests(server, target, 30, "paging stops at the empty page")],
        )


# ------------------------------------------------------------------ 6. TLS


def tls(mode: str) -> Builder:
    """The API over TLS with a private CA's certificate for 127.0.0.1. ``mode``:
    ``untrusted`` (nothing tells the tap about the CA), ``setting`` (``ca_bundle``),
    ``REQUESTS_CA_BUNDLE`` or ``SSL_CERT_FILE`` (the environment variable). For the
    websocket the login stays on plain HTTP and ``wss://`` carries the TLS."""

    @contextlib.contextmanager
    def build(target: Target, tmp: Path) -> Iterator[Scenario]:
        with contextlib.ExitStack() as stack:
            ca = stack.enter_context(private_ca(tmp))
            secure = stack.enter_context(provider_server(target, tls=ca.server))
            login = stack.enter_context(provider_server(target)) if target.websocket else secure
            overrides: dict = {}
            env: dict[str, str] = {}
            if mode == "untrusted":
                overrides = {"max_tries": 6, "backoff_factor": 1, "backoff_max_wait": 60}
            elif mode == "setting":
                overrides = {"ca_bundle": str(ca.ca_pem)}
            else:
                env = {mode: str(ca.ca_pem)}

            def not_retried(run: Measured) -> list[str]:
                n = secure.connections
                return [] if n <= 2 else [f"{n} TLS connections: a bad certificate is retried"]

            yield Scenario(
                tap_config(target, login.origin, ws_url=secure.ws_url, **overrides),
                env=env,
                checks=[not_retried] if mode == "untrusted" else [],
            )

    return build


# ------------------------------------------------------------------ 7-9. parsing


@contextlib.contextmanager
def deep_nesting(target: Target, tmp: Path) -> Iterator[Scenario]:
    """100,000 nested arrays inside the object the API sends (websocket: the payload)."""
    nested = nested_arrays(100_000)
    if target.websocket:
        payload = '[{"_name": "out", "_content": ' + nested + "}]"

        def answer(peer: Peer, request_id: int) -> None:
            peer.send(ws_frame(OP_TEXT, response_frame_text(request_id, 200, payload).encode()))

        server = provider_server(target, ws_answer=answer)
    else:
        key = "result" if target.key == "thulium" else "data"
        body = json.dumps({"count": 1, key: ["PLACEHOLDER"]}).replace('"PLACEHOLDER"', nested)

        def data(request: Request, peer: Peer) -> None:
            peer.respond(200, body.encode())

        server = provider_server(target, data=data)
    with server:
        yield Scenario(tap_config(target, server.origin, ws_url=server.ws_url))


@contextlib.contextmanager
def ws_binary_frame(target: Target, tmp: Path) -> Iterator[Scenario]:
    """A binary frame that is not UTF-8."""

    def answer(peer: Peer, request_id: int) -> None:
        peer.send(ws_frame(OP_BINARY, b"\xff\xfe\xfd not text \xc3\x28\xa0\xa1"))

    with provider_server(target, ws_answer=answer) as server:
        yield Scenario(tap_config(target, server.origin, ws_url=server.ws_url))


_PASSWD = Path("/etc/passwd")


def _passwd_lines() -> list[str]:
    text = _PASSWD.read_text(errors="replace") if _PASSWD.exists() else ""
    return [line for line in text.splitlines() if len(line) >= 10]


def external_entity(where: str) -> Builder:
    """An ECSS answer declaring ``<!ENTITY e SYSTEM "file:///etc/passwd">`` and using it
    in an element's text (``where="text"``) or an attribute."""

    @contextlib.contextmanager
    def build(target: Target, tmp: Path) -> Iterator[Scenario]:
        attributes = " ".join(f'{k}="{v}"' for k, v in ECSS_ATTRIBUTES.items())
        if where == "attribute":
            attributes += ' remote_display_name="&e;"'
            children = ""
        else:
            children = "<url_list><url>&e;</url></url_list>"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<!DOCTYPE out [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
            f"<out><response><history><call_history {attributes}>{children}"
            "</call_history></history></response></out>"
        ).encode()

        def data(request: Request, peer: Peer) -> None:
            peer.respond(200, body, "text/xml; charset=utf-8")

        with provider_server(target, data=data) as server:

            def no_file_content(run: Measured) -> list[str]:
                leaked = [line for line in _passwd_lines() if line in run.stdout + run.stderr]
                return [f"/etc/passwd content in the output: {leaked[:2]}"] if leaked else []

            yield Scenario(tap_config(target, server.origin), checks=[no_file_content])

    return build


@contextlib.contextmanager
def billion_laughs(target: Target, tmp: Path) -> Iterator[Scenario]:
    """Nested internal entities expanding to 10^9 ``lol``s, used in an element's text."""
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    attributes = " ".join(f'{k}="{v}"' for k, v in ECSS_ATTRIBUTES.items())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<!DOCTYPE out [{''.join(entities)}]>\n"
        f"<out><response><history><call_history {attributes}>"
        "<url_list><url>&lol9;</url></url_list></call_history></history></response></out>"
    ).encode()

    def data(request: Request, peer: Peer) -> None:
        peer.respond(200, body, "text/xml; charset=utf-8")

    with provider_server(target, data=data) as server:
        yield Scenario(tap_config(target, server.origin))


# ------------------------------------------------------------------ control


@contextlib.contextmanager
def well_behaved(target: Target, tmp: Path) -> Iterator[Scenario]:
    """The servers answering like the real API: the tap must succeed (checks the
    servers, not the tap)."""
    with provider_server(target) as server:
        yield Scenario(tap_config(target, server.origin, ws_url=server.ws_url))


# ------------------------------------------------------------------ the list

_TIMEOUT = ("timeout", "timed out")
_CAP = ("max_response_mib",)

CASES: list[HostileCase] = [
    # 1. redirects
    HostileCase("redirect-other-port-302", "redirect", ALL, redirect_elsewhere(302),
                needles=(("redirect",),)),
    HostileCase("redirect-other-port-307", "redirect", HTTP, redirect_elsewhere(307),
                needles=(("redirect",),)),
    HostileCase("redirect-other-host-name", "redirect", JSON_HTTP,
                redirect_elsewhere(302, where="host"), needles=(("redirect",),)),
    HostileCase("redirect-login-307", "redirect", ("ecss_http",), login_redirect(307),
                needles=(("redirect",),)),
    HostileCase("redirect-login-308", "redirect", ("ecss_http",), login_redirect(308),
                needles=(("redirect",),)),
    HostileCase("redirect-loop", "redirect", HTTP, redirect_loop,
                needles=(("redirect",), ("loop", "too many redirects")),
                not_in_last_line=("gave up after",)),
    HostileCase("redirect-same-origin", "redirect", ("thulium",), same_origin_redirect,
                outcome="ok"),
    # 2. deadlines: request_timeout 2 s x max_tries 2 + backoff, 20 s with start-up and slack
    HostileCase("slow-headers", "deadline", HTTP, slow_headers, needles=(_TIMEOUT,),
                time_bound_s=20),
    HostileCase("slow-body", "deadline", HTTP, slow_body, needles=(_TIMEOUT,), time_bound_s=20),
    HostileCase("ws-slow-frame", "deadline", ("ecss_ws",), ws_slow_frame, needles=(_TIMEOUT,),
                time_bound_s=20),
    HostileCase("ws-foreign-frames", "deadline", ("ecss_ws",), ws_foreign_frames,
                needles=(_TIMEOUT,), time_bound_s=20),
    # 3. sizes (max_response_mib 1, except the default-cap case: 64)
    # (a 1 MiB cap over a ~55 MiB tap: 150 MiB is far above any honest peak)
    HostileCase("endless-body", "size", HTTP, endless_body(), needles=(_CAP,),
                rss_bound_mib=150),
    HostileCase("gzip-bomb", "size", HTTP, gzip_bomb_body(), needles=(_CAP,),
                rss_bound_mib=150),
    HostileCase("length-over-cap", "size", HTTP, length_over_cap, needles=(_CAP,),
                rss_bound_mib=150),
    HostileCase("ws-huge-frame", "size", ("ecss_ws",), ws_huge_frame(), needles=(_CAP,),
                rss_bound_mib=150),
    # the same without the setting: the default cap (64 MiB) must hold memory too
    HostileCase("endless-body-default-cap", "size", ("thulium", "ecss_http"),
                endless_body(capped=False), needles=(_CAP, ("64",))),
    HostileCase("gzip-bomb-default-cap", "size", ("conpeek",), gzip_bomb_body(capped=False),
                needles=(_CAP, ("64",))),
    HostileCase("ws-huge-frame-default-cap", "size", ("ecss_ws",), ws_huge_frame(capped=False),
                needles=(_CAP, ("64",))),
    # 4-5. paging
    HostileCase("offset-ignored", "paging", JSON_HTTP, offset_ignored,
                needles=(("already", "repeat", "same", "offset", "loop"),)),
    HostileCase("absurd-count", "paging", ("thulium",), absurd_count, outcome="ok"),
    # 6. TLS (untrusted: max_tries 6 and backoff_factor 1 would retry for 31 s)
    HostileCase("tls-untrusted", "tls", ALL, tls("untrusted"), needles=(("certificate",),),
                not_in_last_line=("connection failed or was dropped",), time_bound_s=10),
    HostileCase("tls-ca-bundle-setting", "tls", ALL, tls("setting"), outcome="ok"),
    HostileCase("tls-requests-ca-bundle-env", "tls", ALL, tls("REQUESTS_CA_BUNDLE"),
                outcome="ok"),
    HostileCase("tls-ssl-cert-file-env", "tls", ALL, tls("SSL_CERT_FILE"), outcome="ok"),
    # 7-9. parsing
    HostileCase("deep-nesting", "parsing", ("thulium", "conpeek", "ecss_ws"), deep_nesting,
                not_in_stderr=("RecursionError",)),
    HostileCase("ws-binary-frame", "parsing", ("ecss_ws",), ws_binary_frame,
                not_in_stderr=("UnicodeDecodeError",)),
    HostileCase("xml-external-entity-text", "parsing", ("ecss_http",),
                external_entity("text"), outcome="any"),
    HostileCase("xml-external-entity-attribute", "parsing", ("ecss_http",),
                external_entity("attribute"), outcome="any"),
    HostileCase("xml-billion-laughs", "parsing", ("ecss_http",), billion_laughs),
]  # fmt: skip

#: Not hostile: the same servers behaving, so a hostile failure is the tap's, not theirs.
CONTROL = HostileCase("well-behaved", "control", ALL, well_behaved, outcome="ok")


def cells(group: str | None = None) -> list[tuple[HostileCase, Target]]:
    """(case, target) pairs, optionally of one group."""
    cases = [CONTROL, *CASES] if group == "control" or group is None else CASES
    return [
        (case, TARGETS[key])
        for case in cases
        if group is None or case.group == group
        for key in case.streams
    ]


def problems(case: HostileCase, target: Target, run: Measured, scenario: Scenario) -> list[str]:
    """Everything wrong with ``run`` for ``case`` on ``target`` (empty: the cell passes)."""
    found: list[str] = []
    if run.killed:
        found.append(f"the tap did not end by itself ({run.killed})")
    last, last_lower = run.last_line, run.last_line.lower()
    if case.outcome == "ok":
        if run.returncode != 0:
            found.append(f"exit {run.returncode}, expected success")
        elif not run.records:
            found.append("no record emitted")
    elif case.outcome == "error" and not run.killed:
        if run.returncode == 0:
            found.append("exit 0, expected an error")
        if target.provider not in last or target.stream not in last:
            found.append(
                f"the last stderr line does not name {target.provider} and {target.stream}"
            )
        for alternatives in case.needles:
            if not any(word.lower() in last_lower for word in alternatives):
                found.append(f"the last stderr line says none of {alternatives}")
    rejected = [line for line in run.stderr.splitlines() if "unknown setting" in line]
    if rejected:
        found.append(f"the config was rejected: {rejected[0].rpartition('| ')[2][:90]}")
    if "Traceback" in run.stderr:
        found.append("a Python traceback in stderr")
    found += [f"{text!r} in the last stderr line" for text in case.not_in_last_line if text in last]
    found += [f"{text!r} in stderr" for text in case.not_in_stderr if text in run.stderr]
    output = run.stdout + run.stderr
    leaked = [form for form in secret_forms() if form in output]
    if leaked:
        found.append(f"{len(leaked)} form(s) of a secret in the output")
    if run.wall_s > case.time_bound_s:
        found.append(f"took {run.wall_s:.1f} s, bound {case.time_bound_s:.0f} s")
    if run.peak_rss_mib > case.rss_bound_mib:
        found.append(f"peak RSS {run.peak_rss_mib:.0f} MiB, bound {case.rss_bound_mib:.0f} MiB")
    for check in scenario.checks:
        found += check(run)
    return found


def run_case(case: HostileCase, target: Target, tmp: Path) -> tuple[Measured, list[str]]:
    """Build the case's server(s) for ``target``, run the tap, return the run and its
    problems."""
    with case.build(target, tmp) as scenario:
        run = run_measured(
            scenario.config,
            catalog=catalog_for(target),
            env=scenario.env,
            deadline_s=case.time_bound_s + 15,
        )
        return run, problems(case, target, run, scenario)


def assert_case(case: HostileCase, target: Target, tmp: Path) -> None:
    run, found = run_case(case, target, tmp)
    assert not found, f"{case.name} on {target.key}: " + "; ".join(found) + "\n" + run.summary()


@dataclass
class HostileCell:
    """One case on one stream, run and judged: the figures the table shows."""

    case: HostileCase
    target: Target
    run: Measured
    problems: list[str]

    def text(self) -> str:
        """``refused, 0.4 s, 53 MiB`` (or what was wrong), for a markdown cell."""
        verdict = "ok" if self.case.outcome == "ok" else "refused"
        figures = f"{self.run.wall_s:.1f} s, {self.run.peak_rss_mib:.0f} MiB"
        if self.problems:
            return f"**FAILED** ({'; '.join(self.problems)})".replace("|", "/")
        return f"{verdict}, {figures}"


def run_table(group: str | None = None) -> list[HostileCell]:
    """Every (case, stream) cell, run one after another (each its own server)."""
    out = []
    for case, target in cells(group):
        with tempfile.TemporaryDirectory() as tmp:
            run, found = run_case(case, target, Path(tmp))
        out.append(HostileCell(case, target, run, found))
    return out


def markdown(results: list[HostileCell]) -> str:
    """Cases as rows, streams as columns; each cell the outcome, time and peak RSS, and
    the bound it was held to in the case's row."""
    keys = list(TARGETS)
    lines = [
        "| case | bounds | " + " | ".join(TARGETS[key].label for key in keys) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    by_case: dict[str, dict[str, HostileCell]] = {}
    for cell in results:
        by_case.setdefault(cell.case.name, {})[cell.target.key] = cell
    for case in [*CASES, CONTROL]:
        row = by_case.get(case.name)
        if row is None:
            continue
        bounds = f"{case.time_bound_s:.0f} s, {case.rss_bound_mib:.0f} MiB"
        texts = [row[key].text() if key in row else "n/a" for key in keys]
        lines.append(f"| {case.name} | {bounds} | " + " | ".join(texts) + " |")
    return "\n".join(lines)


def table() -> str:
    """The cases as a plain table (``python -m harness.hostile.cases``)."""
    rows = [f"{'case':32} {'group':9} {'outcome':7} {'time':>5} {'rss':>5}  streams"]
    for case in [*CASES, CONTROL]:
        rows.append(
            f"{case.name:32} {case.group:9} {case.outcome:7} {case.time_bound_s:5.0f} "
            f"{case.rss_bound_mib:5.0f}  {', '.join(case.streams)}"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
