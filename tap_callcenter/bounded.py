"""Every request bounded: in time, in bytes, and to its own origin.

A server may be slow on purpose, endless, or elsewhere than configured. The HTTP
session and the websocket the tap uses come from here, and enforce:

- **a deadline per attempt** (``request_timeout``): headers, body, or one websocket
  answer must be complete by then, however slowly the bytes trickle (a socket timeout
  alone only bounds the gap between two bytes). A watchdog shuts the attempt's sockets
  when the deadline passes; the attempt fails as a timeout, which the retry policy
  retries like any other.
- **a cap on the decoded size of one answer** (``max_response_mib``): bodies are read
  as a stream, after gzip/deflate decoding, and a websocket frame is refused by its
  header; bigger is :class:`AnswerTooLarge`, not retried.
- **no credentials to another origin**: a redirect to another scheme, host or port is
  :class:`RedirectRefused` before anything is sent there (requests would re-send an
  ECSS login form on 307/308, and websocket-client the session cookie); a websocket
  handshake is never redirected; redirect loops end after ``MAX_REDIRECTS``.
- **TLS that says what failed**: a certificate that does not verify is
  :class:`TlsRefused`, not retried; a private CA is trusted through ``ca_bundle``,
  ``REQUESTS_CA_BUNDLE`` or ``SSL_CERT_FILE``, for every request and the websocket.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import socket
import ssl
import threading
import time
import typing as t
from urllib.parse import urljoin, urlsplit

import requests
import websocket
from requests.adapters import HTTPAdapter
from requests.utils import resolve_proxies
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from websocket._abnf import frame_buffer

#: Redirects followed (same origin only) before the chain counts as a loop.
MAX_REDIRECTS = 5
#: Bytes of a redirect's own body read before it is dropped.
_REDIRECT_BODY_BYTES = 64 * 1024
_CHUNK = 64 * 1024
MIB = 1024 * 1024


class AnswerTooLarge(requests.RequestException):
    """An answer bigger than ``max_response_mib`` (decoded): not retried."""


class RedirectRefused(requests.RequestException):
    """A redirect the tap does not follow (another origin, a websocket handshake)."""


class TlsRefused(requests.RequestException):
    """The TLS handshake failed (an untrusted certificate): not retried."""


class AttemptTimedOut(requests.Timeout):
    """The answer was not complete within the attempt's deadline: retried."""


#: Failures of a request that another try cannot mend.
PERMANENT_FAILURES = (AnswerTooLarge, RedirectRefused, TlsRefused, requests.TooManyRedirects)
#: Failures whose message is already the whole story (no library wording to hide).
TOLD_FAILURES = (AnswerTooLarge, RedirectRefused, TlsRefused, AttemptTimedOut)


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL (default ports written out), for comparing."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    default = {"http": 80, "ws": 80, "https": 443, "wss": 443}.get(scheme)
    try:
        port = parts.port or default
    except ValueError:
        port = None
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


# ------------------------------------------------------------------------- deadlines

_current = threading.local()


class Deadline:
    """One attempt's end: the sockets it watches are shut down when it passes, so a
    read blocked on a trickling server returns at once (see :class:`_Watchdog`)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires = 0.0
        self.expired = False
        self.done = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Deadline:
        self._outer = getattr(_current, "deadline", None)
        _current.deadline = self
        self.expires = time.monotonic() + self.seconds
        _WATCHDOG.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.done = True
            self._sockets.clear()  # the watchdog's heap holds this entry a while longer
        _current.deadline = self._outer

    def watch(self, sock: socket.socket | None) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it has)."""
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def expire(self) -> None:
        """The deadline passed: shut every watched socket (unless the attempt ended)."""
        with self._lock:
            if self.done:
                return
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


