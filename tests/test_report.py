"""The progress line of long backfills (with a clock under the test's control)."""

from __future__ import annotations

import logging

from tap_callcenter.report import Progress


def test_progress_is_logged_about_every_interval_with_an_eta(caplog) -> None:
    now = [0.0]
    logger = logging.getLogger("progress-test")
    progress = Progress(logger, "s", total=10, interval=30, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="progress-test"):
        for _ in range(4):  # 4 windows in 20 s: no line yet
            now[0] += 5
            progress.window_done(100)
        assert not caplog.records
        now[0] += 10  # 30 s, 5 of 10 windows: the same again is left
        progress.window_done(100)
        assert [r.getMessage() for r in caplog.records] == [
            "s: progress: 5 of 10 window(s), 500 record(s), 17 record(s)/s, about 30 s left"
        ]
        now[0] += 29
        progress.window_done(100)
        assert len(caplog.records) == 1  # not again before another 30 s
        now[0] += 300
        for _ in range(4):  # one line at once, none for the last window (its line says it)
            progress.window_done(0)
        assert len(caplog.records) == 2 and "7 of 10" in caplog.records[-1].getMessage()
