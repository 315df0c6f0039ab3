"""How ECSS requests travel: HTTP (XML body, session cookie) or the websocket.

Both transports log in over HTTP, keep the session cookie, renew the session once when
the server answers 403 (sessions expire), and return the answer as a ``requests.Response``
carrying the decoded :class:`~tap_callcenter.ecss.xml.Page`, so the stream's paging and
retry code is the same for both. Transient trouble is raised as the exceptions the retry
loop retries; fatal trouble as ``CallcenterError``.
"""

from __future__ import annotations

import contextlib
import json
import typing as t
from urllib.parse import urlsplit

import requests
import websocket
from singer_sdk.exceptions import RetriableAPIError

from tap_callcenter import bounded
from tap_callcenter.ecss import frames
from tap_callcenter.ecss.xml import (
    EcssErrorAnswer,
    build_request,
    element_to_json,
    json_to_element,
    read_answer,
    request_bytes,
)
from tap_callcenter.errors import CallcenterError, snippet
from tap_callcenter.pagination import attach_payload
from tap_callcenter.retry import is_auth_failure, is_retriable_status

if t.TYPE_CHECKING:
    import logging

COMMAND = "operator_call_history"


class EcssStreamSide(t.Protocol):
    """What a transport uses of its stream: settings, the HTTP session, and how the
    stream judges answers and words its errors."""

    name: str

    @property
    def auth_hint(self) -> str: ...
    @property
    def logger(self) -> logging.Logger: ...
    @property
    def provider_config(self) -> t.Mapping[str, t.Any]: ...
    @property
    def url_base(self) -> str: ...
    @property
    def timeout(self) -> int: ...
    @property
    def requests_session(self) -> requests.Session: ...
    @property
    def tls_verify(self) -> str | bool: ...
    @property
    def max_response_bytes(self) -> int: ...
    def validate_response(self, response: requests.Response) -> None: ...
    def api_error_message(self, response: requests.Response) -> str: ...
    def fail(
        self, message: str, request: t.Any = None, hint: str | None = None
    ) -> CallcenterError: ...


class SessionRefused(Exception):
    """The server refused the session (403): log in again, once."""


