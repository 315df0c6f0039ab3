"""The windowed incremental engine every stream runs on: windows, bookmarks, STATE.

``get_records`` cuts the sync range into closed UTC windows ``[from, to)``
(:mod:`tap_callcenter.windows`), asks the provider for each window (``fetch_window``,
which the HTTP layer answers), keeps only records whose replication key falls inside
it (APIs with inclusive or coarse bounds return a few neighbours), drops repeats of a
primary key inside the window (pages shift under live inserts), and after each
completed window moves the bookmark to the window's end and emits STATE. A run killed
mid-backfill therefore resumes from its last completed window.

Where a run begins and how bookmarks move is :mod:`tap_callcenter.bookmarks`; which
records of a window are emitted is :mod:`tap_callcenter.sorting`. Nothing here knows
HTTP: a provider says how to ask for one window (``window_params``) and the HTTP layer
(:mod:`tap_callcenter.client`) fetches it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import typing as t
from functools import cached_property

from tap_callcenter.bookmarks import BookmarkedStream
from tap_callcenter.concurrency import PriorityPool, prefetch_in_order
from tap_callcenter.report import CompletenessReport, Progress
from tap_callcenter.sorting import WindowSorter
from tap_callcenter.state import BOOKMARK, INSTANT_KEYS
from tap_callcenter.timeconv import format_utc
from tap_callcenter.windows import Window, WindowScope, split_windows

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from concurrent.futures import Future

    from singer_sdk.helpers.types import Context


T = t.TypeVar("T")
R = t.TypeVar("R")

#: SDK request-context keys: the window (as text, for logs and metrics), the field the
#: windows are on, and the provider's query parameters for it (``window_params``).
WINDOW = "window"
WINDOW_PARAMS = "window_params"


class WindowedStream(BookmarkedStream):
    """Windowed incremental sync with resumable per-window bookmarks."""

    #: True where the API writes and filters local wall-clock seconds (``clock``).
    stamps_wall_clock: t.ClassVar[bool] = False

    @property
    def concurrency(self) -> int:
        """Requests this stream may have in flight (a provider that allows less
        overlap narrows it: ECSS reads a window per session)."""
        return self.settings.max_concurrency

    # ----------------------------------------------------------------- the range

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
        if self.concurrency > 1:
            _ = self.page_pool  # made here, not raced for by the window workers
        fetched = prefetch_in_order(
            windows, lambda window: self.fetch_window(window, str(field)), self.concurrency
        )
        try:
            with contextlib.closing(fetched):  # on failure, stop the fetchers now
                for window, records in fetched:
                    scope = WindowScope(window, run, str(field), reread_before, keep)
                    emitted = self.report.emitted
                    yield from self.sorter.records(scope, records)
                    self.advance_bookmark(window.end if advance else old, bookmark_key)
                    progress.window_done(self.report.emitted - emitted)
        finally:
            pool = self.__dict__.pop("page_pool", None)
            if pool is not None:
                pool.shutdown()

    @cached_property
    def page_pool(self) -> PriorityPool:
        """``max_concurrency`` threads for the pages of every window of this pass
        (providers that read a window's pages in parallel submit them here, with the
        window's start as the priority: the window being emitted goes first)."""
        return PriorityPool(max(1, self.concurrency), "page")

    def submit_page(self, fetch: Callable[[T], R], arg: T) -> Future[R]:
        """Run one call for the window this thread reads on the pass's pool, ahead of
        the calls of later windows (the output waits on the earliest)."""
        window: Window = self._fetching.window
        return self.page_pool.submit(window.start, fetch, arg)

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

    if t.TYPE_CHECKING:  # answered by the HTTP layer (``RESTStream``) in the MRO

        def request_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]: ...
