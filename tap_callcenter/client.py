"""What every stream shares over HTTP: sessions, retries, decoding, one clear error.

:class:`CallcenterStream` runs the window engine (:mod:`tap_callcenter.engine`) over the
SDK's ``RESTStream``, adding: a timeout on every request, at most ``max_concurrency``
requests in flight, a 429's ``Retry-After`` honoured by the whole stream, retries by
the tap's one :class:`~tap_callcenter.retry.RetryPolicy`, bodies decoded inside the
retry loop (a truncated body is retried like a dropped connection), records fitted to
their SCHEMA, and one :class:`~tap_callcenter.errors.CallcenterError` when a request
fails for good.
"""

from __future__ import annotations

import threading
import time
import typing as t
from functools import cached_property

import msgspec
import requests
from singer_sdk import SchemaDirectory, StreamSchema
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.streams import RESTStream

from tap_callcenter import bounded, schemas
from tap_callcenter.bounded import BoundedSession, ca_bundle
from tap_callcenter.errors import CallcenterError, describe_request, snippet
from tap_callcenter.pages import RecordPages
from tap_callcenter.pagination import attach_payload, payload_of
from tap_callcenter.provider import with_defaults
from tap_callcenter.retry import (
    RETRY_AFTER_CAP,
    GaveUp,
    RetryPolicy,
    is_auth_failure,
    is_retriable_status,
    retry_after_seconds,
    short_reason,
)

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from singer_sdk.helpers.types import Context

_JSON = msgspec.json.Decoder()
#: Characters of a body quoted in an error message.
_SNIPPET = 300


def body_snippet(response: requests.Response) -> str:
    """The start of a body, on one line, for error messages (secrets redacted before it
    is cut, so a secret straddling the cut cannot leak its first part)."""
    return snippet(response.text or "", _SNIPPET)