class EcssTransport:
    """Shared part: the HTTP login and the one-time session renewal."""

    def __init__(self, stream: EcssStreamSide) -> None:
        self.stream = stream
        self.session = stream.requests_session
        self.logged_in = False

    @property
    def base_url(self) -> str:
        return self.stream.url_base

    def post(self, url: str, **kwargs: t.Any) -> requests.Response:
        """POST through the session (its cookies), bounded like every request."""
        request = self.session.prepare_request(requests.Request("POST", url, **kwargs))
        return bounded.send(
            self.session, request, self.stream.timeout, self.stream.max_response_bytes
        )

    def login(self) -> None:
        """POST the credentials as a form; the session cookie lands in the session."""
        config = self.stream.provider_config
        form = {k: str(config[k]) for k in ("client_id", "api_key", "phone_number")}
        url = f"{self.base_url}/login"
        response = self.post(url, data=form)
        if is_auth_failure(response.status_code):
            raise self.stream.fail(
                f"login refused: HTTP {response.status_code} {response.reason}: "
                f"{self.stream.api_error_message(response)}",
                f"POST {urlsplit(url).path}",
                hint=self.stream.auth_hint,
            )
        if is_retriable_status(response.status_code):
            raise RetriableAPIError(
                f"login: HTTP {response.status_code} {response.reason}", response
            )
        if response.status_code >= 400:
            raise self.stream.fail(
                f"login failed: HTTP {response.status_code} {response.reason}: "
                f"{self.stream.api_error_message(response)}",
                f"POST {urlsplit(url).path}",
            )
        self.logged_in = True

    def fetch(self, filters: dict[str, str]) -> requests.Response:
        """One page; on a refused session, log in again and ask once more."""
        if not self.logged_in:
            self.login()
        try:
            return self._fetch(filters)
        except SessionRefused:
            self.stream.logger.info("%s: session expired; logging in again", self.stream.name)
            self.login()
            try:
                return self._fetch(filters)
            except SessionRefused as exc:
                raise self.stream.fail(
                    f"the session was refused again right after a new login: {exc}",
                    self.describe(filters),
                    hint=self.stream.auth_hint,
                ) from None

    def _fetch(self, filters: dict[str, str]) -> requests.Response:
        raise NotImplementedError

    def describe(self, filters: dict[str, str]) -> str:
        """The request, for error messages."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


class HttpTransport(EcssTransport):
    """POST the XML request to ``{api_url}/{domain}/service/cc/arm/operator_call_history``."""

    def _fetch(self, filters: dict[str, str]) -> requests.Response:
        response = self.post(
            f"{self.base_url}/{COMMAND}",
            data=request_bytes(filters),
            headers={"Content-Type": "application/xml; charset=utf-8"},
        )
        if response.status_code == 403:
            raise SessionRefused(self.stream.api_error_message(response))
        self.stream.validate_response(response)
        return response

    def describe(self, filters: dict[str, str]) -> str:
        path = urlsplit(f"{self.base_url}/{COMMAND}").path
        return f"POST {path} with filters {json.dumps(filters, ensure_ascii=False)}"


class WebsocketTransport(EcssTransport):
    """The same command over the websocket at ``ecss.ws_url``, one connection reused."""

    def __init__(self, stream: EcssStreamSide) -> None:
        super().__init__(stream)
        self.url = str(stream.provider_config["ws_url"])
        self.connection: bounded.BoundedWebSocket | None = None
        self.next_id = 0

    def _connect(self) -> bounded.BoundedWebSocket:
        if self.connection is not None and self.connection.connected:
            return self.connection
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.session.cookies)
        stream = self.stream
        try:
            self.connection = bounded.open_websocket(
                self.url, cookie, stream.timeout, stream.max_response_bytes, stream.tls_verify
            )
        except requests.RequestException:  # refused redirect, TLS, deadline: as they are
            raise
        except websocket.WebSocketBadStatusException as exc:
            if is_auth_failure(exc.status_code):
                raise SessionRefused(f"websocket handshake answered {exc.status_code}") from None
            raise ConnectionError(f"websocket handshake failed: {exc.status_code}") from None
        except (OSError, websocket.WebSocketException) as exc:
            raise ConnectionError(f"websocket connection failed: {exc}") from None
        return self.connection

    def _fetch(self, filters: dict[str, str]) -> requests.Response:
        frame = self._exchange(filters)
        if frame.status == 403:
            self.close()
            raise SessionRefused(f"websocket status 403: {snippet(frame.payload, 200)}")
        if frame.status is not None and is_retriable_status(frame.status):
            raise RetriableAPIError(
                f"websocket status {frame.status}: {snippet(frame.payload, 200)}"
            )
        try:
            page = read_answer(json_to_element(json.loads(frame.payload)))
        except EcssErrorAnswer as exc:
            raise self.stream.fail(
                f"the server answered with status {frame.status} and an error: {exc}",
                self.describe(filters),
            ) from None
        except RecursionError:
            raise self.stream.fail(
                "the websocket answer nests deeper than the tap reads (a broken or hostile server)",
                self.describe(filters),
            ) from None
        except ValueError as exc:
            self.close()
            raise RetriableAPIError(
                f"the websocket answer is not the expected JSON: {exc}"
            ) from None
        if frame.status != 200:
            raise self.stream.fail(f"websocket status {frame.status}", self.describe(filters))
        response = requests.Response()
        response.status_code = 200
        attach_payload(response, page)
        return response

    def _exchange(self, filters: dict[str, str]) -> frames.Frame:
        """Send one request and wait for its answer, all within ``request_timeout``
        (frames answering other requests are skipped, not waited on for ever)."""
        connection = self._connect()
        self.next_id = self.next_id % frames.MAX_REQUEST_ID + 1
        payload = json.dumps([element_to_json(build_request(filters))], ensure_ascii=False)
        timeout = self.stream.timeout
        with bounded.Deadline(timeout) as deadline:
            deadline.watch(connection.sock)
            try:
                connection.send(frames.encode_request(self.next_id, COMMAND, payload))
                return self._receive(connection, self.next_id)
            except bounded.AnswerTooLarge:
                self.close()
                raise
            except (OSError, websocket.WebSocketException) as exc:
                self.close()
                if deadline.expired or isinstance(exc, websocket.WebSocketTimeoutException):
                    raise bounded.AttemptTimedOut(
                        f"no complete websocket answer within request_timeout ({timeout:g} s)"
                    ) from None
                raise ConnectionError(f"the websocket broke: {exc}") from None
            except frames.FrameError as exc:
                self.close()
                raise RetriableAPIError(f"malformed websocket frame: {exc}") from None

    @staticmethod
    def _receive(connection: bounded.BoundedWebSocket, request_id: int) -> frames.Frame:
        """Frames until the one answering ``request_id`` (others are not ours)."""
        while True:
            text = connection.recv_message()
            if isinstance(text, bytes):
                try:
                    text = text.decode("utf-8")
                except UnicodeDecodeError:
                    msg = "a binary frame that is not UTF-8 text"
                    raise frames.FrameError(msg) from None
            if not text:
                raise ConnectionError("the websocket closed")
            frame = frames.decode_response(text)
            if frame.request_id == request_id:
                return frame

    def describe(self, filters: dict[str, str]) -> str:
        return f"websocket {COMMAND} with filters {json.dumps(filters, ensure_ascii=False)}"

    def close(self) -> None:
        """Drop the connection without the closing handshake: after a failure the
        server may still be sending, and nothing more is read from it."""
        if self.connection is not None:
            with contextlib.suppress(Exception):
                self.connection.shutdown()
        self.connection = None
