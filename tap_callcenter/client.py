"""What every stream of every provider shares: the windowed incremental engine and HTTP.

The engine (``get_records``) cuts the sync range into closed UTC windows ``[from, to)``
(:mod:`tap_callcenter.windows`), asks the provider for each window, keeps only records
whose replication key falls inside it (APIs with inclusive or coarse bounds return a few
neighbours), drops repeats of a primary key inside the window (pages shift under live
inserts), and after each completed window moves the bookmark to the window's end and
emits STATE. A run killed mid-backfill therefore resumes from its last completed window.

The HTTP part adds to the SDK's ``RESTStream``: a timeout on every request, retries with
exponential backoff that honour ``Retry-After`` on 429, 5xx, resets, timeouts and bodies
that do not decode, and one clear :class:`~tap_callcenter.errors.CallcenterError` when a
request fails for good.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import threading
import time
import typing as t
from functools import cached_property

import backoff
import requests
from singer_sdk import SchemaDirectory, StreamSchema
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib import RecordMessage
from singer_sdk.streams import RESTStream

from tap_callcenter import schemas
from tap_callcenter.coerce import Conformer, optional_bool, optional_int, optional_str
from tap_callcenter.concurrency import prefetch_in_order
from tap_callcenter.errors import CallcenterError, describe_request, snippet
from tap_callcenter.pagination import attach_payload, payload_of
from tap_callcenter.report import CompletenessReport, Progress
from tap_callcenter.state import BOOKMARK, INSTANT_KEYS
from tap_callcenter.timeconv import LocalClock, format_utc, parse_utc
from tap_callcenter.windows import Window, WindowScope, split_windows

if t.TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable

    from backoff.types import Details
    from singer_sdk.helpers.types import Context

    from tap_callcenter.settings import SyncSettings


#: Failures worth another try: server-side trouble, throttling, and the network.
RETRIABLE_EXCEPTIONS = (
    RetriableAPIError,
    ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
_SNIPPET = 300


def body_snippet(response: requests.Response) -> str:
    """The start of a body, on one line, for error messages (secrets redacted before it
    is cut, so a secret straddling the cut cannot leak its first part)."""
    return snippet(response.text or "", _SNIPPET)


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), if any."""
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime  # noqa: PLC0415

        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


