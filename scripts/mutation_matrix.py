"""Mutation matrix: break one promised behaviour at a time and check a test notices.

The fault matrix (``scripts/fault_matrix.py``) asks "does the tap survive a hostile
server?"; this one asks the converse about the tests: "would the suite notice if the tap
stopped keeping a promise?". Each row is a one-line break of a behaviour the README or
the contract promises (``Mutation``: the file, the exact text to replace, which must
occur exactly once, the replacement, and the tests that should notice). For each row the
script copies the repository to a scratch directory (without ``.venv*``, ``.git``,
``output``, ``.meltano`` and caches), applies the break there, and runs
``python -m pytest -x -q <tests>`` in that copy, with the copy first on ``PYTHONPATH``
and as the working directory, so the tap's subprocesses (``python -m tap_callcenter``)
and the in-process emulator import the broken copy, never the installed package (checked
before each run).

A row is **caught** when one of its tests fails; it **survived** when they all pass (a
blind spot: the run fails), it is **stale** when its ``old`` text no longer occurs
exactly once (the code moved on: update the row), and **invalid** when the break does not
even import or collect (a broken row, not a caught one).

Usage (from the repository root, in the project's virtualenv)::

    python scripts/mutation_matrix.py                 # every row, markdown table
    python scripts/mutation_matrix.py --list          # rows and their tests, no run
    python scripts/mutation_matrix.py --rows retry-after-per-request,fold-rule
    python scripts/mutation_matrix.py --write         # also docs/mutation-matrix.md
    python scripts/mutation_matrix.py --check         # only: is every row applicable?

Adding a row: append a ``Mutation`` to ``MUTATIONS`` (keep ``old`` short but unique,
and list only the test files or test ids that should notice, so a row takes seconds),
run it with ``--rows <key>``, and move its entry out of ``PENDING`` if it was there.
``tests/test_mutation_matrix.py`` runs the whole matrix in CI (marker ``mutation``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "mutation-matrix.md"

#: Never copied into a scratch tree: environments, VCS, outputs and caches.
EXCLUDED = frozenset(
    {
        ".git",
        "output",
        ".meltano",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        "build",
        "dist",
    }
)
#: Longest a row's pytest may run before the row is reported as timed out.
ROW_TIMEOUT = 900.0


@dataclass(frozen=True)
class Mutation:
    """One break: replace ``old`` (exactly once in ``path``) by ``new``; ``tests``
    (pytest files or node ids, relative to the root) must then fail."""

    key: str
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


# ---------------------------------------------------------------------------- rows

MUTATIONS: tuple[Mutation, ...] = (
    # -- Paging
    Mutation(
        "conpeek-short-page",
        "Conpeek: a short page is confirmed by one more request (a server may cap limit)",
        "tap_callcenter/pagination.py",
        "        return self._received(response) > 0\n",
        "        return self._received(response) in (100, 500)\n",
        (
            "tests/conpeek/test_sync.py::"
            "test_server_that_caps_limit_below_the_request_loses_nothing",
        ),
    ),
    Mutation(
        "offset-advance",
        "Thulium: the offset advances by the records received (the server may clamp limit)",
        "tap_callcenter/pagination.py",
        "        return self.current_value + self._received(response)\n\n\n"
        "class ShortPagePaginator",
        "        return self.current_value + 100\n\n\nclass ShortPagePaginator",
        ("tests/thulium/test_sync.py::test_a_server_that_clamps_limit_loses_nothing",),
    ),
    Mutation(
        "offset-advance-parallel",
        "Thulium: parallel pages are planned with the size of the first page received",
        "tap_callcenter/thulium.py",
        "        step = len(records)\n",
        "        step = PAGE_SIZE\n",
        ("tests/thulium/test_sync.py::test_a_server_that_clamps_limit_loses_nothing",),
    ),
    Mutation(
        "parallel-page-consistency",
        "Thulium: parallel pages are trusted only while the total and page sizes hold",
        "tap_callcenter/thulium.py",
        "                if page_total != total or len(page) != min(step, total - at):\n",
        "                if False:\n",
        ("tests/thulium/test_faults.py::test_records_inserted_while_paging_are_not_duplicated",),
    ),
    Mutation(
        "repeated-tag-memory",
        "ECSS: a paging tag already sent in the window (A, B, A) is an error, not a loop",
        "tap_callcenter/pagination.py",
        "        self._seen.add(tag)\n",
        "        self._seen = {tag}\n",
        (
            "tests/ecss/test_sync.py::test_repeated_tag_is_an_error_not_a_loop",
            "tests/test_fault_matrix.py::test_cell_loses_nothing_and_fails_only_when_it_should"
            "[ecss_operator_call_history (http)-repeat-tag]",
        ),
    ),
    # -- The window engine: windows, bookmarks, STATE
    Mutation(
        "state-per-window",
        "The bookmark is the end of the last completed window, with a STATE after each",
        "tap_callcenter/engine.py",
        "                self.advance_bookmark(window.end if advance else old, bookmark_key)",
        "                self.advance_bookmark(self.settings.end_date, bookmark_key)",
        ("tests/thulium/test_sync.py::test_state_is_emitted_after_each_window",),
    ),
    Mutation(
        "lookback",
        "An incremental run restarts lookback_minutes before the bookmark",
        "tap_callcenter/bookmarks.py",
        "        start = bookmark - self.settings.lookback\n",
        "        start = bookmark\n",
        ("tests/thulium/test_sync.py::test_incremental_run_picks_up_new_and_late_records",),
    ),
    Mutation(
        "start-date-bound",
        "A stream without state starts at start_date (fault matrix: records outside the range)",
        "tap_callcenter/bookmarks.py",
        "            return self.settings.start_date\n",
        "            return self.settings.start_date - self.settings.window\n",
        (
            "tests/test_fault_matrix.py::test_cell_loses_nothing_and_fails_only_when_it_should"
            "[conpeek_cdr_dialog-dst]",
        ),
    ),
    Mutation(
        "window-range-filter",
        "Only records inside the window are kept (inclusive API bounds return neighbours)",
        "tap_callcenter/sorting.py",
        "            elif not lower <= value < upper:",
        "            elif False:",
        ("tests/thulium/test_sync.py::test_full_sync_is_complete_without_duplicates_in_utc",),
    ),
    Mutation(
        "window-dedupe",
        "A primary key is emitted once per window (pages shift under live inserts)",
        "tap_callcenter/sorting.py",
        "            if key in seen:\n",
        "            if False:\n",
        ("tests/thulium/test_faults.py::test_records_inserted_while_paging_are_not_duplicated",),
    ),
    Mutation(
        "bounded-buffers",
        "Prefetch buffers are bounded (4 chunks of 200 records per window worker)",
        "tap_callcenter/concurrency.py",
        "QUEUE_CHUNKS = 4\n",
        "QUEUE_CHUNKS = 400\n",
        ("tests/test_concurrency.py::test_workers_do_not_run_ahead_unbounded",),
    ),
    # -- Time zones
    Mutation(
        "fold-rule",
        "A repeated autumn wall time takes its first occurrence",
        "tap_callcenter/timeconv.py",
        "return wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)",
        "return wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)",
        ("tests/test_timeconv.py::test_every_instant_round_trips_except_the_repeated_hour",),
    ),
    Mutation(
        "wall-bounds",
        "A window ending in the repeated autumn hour asks for the whole hour (wall bounds)",
        "tap_callcenter/timeconv.py",
        "        hi = self._first_wall_at_or_after(end, resolution) - resolution\n",
        "        hi = self.to_wall(end) - resolution\n",
        ("tests/thulium/test_sync.py::test_full_sync_is_complete_without_duplicates_in_utc",),
    ),
    # -- Retries and sessions
    Mutation(
        "retry-after-per-request",
        "A retry waits the Retry-After its own refusal carried (429 and 5xx)",
        "tap_callcenter/retry.py",
        "        if retry_after is not None:\n",
        "        if False:\n",
        (
            "tests/ecss/test_sync.py::test_429_over_http_waits_its_retry_after",
            "tests/test_retries.py",
        ),
    ),
    Mutation(
        "stream-wide-pause",
        "A 429 with Retry-After pauses every request of the stream",
        "tap_callcenter/client.py",
        "        if response.status_code == 429 and seconds:\n",
        "        if False:\n",
        ("tests/thulium/test_faults.py::test_a_429_pauses_every_request_of_the_stream",),
    ),
    Mutation(
        "exponential-backoff",
        "Retries without Retry-After back off exponentially (backoff_factor x 2^n)",
        "tap_callcenter/retry.py",
        "        wait = min(self.backoff_factor * 2 ** (retry - 1), self.backoff_max_wait)\n",
        "        wait = 0.0\n",
        ("tests/ecss/test_sync.py::test_429_over_the_websocket_backs_off_exponentially",),
    ),
    Mutation(
        "ecss-session-renewal",
        "ECSS: a session refused with 403 is renewed by logging in again",
        "tap_callcenter/ecss/transport.py",
        'self.stream.logger.info("%s: session expired; logging in again", self.stream.name)',
        'raise SessionRefused("no renewal")',
        ("tests/ecss/test_sync.py::test_expired_sessions_are_renewed",),
    ),
    Mutation(
        "ecss-session-renewed-once",
        "ECSS: a session refused again right after a new login is a clear error",
        "tap_callcenter/ecss/transport.py",
        "            except SessionRefused as exc:\n",
        "            except SessionRefused as exc:\n                return self.fetch(filters)\n",
        (
            "tests/ecss/test_sync.py::"
            "test_a_session_refused_right_after_a_new_login_is_a_clear_error",
        ),
    ),
    # -- Secrets
    Mutation(
        "redaction",
        "Secrets are redacted from every log line and error (redaction switched off)",
        "tap_callcenter/errors.py",
        "        if self._pattern is None:\n            return text\n",
        "        if True:\n            return text\n",
        ("tests/test_redaction.py::test_a_server_echoing_the_credentials_leaks_nothing",),
    ),
    Mutation(
        "redaction-basic-auth",
        "A secret is redacted as the base64 user:password of HTTP basic auth",
        "tap_callcenter/errors.py",
        'found.add(_basic_auth_token(config["username"], config["password"]))',
        "pass",
        ("tests/test_redaction.py::test_a_server_echoing_the_credentials_leaks_nothing",),
    ),
    Mutation(
        "redaction-url-encoded",
        "A secret is redacted URL-encoded (the ECSS login form)",
        "tap_callcenter/errors.py",
        'url_encoded = {quote_plus(text), quote(text, safe=""), quote(text)}',
        "url_encoded: set[str] = set()",
        ("tests/test_redaction.py::test_a_server_echoing_the_credentials_leaks_nothing",),
    ),
    Mutation(
        "redaction-json-escaped",
        "A secret is redacted JSON-escaped (a body or websocket frame quoting it)",
        "tap_callcenter/errors.py",
        "json_escaped = {json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}",
        "json_escaped: set[str] = set()",
        ("tests/test_redaction.py::test_a_websocket_error_echoing_the_key_leaks_nothing",),
    ),
    Mutation(
        "redaction-any-type",
        "A secret setting's value is never printed in a config error, whatever its type",
        "tap_callcenter/errors.py",
        "    if value is None:\n        return []\n",
        "    if not isinstance(value, str):\n        return []\n",
        ("tests/test_redaction.py::test_a_secret_setting_of_the_wrong_type_is_named_not_printed",),
    ),
    # -- Records and schemas
    Mutation(
        "ecss-schema",
        "ECSS records validate against their schema (call_ref declared integer)",
        "tap_callcenter/schemas/ecss_operator_call_history.json",
        '"call_ref": {\n      "type": "string",',
        '"call_ref": {\n      "type": "integer",',
        ("tests/test_core.py",),
    ),
    Mutation(
        "records-fit-schema",
        "Every RECORD fits its SCHEMA: loosely typed values are conformed to it",
        "tap_callcenter/coerce.py",
        "        return self.conformer(record)\n",
        "        return 0\n",
        (
            "tests/test_loose_types.py::"
            "test_loosely_typed_values_give_the_same_records_on_every_stream",
        ),
    ),
    Mutation(
        "undeclared-fields-kept",
        "Fields the API sends that the schema does not declare are kept",
        "tap_callcenter/pages.py",
        "        return record\n\n    if t.TYPE_CHECKING:",
        '        return {k: v for k, v in record.items() if k in self.schema["properties"]}'
        "\n\n    if t.TYPE_CHECKING:",
        ("tests/test_core.py",),
    ),
    # -- Settings
    Mutation(
        "closures-switch",
        "Conpeek: sync_closures false means no closure pass",
        "tap_callcenter/conpeek.py",
        'enabled = bool(self.provider_config["sync_closures"])',
        "enabled = True",
        ("tests/conpeek/test_sync.py::test_closures_can_be_switched_off",),
    ),
    Mutation(
        "numbers-as-strings",
        "Numbers given as strings keep their value (window_days '0.25' is 6 h)",
        "tap_callcenter/settings.py",
        'config[key] = int(number) if number.is_integer() and "integer" in types else number',
        "config[key] = int(number)",
        ("tests/test_config.py::test_numbers_given_as_strings_keep_their_value",),
    ),
    # -- A pipeline's life (lifecycle)
    Mutation(
        "end-date-clamp",
        "Windows end at the earlier of end_date and the sync start",
        "tap_callcenter/settings.py",
        "end_date=min(parse_utc(end), now) if end else now",
        "end_date=parse_utc(end) if end else now",
        (
            "tests/test_lifecycle.py::test_end_date_after_now_stops_at_now",
            "tests/test_pipeline_life.py::test_scenario",
        ),
    ),
    Mutation(
        "future-bookmark",
        "A bookmark later than now is not trusted (WARNING, start_date)",
        "tap_callcenter/bookmarks.py",
        "        if instant > self.settings.now:\n",
        "        if False:\n",
        ("tests/test_lifecycle.py::test_a_bookmark_later_than_now_is_not_trusted",),
    ),
    Mutation(
        "bookmark-over-start-date",
        "A bookmark wins over start_date, however old",
        "tap_callcenter/bookmarks.py",
        "        return start - self.clock.repeated_shift(start, bookmark)",
        "        return max(self.settings.start_date, start - self.clock.repeated_shift(start, bookmark))",  # noqa: E501
        (
            "tests/test_lifecycle.py::test_a_bookmark_older_than_the_default_start_date_wins",
            "tests/test_lifecycle.py::test_start_date_applies_only_without_a_bookmark",
            "tests/test_pipeline_life.py::test_scenario",
        ),
    ),
    Mutation(
        "repeated-hour-lookback",
        "The lookback reaches an hour further when it touches a repeated hour",
        "tap_callcenter/bookmarks.py",
        "        return start - self.clock.repeated_shift(start, bookmark)",
        "        return start",
        (
            "tests/test_lifecycle.py::test_a_late_call_in_the_repeated_hour_is_found_by_the_lookback",
            "tests/test_pipeline_life.py::test_scenario",
        ),
    ),
    Mutation(
        "conpeek-subsecond-bounds",
        "Conpeek: a bound with a fraction of a second is rounded up for lt",
        "tap_callcenter/conpeek.py",
        "        end += dt.timedelta(seconds=1)",
        "        pass",
        (
            "tests/test_lifecycle.py::test_fractional_bounds_lose_no_record_stamped_on_a_whole_second",
        ),
    ),
    Mutation(
        "no-inverted-range",
        "A window inside the second occurrence sends no request",
        "tap_callcenter/engine.py",
        "if self.stamps_wall_clock and self.clock.wall_range",
        "if False and self.clock.wall_range",
        (
            "tests/test_lifecycle.py::test_a_window_inside_the_second_occurrence_sends_no_inverted_range",
        ),
    ),
    Mutation(
        "thulium-missing-count",
        "Thulium: a missing count is not taken for 0 (page to a short page)",
        "tap_callcenter/thulium.py",
        "        if total is None or total < step:",
        "        total = total or 0\n        if total < 0:",
        ("tests/thulium/test_odd_servers.py::test_without_count_pages_to_the_first_short_page",),
    ),
    Mutation(
        "countless-short-page",
        "Thulium without a count: a short page ends paging",
        "tap_callcenter/pagination.py",
        "            return received >= self._page_size",
        "            return True",
        ("tests/thulium/test_odd_servers.py::test_without_count_pages_to_the_first_short_page",),
    ),
    Mutation(
        "closures-first-run",
        "Closures: no closures request on a stream's first run",
        "tap_callcenter/conpeek.py",
        "        origin = self.bookmark(CLOSURES_BOOKMARK) or self.bookmark()\n",
        "        origin = self.bookmark(CLOSURES_BOOKMARK) or self.bookmark() or self.settings.start_date\n",  # noqa: E501
        ("tests/test_lifecycle.py::test_first_run_makes_no_closures_requests",),
    ),
    Mutation(
        "closures-range",
        "Closures: the bookmark begins at the first run's end (a resumed backfill re-sends nothing older)",  # noqa: E501
        "tap_callcenter/conpeek.py",
        "            origin = self.bookmark() or self.settings.end_date\n",
        "            origin = self.bookmark() or self.settings.start_date\n",
        ("tests/test_lifecycle.py::test_resumed_backfill_resends_only_closures_since_it_began",),
    ),
    Mutation(
        "closures-floor",
        "Closures reach summaries created before the default start_date",
        "tap_callcenter/conpeek.py",
        "                return created is not None and floor <= created < created_from",
        "                return created is not None and format_utc(self.settings.start_date) <= created < created_from",  # noqa: E501
        (
            "tests/test_lifecycle.py::test_closures_reach_summaries_created_before_the_default_start_date",
        ),
    ),
    Mutation(
        "full-table",
        "FULL_TABLE in the catalog reads from start_date",
        "tap_callcenter/bookmarks.py",
        ' or self.name in getattr(\n            self._tap, "full_table_streams", ()\n        )',
        "",
        (
            "tests/test_lifecycle.py::test_full_table_reads_from_start_date_and_ignores_the_bookmark",
        ),
    ),
    Mutation(
        "full-table-gap",
        "FULL_TABLE from after the bookmark keeps the bookmark",
        "tap_callcenter/engine.py",
        "                self.advance_bookmark(window.end if advance else old, bookmark_key)",
        "                self.advance_bookmark(window.end, bookmark_key)",
        (
            "tests/test_lifecycle.py::test_full_table_after_a_gap_keeps_the_bookmark",
            "tests/test_pipeline_life.py::test_scenario",
        ),
    ),
    Mutation(
        "no-batch",
        "BATCH is not advertised",
        "tap_callcenter/tap.py",
        "        PluginCapabilities.STRUCTURED_LOGGING,\n    ]",
        "        PluginCapabilities.STRUCTURED_LOGGING,\n        PluginCapabilities.BATCH,\n    ]",
        ("tests/test_lifecycle.py::test_batch_is_not_advertised_and_batch_config_is_refused",),
    ),
    Mutation(
        "sigterm-143",
        "SIGTERM exits 143, not 0",
        "tap_callcenter/tap.py",
        "    os._exit(128 + signum)",
        "    os._exit(0)",
        (
            "tests/test_lifecycle.py::test_sigterm_stops_quickly_with_143_and_a_state_safe_to_resume",
            "tests/test_stop_signal.py::test_a_signal_inside_a_finalizer_still_stops_the_tap",
            "tests/test_pipeline_life.py::test_scenario",
        ),
    ),
    Mutation(
        "stop-in-own-thread",
        "A stop signal is acted on in a thread of its own, not in the interrupted main thread",
        "tap_callcenter/tap.py",
        "    with contextlib.suppress(RuntimeError):  # the interpreter is already shutting down\n        stopper.start()",  # noqa: E501
        "    _stop(signum)",
        ("tests/test_stop_signal.py::test_a_signal_in_the_middle_of_a_write_waits_for_it_to_end",),
    ),
    Mutation(
        "sigterm-no-exception",
        "The stop signal's handler raises nothing into the main thread",
        "tap_callcenter/tap.py",
        "        stop_for_signal(signum)",
        "        raise KeyboardInterrupt",
        ("tests/test_stop_signal.py::test_a_signal_inside_a_finalizer_still_stops_the_tap",),
    ),
    Mutation(
        "state-after-records",
        "STATE of a window only after its records",
        "tap_callcenter/engine.py",
        "                    yield from self.sorter.records(scope, records)\n                    self.advance_bookmark(window.end if advance else old, bookmark_key)",  # noqa: E501
        "                    self.advance_bookmark(window.end if advance else old, bookmark_key)\n                    yield from self.sorter.records(scope, records)",  # noqa: E501
        ("tests/test_pipeline_life.py::test_scenario",),
    ),
    Mutation(
        "state-file-checked",
        "A malformed state file is one clear error",
        "tap_callcenter/tap.py",
        "        if state is not None:\n            parsed",
        "        if False:\n            parsed",
        ("tests/test_lifecycle.py::test_malformed_state_is_one_clear_error",),
    ),
    Mutation(
        "state-dict-checked",
        "A malformed state dict is one clear error",
        "tap_callcenter/tap.py",
        "        super().load_state(check_state(state))",
        "        super().load_state(state)",
        ("tests/test_lifecycle.py::test_a_state_given_as_a_dict_is_checked_too",),
    ),
    Mutation(
        "setting-ranges",
        "Settings are range-checked",
        "tap_callcenter/settings.py",
        "th.IntegerType(minimum=0, maximum=MAX_LOOKBACK_MINUTES)",
        "th.IntegerType",
        ("tests/test_config.py::test_bad_config_is_rejected_clearly",),
    ),
    Mutation(
        "no-key-skipped",
        "Records without a primary key are skipped with a WARNING",
        "tap_callcenter/sorting.py",
        '            if None in key or "" in key:  # per record: no generator on the hot path',
        "            if False:",
        ("tests/thulium/test_odd_servers.py::test_odd_records_follow_the_documented_rules",),
    ),
    Mutation(
        "no-replication-key-once",
        "Records without a replication key are emitted once per run",
        "tap_callcenter/sorting.py",
        "                if key in self.emitted_without_field:",
        "                if False:",
        ("tests/thulium/test_odd_servers.py::test_odd_records_follow_the_documented_rules",),
    ),
    Mutation(
        "count-reconciled",
        "Thulium windows are reconciled with the API count",
        "tap_callcenter/sorting.py",
        "        if total is not None and received < total:",
        "        if False:",
        ("tests/thulium/test_odd_servers.py::test_a_window_short_of_the_api_count_is_a_warning",),
    ),
    Mutation(
        "reread-counted",
        "The report counts re-reads inside the lookback",
        "tap_callcenter/sorting.py",
        "                report.reread += value < scope.reread_before",
        "                pass",
        ("tests/test_lifecycle.py::test_completeness_report_counts_what_was_read_again",),
    ),
    # -- Hostile servers
    Mutation(
        "plain-http-warning",
        "Credentials over plain http to another host are a WARNING",
        "tap_callcenter/settings.py",
        'if parts.scheme in ("http", "ws") and not _is_loopback(parts.hostname or ""):',
        "if False:",
        ("tests/test_transport_settings.py::test_plain_http_to_another_host_is_a_warning",),
    ),
    Mutation(
        "ca-bundle-checked",
        "A ca_bundle that is no file is a setting error",
        "tap_callcenter/settings.py",
        "    if bundle and not os.path.isfile(str(bundle)):",
        "    if False:",
        ("tests/test_transport_settings.py",),
    ),
    Mutation(
        "size-cap",
        "An answer over max_response_mib is refused, not read into memory",
        "tap_callcenter/bounded.py",
        "        if size > max_bytes:\n",
        "        if False:\n",
        (
            "tests/hostile/test_size.py::test_size[endless-body-thulium]",
            "tests/hostile/test_size.py::test_size[gzip-bomb-conpeek]",
        ),
    ),
    Mutation(
        "ws-frame-cap",
        "A websocket frame over the cap is refused by its header",
        "tap_callcenter/bounded.py",
        "        if self.message_bytes > self.max_bytes:\n",
        "        if False:\n",
        ("tests/hostile/test_size.py::test_size[ws-huge-frame-ecss_ws]",),
    ),
    Mutation(
        "redirect-refusal",
        "A redirect to another origin is refused before anything is sent there",
        "tap_callcenter/bounded.py",
        '        if origin(absolute) != origin(resp.url or ""):\n',
        "        if False:\n",
        (
            "tests/hostile/test_redirect.py::test_redirect[redirect-other-port-307-thulium]",
            "tests/hostile/test_redirect.py::test_redirect[redirect-login-307-ecss_http]",
        ),
    ),
    Mutation(
        "ws-redirect-refusal",
        "A websocket handshake is never redirected",
        "tap_callcenter/bounded.py",
        "connection.connect(url, cookie=cookie, redirect_limit=0, timeout=timeout)",
        "connection.connect(url, cookie=cookie, redirect_limit=3, timeout=timeout)",
        ("tests/hostile/test_redirect.py::test_redirect[redirect-other-port-302-ecss_ws]",),
    ),
    Mutation(
        "attempt-deadline",
        "Each attempt ends at request_timeout however slowly the bytes come",
        "tap_callcenter/bounded.py",
        "        self.expires = time.monotonic() + self.seconds\n",
        "        self.expires = time.monotonic() + 10**6\n",
        (
            "tests/hostile/test_deadline.py::test_deadline[slow-headers-thulium]",
            "tests/hostile/test_deadline.py::test_deadline[ws-foreign-frames-ecss_ws]",
        ),
    ),
    Mutation(
        "same-page-guard",
        "A server ignoring the offset ends paging with an error",
        "tap_callcenter/pages.py",
        "        if any(keys <= earlier for earlier in pages):\n",
        "        if False:\n",
        ("tests/hostile/test_paging.py::test_paging[offset-ignored-conpeek]",),
    ),
    Mutation(
        "tls-not-retried",
        "An untrusted certificate is a clear error, not retried",
        "tap_callcenter/bounded.py",
        "    seen: BaseException | None = exc\n",
        "    seen: BaseException | None = None\n",
        ("tests/hostile/test_tls.py::test_tls[tls-untrusted-thulium]",),
    ),
    Mutation(
        "ca-bundle-from-environment",
        "REQUESTS_CA_BUNDLE / SSL_CERT_FILE are honoured for prepared requests",
        "tap_callcenter/bounded.py",
        '        os.environ.get("SSL_CERT_FILE"),\n',
        "",
        ("tests/hostile/test_tls.py::test_tls[tls-ssl-cert-file-env-thulium]",),
    ),
    # -- Performance keeps the promises
    Mutation(
        "state-flushed",
        "Buffered output is written at every STATE (a target sees it with its records)",
        "tap_callcenter/tap.py",
        "                is_state\n                or len",
        "                len",
        ("tests/test_output_flush.py",),
    ),
    Mutation(
        "slow-stream-flushed",
        "Buffered records reach stdout within a second while the tap waits on the server",
        "tap_callcenter/tap.py",
        "            self._ticker.start()\n",
        "            pass\n",
        ("tests/test_output_flush.py",),
    ),
    Mutation(
        "whole-writes",
        "Buffered output is written whole when stdout takes part of a write",
        "tap_callcenter/tap.py",
        "            pending = pending[written if written is not None else 0 :]\n",
        "            pending = pending[len(pending) :]\n",
        ("tests/test_output_flush.py",),
    ),
    Mutation(
        "plain-records-only-unmapped",
        "A RECORD skips the SDK's message path only when no map, flattening or deselection applies",
        "tap_callcenter/fastpath.py",
        '            return None\n        return getattr(self._tap.message_writer, "write_record"',
        '            pass\n        return getattr(self._tap.message_writer, "write_record"',
        ("tests/test_record_path.py",),
    ),
    Mutation(
        "record-written-as-the-sdk",
        "A RECORD written without a message object has the SDK's keys (its version too)",
        "tap_callcenter/tap.py",
        '            message["version"] = version\n',
        "            pass\n",
        ("tests/test_record_path.py::test_a_record_is_written_as_the_sdk_writes_it",),
    ),
    Mutation(
        "conform-empty-text",
        "An empty text in a nullable non-text field becomes null on the Conformer's quick path",
        "tap_callcenter/coerce.py",
        '                if empty_to_null and value == "":\n',
        "                if False:\n",
        ("tests/test_coerce.py", "tests/test_loose_types.py"),
    ),
    Mutation(
        "earliest-window-first",
        "The shared page pool serves the window being emitted before windows read ahead",
        "tap_callcenter/concurrency.py",
        "            self._calls.put(((0, priority), next(self._order), future, fn, arg))\n",
        "            self._calls.put(((0, 0), next(self._order), future, fn, arg))\n",
        ("tests/test_concurrency.py",),
    ),
    Mutation(
        "read-ahead-shared",
        "The windows after the one being emitted share the read-ahead room (not a few chunks each)",
        "tap_callcenter/concurrency.py",
        "        return self._ahead < READ_AHEAD_CHUNKS\n",
        "        return self._held[index] < QUEUE_CHUNKS\n",
        ("tests/test_concurrency.py",),
    ),
    Mutation(
        "read-ahead-bounded",
        "The windows after the one being emitted hold at most the shared read-ahead room",
        "tap_callcenter/concurrency.py",
        "        return self._ahead < READ_AHEAD_CHUNKS\n",
        "        return self._ahead < 10**9\n",
        ("tests/test_concurrency.py",),
    ),
    Mutation(
        "keys-spill",
        "A window's keys move to disk past the threshold (memory bounded per window)",
        "tap_callcenter/keyset.py",
        "                if self._size > self.spill_after:\n",
        "                if False:\n",
        ("tests/test_keyset.py",),
    ),
    Mutation(
        "seconds-of-the-minute",
        "Wall-clock seconds keep their value through the per-minute conversion",
        "tap_callcenter/timeconv.py",
        "                return minute[:17] + text[17:] + minute[19:]\n",
        "                return minute\n",
        ("tests/test_timeconv.py", "tests/test_core.py"),
    ),
    Mutation(
        "conversion-cache-bounded",
        "Time-stamp conversions remembered are bounded, not a month of minutes (memory)",
        "tap_callcenter/timeconv.py",
        "CONVERSIONS_CACHED = 1024\n",
        "CONVERSIONS_CACHED = 65536\n",
        ("tests/test_timeconv.py::test_conversion_memory_does_not_grow_with_distinct_minutes",),
    ),
    Mutation(
        "collector-left-on",
        "The cycle collector paused for the imports is switched back on",
        "tap_callcenter/cli.py",
        "        gc.enable()\n",
        "        pass\n",
        ("tests/test_cli.py",),
    ),
    Mutation(
        "collector-threshold-bounded",
        "Cyclic garbage is collected after a bounded number of survivors (memory)",
        "tap_callcenter/cli.py",
        "YOUNG_GENERATION = 50_000\n",
        "YOUNG_GENERATION = 10_000_000\n",
        ("tests/test_cli.py",),
    ),
)

#: Promised behaviours whose rows are still to come (owner's work not landed yet):
#: (behaviour, where the row will come from).
PENDING: tuple[tuple[str, str], ...] = ()


# ---------------------------------------------------------------------------- runs


@dataclass
class RowResult:
    """What happened to one row."""

    key: str
    name: str
    tests: tuple[str, ...]
    #: caught, survived, stale, invalid or timeout
    status: str
    caught_by: list[str] = field(default_factory=list)
    seconds: float = 0.0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "caught"


def _ignore(directory: str, names: list[str]) -> set[str]:
    return {
        name
        for name in names
        if name in EXCLUDED or name.startswith(".venv") or name.endswith(".egg-info")
    }


def scratch_copy(destination: Path, root: Path = ROOT) -> Path:
    """The repository's files (no environments, VCS, outputs or caches) under ``destination``."""
    target = destination / "repo"
    shutil.copytree(root, target, ignore=_ignore)
    return target


