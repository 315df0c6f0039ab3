"""A minimal RFC 6455 websocket server on the standard library, one thread per client.

Enough for the ECSS transport and strict where a client bug would hide: the
HTTP/1.1 upgrade handshake (``Sec-WebSocket-Accept``), client frames must be masked,
fragmented messages are reassembled (control frames may come between fragments),
7/16/64-bit payload lengths, ping -> pong, close -> close echo, text must be UTF-8.
What the application does with a message is a callback; it may answer (optionally
fragmented), send raw bytes, or hang up.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from email.message import Message
from email.parser import Parser
from typing import Any

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: A bigger message is refused (close 1009): nothing legitimate comes near it.
MAX_MESSAGE = 16 * 1024 * 1024


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def encode_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One unmasked (server) frame."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head.append(n)
    elif n < 65536:
        head.append(126)
        head += struct.pack(">H", n)
    else:
        head.append(127)
        head += struct.pack(">Q", n)
    return bytes(head) + payload


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte key, as one big integer (fast for large payloads)."""
    n = len(payload)
    if n == 0:
        return payload
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class ProtocolError(Exception):
    """The client broke RFC 6455: close with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class Handshake:
    """The upgrade request; the application accepts it or answers an HTTP error."""

    def __init__(self, path: str, headers: Message, client: tuple[str, int]) -> None:
        self.path = path
        self.headers = headers
        self.client = client
        #: Set by the application on acceptance (e.g. the session id).
        self.context: Any = None

    @property
    def cookies(self) -> dict[str, str]:
        jar: dict[str, str] = {}
        for header in self.headers.get_all("Cookie") or []:
            for part in header.split(";"):
                name, sep, value = part.strip().partition("=")
                if sep:
                    jar[name] = value
        return jar


#: (status, content type, body) refusing a handshake, or None to accept it.
Refusal = tuple[int, str, bytes]
HandshakeHook = Callable[[Handshake], "Refusal | None"]
MessageHook = Callable[["Connection", str], None]

_REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 426: "Upgrade Required"}


class Connection:
    """One accepted client: send text (optionally fragmented), raw bytes, close, abort."""

    def __init__(self, sock: socket.socket, handshake: Handshake) -> None:
        self.sock = sock
        self.handshake = handshake
        self._send_lock = threading.Lock()
        self.closed = False

    def send_text(self, text: str, fragment_bytes: int = 0) -> None:
        self.send_message(text.encode(), fragment_bytes)

    def send_message(self, data: bytes, fragment_bytes: int = 0) -> None:
        """A text message; ``fragment_bytes > 0`` splits it into continuation frames
        (on byte boundaries: a character may span two frames, as RFC 6455 allows)."""
        if fragment_bytes <= 0 or len(data) <= fragment_bytes:
            self.send_raw(encode_frame(OP_TEXT, data))
            return
        chunks = [data[i : i + fragment_bytes] for i in range(0, len(data), fragment_bytes)]
        frames = [
            encode_frame(OP_TEXT if i == 0 else OP_CONT, chunk, fin=i == len(chunks) - 1)
            for i, chunk in enumerate(chunks)
        ]
        self.send_raw(b"".join(frames))

    def send_raw(self, data: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (once) and shut the socket down."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            self.send_raw(encode_frame(OP_CLOSE, struct.pack(">H", code) + reason.encode()))
        self.abort()

    def abort(self) -> None:
        """Hang up without a close frame (what a crashed server or a proxy does)."""
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


class _Handler(socketserver.StreamRequestHandler):
    server: WebSocketServer
    disable_nagle_algorithm = True

    def handle(self) -> None:
        handshake = self._handshake()
        if handshake is None:
            return
        conn = Connection(self.connection, handshake)
        try:
            self._loop(conn)
        except ProtocolError as exc:
            conn.close(exc.code, str(exc)[:100])
        except (OSError, ValueError):
            conn.abort()

    def _refuse(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        reason = _REASONS.get(status, "Error")
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(OSError):
            self.connection.sendall(head.encode() + body)

    def _handshake(self) -> Handshake | None:
        lines: list[str] = []
        total = 0
        while True:
            line = self.rfile.readline(8193)
            if not line:
                return None
            total += len(line)
            if total > 65536:
                self._refuse(400, b"request header too large")
                return None
            if line in (b"\r\n", b"\n"):
                break
            lines.append(line.decode("latin-1"))
        if not lines:
            return None
        parts = lines[0].split()
        if len(parts) != 3 or parts[0] != "GET":
            self._refuse(400, b"expected a GET upgrade request")
            return None
        headers = Parser().parsestr("".join(lines[1:]), headersonly=True)
        upgrade = (headers.get("Upgrade") or "").lower()
        connection = (headers.get("Connection") or "").lower()
        key = (headers.get("Sec-WebSocket-Key") or "").strip()
        if upgrade != "websocket" or "upgrade" not in connection or not key:
            self._refuse(400, b"not a websocket upgrade request")
            return None
        if (headers.get("Sec-WebSocket-Version") or "").strip() != "13":
            self._refuse(426, b"unsupported websocket version (13 expected)")
            return None
        handshake = Handshake(parts[1], headers, self.client_address)
        refusal = self.server.on_handshake(handshake)
        if refusal is not None:
            status, content_type, body = refusal
            self._refuse(status, body, content_type)
            return None
        self.connection.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
            ).encode()
        )
        return handshake

    def _read(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if len(data) != n:
            raise EOFError
        return data

    def _frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self._read(2)
        if b0 & 0x70:
            raise ProtocolError(1002, "reserved bits set")
        if not b1 & 0x80:
            raise ProtocolError(1002, "client frames must be masked")
        fin, opcode, n = bool(b0 & 0x80), b0 & 0x0F, b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack(">H", self._read(2))
        elif n == 127:
            (n,) = struct.unpack(">Q", self._read(8))
        if opcode >= 0x8 and (n > 125 or not fin):
            raise ProtocolError(1002, "bad control frame")
        if n > MAX_MESSAGE:
            raise ProtocolError(1009, "message too big")
        mask = self._read(4)
        return fin, opcode, unmask(self._read(n), mask)

    def _loop(self, conn: Connection) -> None:
        parts: list[bytes] = []
        size = 0
        message_op: int | None = None
        while not conn.closed:
            try:
                fin, opcode, payload = self._frame()
            except EOFError:
                conn.abort()
                return
            if opcode == OP_PING:
                conn.send_raw(encode_frame(OP_PONG, payload))
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1000
                conn.close(code if 1000 <= code < 5000 else 1000)
                return
            if opcode in (OP_TEXT, OP_BINARY):
                if message_op is not None:
                    raise ProtocolError(1002, "new message inside a fragmented one")
                message_op, parts, size = opcode, [], 0
            elif opcode != OP_CONT or message_op is None:
                raise ProtocolError(1002, f"unexpected opcode {opcode}")
            parts.append(payload)
            size += len(payload)
            if size > MAX_MESSAGE:
                raise ProtocolError(1009, "message too big")
            if not fin:
                continue
            data, op = b"".join(parts), message_op
            message_op, parts = None, []
            try:
                text = data.decode()
            except UnicodeDecodeError as exc:
                if op == OP_TEXT:
                    raise ProtocolError(1007, "text message is not UTF-8") from exc
                raise ProtocolError(1003, "binary message is not UTF-8 text") from exc
            self.server.on_message(conn, text)


class WebSocketServer(socketserver.ThreadingTCPServer):
    """Listens on its own port; remembers open sockets so :meth:`stop` cuts them."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        on_handshake: HandshakeHook,
        on_message: MessageHook,
    ) -> None:
        self.on_handshake = on_handshake
        self.on_message = on_message
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"ws-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, cut every client, free the port."""
        self.shutdown()
        with self.sockets_lock:
            sockets = list(self.open_sockets)
            self.open_sockets.clear()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
