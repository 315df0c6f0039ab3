"""Hostile loopback servers: raw sockets, so a server can misbehave at the byte level.

:class:`HostileServer` accepts connections on ``127.0.0.1`` (optionally TLS with a
``trustme`` CA), reads one HTTP request per connection and hands it to a route; every
answer says ``Connection: close``, so each request the tap makes is one connection and
the server can count both. A GET with ``Upgrade: websocket`` is a websocket handshake:
accepted (or answered by a hook), then every request frame the tap sends is answered by
a websocket hook that writes frames by hand (byte by byte, foreign ids, 2^62-byte
headers, binary junk).

:func:`provider_server` builds one for a target (Thulium, Conpeek, ECSS over HTTP or the
websocket) that answers like the real API (one record, auth checked) except where a
case replaces the data answer, the ECSS login or the websocket handshake.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

#: Credentials the hostile servers accept; distinctive, with characters that URL-encode
#: and base64 differently, so every form of them can be looked for in the output.
THULIUM_USER = "hostile-user"
THULIUM_PASSWORD = "Th-Pass/9+x=Q&z%Hostile"
CONPEEK_KEY = "Cp-Key/7+y=R&w%Hostile"
ECSS_KEY = "Ec-Key/5+v=S&u%Hostile"
ECSS_DOMAIN = "cc.hostile"
ECSS_ARM = f"/{ECSS_DOMAIN}/service/cc/arm"
SESSION_COOKIE = "HOSTILE_SESSION"
SESSION_ID = "sess-4242"

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


@dataclass
class Request:
    """One HTTP request as the server read it (header names in lower case)."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)

    def param(self, name: str, default: str = "") -> str:
        return (self.query.get(name) or [default])[-1]

    @property
    def is_websocket(self) -> bool:
        return self.headers.get("upgrade", "").lower() == "websocket"


class Peer:
    """The tap's end of one connection, as a route sees it."""

    def __init__(self, sock: socket.socket, server: HostileServer) -> None:
        self.sock = sock
        self.server = server
        self.rfile = sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def trickle(self, data: bytes, interval: float = 1.0) -> None:
        """``data`` one byte every ``interval`` seconds (until the server stops)."""
        for byte in data:
            self.sock.sendall(bytes([byte]))
            if self.server.stopping.wait(interval):
                return

    def endless(self, chunk: bytes) -> None:
        """``chunk`` again and again, as fast as the tap reads, until it hangs up."""
        while not self.server.stopping.is_set():
            self.sock.sendall(chunk)

    def respond(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send(head(status, {"Content-Type": content_type, **(headers or {})}, len(body)) + body)


_REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
}


def head(status: int, headers: dict[str, str], length: int | None = None) -> bytes:
    """A status line and headers (``Connection: close``), ending with the blank line."""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


#: Answers one request (a handshake hook returns whether it accepted the websocket).
Route = Callable[[Request, Peer], object]


