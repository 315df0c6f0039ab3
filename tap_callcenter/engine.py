"""The windowed incremental engine every stream runs on: windows, bookmarks, STATE.

``get_records`` cuts the sync range into closed UTC windows ``[from, to)``
(:mod:`tap_callcenter.windows`), asks the provider for each window (``fetch_window``,
which the HTTP layer answers), keeps only records whose replication key falls inside
it (APIs with inclusive or coarse bounds return a few neighbours), drops repeats of a
primary key inside the window (pages shift under live inserts), and after each
completed window moves the bookmark to the window's end and emits STATE. A run killed
mid-backfill therefore resumes from its last completed window.

Nothing here knows HTTP: a provider says how to ask for one window
(``window_params``) and the HTTP layer (:mod:`tap_callcenter.client`) fetches it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import typing as t
from functools import cached_property

from tap_callcenter.concurrency import prefetch_in_order
from tap_callcenter.fastpath import LeanRecordPath
from tap_callcenter.report import CompletenessReport, Progress
from tap_callcenter.sorting import WindowSorter
from tap_callcenter.state import BOOKMARK, INSTANT_KEYS
from tap_callcenter.timeconv import LocalClock, format_utc, parse_utc
from tap_callcenter.windows import Window, WindowScope, split_windows

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from singer_sdk.helpers.types import Context

    from tap_callcenter.settings import SyncSettings

#: SDK request-context keys: the window (as text, for logs and metrics), the field the
#: windows are on, and the provider's query parameters for it (``window_params``).
WINDOW = "window"
WINDOW_PARAMS = "window_params"


class WindowedStream(LeanRecordPath):
    """Windowed incremental sync with resumable per-window bookmarks."""

    #: False where requests must not overlap (ECSS: one session, a cursor per window).
    supports_concurrency: t.ClassVar[bool] = True
    #: True where the API writes and filters local wall-clock seconds (``clock``).
    stamps_wall_clock: t.ClassVar[bool] = False

    @property
    def settings(self) -> SyncSettings:
        """Run settings parsed once by the tap."""
        return self._tap.settings  # type: ignore[attr-defined]

    @cached_property
    def clock(self) -> LocalClock:
        """The zone the API's date-times are written in (UTC unless a provider says)."""
        return LocalClock("UTC")

    @property
    def concurrency(self) -> int:
        """Requests this stream may have in flight (1 where the API forbids overlap)."""
        return self.settings.max_concurrency if self.supports_concurrency else 1

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

    # ----------------------------------------------------------------- the range

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

    # ----------------------------------------------------------------- the passes

    @cached_property
    def report(self) -> CompletenessReport:
        """This run's completeness counters (logged at the end of the stream)."""
        return CompletenessReport()

    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Records of every window in order, bookmark and STATE after each window,
        then the completeness report."""
        yield from self.sync_pass(self.sync_windows(self.sync_start()))
        self.report.log(self.logger, self.name)

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
            windows, lambda window: self.fetch_window(window, str(field)), self.concurrency
        )
        with contextlib.closing(fetched):  # on failure, stop the fetchers now
            for window, records in fetched:
                scope = WindowScope(window, run, str(field), reread_before, keep)
                emitted = self.report.emitted
                yield from self.sorter.records(scope, records)
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

    # ----------------------------------------------------------------- one window

    def fetch_window(self, window: Window, field: str) -> Iterable[dict[str, t.Any]]:
        """Every record the API returns for ``window`` on ``field`` (all pages),
        transformed. The SDK request context carries the window and the provider's
        query parameters for it (``window_params``, computed once per window).

        For an API that stamps wall-clock time, a window that no wall second converts
        into (one inside the second occurrence of a repeated hour: those calls are
        stamped with the first) cannot hold a record: no request, never an inverted
        range."""
        if self.stamps_wall_clock and self.clock.wall_range(window.start, window.end) is None:
            return
        self._fetching.window = window
        self.read_window_again()
        params = self.window_params(window, field)
        context = {WINDOW: str(window), "field": field, WINDOW_PARAMS: params}
        yield from self.request_records(context)

    def window_params(self, window: Window, field: str) -> dict[str, t.Any]:
        """The query parameters that ask the API for the records of ``window`` on
        ``field`` (each provider says how)."""
        raise NotImplementedError

    @cached_property
    def sorter(self) -> WindowSorter:
        """The record rules of this stream's windows (see :mod:`tap_callcenter.sorting`)."""
        return WindowSorter(self.name, tuple(self.primary_keys or ()), self.report, self.logger)

    @cached_property
    def _fetching(self) -> threading.local:
        """The window each thread is fetching (a window is fetched by one thread)."""
        return threading.local()

    def read_window_again(self) -> None:
        """This thread reads its window from the start (again): pages received so far
        no longer count as repeats for the paging guard (``check_page_is_new``)."""
        self._fetching.pages = []

    def note_api_total(self, total: int) -> None:
        """Remember the API's own count of the records of the window being fetched (by
        this thread); the engine reconciles it when the window is done."""
        window = getattr(self._fetching, "window", None)
        if window is not None:
            self.sorter.note_api_total(window, total)

    # ----------------------------------------------------------------- STATE

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

    if t.TYPE_CHECKING:  # answered by the HTTP layer (``RESTStream``) in the MRO

        def request_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]: ...
