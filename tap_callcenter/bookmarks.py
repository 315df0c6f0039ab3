"""Where a stream's run begins and where its bookmarks go: the stream's side of STATE.

A bookmark is the end of the last completed window, in UTC. It is read with distrust (one
later than now cannot come from a correct run), wins over ``start_date``, moves only
forward and never past what was emitted, and stays put when a FULL_TABLE run starts
after it (the gap is still owed to the next incremental run).
"""

from __future__ import annotations

import datetime as dt
import typing as t
from functools import cached_property

from tap_callcenter.fastpath import LeanRecordPath
from tap_callcenter.state import BOOKMARK, INSTANT_KEYS
from tap_callcenter.timeconv import LocalClock, format_utc, parse_utc

if t.TYPE_CHECKING:
    from tap_callcenter.settings import SyncSettings
    from tap_callcenter.windows import Window


class BookmarkedStream(LeanRecordPath):
    """A stream whose bookmarks are instants, one per pass, advanced window by window."""

    @property
    def settings(self) -> SyncSettings:
        """Run settings parsed once by the tap."""
        return self._tap.settings  # type: ignore[attr-defined]

    @cached_property
    def clock(self) -> LocalClock:
        """The zone the API's date-times are written in (UTC unless a provider says)."""
        return LocalClock("UTC")

    @property
    def full_table(self) -> bool:
        """The catalog asks for FULL_TABLE: read from ``start_date``, ignore bookmarks."""
        return self.replication_method == "FULL_TABLE" or self.name in getattr(
            self._tap, "full_table_streams", ()
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