def occurrences(mutation: Mutation, root: Path = ROOT) -> int:
    """How often the row's ``old`` text occurs in its file (1 = applicable)."""
    path = root / mutation.path
    return path.read_text(encoding="utf-8").count(mutation.old) if path.is_file() else 0


def apply(mutation: Mutation, tree: Path) -> None:
    """Write the break into the scratch tree (``old`` must occur exactly once)."""
    path = tree / mutation.path
    text = path.read_text(encoding="utf-8")
    if text.count(mutation.old) != 1:
        msg = f"{mutation.path}: the text to replace occurs {text.count(mutation.old)} times"
        raise ValueError(msg)
    path.write_text(text.replace(mutation.old, mutation.new), encoding="utf-8")


def scratch_env(tree: Path) -> dict[str, str]:
    """The environment of every process in a scratch run: the copy first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def imports_from(tree: Path) -> str | None:
    """None when ``tap_callcenter`` and ``emulator`` resolve inside ``tree`` (as the
    tap's subprocesses will import them), else what they resolve to."""
    probe = "import emulator, tap_callcenter; print(tap_callcenter.__file__, emulator.__file__)"
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tree,
        env=scratch_env(tree),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    files = proc.stdout.split()
    if proc.returncode != 0 or len(files) != 2:
        return f"import failed: {proc.stderr.strip()[-300:]}"
    outside = [f for f in files if not Path(f).resolve().is_relative_to(tree.resolve())]
    return f"imports {outside} instead of the scratch copy" if outside else None


#: A failed test in pytest's short summary: ``FAILED <node id> - <message>``.
_FAILED = re.compile(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", re.MULTILINE)


def run_row(mutation: Mutation, root: Path = ROOT) -> RowResult:
    """Copy, break, run the row's tests; the verdict."""
    started = time.monotonic()
    result = RowResult(mutation.key, mutation.name, mutation.tests, "stale")
    count = occurrences(mutation, root)
    if count != 1:
        result.detail = f"{mutation.path}: the text to replace occurs {count} times (expected 1)"
        return result
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        tree = scratch_copy(Path(tmp), root)
        apply(mutation, tree)
        wrong_import = imports_from(tree)
        if wrong_import is not None:
            result.status, result.detail = "invalid", wrong_import
            result.seconds = round(time.monotonic() - started, 1)
            return result
        command = [
            sys.executable,
            *("-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rfE"),
            *mutation.tests,
        ]
        returncode, output = _run_tests(command, tree)
    failed = list(dict.fromkeys(_FAILED.findall(output)))
    if returncode is None:  # timed out: caught only if a test had already failed
        result.status = "caught" if failed else "timeout"
        result.caught_by = failed
        result.detail = f"the tests were killed after {ROW_TIMEOUT:.0f} s"
    elif returncode == 0:
        result.status = "survived"
        result.detail = output.strip().splitlines()[-1] if output.strip() else ""
    elif returncode == 1 and failed:
        result.status, result.caught_by = "caught", failed
    else:  # 2: interrupted / collection error, 3: internal, 4: usage, 5: no tests
        result.status = "invalid"
        result.caught_by = failed
        result.detail = f"pytest exit {returncode}: " + " ".join(output.split())[-400:]
    result.seconds = round(time.monotonic() - started, 1)
    return result


def _run_tests(command: list[str], tree: Path) -> tuple[int | None, str]:
    """Run pytest in the scratch tree: (exit code or None if it timed out, output).

    In its own process group, so a timeout also ends the tap and emulator processes the
    tests started (nothing outlives its row)."""
    proc = subprocess.Popen(
        command,
        cwd=tree,
        env=scratch_env(tree),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=ROW_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        return None, output or ""
    return proc.returncode, output or ""


def baseline(rows: Sequence[Mutation], root: Path = ROOT) -> RowResult:
    """Every test the rows name, on an unbroken scratch copy: they must all pass, or a
    "caught" row would prove nothing (a test that always fails catches everything)."""
    started = time.monotonic()
    tests = tuple(dict.fromkeys(t for m in rows for t in m.tests))
    result = RowResult("baseline", "(no break: every row's tests must pass)", tests, "passed")
    with tempfile.TemporaryDirectory(prefix="mutation-baseline-") as tmp:
        tree = scratch_copy(Path(tmp), root)
        wrong_import = imports_from(tree)
        if wrong_import is not None:
            result.status, result.detail = "invalid", wrong_import
            return result
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", *tests]
        returncode, output = _run_tests(command, tree)
    if returncode != 0:
        result.status = "failed"
        result.caught_by = list(dict.fromkeys(_FAILED.findall(output)))
        result.detail = f"pytest exit {returncode}: " + " ".join(output.split())[-400:]
    result.seconds = round(time.monotonic() - started, 1)
    return result


def select(keys: Sequence[str] | None) -> list[Mutation]:
    """The rows named by ``keys`` (all when None); unknown keys are an error."""
    if not keys:
        return list(MUTATIONS)
    known = {m.key: m for m in MUTATIONS}
    unknown = [k for k in keys if k not in known]
    if unknown:
        msg = f"unknown row(s) {unknown}; known: {', '.join(known)}"
        raise ValueError(msg)
    return [known[k] for k in keys]


def run_matrix(
    keys: Sequence[str] | None = None,
    *,
    workers: int = 1,
    progress: Callable[[RowResult], None] | None = None,
    root: Path = ROOT,
) -> list[RowResult]:
    """Every chosen row, ``workers`` at a time (each in its own scratch copy), in order."""
    rows = select(keys)

    def work(mutation: Mutation) -> RowResult:
        result = run_row(mutation, root)
        if progress is not None:
            progress(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(work, rows))


# ---------------------------------------------------------------------------- output


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _short_test(node: str) -> str:
    """``tests/x/test_y.py::test_z[a]`` -> ``x/test_y.py::test_z[a]``, for the table."""
    return node.removeprefix("tests/")


def markdown(results: Sequence[RowResult]) -> str:
    """The table: break, tests run, caught by, seconds."""
    lines = ["| break | tests run | caught by | seconds |", "|---|---|---|---:|"]
    for r in results:
        tests = "<br>".join(f"`{_short_test(t)}`" for t in r.tests)
        if r.status == "caught":
            verdict = "<br>".join(f"`{_short_test(t)}`" for t in r.caught_by)
        else:
            verdict = f"**{r.status.upper()}** {r.detail}".strip()
        lines.append(f"| {_cell(r.name)} | {tests} | {_cell(verdict)} | {r.seconds:.0f} |")
    return "\n".join(lines)


def problems(results: Sequence[RowResult]) -> list[str]:
    """Rows that make the run fail: survived, stale, invalid or timed out."""
    return [f"{r.key}: {r.status} {r.detail}".strip() for r in results if not r.ok]


DOC_HEADER = """\
# Mutation matrix

Generated by `python scripts/mutation_matrix.py --write`; do not edit the table by hand.

The fault matrix (`scripts/fault_matrix.py`) shows the tap survives hostile servers; this
one shows the tests would notice if the tap stopped keeping a promise. Each row breaks
one promised behaviour with a one-line change, in a scratch copy of the repository (the
copy is what the tests, the emulator and the tap's subprocesses import), runs only the
tests that should notice (`pytest -x`), and records the first test that failed. Before
the rows, the same tests run unbroken and must pass, so "caught" means something.

- **caught**: a test failed; the row is fine.
- **survived**: every test passed with the behaviour broken: a blind spot. The run fails.
- **stale**: the text the row replaces no longer occurs exactly once (the code moved
  on): update the row. The run fails.
- **invalid**: the break does not import or collect: fix the row. The run fails.

CI runs the whole matrix in `tests/test_mutation_matrix.py` (marker `mutation`,
deselect with `-m "not mutation"`; the check that every row still applies runs always).

## Adding a row

Append a `Mutation(key, name, path, old, new, tests)` to `MUTATIONS` in
`scripts/mutation_matrix.py`: `old` is the exact text to break (it must occur exactly
once in `path`; add a line of context if it does not), `new` its broken version, and
`tests` the test files or test ids that should notice (only those: a row should take
seconds). Check it with `python scripts/mutation_matrix.py --rows <key>`, watch the row
be caught, and regenerate this page with `--write`.

## The rows

"""


def document(results: Sequence[RowResult], seconds: float, workers: int) -> str:
    """``docs/mutation-matrix.md``: the explanation, the table, and the rows to come."""
    caught = sum(r.ok for r in results)
    parts = [
        DOC_HEADER + markdown(results),
        "",
        f"{caught} of {len(results)} rows caught. The whole run, baseline included, took "
        f"{seconds:.0f} s ({workers} row(s) at a time, on a 2-core machine shared with "
        "other work); the seconds column is each row's own time.",
    ]
    if PENDING:
        parts += [
            "",
            "## Rows still to come",
            "",
            "Promised behaviours whose rows land with the work that implements or reworks "
            "them (the owners add the row when their change is in):",
            "",
            *(f"- {behaviour} ({source} work)" for behaviour, source in PENDING),
        ]
    return "\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", help="comma-separated row keys (default: all)")
    parser.add_argument("--workers", type=int, default=1, help="rows run in parallel")
    parser.add_argument("--list", action="store_true", help="list the rows and exit")
    parser.add_argument(
        "--check", action="store_true", help="only check every row applies (no test run)"
    )
    parser.add_argument("--write", action="store_true", help=f"also write {DOC.relative_to(ROOT)}")
    parser.add_argument("--json", metavar="FILE", help="also write every row's result here")
    parser.add_argument("--quiet", action="store_true", help="no per-row progress on stderr")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="first run every row's tests unbroken (they must pass; default with --write)",
    )
    args = parser.parse_args(argv)
    rows = select(args.rows.split(",") if args.rows else None)
    if args.list or args.check:
        stale = [m for m in rows if occurrences(m) != 1]
        for m in rows:
            mark = "STALE " if m in stale else ""
            print(f"{mark}{m.key}: {m.name} [{m.path}] -> {' '.join(m.tests)}")
        return 1 if args.check and stale else 0

    def progress(result: RowResult) -> None:
        if not args.quiet:
            verdict = ", ".join(result.caught_by) if result.ok else result.detail
            print(
                f"  {result.seconds:6.1f} s  {result.key}: {result.status} {verdict}",
                file=sys.stderr,
            )

    started = time.monotonic()
    if args.baseline or args.write:
        base = baseline(rows)
        if not args.quiet:
            print(f"  {base.seconds:6.1f} s  baseline: {base.status}", file=sys.stderr)
        if base.status != "passed":
            print(f"baseline {base.status}: {', '.join(base.caught_by)} {base.detail}")
            return 1
    results = run_matrix([m.key for m in rows], workers=args.workers, progress=progress)
    seconds = time.monotonic() - started
    print(markdown(results))
    found = problems(results)
    print(f"\n{len(results)} rows in {seconds:.0f} s; problems: {len(found)}")
    for problem in found:
        print(f"- {problem}")
    if args.write:
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(document(results, seconds, args.workers), encoding="utf-8")
    if args.json:
        data = {"seconds": round(seconds, 1), "rows": [asdict(r) for r in results]}
        Path(args.json).write_text(json.dumps(data, indent=2), encoding="utf-8")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
