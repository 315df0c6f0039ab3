"""The ECSS websocket transport on the ``websockets`` library's threaded server.

The library does RFC 6455 (handshake, masking, fragments, ping/pong, close, UTF-8);
this module adds what the emulator needs around it: a handshake hook that can refuse
with the provider's own HTTP error, a message hook per text message, and the faults a
real server or proxy shows: hanging up without a close frame (:meth:`Connection.abort`)
and bytes that are no valid frame at all (:meth:`Connection.send_raw`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import weakref
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse
from websockets.protocol import State
from websockets.sync.server import Server, ServerConnection, serve

from emulator.base import parse_cookies

#: A bigger message or frame is refused (close 1009): nothing legitimate comes near it.
MAX_MESSAGE = 16 * 1024 * 1024


class Handshake:
    """The upgrade request; the application accepts it or answers an HTTP error."""

    def __init__(self, headers: Headers) -> None:
        self.headers = headers
        #: Set by the application on acceptance (e.g. the session id).
        self.context: Any = None

    @property
    def cookies(self) -> dict[str, str]:
        return parse_cookies(self.headers.get_all("Cookie"))


#: (status, content type, body) refusing a handshake, or None to accept it.
Refusal = tuple[int, str, bytes]
HandshakeHook = Callable[[Handshake], "Refusal | None"]
MessageHook = Callable[["Connection", str], None]


class Connection:
    """One accepted client: send text (optionally fragmented), raw bytes, or hang up."""

    def __init__(self, websocket: ServerConnection, handshake: Handshake) -> None:
        self.websocket = websocket
        self.handshake = handshake

    def send_text(self, text: str, fragment_bytes: int = 0) -> None:
        """A text message; ``fragment_bytes > 0`` splits it into frames of that many bytes
        (on byte boundaries: a character may span two frames, as RFC 6455 allows)."""
        data = text.encode()
        if fragment_bytes <= 0 or len(data) <= fragment_bytes:
            self.websocket.send(data, text=True)
            return
        chunks = [data[i : i + fragment_bytes] for i in range(0, len(data), fragment_bytes)]
        self.websocket.send(chunks, text=True)

    def send_raw(self, data: bytes) -> None:
        """Bytes straight onto the socket, bypassing the framing: for faults no valid
        frame can carry (a malformed header, a length the payload never matches)."""
        with self.websocket.protocol_mutex:
            self.websocket.socket.sendall(data)

    def abort(self) -> None:
        """Hang up without a close frame (what a crashed server or a proxy does)."""
        with contextlib.suppress(OSError):
            self.websocket.socket.shutdown(socket.SHUT_RDWR)


class WebSocketServer:
    """Listens on its own port in a thread; :meth:`stop` cuts every client at once."""

    def __init__(
        self,
        address: tuple[str, int],
        on_handshake: HandshakeHook,
        on_message: MessageHook,
    ) -> None:
        self.on_handshake = on_handshake
        self.on_message = on_message
        #: Every connection from its accept on (also one still in its handshake): stop()
        #: cuts them all, where the library would wait for a silent client's timeout.
        connections: weakref.WeakSet[ServerConnection] = weakref.WeakSet()
        self._connections = connections

        class TrackedConnection(ServerConnection):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                connections.add(self)

        self._handshakes: weakref.WeakKeyDictionary[ServerConnection, Handshake] = (
            weakref.WeakKeyDictionary()
        )
        self._server: Server = serve(
            self._serve,
            address[0],
            address[1],
            process_response=self._process_response,
            server_header=None,
            create_connection=TrackedConnection,
            compression=None,  # frames on the wire are exactly what the emulator sends
            ping_interval=None,  # no keepalive pings the real server does not send
            max_size=MAX_MESSAGE,
        )
        self.port = int(self._server.socket.getsockname()[1])
        self._thread: threading.Thread | None = None

    def _process_response(
        self, connection: ServerConnection, request: WsRequest, response: WsResponse
    ) -> WsResponse | None:
        """Once the library accepts the upgrade (a bad one already has its 400 or 426),
        ask ``on_handshake``: a refusal is sent as it is, and the connection closed."""
        if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
            return None
        handshake = Handshake(request.headers)
        refusal = self.on_handshake(handshake)
        if refusal is None:
            self._handshakes[connection] = handshake
            return None
        status, content_type, body = refusal
        headers = Headers(
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ]
        )
        return WsResponse(status, HTTPStatus(status).phrase, headers, body)

    def _serve(self, websocket: ServerConnection) -> None:
        """One client: each message to ``on_message``; binary ones must be UTF-8 text."""
        conn = Connection(websocket, self._handshakes.pop(websocket))
        try:
            for message in websocket:
                if isinstance(message, str):
                    self.on_message(conn, message)
                    continue
                try:
                    text = message.decode()
                except UnicodeDecodeError:
                    websocket.close(1003, "binary message is not UTF-8 text")
                    return
                self.on_message(conn, text)
        except ConnectionClosed:
            pass  # the client left, broke the protocol (answered with a close), or was cut

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"ws-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, cut every client (no close frame), free the port.

        The library's shutdown waits for every connection handler, and closes the open
        ones with a close frame on a thread pool (refused once the interpreter exits, e.g.
        from atexit). So clients are cut first, and again until the shutdown is done: one
        accepted just before it would otherwise wait for its handshake timeout."""
        self._cut_clients()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and any(
            c.state is State.OPEN for c in list(self._connections)
        ):
            time.sleep(0.01)  # the library notices the cut sockets (state CLOSED)
        closer = threading.Thread(target=self._shutdown, name=f"ws-{self.port}-stop")
        closer.start()
        while closer.is_alive():
            closer.join(timeout=0.05)
            self._cut_clients()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _cut_clients(self) -> None:
        for connection in list(self._connections):
            with contextlib.suppress(OSError):
                connection.socket.shutdown(socket.SHUT_RDWR)

    def _shutdown(self) -> None:
        with contextlib.suppress(RuntimeError):  # no thread pool at interpreter exit
            self._server.shutdown()