class CallcenterStream(RecordPages, RESTStream):
    """Base of every stream: windowed incremental sync over a retried HTTP client."""

    #: Provider name as in the config block (``thulium``); used in errors and settings.
    provider: t.ClassVar[str]
    #: Hint appended to 401/403 errors.
    auth_hint: t.ClassVar[str] = ""
    #: What a good body is, for error messages.
    body_format: t.ClassVar[str] = "JSON"
    #: One JSON schema file per stream in ``schemas/``, named after the stream.
    schema = StreamSchema(SchemaDirectory(schemas))

    @cached_property
    def provider_config(self) -> t.Mapping[str, t.Any]:
        """This provider's config block, with the defaults its schema declares."""
        schema = self._tap.config_jsonschema["properties"][self.provider]
        return with_defaults(self.config[self.provider], schema)

    # ----------------------------------------------------------------- sending

    @property
    def requests_session(self) -> requests.Session:
        """One session (connection pool, cookies) per thread: sessions are not
        thread-safe, and keep-alive connections are reused within each thread."""
        local = self.__dict__.setdefault("_thread_sessions", threading.local())
        session: requests.Session | None = getattr(local, "session", None)
        if session is None:
            session = local.session = BoundedSession(self.tls_verify)
        return session

    @property
    def tls_verify(self) -> str | bool:
        """What verifies server certificates (``ca_bundle`` or the environment's)."""
        return ca_bundle(self.settings.ca_bundle)

    @property
    def max_response_bytes(self) -> int:
        """The largest decoded answer accepted (``max_response_mib``)."""
        return self.settings.max_response_bytes

    @property
    def timeout(self) -> int:
        """Every request is bounded by ``request_timeout`` seconds (a float, although
        the SDK declares an int)."""
        return self.settings.request_timeout  # type: ignore[return-value]

    @cached_property
    def _in_flight(self) -> threading.BoundedSemaphore:
        return threading.BoundedSemaphore(max(1, self.concurrency))

    #: monotonic time before which no request of this stream is sent (Retry-After)
    _paused_until: float = 0.0

    def _request(
        self, prepared_request: requests.PreparedRequest, context: Context | None
    ) -> requests.Response:
        """The SDK's request, bounded in time, size and origin (:mod:`.bounded`), with
        at most ``max_concurrency`` in flight per stream, and none sent while the server
        has asked the stream to pause (429 Retry-After)."""
        with self._in_flight:
            # checked once the slot is taken: a request that waited for a slot must not
            # go out while the server has asked the stream to pause meanwhile
            while (pause := self._paused_until - time.monotonic()) > 0:
                time.sleep(pause)
            request = self.authenticator(prepared_request)
            response = bounded.send(
                self.requests_session, request, self.timeout, self.max_response_bytes
            )
        self._write_request_duration_log(
            endpoint=self.path,
            response=response,
            context=context,
            extra_tags={"url": request.path_url} if self._LOG_REQUEST_METRIC_URLS else None,
        )
        self.validate_response(response)
        return response

    def pause_for(self, response: requests.Response) -> None:
        """Honour a 429's ``Retry-After`` for every request of the stream, not only for
        the one that received it: concurrent requests must not keep hammering."""
        seconds = retry_after_seconds(response)
        if response.status_code == 429 and seconds:
            pause = min(seconds, RETRY_AFTER_CAP)
            self._paused_until = max(self._paused_until, time.monotonic() + pause)

    # ----------------------------------------------------------------- retrying

    @cached_property
    def retry_policy(self) -> RetryPolicy:
        """The tap's retry policy, from ``max_tries`` and the backoff settings."""
        settings = self.settings
        return RetryPolicy(settings.max_tries, settings.backoff_factor, settings.backoff_max_wait)

    def request_decorator(self, func: Callable) -> Callable:
        """``func`` retried by the policy; the final failure is one
        :class:`CallcenterError` (not the SDK's multi-line give-up log and a traceback)."""

        def request(*args: t.Any) -> t.Any:
            def log_retry(exc: BaseException, tries: int, wait: float) -> None:
                self.logger.warning(
                    "%s: retrying %s in %.1f s (attempt %d of %d failed): %s",
                    self.name,
                    self.describe_attempt(args) or "",
                    wait,
                    tries,
                    self.retry_policy.max_tries,
                    short_reason(exc),
                )

            try:
                return self.retry_policy.call(lambda: func(*args), log_retry)
            except GaveUp as exc:
                raise self.fail(str(exc), self.describe_attempt(args)) from None
            except CallcenterError:
                raise
            except (FatalAPIError, requests.RequestException) as exc:
                raise self.fail(short_reason(exc), self.describe_attempt(args)) from None

        return request

    def describe_attempt(self, args: tuple[t.Any, ...]) -> str | None:
        """The request a retried call makes (its first argument), for logs and errors."""
        return _described(args[0] if args else None)

    def fail(
        self,
        message: str,
        request: requests.PreparedRequest | requests.Request | str | None = None,
        hint: str | None = None,
    ) -> CallcenterError:
        """A :class:`CallcenterError` for this provider and stream."""
        described = request if isinstance(request, str) else _described(request)
        return CallcenterError(
            message, provider=self.provider, stream=self.name, request=described, hint=hint
        )

    # ----------------------------------------------------------------- answers

    def validate_response(self, response: requests.Response) -> None:
        """Sort a response into retriable, fatal, or good (and decode a good body).

        Decoding happens here, inside the retry loop, so a truncated or garbled body is
        retried like a dropped connection; the decoded body rides on the response.
        """
        status = response.status_code
        if is_retriable_status(status):
            self.pause_for(response)
            raise RetriableAPIError(
                f"HTTP {status} {response.reason}: {self.api_error_message(response)}",
                response,
            )
        if status >= 400:
            raise self.fail(
                f"HTTP {status} {response.reason}: {self.api_error_message(response)}",
                response.request,
                hint=self.auth_hint if is_auth_failure(status) else None,
            )
        try:
            payload = self.decode_body(response)
        except RecursionError:
            raise self.fail(
                f"the {self.body_format} body nests deeper than the tap reads (a broken or "
                "hostile server)",
                response.request,
            ) from None
        except ValueError as exc:
            raise RetriableAPIError(
                f"the body is not the expected {self.body_format}: {exc}; "
                f"it starts with: {body_snippet(response)!r}",
                response,
            ) from None
        self.check_payload(payload, response)
        attach_payload(response, payload)

    def decode_body(self, response: requests.Response) -> t.Any:
        """Decode a 2xx body; raise ``ValueError`` when it is not what the API sends
        (msgspec: several times faster than ``response.json()``)."""
        payload = _JSON.decode(response.content)
        if not isinstance(payload, dict):
            msg = f"expected a JSON object, got {type(payload).__name__}"
            raise ValueError(msg)
        return payload

    def check_payload(self, payload: t.Any, response: requests.Response) -> None:
        """Raise a fatal error when a 2xx body carries the API's own error report."""

    def api_error_message(self, response: requests.Response) -> str:
        """The API's own words about a failed request (providers refine this)."""
        return body_snippet(response) or "(empty body)"

    def page_records(self, payload: t.Any) -> Iterable[dict[str, t.Any]]:
        """The raw records in a decoded page."""
        raise NotImplementedError

    # ----------------------------------------------------------------- records

    def parse_response(self, response: requests.Response) -> Iterable[dict[str, t.Any]]:
        """Records of one decoded page, transformed for output."""
        page = self.transform_page(self.page_records(payload_of(response)), response.request)
        self.check_page_is_new(page, response.request)
        return page


def _described(request: t.Any) -> str | None:
    """``GET /path?query`` for an HTTP request object, None for anything else."""
    if isinstance(request, (requests.PreparedRequest, requests.Request)):
        return describe_request(request.method or "GET", request.url or "")
    return None