class HostileServer:
    """A loopback server; ``route(request, peer)`` answers each request however it likes.

    Counts what the tap did: ``connections`` (TCP connections accepted, TLS or not, even
    if nothing was sent on them) and ``requests`` (every HTTP request read, websocket
    handshakes included).
    """

    def __init__(self, route: Route, tls: ssl.SSLContext | None = None) -> None:
        self.route = route
        self.tls = tls
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.connections = 0
        self.requests: list[Request] = []
        self._clients: set[socket.socket] = set()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)  # the accept loop notices ``stopping``
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def origin(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    url = origin

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/ws"

    def requests_to(self, path_end: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path.rstrip("/").endswith(path_end)]

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self.lock:
            clients = list(self._clients)
        for sock in clients:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self._clients.add(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            sock.settimeout(60)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
                with self.lock:
                    self._clients.add(sock)
            peer = Peer(sock, self)
            request = read_request(peer)
            if request is None:
                return
            with self.lock:
                self.requests.append(request)
            self.route(request, peer)
        except (OSError, ValueError, struct.error):
            pass  # the tap hung up, refused the certificate, or the test ended
        finally:
            with contextlib.suppress(OSError):
                sock.close()


def read_request(peer: Peer) -> Request | None:
    """Request line, headers and (``Content-Length``) body; None when the tap hung up."""
    line = peer.rfile.readline(65536)
    if not line.strip():
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        raw = peer.rfile.readline(65536)
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = peer.rfile.read(int(headers.get("content-length") or 0))
    return Request(method, target, headers, body)


# ------------------------------------------------------------------ websocket


def ws_frame(opcode: int, payload: bytes, *, claimed: int | None = None) -> bytes:
    """One unmasked server frame; ``claimed`` overrides the length in the header."""
    n = len(payload) if claimed is None else claimed
    out = bytearray([0x80 | opcode])
    if n < 126:
        out.append(n)
    elif n < 65536:
        out += bytes([126]) + struct.pack(">H", n)
    else:
        out += bytes([127]) + struct.pack(">Q", n)
    return bytes(out) + payload


def read_ws_frame(peer: Peer) -> tuple[int, bytes] | None:
    """One client frame (masked), unmasked; None when the tap hung up."""
    start = peer.rfile.read(2)
    if len(start) < 2:
        return None
    opcode, n = start[0] & 0x0F, start[1] & 0x7F
    if n == 126:
        (n,) = struct.unpack(">H", peer.rfile.read(2))
    elif n == 127:
        (n,) = struct.unpack(">Q", peer.rfile.read(8))
    mask = peer.rfile.read(4) if start[1] & 0x80 else b""
    data = peer.rfile.read(n)
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return opcode, data


def accept_websocket(request: Request, peer: Peer) -> None:
    """The 101 answer to a handshake."""
    key = request.headers.get("sec-websocket-key", "")
    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    peer.send(
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
        ).encode()
    )


def response_frame_text(request_id: int, status: int, payload: str) -> str:
    """The ECSS response framing: ``01`` + length (10) + id (4) + status (3) + payload."""
    size = len(payload.encode("utf-8"))
    return f"01{size:010d}{request_id:04d}{status:03d}\n{payload}"


#: Answers one websocket request frame (the tap's request id given).
WsAnswer = Callable[[Peer, int], None]


def serve_websocket(peer: Peer, answer: WsAnswer) -> None:
    """Request frames until the tap closes; each answered by ``answer``."""
    while True:
        frame = read_ws_frame(peer)
        if frame is None:
            return
        opcode, data = frame
        if opcode == OP_CLOSE:
            with contextlib.suppress(OSError):
                peer.send(ws_frame(OP_CLOSE, data[:2]))
            return
        if opcode == OP_PING:
            peer.send(ws_frame(OP_PONG, data))
            continue
        if opcode in (OP_TEXT, OP_BINARY):
            text = data.decode("utf-8", "replace")
            answer(peer, int(text[12:16]) if text[12:16].isdigit() else 0)


# ------------------------------------------------------------------ the APIs' answers

#: One record per API, inside the hostile runs' window (2024-03-30 00:00 to 06:00 UTC).
THULIUM_RECORD = {
    "connection_id": "1711760400.7",
    "date": "2024-03-30 03:00",  # Europe/Warsaw, 02:00 UTC
    "src": "48500100200",
    "dst": "48221234567",
    "duration": 41,
    "billsec": 19,
    "type": "INBOUND",
}
CONPEEK_RECORD = {
    "dialog_uuid": "3ef5bd15-9bf9-4529-b426-76b31a570282",
    "start_time": "2024-03-30 03:00:00",
    "answer_time": "2024-03-30 03:00:19",
    "hangup_time": "2024-03-30 03:00:56",
    "direction": "IN",
    "talking_time": 37207,
}
ECSS_ATTRIBUTES = {
    "call_ref": "900001",
    "start_time": "2024/03/30 05:00:00",  # Europe/Helsinki, 03:00 UTC
    "answer_time": "2024/03/30 05:00:10",
    "release_time": "2024/03/30 05:01:00",
    "duration": "50",
    "direction": "in",
}


def thulium_body(records: list[dict], count: int | None = None) -> bytes:
    return json.dumps(
        {"count": len(records) if count is None else count, "result": records}
    ).encode()


def conpeek_body(records: list[dict]) -> bytes:
    return json.dumps({"data": records}).encode()


def ecss_xml(records: list[dict[str, str]], tag: str | None = None) -> bytes:
    calls = "".join(
        "<call_history " + " ".join(f'{k}="{v}"' for k, v in r.items()) + "/>" for r in records
    )
    tag_attr = f' tag="{tag}"' if tag else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<out><response><history{tag_attr}>{calls}</history></response></out>"
    ).encode()


def ecss_json(records: list[dict[str, str]]) -> str:
    calls = [{"_name": "call_history", "_attributes": r} for r in records]
    history: dict = {"_name": "history"}
    if calls:
        history["_content"] = calls
    root = {"_name": "out", "_content": [{"_name": "response", "_content": [history]}]}
    return json.dumps([root])


def good_ws_answer(peer: Peer, request_id: int) -> None:
    """One record, no tag: the window is done."""
    peer.send(
        ws_frame(
            OP_TEXT, response_frame_text(request_id, 200, ecss_json([ECSS_ATTRIBUTES])).encode()
        )
    )


@dataclass(frozen=True)
class Target:
    """A stream the hostile cases run against, and how to reach it."""

    key: str
    provider: str
    stream: str
    #: The end of the data request's path (the route a case replaces).
    data_path: str

    @property
    def websocket(self) -> bool:
        return self.key == "ecss_ws"

    @property
    def label(self) -> str:
        """The stream as the fault matrix names its rows."""
        return {"ecss_http": f"{self.stream} (HTTP)", "ecss_ws": f"{self.stream} (ws)"}.get(
            self.key, self.stream
        )


