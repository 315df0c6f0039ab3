"""Which of a window's records are emitted: the engine's rules, in one place.

An API answers a window with its records and, often, some that are not the window's:
neighbours of an inclusive or coarse bound, repeats from pages shifted by live inserts,
records without a key. :class:`WindowSorter` applies the rules (see
:meth:`WindowSorter.records`), counts each outcome in the stream's completeness report
and says in the log what was dropped and why.
"""

from __future__ import annotations

import logging
import threading
import typing as t
from dataclasses import dataclass, field

from tap_callcenter.keyset import KeySet
from tap_callcenter.timeconv import format_utc

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from tap_callcenter.report import CompletenessReport
    from tap_callcenter.windows import Window, WindowScope

Key = tuple[t.Any, ...]


@dataclass
class WindowTally:
    """How one window's records were sorted."""

    emitted: int = 0
    received_keys: int = 0
    duplicates: int = 0
    neighbours: int = 0
    outside_run: int = 0
    no_key: int = 0
    no_field: int = 0


@dataclass
class WindowSorter:
    """Applies the engine's record rules to the windows of one stream's run."""

    stream: str
    key_fields: Sequence[str]
    report: CompletenessReport
    logger: logging.Logger
    #: Keys of records without a replication-key value emitted in this run.
    emitted_without_field: set[Key] = field(default_factory=set)
    #: The API's own count of a window's records, where it gives one (Thulium).
    api_totals: dict[Window, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note_api_total(self, window: Window, total: int) -> None:
        """Remember the API's count of ``window``'s records (reconciled when it is done)."""
        with self.lock:
            self.api_totals[window] = total

    def records(
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
        key_fields = tuple(self.key_fields)
        seen = KeySet()  # emitted from this window
        others = KeySet()  # received, emitted elsewhere (not also in ``seen``)
        no_key = no_field = duplicates = outside_run = neighbours = both = 0
        for record in records:
            key = tuple(record.get(name) for name in key_fields)
            if None in key or "" in key:  # per record: no generator on the hot path
                no_key += 1
                continue
            value = record.get(scope.field)
            if value is None:
                if key in self.emitted_without_field:
                    if key not in seen:
                        others.add(key)
                    duplicates += 1
                    continue
                self.emitted_without_field.add(key)
                no_field += 1
            elif not lower <= value < upper:  # canonical UTC ISO strings sort as instants
                if key not in seen:
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
            both += key in others
            if scope.reread_before is not None and value is not None:
                report.reread += value < scope.reread_before
            yield record
        emitted, received = len(seen), len(seen) + len(others) - both
        seen.close()
        others.close()
        tally = WindowTally(
            emitted, received, duplicates, neighbours, outside_run, no_key, no_field
        )
        self.window_done(scope, tally)

    def window_done(self, scope: WindowScope, tally: WindowTally) -> None:
        """Count a finished window in the report, and say what was dropped and why."""
        report, window = self.report, scope.window
        report.windows += 1
        report.emitted += tally.emitted
        report.repeats += tally.duplicates
        report.outside_run += tally.outside_run
        report.without_key += tally.no_key
        report.without_replication_key += tally.no_field
        if tally.no_key:
            self.logger.warning(
                "%s: %d record(s) in window %s have no primary key %s: skipped (no loader "
                "can upsert them)",
                self.stream,
                tally.no_key,
                window,
                "/".join(self.key_fields),
            )
        if tally.no_field:
            self.logger.warning(
                "%s: %d record(s) in window %s have no %s: emitted once in this run",
                self.stream,
                tally.no_field,
                window,
                scope.field,
            )
        self.reconcile(window, tally.received_keys + tally.no_key)
        self.logger.info(
            "%s: window %s done: %d record(s), %d repeat(s) dropped, %d neighbour(s) "
            "left to other windows of this run, %d outside this run's range",
            self.stream,
            window,
            tally.emitted,
            tally.duplicates,
            tally.neighbours,
            tally.outside_run,
        )

    def reconcile(self, window: Window, received: int) -> None:
        """WARNING when a window gave fewer distinct records than the API's count."""
        with self.lock:
            total = self.api_totals.pop(window, None)
        if total is not None and received < total:
            self.report.short_windows += 1
            self.logger.warning(
                "%s: window %s: the API counted %d record(s), %d distinct were received",
                self.stream,
                window,
                total,
                received,
            )