class CallcenterStream(RESTStream):
    """Base of every stream: windowed incremental sync over a retried HTTP client."""

    #: Provider name as in the config block (``thulium``); used in errors and settings.
    provider: t.ClassVar[str]
    #: Hint appended to 401/403 errors.
    auth_hint: t.ClassVar[str] = ""
    #: Maximum time a server may take to answer is ``request_timeout``; see SyncSettings.

    # ----------------------------------------------------------------- configuration

    @property
    def settings(self) -> SyncSettings:
        """Run settings parsed once by the tap."""
        return self._tap.settings  # type: ignore[attr-defined]

    @property
    def provider_config(self) -> t.Mapping[str, t.Any]:
        """This provider's config block."""
        return t.cast("t.Mapping[str, t.Any]", self.config[self.provider])

    #: One JSON schema file per stream in ``schemas/``, named after the stream.
    schema = StreamSchema(SchemaDirectory(schemas))

    # ----------------------------------------------------------------- the engine

    @property
    def full_table(self) -> bool:
        """The catalog asks for FULL_TABLE: read from ``start_date``, ignore bookmarks."""
        return (
            self.replication_method == "FULL_TABLE"
            or self.name in getattr(self._tap, "full_table_streams", ())
        )

    def apply_catalog(self, catalog: t.Any) -> None:
        """The SDK's catalog handling; a catalog that blanks the replication key (as
        some tools write for FULL_TABLE) keeps the stream's own: windows need it."""
        declared = self.replication_key
        super().apply_catalog(catalog)
        if not self.replication_key:
            self.replication_key = declared

    def sync_start(self, bookmark_key: str = BOOKMARK) -> dt.datetime:
        """Where this run begins: ``start_date`` for a stream without a bookmark (or in
        FULL_TABLE mode); else the bookmark minus the lookback — however old the
        bookmark, so a paused pipeline loses nothing. When the lookback range touches
        the second occurrence of a repeated autumn hour, it widens by the clock shift:
        calls made then are stamped with the first occurrence, an hour earlier."""
        bookmark = None if self.full_table else self.bookmark(bookmark_key)
        if bookmark is None:
            return self.settings.start_date
        start = bookmark - self.settings.lookback
        return start - self.clock.repeated_shift(start, bookmark)

    def sync_windows(self, start: dt.datetime, bookmark_key: str = BOOKMARK) -> list[Window]:
        """The windows from ``start`` to the end of the sync (the earlier of ``end_date``
        and the time the sync started)."""
        end = self.settings.end_date
        windows = split_windows(start, end, self.settings.window)
        if not windows and bookmark_key == BOOKMARK and start > end:
            self.logger.warning(
                "%s: nothing to sync: the range starts at %s, after its end %s (the earlier "
                "of end_date and now)",
                self.name,
                format_utc(start),
                format_utc(end),
            )
        self.logger.info(
            "%s: syncing %s to %s in %d window(s) (%s %s%s)",
            self.name,
            format_utc(start),
            format_utc(end),
            len(windows),
            INSTANT_KEYS.get(bookmark_key, bookmark_key),
            self.stream_state.get(bookmark_key) or "none",
            ", FULL_TABLE" if self.full_table else "",
        )
        return windows

    def bookmark(self, key: str = BOOKMARK) -> dt.datetime | None:
        """A bookmark from the stream's state (the main one by default), in UTC.

        A bookmark later than now cannot have been written by a correct run (no window
        ends after its run started), so it is not trusted: a WARNING, and the stream
        starts from ``start_date`` as if it had none — repeats, never a gap.
        """
        state = self.stream_state
        value = state.get(key)
        if not value or (key == BOOKMARK and state.get("replication_key") != self.replication_key):
            return None
        instant = parse_utc(str(value))
        if instant > self.settings.now:
            if key not in self._distrusted:
                self._distrusted.add(key)
                self.logger.warning(
                    "%s: the %s %s in the input state is later than now (%s): ignored, "
                    "the stream syncs from start_date %s",
                    self.name,
                    INSTANT_KEYS.get(key, key),
                    value,
                    format_utc(self.settings.now),
                    format_utc(self.settings.start_date),
                )
            return None
        return instant

    @cached_property
    def _distrusted(self) -> set[str]:
        return set()

    @cached_property
    def report(self) -> CompletenessReport:
        """This run's completeness counters (logged at the end of the stream)."""
        return CompletenessReport()

    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Records of every window in order, bookmark and STATE after each window,
        then the completeness report."""
        yield from self.sync_pass(self.sync_windows(self.sync_start()))
        self.report.log(self.logger, self.name)

    def get_replication_key_signpost(self, context: Context | None = None) -> None:
        """No signpost: the engine's bookmarks never pass the end of a window, and the
        SDK's (the real clock) would disagree with a test's simulated now."""
        return

    def sync_pass(
        self,
        windows: list[Window],
        field: str | None = None,
        bookmark_key: str = BOOKMARK,
        keep: Callable[[dict[str, t.Any]], bool] | None = None,
    ) -> Iterable[dict[str, t.Any]]:
        """Windows fetched ahead (``max_concurrency``), emitted and finalized in order.

        ``field`` is what the windows are on (default: the replication key), with its
        own ``bookmark_key``; ``keep`` leaves out records another pass emits."""
        if not windows:
            return
        field = field or self.replication_key
        run = Window(windows[0].start, windows[-1].end)
        old = self.bookmark(bookmark_key)
        # records before the incoming bookmark are re-reads (the lookback)
        reread_before = format_utc(old) if old is not None and not self.full_table else None
        advance = self.bookmark_may_advance(run, old)
        progress = Progress(self.logger, self.name, len(windows))
        fetched = prefetch_in_order(
            windows, lambda window: self.fetch_window(window, field), self.concurrency
        )
        with contextlib.closing(fetched):  # on failure, stop the fetchers now
            for window, records in fetched:
                scope = WindowScope(window, run, str(field), reread_before, keep)
                emitted = self.report.emitted
                yield from self.window_records(scope, records)
                self.advance_bookmark(window.end if advance else old, bookmark_key)
                progress.window_done(self.report.emitted - emitted)

    def bookmark_may_advance(self, run: Window, old: dt.datetime | None) -> bool:
        """Whether this pass may move the bookmark: not when it starts after it (a
        FULL_TABLE run from a ``start_date`` later than the bookmark leaves a gap that
        nothing has read; the bookmark stays, so an incremental run reads the gap)."""
        if old is None or run.start <= old:
            return True
        self.logger.warning(
            "%s: FULL_TABLE from %s starts after the bookmark %s: the bookmark is kept, so "
            "a later incremental run still reads what lies between them",
            self.name,
            format_utc(run.start),
            format_utc(old),
        )
        return False

    @property
    def concurrency(self) -> int:
        """Requests this stream may have in flight (1 where the API forbids overlap)."""
        return self.settings.max_concurrency if self.supports_concurrency else 1

    #: Records leave ``transform_record`` already in JSON types (ISO strings, ints,
    #: None), so the SDK's per-field conformance pass (40% of CPU time at zero latency)
    #: has nothing to do.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    #: False where requests must not overlap (ECSS: one session, a cursor per window).
    supports_concurrency: t.ClassVar[bool] = True
    #: True where the API writes and filters local wall-clock seconds (``clock``).
    stamps_wall_clock: t.ClassVar[bool] = False

    def window_records(
        self, scope: WindowScope, records: Iterable[dict[str, t.Any]]
    ) -> Iterable[dict[str, t.Any]]:
        """One window's records, by these rules (each counted in the report):

        - the replication key (``scope.field``) inside the window: emitted, each
          primary key once (pages shift under live inserts: repeats are dropped);
        - inside another window of this run: left to that window;
        - outside the whole run: not emitted (earlier runs or the next one cover it);
        - no primary key (null, empty or missing): skipped with a WARNING — no loader
          could upsert it, and a null key would break the record's SCHEMA;
        - no replication-key value: emitted once per run, with a WARNING.
        """
        window, report = scope.window, self.report
        lower, upper = format_utc(window.start), format_utc(window.end)
        run_lower, run_upper = format_utc(scope.run.start), format_utc(scope.run.end)
        key_fields = tuple(self.primary_keys or ())
        seen: set[tuple[t.Any, ...]] = set()  # emitted from this window
        others: set[tuple[t.Any, ...]] = set()  # received, emitted elsewhere
        no_key = no_field = duplicates = outside_run = neighbours = 0
        for record in records:
            key = tuple(record.get(name) for name in key_fields)
            if None in key or "" in key:  # per record: no generator on the hot path
                no_key += 1
                continue
            value = record.get(scope.field)
            if value is None:
                if key in self._emitted_without_field:
                    others.add(key)
                    duplicates += 1
                    continue
                self._emitted_without_field.add(key)
                no_field += 1
            elif not lower <= value < upper:  # canonical UTC ISO strings sort as instants
                others.add(key)
                if run_lower <= value < run_upper:
                    neighbours += 1
                else:
                    outside_run += 1
                continue
            if key in seen:
                duplicates += 1
                continue
            if scope.keep is not None and not scope.keep(record):
                continue
            seen.add(key)
            if scope.reread_before is not None and value is not None:
                report.reread += value < scope.reread_before
            yield record
        report.windows += 1
        report.emitted += len(seen)
        report.repeats += duplicates
        report.outside_run += outside_run
        report.without_key += no_key
        report.without_replication_key += no_field
        if no_key:
            self.logger.warning(
                "%s: %d record(s) in window %s have no primary key %s: skipped (no loader "
                "can upsert them)",
                self.name,
                no_key,
                window,
                "/".join(key_fields),
            )
        if no_field:
            self.logger.warning(
                "%s: %d record(s) in window %s have no %s: emitted once in this run",
                self.name,
                no_field,
                window,
                scope.field,
            )
        self.reconcile(window, len(seen | others) + no_key)
        self.logger.info(
            "%s: window %s done: %d record(s), %d repeat(s) dropped, %d neighbour(s) "
            "left to other windows of this run, %d outside this run's range",
            self.name,
            window,
            len(seen),
            duplicates,
            neighbours,
            outside_run,
        )

    @cached_property
    def _emitted_without_field(self) -> set[tuple[t.Any, ...]]:
        """Keys of records without a replication-key value emitted in this run."""
        return set()

    # Totals the API reported for the window being fetched (Thulium's ``count``).

    @cached_property
    def _fetching(self) -> threading.local:
        """The window each thread is fetching (a window is fetched by one thread)."""
        return threading.local()

    @cached_property
    def _api_totals(self) -> dict[Window, int]:
        return {}

    def note_api_total(self, total: int) -> None:
        """Remember the API's own count of the records of the window being fetched (by
        this thread); the engine reconciles it when the window is done."""
        window = getattr(self._fetching, "window", None)
        if window is not None:
            self._api_totals[window] = total

    def reconcile(self, window: Window, received: int) -> None:
        """WARNING when a window gave fewer distinct records than the API's count."""
        total = self._api_totals.pop(window, None)
        if total is not None and received < total:
            self.report.short_windows += 1
            self.logger.warning(
                "%s: window %s: the API counted %d record(s), %d distinct were received",
                self.name,
                window,
                total,
                received,
            )

    def fetch_window(self, window: Window, field: str | None) -> Iterable[dict[str, t.Any]]:
        """Every record the API returns for ``window`` on ``field`` (all pages),
        transformed. The SDK request context carries both to ``get_url_params``.

        For an API that stamps wall-clock time, a window that no wall second converts
        into (one inside the second occurrence of a repeated hour: those calls are
        stamped with the first) cannot hold a record: no request, never an inverted
        range."""
        if self.stamps_wall_clock and self.clock.wall_range(window.start, window.end) is None:
            return
        self._fetching.window = window
        yield from self.request_records({**window.as_context(), "field": field})

    def advance_bookmark(self, value: dt.datetime | None, bookmark_key: str = BOOKMARK) -> None:
        """Move a bookmark to ``value`` (the end of a completed window) and emit STATE.

        The bookmark never goes backwards (a lookback window may end before the old
        bookmark, and the old one is still valid) and never passes what was emitted.
        """
        state = self.stream_state
        old_value = self.bookmark(bookmark_key)
        if value is None or (old_value is not None and old_value > value):
            value = old_value
        if value is None:
            return
        if bookmark_key == BOOKMARK:
            state["replication_key"] = self.replication_key
        state[bookmark_key] = format_utc(value)
        self._finalize_state(state)
        self._write_state_message()

    @cached_property
    def _every_property_selected(self) -> bool:
        return all(self.mask.values())

    def _generate_record_messages(
        self, record: dict[str, t.Any]
    ) -> Generator[RecordMessage, None, None]:
        """The SDK's record messages, minus its per-record pass over deselected
        properties when none is deselected (a quarter of the tap's CPU time per record
        at zero latency). Any deselected property takes the SDK's path unchanged."""
        if not self._every_property_selected:
            yield from super()._generate_record_messages(record)
            return
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=dt.datetime.now(dt.timezone.utc),
                )

    def _increment_stream_state(
        self,
        latest_record: dict[str, t.Any],
        *,
        context: Context | None = None,
    ) -> None:
        """The engine owns the bookmark (per window, see ``advance_bookmark``).

        The SDK's per-record progress markers would only be promoted at the very end
        of a stream and are not resumable, so they are not kept.
        """

    # ----------------------------------------------------------------- HTTP

    @property
    def requests_session(self) -> requests.Session:
        """One session (connection pool, cookies) per thread: sessions are not
        thread-safe, and keep-alive connections are reused within each thread."""
        local = self.__dict__.setdefault("_thread_sessions", threading.local())
        session: requests.Session | None = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        return session

    @cached_property
    def _in_flight(self) -> threading.BoundedSemaphore:
        return threading.BoundedSemaphore(max(1, self.concurrency))

    def _request(
        self, prepared_request: requests.PreparedRequest, context: Context | None
    ) -> requests.Response:
        """The SDK's request, with at most ``max_concurrency`` in flight per stream, and
        none sent while the server has asked the stream to pause (429 Retry-After)."""
        with self._in_flight:
            # checked once the slot is taken: a request that waited for a slot must not
            # go out while the server has asked the stream to pause meanwhile
            while (pause := self._paused_until - time.monotonic()) > 0:
                time.sleep(pause)
            return super()._request(prepared_request, context)

    #: monotonic time before which no request of this stream is sent (Retry-After)
    _paused_until: float = 0.0

    def pause_for(self, response: requests.Response) -> None:
        """Honour a 429's ``Retry-After`` for every request of the stream, not only for
        the one that received it: concurrent requests must not keep hammering."""
        seconds = retry_after_seconds(response)
        if response.status_code == 429 and seconds:
            self._paused_until = max(self._paused_until, time.monotonic() + min(seconds, 600.0))

    @property
    def timeout(self) -> int:
        """Every request is bounded by ``request_timeout`` seconds."""
        return self.settings.request_timeout  # type: ignore[return-value]

    def backoff_max_tries(self) -> int:
        """Total attempts per request, from ``max_tries``."""
        return self.settings.max_tries

    def backoff_wait_generator(self) -> Generator[float, t.Any, None]:
        """Exponential waits (``backoff_factor`` x 2^n, capped), or ``Retry-After``."""
        factor, cap = self.settings.backoff_factor, self.settings.backoff_max_wait
        attempt = 0
        exception = yield  # type: ignore[misc]
        while True:
            wait = min(factor * 2**attempt, cap)
            response = getattr(exception, "response", None)
            server_wait = retry_after_seconds(response)
            if server_wait is not None:
                wait = min(server_wait, max(cap, 600.0))
            attempt += 1
            exception = yield wait

    def backoff_jitter(self, value: float) -> float:
        """Up to 10% extra, so parallel clients do not retry in lockstep."""
        return value * (1 + 0.1 * random.random())

    def backoff_handler(self, details: Details) -> None:
        """One warning line per retry: what failed and when the next try is."""
        exc = details.get("exception")
        target = self.describe_attempt(tuple(details.get("args") or ())) or ""
        self.logger.warning(
            "%s: retrying %s in %.1f s (attempt %d of %d failed): %s",
            self.name,
            target,
            details.get("wait") or 0.0,
            details.get("tries") or 0,
            self.backoff_max_tries(),
            _short_reason(exc),
        )

    def request_decorator(self, func: Callable) -> Callable:
        """Retry transient failures (as the SDK does), then fail with one clear error.

        Same retry policy and hooks as ``RESTStream.request_decorator``; the difference
        is that the final failure becomes a :class:`CallcenterError` instead of the
        library's multi-line give-up log and a traceback.
        """
        retrying = backoff.on_exception(
            self.backoff_wait_generator,
            RETRIABLE_EXCEPTIONS,
            max_tries=self.backoff_max_tries,
            on_backoff=self.backoff_handler,
            jitter=self.backoff_jitter,
            logger=None,
        )(func)

        def request(*args: t.Any) -> t.Any:
            try:
                return retrying(*args)
            except CallcenterError:
                raise
            except (RetriableAPIError, requests.RequestException, ConnectionError) as exc:
                raise self.fail(
                    f"gave up after {self.backoff_max_tries()} attempts: {_short_reason(exc)}",
                    self.describe_attempt(args),
                ) from None
            except FatalAPIError as exc:
                raise self.fail(str(exc), self.describe_attempt(args)) from None

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

    def validate_response(self, response: requests.Response) -> None:
        """Sort a response into retriable, fatal, or good (and decode a good body).

        Decoding happens here, inside the retry loop, so a truncated or garbled body is
        retried like a dropped connection; the decoded body rides on the response.
        """
        status = response.status_code
        if status == 429 or status >= 500:
            self.pause_for(response)
            raise RetriableAPIError(
                f"HTTP {status} {response.reason}: {self.api_error_message(response)}",
                response,
            )
        if status >= 400:
            hint = self.auth_hint if status in (401, 403) else None
            raise self.fail(
                f"HTTP {status} {response.reason}: {self.api_error_message(response)}",
                response.request,
                hint=hint,
            )
        try:
            payload = self.decode_body(response)
        except ValueError as exc:
            raise RetriableAPIError(
                f"the body is not the expected {self.body_format}: {exc}; "
                f"it starts with: {body_snippet(response)!r}",
                response,
            ) from None
        self.check_payload(payload, response)
        attach_payload(response, payload)

    body_format: t.ClassVar[str] = "JSON"

    def decode_body(self, response: requests.Response) -> t.Any:
        """Decode a 2xx body; raise ``ValueError`` when it is not what the API sends."""
        payload = response.json()
        if not isinstance(payload, dict):
            msg = f"expected a JSON object, got {type(payload).__name__}"
            raise ValueError(msg)
        return payload

    def check_payload(self, payload: t.Any, response: requests.Response) -> None:
        """Raise a fatal error when a 2xx body carries the API's own error report."""

    def api_error_message(self, response: requests.Response) -> str:
        """The API's own words about a failed request (providers refine this)."""
        return body_snippet(response) or "(empty body)"

    def parse_response(self, response: requests.Response) -> Iterable[dict[str, t.Any]]:
        """Records of one decoded page, transformed for output."""
        return self.transform_page(self.page_records(payload_of(response)), response.request)

    def transform_page(
        self,
        records: Iterable[dict[str, t.Any]],
        request: requests.PreparedRequest | str | None,
    ) -> list[dict[str, t.Any]]:
        """``transform_record`` for a page; a value that cannot be read (a date that is
        no date) stops the sync with a clear error naming the record, not a traceback."""
        out = []
        for record in records:
            try:
                out.append(self.transform_record(record))
            except (ValueError, TypeError) as exc:
                key = {name: record.get(name) for name in self.primary_keys or ()}
                raise self.fail(
                    f"record {key} has a value that cannot be read: {exc}", request
                ) from None
        return out

    def page_records(self, payload: t.Any) -> Iterable[dict[str, t.Any]]:
        """The raw records in a decoded page."""
        raise NotImplementedError

    #: Field coercions of ``transform_record``; each provider lists its fields.
    #: Empty strings that mean "absent" (optional ids, dates) -> null.
    empty_as_null_fields: t.ClassVar[tuple[str, ...]] = ()
    #: Date-times as the API writes them (in ``clock``'s zone) -> UTC ISO 8601.
    time_fields: t.ClassVar[tuple[str, ...]] = ()
    #: Numbers (possibly as strings, or empty) -> int or null.
    integer_fields: t.ClassVar[tuple[str, ...]] = ()
    #: Flags (possibly as strings, or empty) -> bool or null.
    boolean_fields: t.ClassVar[tuple[str, ...]] = ()

    @cached_property
    def clock(self) -> LocalClock:
        """The zone the API's date-times are written in (UTC unless a provider says)."""
        return LocalClock("UTC")

    @property
    def conformer(self) -> Conformer:
        """Fits each record to this stream's SCHEMA (one per stream; pages may be
        transformed in several threads, ``setdefault`` keeps the first one built)."""
        conformer = self.__dict__.get("_conformer")
        if conformer is None:
            conformer = self.__dict__.setdefault(
                "_conformer", Conformer(self.schema, self.empty_as_null_fields)
            )
            self.report.details = conformer.warnings
        return conformer

    def transform_record(self, record: dict[str, t.Any]) -> dict[str, t.Any]:
        """API record -> output record (UTC date-times, numbers, nulls), then fitted to
        the stream's SCHEMA (``coerce.Conformer``: a value that cannot be converted
        without loss is null in its field and kept in ``_raw_values``, counted in the
        completeness report); undeclared fields are kept as they come."""
        for field in self.empty_as_null_fields:
            if field in record:
                record[field] = optional_str(record[field])
        to_utc = self.clock.wall_text_to_utc_iso
        for field in self.time_fields:
            if field in record:
                record[field] = to_utc(record[field])
        for field in self.integer_fields:
            if field in record:
                record[field] = optional_int(record[field])
        for field in self.boolean_fields:
            if field in record:
                record[field] = optional_bool(record[field])
        not_fitting = self.conformer(record)
        if not_fitting:
            with self.conformer.lock:
                self.report.values_not_fitting += not_fitting
        return record


def _described(request: t.Any) -> str | None:
    """``GET /path?query`` for an HTTP request object, None for anything else."""
    if isinstance(request, (requests.PreparedRequest, requests.Request)):
        return describe_request(request.method or "GET", request.url or "")
    return None


def _short_reason(exc: BaseException | None) -> str:
    """A one-line reason for a failed attempt, without URLs or tracebacks."""
    if exc is None:
        return "unknown error"
    if isinstance(exc, RetriableAPIError):
        return str(exc)
    if isinstance(exc, requests.Timeout):
        return "no answer within the timeout"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection broke while the body was being received"
    if isinstance(exc, (requests.ConnectionError, ConnectionError)):
        return "connection failed or was dropped by the server"
    return f"{type(exc).__name__}: {exc}"


logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