TARGETS = {
    t.key: t
    for t in (
        Target("thulium", "thulium", "thulium_connections", "/connections"),
        Target("conpeek", "conpeek", "conpeek_cdr_dialog", "/cdr_dialog"),
        Target("ecss_http", "ecss", "ecss_operator_call_history", "/operator_call_history"),
        Target("ecss_ws", "ecss", "ecss_operator_call_history", "/ws"),
    )
}


def good_answer(target: Target, request: Request, peer: Peer) -> None:
    """What the real API answers: auth checked, one record, then the end of the window."""
    if target.key == "thulium":
        token = base64.b64encode(f"{THULIUM_USER}:{THULIUM_PASSWORD}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {token}":
            peer.respond(401, b'{"errors": ["Unauthorized"]}')
            return
        peer.respond(200, thulium_body([THULIUM_RECORD]))
    elif target.key == "conpeek":
        if request.headers.get("authorization") != CONPEEK_KEY:
            peer.respond(401, b'{"message": "Unauthorized"}')
            return
        records = [CONPEEK_RECORD] if request.param("offset", "0") == "0" else []
        peer.respond(200, conpeek_body(records))
    else:
        if f"{SESSION_COOKIE}={SESSION_ID}" not in request.headers.get("cookie", ""):
            peer.respond(403, b'<out><error code="403">no session</error></out>', "text/xml")
            return
        peer.respond(200, ecss_xml([ECSS_ATTRIBUTES]), "text/xml; charset=utf-8")


def good_login(request: Request, peer: Peer) -> None:
    """ECSS login: 200 and the session cookie when the key is right."""
    form = parse_qs(request.body.decode("utf-8", "replace"))
    if (form.get("api_key") or [""])[-1] != ECSS_KEY:
        peer.respond(403, b'<out><error code="403">Authorization failed</error></out>', "text/xml")
        return
    peer.respond(
        200,
        b'<out><response cmd="login"/></out>',
        "text/xml",
        {"Set-Cookie": f"{SESSION_COOKIE}={SESSION_ID}; Path=/"},
    )


def good_handshake(request: Request, peer: Peer) -> bool:
    """Accept a handshake that carries the session cookie (403 otherwise)."""
    if f"{SESSION_COOKIE}={SESSION_ID}" not in request.headers.get("cookie", ""):
        peer.respond(403, b'<out><error code="403">no session</error></out>', "text/xml")
        return False
    accept_websocket(request, peer)
    return True


def provider_server(
    target: Target,
    *,
    data: Route | None = None,
    login: Route | None = None,
    handshake: Callable[[Request, Peer], bool] | None = None,
    ws_answer: WsAnswer | None = None,
    tls: ssl.SSLContext | None = None,
) -> HostileServer:
    """A server speaking ``target``'s API, with the parts a case replaces."""

    def route(request: Request, peer: Peer) -> None:
        if request.is_websocket:
            if (handshake or good_handshake)(request, peer):
                serve_websocket(peer, ws_answer or good_ws_answer)
        elif request.path == f"{ECSS_ARM}/login":
            (login or good_login)(request, peer)
        elif request.path.rstrip("/").endswith(target.data_path):
            if data is not None:
                data(request, peer)
            else:
                good_answer(target, request, peer)
        else:
            peer.respond(404, b'{"message": "not found"}')

    return HostileServer(route, tls=tls)


def counting_server() -> HostileServer:
    """The "other host": answers 200 to anything, so a request would look like success;
    a test checks that it received no connection at all."""
    return HostileServer(lambda request, peer: peer.respond(200, b"{}"))


# ------------------------------------------------------------------ bodies


@cache
def gzip_bomb(prefix: bytes, megabytes: int = 400) -> bytes:
    """A gzip stream of ``prefix`` then ``megabytes`` MiB of spaces (about 1/1000 of that
    compressed), built chunk by chunk so the fixture never holds the whole."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(prefix)]
    chunk = b" " * (1 << 20)
    parts += [packer.compress(chunk) for _ in range(megabytes)]
    parts.append(packer.flush())
    return b"".join(parts)


def nested_arrays(depth: int) -> str:
    return "[" * depth + "]" * depth


# ------------------------------------------------------------------ TLS


@dataclass(frozen=True)
class Tls:
    """A private CA (``trustme``) and a server context for ``127.0.0.1``/``localhost``."""

    ca_pem: Path
    server: ssl.SSLContext


@contextlib.contextmanager
def private_ca(directory: Path) -> Iterator[Tls]:
    import trustme  # noqa: PLC0415  (only the TLS cases need it)

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    pem = directory / "private-ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    yield Tls(pem, context)