class _Watchdog:
    """One thread for every deadline of the process (a timer thread per request cost
    more than the request's own work at zero latency). Deadlines wait in a heap; an
    ended attempt's entry is dropped when its time comes."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._count = 0

    def add(self, deadline: Deadline) -> None:
        with self._condition:
            self._count += 1
            earliest = self._heap[0][0] if self._heap else None
            heapq.heappush(self._heap, (deadline.expires, self._count, deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
                self._thread.start()
            elif earliest is None or deadline.expires < earliest:
                self._condition.notify()

    def _run(self) -> None:
        while True:
            due: list[Deadline] = []
            with self._condition:
                while not self._heap:
                    self._condition.wait()
                now = time.monotonic()
                while self._heap and (self._heap[0][0] <= now or self._heap[0][2].done):
                    due.append(heapq.heappop(self._heap)[2])
                if not due:
                    self._condition.wait(self._heap[0][0] - now)
            for deadline in due:
                deadline.expire()


_WATCHDOG = _Watchdog()


def _shut(sock: socket.socket) -> None:
    # the plain socket's shutdown, also under TLS: the reading thread sees end of file
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def watch_current(sock: socket.socket | None) -> None:
    """Put ``sock`` under the deadline of the attempt running in this thread."""
    deadline: Deadline | None = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().request(*args, **kwargs)
        watch_current(self.sock)


class _WatchedHTTPSConnection(HTTPSConnection):
    def request(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().request(*args, **kwargs)
        watch_current(self.sock)


class _WatchedPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedTlsPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connections report their socket to the deadline."""

    def init_poolmanager(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedPool,
            "https": _WatchedTlsPool,
        }


# ------------------------------------------------------------------------- the session


def ca_bundle(setting: str | None) -> str | bool:
    """What verifies servers' certificates: the ``ca_bundle`` setting, else
    ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE`` or ``SSL_CERT_FILE``, else the bundled
    CAs (True). requests alone ignores these variables for prepared requests."""
    for value in (
        setting,
        os.environ.get("REQUESTS_CA_BUNDLE"),
        os.environ.get("CURL_CA_BUNDLE"),
        os.environ.get("SSL_CERT_FILE"),
    ):
        if value:
            return value
    return True


class BoundedSession(requests.Session):
    """A session whose requests stay on their origin and under their deadline."""

    def __init__(self, verify: str | bool = True) -> None:
        super().__init__()
        self.verify = verify
        self.max_redirects = MAX_REDIRECTS
        self.mount("http://", _WatchedAdapter())
        self.mount("https://", _WatchedAdapter())

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        """Follow a redirect only on the same origin; drop its body (read a little)."""
        target = super().get_redirect_target(resp)
        if target is None:
            return None
        absolute = urljoin(resp.url or "", target)
        if origin(absolute) != origin(resp.url or ""):
            resp.close()
            msg = (
                f"the server redirected to another origin, {origin(absolute)}: refused "
                "(credentials are never sent to another host; configure that address "
                "if it is the right one)"
            )
            raise RedirectRefused(msg, response=resp)
        with contextlib.suppress(Exception):
            resp.raw.read(_REDIRECT_BODY_BYTES, decode_content=False)
        # what requests itself sets once a body is consumed
        resp._content = b""
        resp._content_consumed = True  # type: ignore[attr-defined]
        return target


def send(
    session: requests.Session,
    request: requests.PreparedRequest,
    timeout: float,
    max_bytes: int,
) -> requests.Response:
    """Send ``request``; the whole answer within ``timeout`` seconds and at most
    ``max_bytes`` decoded, or a failure saying which bound was hit."""
    with Deadline(timeout) as deadline:
        try:
            response = session.send(
                request, timeout=timeout, stream=True, proxies=proxies_for(session, request)
            )
            read_body(response, max_bytes)
        except requests.RequestException as exc:
            if deadline.expired:
                raise _late(timeout) from None
            raise tls_failure(exc) or exc from None
        except OSError as exc:  # an SSL error may escape urllib3 mid-body
            if deadline.expired:
                raise _late(timeout) from None
            raise requests.ConnectionError(str(exc)) from None
    return response


def proxies_for(session: requests.Session, request: requests.PreparedRequest) -> dict:
    """The proxies for ``request``'s origin (``HTTPS_PROXY``, ``NO_PROXY``…), worked
    out once per origin: requests reads the environment again for every request."""
    cache: dict[str, dict] = session.__dict__.setdefault("_proxies_by_origin", {})
    key = origin(request.url or "")
    if key not in cache:
        cache[key] = resolve_proxies(request, dict(session.proxies), session.trust_env)
    return cache[key]


def _late(timeout: float) -> AttemptTimedOut:
    return AttemptTimedOut(f"no complete answer within request_timeout ({timeout:g} s)")


