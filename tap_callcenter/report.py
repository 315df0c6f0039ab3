"""The completeness report: what each stream read, emitted and dropped in one run.

Printed at the end of every stream as one INFO line, and as SDK metric points
(``METRIC: {...}`` lines on stderr, in the SDK's format), so a scheduler or a log
search can see at a glance that a run was complete — or why it may not have been.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from singer_sdk import metrics


class CompletenessMetric(str, enum.Enum):
    """Metric names of the report, one per counter of :class:`CompletenessReport`
    (the SDK's ``Point`` takes any enum with a value)."""

    WINDOWS = "windows_synced"
    EMITTED = "records_emitted"
    REREAD = "records_reread_in_lookback"
    REPEATS = "repeats_dropped"
    OUTSIDE_RUN = "records_outside_run"
    WITHOUT_KEY = "records_without_primary_key"
    WITHOUT_REPLICATION_KEY = "records_without_replication_key"
    SHORT_WINDOWS = "windows_short_of_api_count"
    VALUES_NOT_FITTING = "values_not_fitting_their_type"


@dataclass
class CompletenessReport:
    """Counters of one stream's run; the engine adds to them window by window."""

    windows: int = 0
    emitted: int = 0
    #: Emitted again because they lie before the incoming bookmark (the lookback).
    reread: int = 0
    #: A primary key seen again in the same window (pages shifted by live inserts).
    repeats: int = 0
    #: Returned by the API but outside every window of this run (a coarse or inclusive
    #: bound's neighbours): earlier runs or the next run cover them.
    outside_run: int = 0
    #: Skipped: no primary key, so no loader could upsert them (a WARNING each window).
    without_key: int = 0
    #: Emitted once in the run although they have no replication-key value.
    without_replication_key: int = 0
    #: Windows that gave fewer distinct records than the API's own count said.
    short_windows: int = 0
    #: Values that did not fit their field's declared type: null in the field, the value
    #: kept in ``_raw_values`` (see ``coerce.Conformer``).
    values_not_fitting: int = 0
    #: WARNING lines naming each field whose values did not fit, with its count.
    details: Callable[[str], list[str]] | None = field(
        default=None, repr=False, metadata={"counter": False}
    )

    def counters(self) -> list[str]:
        return [f.name for f in fields(self) if f.metadata.get("counter", True)]

    def line(self) -> str:
        """The report as ``name=value`` pairs, for one log line."""
        return ", ".join(f"{name}={getattr(self, name)}" for name in self.counters())

    def log(self, logger: logging.Logger, stream: str) -> None:
        """One INFO line, a WARNING per field with values that did not fit, then one SDK
        metric point per counter."""
        logger.info("%s: completeness: %s", stream, self.line())
        for line in self.details(stream) if self.details else []:
            logger.warning("%s", line)
        metrics_logger = metrics.get_metrics_logger()
        for name in self.counters():
            metric = CompletenessMetric[name.upper()]
            value = getattr(self, name)
            point = metrics.Point("counter", metric, value, {"stream": stream})  # type: ignore[arg-type]
            metrics.log(metrics_logger, point)


@dataclass
class Progress:
    """Progress of one pass over windows, logged about every ``interval`` seconds (a
    long backfill otherwise says nothing between its window lines for hours)."""

    logger: logging.Logger
    stream: str
    total: int
    interval: float = 30.0
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    records: int = 0
    started: float = field(init=False)
    last: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.last = self.clock()

    def window_done(self, records: int) -> None:
        """Count a finished window; log a line when ``interval`` has passed."""
        self.done += 1
        self.records += records
        now = self.clock()
        if now - self.last < self.interval or self.done >= self.total:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        left = elapsed / self.done * (self.total - self.done)
        self.logger.info(
            "%s: progress: %d of %d window(s), %d record(s), %.0f record(s)/s, about %s left",
            self.stream,
            self.done,
            self.total,
            self.records,
            self.records / elapsed,
            _duration(left),
        )


def _duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``3.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
