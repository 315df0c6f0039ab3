"""The retry policy: which failures get another try, how long to wait, when to give up.

One immutable value (modelled on urllib3's ``Retry``) shared by every request the tap
makes: the SDK-prepared requests of Thulium and Conpeek, the ECSS login, its XML
commands and its websocket frames. Each decision is a small named function, and
``Retry-After`` is read in one place.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import typing as t
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_callcenter.bounded import MAX_REDIRECTS, TOLD_FAILURES

if t.TYPE_CHECKING:
    from collections.abc import Callable

#: Failures worth another try: server-side trouble, throttling, and the network.
RETRIABLE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    RetriableAPIError,
    ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)

#: The longest ``Retry-After`` honoured, in seconds: a server asking for more is
#: waited on this long, then tried again.
RETRY_AFTER_CAP = 600.0

T = t.TypeVar("T")


def is_retriable_status(status: int) -> bool:
    """Throttling (429) and server-side trouble (5xx) pass; other 4xx do not."""
    return status == 429 or status >= 500


def is_auth_failure(status: int) -> bool:
    """401/403: the credentials (or the session) were refused."""
    return status in (401, 403)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` value (delta-seconds or HTTP-date), if any."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """The ``Retry-After`` of a response, if it has one."""
    return None if response is None else parse_retry_after(response.headers.get("Retry-After"))


def short_reason(exc: BaseException | None) -> str:
    """A one-line reason for a failed attempt, without URLs or tracebacks."""
    if exc is None:
        return "unknown error"
    if isinstance(exc, (RetriableAPIError, *TOLD_FAILURES)):
        return str(exc)
    if isinstance(exc, requests.TooManyRedirects):
        return f"a redirect loop: still redirected after {MAX_REDIRECTS} redirects"
    if isinstance(exc, requests.Timeout):
        return "no answer within the timeout"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection broke while the body was being received"
    if isinstance(exc, (requests.ConnectionError, ConnectionError)):
        return "connection failed or was dropped by the server"
    return f"{type(exc).__name__}: {exc}"


class GaveUp(Exception):
    """Every try failed; ``last`` is the last failure."""

    def __init__(self, tries: int, last: BaseException) -> None:
        super().__init__(f"gave up after {tries} attempts: {short_reason(last)}")
        self.tries = tries
        self.last = last


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is tried.

    ``max_tries`` counts every attempt (1 = no retry). The wait before retry ``n``
    (1-based) is ``backoff_factor`` x 2^(n-1), at most ``backoff_max_wait``, plus up to
    10% jitter so parallel clients do not retry in lockstep; a ``Retry-After`` from the
    server replaces it (up to ``RETRY_AFTER_CAP``, or ``backoff_max_wait`` if larger).
    """

    max_tries: int = 6
    backoff_factor: float = 1.0
    backoff_max_wait: float = 60.0

    def is_retriable(self, exc: BaseException) -> bool:
        """Whether a failure is transient (see ``RETRIABLE_EXCEPTIONS``)."""
        return isinstance(exc, RETRIABLE_EXCEPTIONS)

    def wait(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        if retry_after is not None:
            return min(retry_after, max(self.backoff_max_wait, RETRY_AFTER_CAP))
        wait = min(self.backoff_factor * 2 ** (retry - 1), self.backoff_max_wait)
        return wait * (1 + 0.1 * random.random())

    def call(
        self,
        attempt: Callable[[], T],
        on_retry: Callable[[BaseException, int, float], None] | None = None,
    ) -> T:
        """``attempt()`` until it succeeds, a failure is not retriable (re-raised as it
        is), or the tries are used up (:class:`GaveUp`). ``on_retry(failure, tries so
        far, wait)`` is told before each wait."""
        for tries in range(1, self.max_tries + 1):
            try:
                return attempt()
            except Exception as exc:
                if not self.is_retriable(exc):
                    raise
                if tries >= self.max_tries:
                    raise GaveUp(tries, exc) from None
                wait = self.wait(tries, retry_after_seconds(getattr(exc, "response", None)))
                if on_retry is not None:
                    on_retry(exc, tries, wait)
                time.sleep(wait)
        msg = "max_tries must be at least 1"
        raise ValueError(msg)