def read_body(response: requests.Response, max_bytes: int) -> None:
    """Read a streamed body, decoded, refusing it once it exceeds ``max_bytes``."""
    declared = response.headers.get("Content-Length", "")
    encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
    if declared.isdigit() and int(declared) > max_bytes and not encoded:
        response.close()
        raise AnswerTooLarge(too_large(max_bytes, f"it declares {int(declared)} bytes"))
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            response.close()
            raise AnswerTooLarge(too_large(max_bytes, "stopped reading"))
        chunks.append(chunk)
    # as requests' own ``.content`` leaves it
    response._content = b"".join(chunks)
    response._content_consumed = True  # type: ignore[attr-defined]


def too_large(max_bytes: int, detail: str) -> str:
    """The error text of an answer over the cap."""
    return (
        f"the answer is larger than max_response_mib ({max_bytes / MIB:g} MiB; {detail}); "
        "raise the setting if such answers are expected"
    )


def tls_failure(exc: BaseException) -> TlsRefused | None:
    """A :class:`TlsRefused` for a failed TLS handshake, None for anything else."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
            seen
        ):
            return TlsRefused(
                "the server's TLS certificate is not trusted (certificate verify failed); "
                "if a private CA signed it, name its PEM file in the setting ca_bundle "
                "(or REQUESTS_CA_BUNDLE / SSL_CERT_FILE)"
            )
        if isinstance(seen, (ssl.SSLError, requests.exceptions.SSLError)):
            return TlsRefused(f"the TLS handshake failed: {seen}")
        seen = seen.__cause__ or seen.__context__
    return None


# ------------------------------------------------------------------------- websocket


class _CappedFrames(frame_buffer):
    """websocket-client's frame reader, refusing a message whose frames (by their
    headers, before any payload is read) add up to more than the cap."""

    max_bytes: int = 64 * MIB
    message_bytes: int = 0

    def recv_length(self) -> None:
        super().recv_length()
        self.message_bytes += self.length or 0
        if self.message_bytes > self.max_bytes:
            self.clear()  # no later read may take this frame's length for its own
            raise AnswerTooLarge(too_large(self.max_bytes, "by its frame header"))


class BoundedWebSocket(websocket.WebSocket):
    """A websocket whose messages are capped in size and whose handshake is never
    redirected."""

    def __init__(self, max_bytes: int, **kwargs: t.Any) -> None:
        super().__init__(**kwargs)
        frames = _CappedFrames(self._recv, self.frame_buffer.skip_utf8_validation)
        frames.max_bytes = max_bytes
        self.frame_buffer = frames

    def recv_message(self) -> str | bytes:
        """One whole message (``recv``), counted against the cap from zero."""
        t.cast("_CappedFrames", self.frame_buffer).message_bytes = 0
        return self.recv()


def open_websocket(
    url: str, cookie: str, timeout: float, max_bytes: int, verify: str | bool
) -> BoundedWebSocket:
    """Connect (handshake included) within ``timeout``; the socket then stays under
    the deadline of whichever attempt uses it (see :func:`watch_current`)."""
    sslopt: dict[str, t.Any] = {}
    if isinstance(verify, str):
        sslopt["ca_certs"] = verify
    elif not verify:
        sslopt["cert_reqs"] = ssl.CERT_NONE
    connection = BoundedWebSocket(max_bytes, sslopt=sslopt)
    connection.settimeout(timeout)
    with Deadline(timeout) as deadline:
        try:
            connection.connect(url, cookie=cookie, redirect_limit=0, timeout=timeout)
        except websocket.WebSocketException:
            answer = connection.handshake_response
            if answer is not None and 300 <= answer.status < 400:
                where = (answer.headers or {}).get("location") or "(no Location)"
                msg = (
                    f"the websocket handshake was redirected ({answer.status}) to "
                    f"{origin(urljoin(url, where))}: refused (the session cookie is not "
                    "sent on; set ecss.ws_url to the final address)"
                )
                raise RedirectRefused(msg) from None
            if deadline.expired:
                raise _late(timeout) from None
            raise
        except OSError as exc:
            refused = tls_failure(exc)
            if refused is not None:
                raise refused from None
            if deadline.expired:
                raise _late(timeout) from None
            raise
    return connection
