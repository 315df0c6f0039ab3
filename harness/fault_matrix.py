"""Reliability fault matrix: every stream of tap-callcenter against every fault.

Rows are the tap's streams (ECSS twice: over HTTP and over the websocket), columns are
faults the bundled emulator can inject. Each cell starts a fresh in-process emulator
holding only the provider under test (~1500 records per stream in each 2-day period),
runs the real ``tap-callcenter`` command (a subprocess, one provider block in its config
and a catalog that selects only the stream under test) with fast retries, and compares
what was emitted with the emulator's ``expected()``:

- outcome: ``completed``, or ``failed: <first 80 characters of the tap's error>``;
- records lost: expected keys minus every key the cell's run(s) emitted. After a failure
  the cell reruns from the last STATE the failed run emitted, with every fault cleared,
  and counts again: the contract says that state is always safe to resume from, so the
  count must end at 0.

Besides the outcome and the loss, a cell notes keys emitted twice within one run
("dup", which the contract forbids), emitted date-times that differ from what the
emulator expects ("wrong"), records whose replication key lies outside the range the run
was asked for, ``[start_date, end_date)`` ("outside"), a failure that printed a
traceback, a fault that did not actually fire ("fault not triggered", which would make
the cell meaningless), and for the 429 column a retry that did not wait its
``Retry-After`` (HTTP) or its exponential backoff (websocket: a status-429 frame has no
``Retry-After``), or a 429 whose retry was not found, so the wait could not be checked.

Columns (``--columns`` keys): 429 (a 429 storm with Retry-After), 503, drop, truncate,
slow (one answer slower than ``request_timeout``), restart (the emulator stops for 1 s
mid-sync, same port), sigkill (killed after its 3rd STATE, resumed from it),
paging-insert (records inserted while paging), late (late arrivals inside the lookback,
picked up by an incremental second run), dst (spring; autumn with a window boundary in
the repeated hour), dst-gap (spring with a window boundary in the hour after the jump,
the mirror case), and for ECSS only: session (sessions expire mid-sync), repeat-tag (the
server's tags go A, B, A: the tap must fail clearly, then a rerun from its STATE must
lose nothing), ws-malformed (malformed websocket frames; malformed XML bodies for
the HTTP transport). Faults are aimed at the row's endpoint with ``path_contains``.

Usage (from the repository root, in the project's virtualenv)::

    python scripts/fault_matrix.py                      # full matrix, markdown table
    python scripts/fault_matrix.py --json matrix.json   # also every cell's details
    python scripts/fault_matrix.py --rows thulium_connections --columns 503,drop
    python scripts/fault_matrix.py --workers 3          # cells run in parallel

The command line is ``scripts/fault_matrix.py``; ``tests/test_fault_matrix.py`` imports
:func:`run_matrix` from here and asserts every cell ends with 0 lost and that the only
failures are the expected ones (a repeated ECSS tag).
"""

from __future__ import annotations

import contextlib
import copy
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from emulator import ConpeekConfig, EcssConfig, Emulator, ThuliumConfig
from emulator import server as _emulator_server
from harness.catalog import discover, select_only
from harness.config import tap_config as emulator_tap_config
from harness.expected import expected_in_range
from harness.tap import TapRun, run_tap, run_tap_until_killed

#: The two daylight-saving edges the emulator seeds (Europe/Warsaw and Europe/Helsinki
#: switch at the same instants), 2 days each.
SPRING = ("2024-03-30T00:00:00+00:00", "2024-04-01T00:00:00+00:00")
AUTUMN = ("2024-10-26T00:00:00+00:00", "2024-10-28T00:00:00+00:00")
#: Autumn with 12 h windows whose boundary 2024-10-27T01:30Z falls inside the repeated hour.
AUTUMN_SPLIT = ("2024-10-26T01:30:00+00:00", "2024-10-28T01:30:00+00:00")
#: Spring with 12 h windows whose boundary 2024-03-31T01:30Z (03:30 local) falls in the
#: hour after the clocks jumped forward (its naive wall time 02:30 does not exist).
SPRING_SPLIT = ("2024-03-30T01:30:00+00:00", "2024-04-01T01:30:00+00:00")
#: The period most columns sync, and the bookmark of the first run of "late arrivals".
PERIOD = SPRING
MIDDLE = "2024-03-31T12:00:00+00:00"
LATE_RANGE = ("2024-03-31T11:10:00+00:00", "2024-03-31T11:30:00+00:00")

#: Records per stream in EACH of the two seeded periods.
RECORDS_PER_PERIOD = 1500

#: Fast retries so a matrix takes minutes (the tap's defaults are gentler).
FAST_HTTP: dict[str, Any] = {
    "backoff_factor": 0.05,
    "backoff_max_wait": 2,
    "max_tries": 8,
    "request_timeout": 2,
}
#: Longest a single tap run may take before the matrix calls it hung (a loop).
RUN_TIMEOUT = 120.0


# ---------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class StreamSpec:
    """One row: a tap stream, how the emulator names it and where its requests go."""

    row: str
    stream: str
    provider: str
    api_stream: str
    #: Replication key, as named in the emulator's ``expected_fields``.
    field: str
    key_fields: tuple[str, ...]
    #: Part of the data request path that ``path_contains`` aims faults at.
    path: str
    transport: str | None = None

    @property
    def is_ecss(self) -> bool:
        return self.provider == "ecss"


ROWS: tuple[StreamSpec, ...] = (
    StreamSpec(
        "thulium_connections",
        "thulium_connections",
        "thulium",
        "connections",
        "date",
        ("connection_id",),
        "/thulium/api/connections",
    ),
    StreamSpec(
        "thulium_recordings",
        "thulium_recordings",
        "thulium",
        "recordings",
        "created_at",
        ("connection_id", "filename"),
        "/thulium/api/recordings",
    ),
    StreamSpec(
        "conpeek_cdr_dialog",
        "conpeek_cdr_dialog",
        "conpeek",
        "cdr_dialog",
        "start_time",
        ("dialog_uuid",),
        "/conpeek/cdr_dialog",
    ),
    StreamSpec(
        "conpeek_voice_campaign_request_summary",
        "conpeek_voice_campaign_request_summary",
        "conpeek",
        "voice_campaign_request_summary",
        "created_date",
        ("id",),
        "/conpeek/voice_campaign_request_summary",
    ),
    StreamSpec(
        "ecss_operator_call_history (http)",
        "ecss_operator_call_history",
        "ecss",
        "ecss_operator_call_history",
        "start_time",
        ("call_ref",),
        "operator_call_history",
        "http",
    ),
    StreamSpec(
        "ecss_operator_call_history (websocket)",
        "ecss_operator_call_history",
        "ecss",
        "ecss_operator_call_history",
        "start_time",
        ("call_ref",),
        "operator_call_history",
        "websocket",
    ),
)


_print_handler_error = _emulator_server._Server.handle_error


def _quiet_handle_error(server: Any, request: Any, client_address: Any) -> None:
    """The emulator's server prints a traceback for every client that hangs up
    mid-request (a SIGKILLed tap, a timed-out request): expected here, so silent;
    anything else is still printed."""
    if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
        _print_handler_error(server, request, client_address)


@contextlib.contextmanager
def quiet_hangups() -> Iterator[None]:
    """While the matrix runs, hang-ups are not printed as tracebacks (restored after)."""
    _emulator_server._Server.handle_error = _quiet_handle_error  # type: ignore[assignment]
    try:
        yield
    finally:
        _emulator_server._Server.handle_error = _print_handler_error  # type: ignore[method-assign]


def make_emulator(spec: StreamSpec, seed: int) -> Emulator:
    """A fresh emulator with data only for the provider under test."""
    n = 2 * RECORDS_PER_PERIOD  # both seeded periods
    return Emulator(
        seed=seed,
        port=0,
        thulium=ThuliumConfig(connections=n if spec.provider == "thulium" else 0),
        conpeek=ConpeekConfig(
            dialogs=n if spec.provider == "conpeek" else 0,
            summaries=n if spec.provider == "conpeek" else 0,
        ),
        ecss=EcssConfig(calls=n if spec.provider == "ecss" else 0),
    )


def tap_config(
    emu: Emulator, spec: StreamSpec, start: str, end: str, **overrides: Any
) -> dict[str, Any]:
    """A config with one provider block (the one under test) and fast retries."""
    config = emulator_tap_config(
        emu,
        spec.provider,
        start_date=start,
        end_date=end,
        window_days=0.5,
        lookback_minutes=60,
        **FAST_HTTP,
    )
    if spec.is_ecss:
        config["ecss"]["transport"] = spec.transport or "http"
    config.update(overrides)
    return config


def expected_rows(emu: Emulator, spec: StreamSpec) -> list[dict[str, Any]]:
    """Every record the emulator holds for the row's stream (its ``expected()``)."""
    rows: list[dict[str, Any]] = emu.provider(spec.provider).expected(spec.api_stream)
    return rows


def expected_in(
    rows: Iterable[dict[str, Any]], spec: StreamSpec, start: str, end: str
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """``key -> expected_fields`` of the rows whose replication key is in [start, end)."""
    return {
        key: row["expected_fields"]
        for key, row in expected_in_range(rows, spec.field, start, end).items()
    }


def clear_faults(emu: Emulator) -> None:
    """Every fault knob of the emulator and of each provider back to "no fault"."""
    emu.faults.reset()
    emu.thulium.insert_while_paging = 0
    emu.conpeek.insert_while_paging = 0
    emu.ecss.reset_settings()


# ---------------------------------------------------------------------------- runs

_catalogs: dict[str, dict[str, Any]] = {}
_catalog_lock = threading.Lock()


def catalog_for(spec: StreamSpec, config: dict[str, Any]) -> dict[str, Any]:
    """The tap's own catalog (``--discover``, once per provider) selecting one stream."""
    with _catalog_lock:
        base = _catalogs.get(spec.provider)
        if base is None:
            base = _catalogs[spec.provider] = discover(config, timeout=RUN_TIMEOUT)
    return select_only(copy.deepcopy(base), spec.stream)


def matrix_run(
    config: dict[str, Any],
    catalog: dict[str, Any],
    *,
    state: dict[str, Any] | None = None,
    kill_after_states: int | None = None,
) -> TapRun:
    """A sync that may not outlive ``RUN_TIMEOUT`` (then it is killed and reported);
    optionally SIGKILLed right after its ``kill_after_states``-th STATE."""
    if kill_after_states is None:
        return run_tap(
            config, catalog=catalog, state=state, timeout=RUN_TIMEOUT, raise_on_timeout=False
        )
    return run_tap_until_killed(
        config,
        catalog=catalog,
        state=state,
        kill_after_states=kill_after_states,
        timeout=RUN_TIMEOUT,
        raise_on_timeout=False,
    )


def run_period(run: TapRun) -> tuple[str, str] | None:
    """The range the run was asked for: (start_date, end_date) of its config."""
    if run.config is None:
        return None
    return str(run.config["start_date"]), str(run.config["end_date"])


class RequestWatcher:
    """Runs actions once the emulator has logged N data requests of one stream.

    ``at`` maps a request count to an action; actions run in this watcher's thread, in
    order, so a slow one (an emulator restart) delays the next.
    """

    def __init__(self, emu: Emulator, path: str, at: dict[int, Callable[[], None]]) -> None:
        self.emu = emu
        self.path = path
        self.pending = sorted(at.items())
        self.fired: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RequestWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        seen = index = 0
        while self.pending and not self._stop.is_set():
            log = self.emu.requests_log
            while index < len(log):
                if self.path in str(log[index].get("path", "")):
                    seen += 1
                index += 1
            while self.pending and seen >= self.pending[0][0]:
                count, action = self.pending.pop(0)
                action()
                self.fired.append((count, time.time()))
            time.sleep(0.003)


def data_requests(emu: Emulator, spec: StreamSpec) -> list[dict[str, Any]]:
    """The emulator's log entries for the row's data endpoint."""
    return [entry for entry in list(emu.requests_log) if spec.path in str(entry.get("path", ""))]


# ---------------------------------------------------------------------------- columns


@dataclass
class Scenario:
    """What a column did: its runs, the keys that must have been emitted, and whether
    the fault really happened."""

    runs: list[TapRun]
    expected: dict[tuple[Any, ...], dict[str, Any]]
    fired: bool
    notes: list[str] = field(default_factory=list)
    #: Range a failed last run is rerun over (from its last STATE).
    rerun_period: tuple[str, str] = PERIOD


@dataclass(frozen=True)
class Column:
    """One fault: a name for the table, and the scenario that injects it."""

    key: str
    title: str
    run: Callable[[Emulator, StreamSpec], Scenario]
    ecss_only: bool = False
    #: True where failing (clearly) is the correct behaviour.
    expect_failure: bool = False


def _sync(emu: Emulator, spec: StreamSpec, start: str, end: str, **overrides: Any) -> TapRun:
    config = tap_config(emu, spec, start, end, **overrides)
    return matrix_run(config, catalog_for(spec, config))


def _period_expected(emu: Emulator, spec: StreamSpec) -> dict[tuple[Any, ...], dict[str, Any]]:
    return expected_in(expected_rows(emu, spec), spec, *PERIOD)


def _with_knobs(**knobs: Any) -> Callable[[Emulator, StreamSpec], Scenario]:
    """A column that sets emulator fault knobs, aimed at the row's endpoint."""

    def scenario(emu: Emulator, spec: StreamSpec) -> Scenario:
        emu.faults.set(path_contains=spec.path, **knobs)
        run = _sync(emu, spec, *PERIOD)
        applied = sum(emu.faults.snapshot()["applied"].values())
        return Scenario([run], _period_expected(emu, spec), applied > 0)

    return scenario


def _rate_limited(emu: Emulator, spec: StreamSpec) -> Scenario:
    """A 429 storm: the next 5 data requests are refused with ``Retry-After: 1``.

    Each retry must wait: over HTTP the ``Retry-After`` (1 s), over the websocket (whose
    status-429 frame has no ``Retry-After``) the exponential backoff of its attempt. A
    429 whose retry is not found in the log is reported too: its wait was not checked."""
    emu.faults.set(path_contains=spec.path, rate_limit_next=5, retry_after_seconds=1)
    run = _sync(emu, spec, *PERIOD)
    scenario = Scenario(
        [run], _period_expected(emu, spec), emu.faults.applied.get("rate_limit", 0) > 0
    )
    log = data_requests(emu, spec)
    refused = [i for i, entry in enumerate(log) if entry["status"] == 429]
    waits: list[tuple[float, float]] = []  # (waited, at least)
    attempt = 0
    for i in refused:
        entry = log[i]
        if spec.is_ecss:
            # one request at a time (HTTP body or websocket frame): the next is the retry
            retry = log[i + 1] if i + 1 < len(log) else None
        else:
            target = (entry["path"], entry["query"])
            same = [e for e in log[i + 1 :] if (e["path"], e["query"]) == target]
            retry = same[0] if same else None
        if retry is None:
            scenario.notes.append(f"Retry-After not checked: no retry of the 429 at {entry['ts']}")
            continue
        if spec.transport == "websocket":
            attempt = attempt + 1 if i - 1 in refused else 0
            factor, cap = FAST_HTTP["backoff_factor"], FAST_HTTP["backoff_max_wait"]
            waits.append((retry["ts"] - entry["ts"], min(factor * 2**attempt, cap)))
        else:
            waits.append((retry["ts"] - entry["ts"], 1.0))
    if refused and not waits:
        scenario.notes.append("Retry-After not checked: no retry matched any 429")
    short = [(round(w, 3), least) for w, least in waits if w < 0.95 * least]
    if short:
        what = "backoff" if spec.transport == "websocket" else "Retry-After"
        scenario.notes.append(f"{what} not honoured (waited, at least): {short}")
    return scenario


def _slow(emu: Emulator, spec: StreamSpec) -> Scenario:
    """One answer takes 3 s while the tap's ``request_timeout`` is 2 s."""
    emu.faults.set(path_contains=spec.path, slow_next=1, slow_seconds=3)
    run = _sync(emu, spec, *PERIOD)
    fired = emu.faults.applied.get("slow", 0) > 0
    return Scenario([run], _period_expected(emu, spec), fired)


def _restart(emu: Emulator, spec: StreamSpec) -> Scenario:
    """The emulator stops (connections cut) after the 3rd data request, for 1 s.

    Hourly windows and 60 ms per answer keep the sync busy for well over a second, so
    it is mid-way when the server goes away, whatever the load on the machine."""
    emu.faults.set(latency_ms=60)
    marks: dict[str, float] = {}
    overrides: dict[str, Any] = {"window_days": 1 / 24}

    def restart() -> None:
        emu.stop()
        time.sleep(1.0)
        emu.start()
        marks["up"] = time.time()

    with RequestWatcher(emu, spec.path, {3: restart}):
        run = _sync(emu, spec, *PERIOD, **overrides)
    after = [e for e in data_requests(emu, spec) if e["ts"] >= marks.get("up", float("inf"))]
    return Scenario([run], _period_expected(emu, spec), bool(after))


def _killed(emu: Emulator, spec: StreamSpec) -> Scenario:
    """SIGKILL right after the 3rd STATE of a 16-window backfill, then resume."""
    emu.faults.set(latency_ms=10)
    config = tap_config(emu, spec, *PERIOD, window_days=0.125)
    catalog = catalog_for(spec, config)
    killed = matrix_run(config, catalog, kill_after_states=3)
    bookmark = killed.bookmark(spec.stream)
    fired = killed.killed and bookmark is not None and PERIOD[0] < bookmark < PERIOD[1]
    emu.faults.reset()
    resumed = matrix_run(config, catalog, state=killed.last_state)
    notes = [f"killed at bookmark {bookmark}"] if bookmark else []
    # the killed run "failed" by design: the cell's outcome is the resumed run's
    return Scenario([killed, resumed], _period_expected(emu, spec), fired, notes)


def _inserted_while_paging(emu: Emulator, spec: StreamSpec) -> Scenario:
    """Two new records on every page request after the first of a window: pages shift.

    Records that existed before the run must all arrive; the new ones may or may not
    (they belong to the next run's lookback or window)."""
    before = _period_expected(emu, spec)
    count_before = len(expected_rows(emu, spec))
    if spec.is_ecss:
        emu.ecss.set(insert_while_paging=2)
    else:
        emu.provider(spec.provider).insert_while_paging = 2
    run = _sync(emu, spec, *PERIOD, window_days=1)
    clear_faults(emu)
    inserted = len(expected_rows(emu, spec)) - count_before
    return Scenario([run], before, inserted > 0, [f"{inserted} inserted during the run"])


def _late_arrivals(emu: Emulator, spec: StreamSpec) -> Scenario:
    """Sync to MIDDLE; records that started 30-50 min before it arrive; sync on from
    the state (the lookback is 60 min)."""
    start, end = PERIOD
    first = _sync(emu, spec, start, MIDDLE)
    before = set(expected_in(expected_rows(emu, spec), spec, start, end))
    if spec.provider == "thulium":
        emu.thulium.insert_connections(5, at_utc_range=LATE_RANGE, answered=True)
    elif spec.api_stream == "cdr_dialog":
        emu.conpeek.insert_dialogs(5, at_utc_range=LATE_RANGE)
    elif spec.provider == "conpeek":
        emu.conpeek.insert_summaries(5, at_utc_range=LATE_RANGE)
    else:
        emu.ecss.insert_calls(5, at_utc_range=LATE_RANGE)
    expected = _period_expected(emu, spec)
    late = set(expected) - before
    runs = [first]
    if first.ok:
        config = tap_config(emu, spec, start, end)
        runs.append(matrix_run(config, catalog_for(spec, config), state=first.last_state))
    late_before_bookmark = [k for k in late if expected[k][spec.field] < MIDDLE]
    note = f"{len(late)} late record(s), {len(late_before_bookmark)} before the bookmark"
    return Scenario(runs, expected, bool(late_before_bookmark), [note])


def _dst(emu: Emulator, spec: StreamSpec) -> Scenario:
    """Spring (12 h windows) and autumn with a window boundary inside the repeated hour."""
    rows = expected_rows(emu, spec)
    spring = _sync(emu, spec, *SPRING, window_days=0.5)
    autumn = _sync(emu, spec, *AUTUMN_SPLIT, window_days=0.5)
    expected = {**expected_in(rows, spec, *SPRING), **expected_in(rows, spec, *AUTUMN_SPLIT)}
    if not spring.ok:  # a failure is judged (and rerun) on its own period
        return Scenario([autumn, spring], expected, True, rerun_period=SPRING)
    return Scenario([spring, autumn], expected, True, rerun_period=AUTUMN_SPLIT)


def _dst_gap(emu: Emulator, spec: StreamSpec) -> Scenario:
    """Spring with a window boundary 30 min after the jump (the mirror of the autumn
    case): the windows around it must ask for wall times 03:00-03:29 exactly once."""
    run = _sync(emu, spec, *SPRING_SPLIT, window_days=0.5)
    expected = expected_in(expected_rows(emu, spec), spec, *SPRING_SPLIT)
    return Scenario([run], expected, True, rerun_period=SPRING_SPLIT)


def _session_expiry(emu: Emulator, spec: StreamSpec) -> Scenario:
    """Every ECSS session is invalidated after the 3rd and the 9th data request."""
    emu.faults.set(latency_ms=10)
    with RequestWatcher(emu, spec.path, {3: emu.ecss.expire_sessions, 9: emu.ecss.expire_sessions}):
        run = _sync(emu, spec, *PERIOD)
    refused = [e for e in data_requests(emu, spec) if e["status"] == 403]
    fired = bool(refused) or "session expired" in run.stderr
    return Scenario([run], _period_expected(emu, spec), fired)


def _repeated_tag(emu: Emulator, spec: StreamSpec) -> Scenario:
    """After the 6th data request, the server's pages carry tags A, B, then A again
    (``repeat_tag="aba"``): a tag already sent in the window, though not the previous
    one (an immediate repeat, A A, is stopped by the SDK's own check already)."""
    emu.faults.set(latency_ms=10)
    with RequestWatcher(emu, spec.path, {6: lambda: emu.ecss.set(repeat_tag="aba")}) as watcher:
        run = _sync(emu, spec, *PERIOD)
    # fired: switched on, and two more pages were asked: the page for A (the tag the tap
    # held when the knob came on) answered B, the page for B answered A again
    after = len(data_requests(emu, spec)) - watcher.fired[0][0] if watcher.fired else 0
    return Scenario([run], _period_expected(emu, spec), after >= 2)


def _malformed_frame(emu: Emulator, spec: StreamSpec) -> Scenario:
    """Two malformed websocket frames (over HTTP: two malformed XML bodies)."""
    if spec.transport == "websocket":
        emu.ecss.set(ws_malformed_next=2)
        notes: list[str] = []
    else:
        emu.faults.set(path_contains=spec.path, malformed_next=2)
        notes = ["http transport: malformed XML bodies instead"]
    run = _sync(emu, spec, *PERIOD)
    fired = any(e.get("fault") == "malformed" for e in data_requests(emu, spec))
    return Scenario([run], _period_expected(emu, spec), fired, notes)


COLUMNS: tuple[Column, ...] = (
    Column("429", "429 storm + Retry-After", _rate_limited),
    Column("503", "503 burst", _with_knobs(unavailable_next=5)),
    Column("drop", "dropped connection", _with_knobs(drop_next=3)),
    Column("truncate", "truncated body", _with_knobs(truncate_next=3)),
    Column("slow", "slower than timeout", _slow),
    Column("restart", "emulator restart", _restart),
    Column("sigkill", "SIGKILL + resume", _killed),
    Column("paging-insert", "inserted while paging", _inserted_while_paging),
    Column("late", "late arrivals (lookback)", _late_arrivals),
    Column("dst", "DST edges", _dst),
    Column("dst-gap", "window edge after spring jump", _dst_gap),
    Column("session", "ECSS session expiry", _session_expiry, ecss_only=True),
    Column("repeat-tag", "ECSS repeated tag", _repeated_tag, ecss_only=True, expect_failure=True),
    Column("ws-malformed", "malformed ws frame", _malformed_frame, ecss_only=True),
)


# ---------------------------------------------------------------------------- cells


@dataclass
class Cell:
    """The result of one stream x fault."""

    row: str
    column: str
    outcome: str
    lost: int | None = None
    expected: int = 0
    emitted: int = 0
    duplicates: int = 0
    wrong_values: int = 0
    #: Records whose replication key is outside the range their run was asked for.
    outside: int = 0
    fired: bool = True
    #: A failed run printed a Python traceback instead of one clear error line.
    traceback: bool = False
    rerun: str | None = None
    runs: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def applicable(self) -> bool:
        return self.outcome != "n/a"

    @property
    def failed(self) -> bool:
        return self.outcome.startswith("failed")

    def text(self) -> str:
        """The markdown cell."""
        if not self.applicable:
            return "n/a"
        parts = [self.outcome]
        if self.rerun is not None:
            parts = [f"{self.outcome} → rerun from STATE {self.rerun}"]
        parts.append(f"{self.lost} lost")
        if self.duplicates:
            parts.append(f"{self.duplicates} dup")
        if self.wrong_values:
            parts.append(f"{self.wrong_values} wrong")
        if self.outside:
            parts.append(f"{self.outside} outside the range")
        if not self.fired:
            parts.append("fault not triggered")
        if self.traceback:
            parts.append("traceback on stderr")
        return ", ".join(parts).replace("|", "\\|")


def _short(error: str) -> str:
    return " ".join(error.split())[:80]


def _key(record: dict[str, Any], spec: StreamSpec) -> tuple[Any, ...]:
    return tuple(record.get(name) for name in spec.key_fields)


def judge(emu: Emulator, spec: StreamSpec, column: Column, scenario: Scenario) -> Cell:
    """Outcome of the scenario's last run; after a failure, rerun from the last STATE
    with every fault cleared; then count what was lost, repeated and wrong."""
    runs = list(scenario.runs)
    last = runs[-1]
    outcome = "completed" if last.ok else f"failed: {_short(last.error)}"
    rerun: str | None = None
    if not last.ok:
        clear_faults(emu)
        state = next((run.last_state for run in reversed(runs) if run.last_state), None)
        config = tap_config(emu, spec, *scenario.rerun_period)
        resumed = matrix_run(config, catalog_for(spec, config), state=state)
        runs.append(resumed)
        rerun = "completed" if resumed.ok else f"failed: {_short(resumed.error)}"
        bookmark = last.bookmark(spec.stream)
        scenario.notes.append(f"failed run's last bookmark: {bookmark or 'none'}")
    traceback = any("Traceback" in run.stderr for run in runs if not run.ok and not run.killed)
    emitted: set[tuple[Any, ...]] = set()
    duplicates = wrong = outside = 0
    dup_examples: list[str] = []
    wrong_examples: list[str] = []
    outside_examples: list[str] = []
    for run in runs:
        records = run.records[spec.stream]
        period = run_period(run)
        for record in records:
            value = record.get(spec.field)
            if period is None or not isinstance(value, str):
                continue
            lower, upper = (datetime.fromisoformat(bound) for bound in period)
            if not lower <= datetime.fromisoformat(value) < upper:
                outside += 1
                if len(outside_examples) < 3:
                    outside_examples.append(f"{_key(record, spec)}: {spec.field} {value}")
        counts = Counter(_key(record, spec) for record in records)
        repeated = [k for k, n in counts.items() if n > 1]
        duplicates += sum(counts[k] - 1 for k in repeated)
        dup_examples += [str(k) for k in repeated[:3]]
        emitted.update(counts)
        for record in records:
            fields = scenario.expected.get(_key(record, spec))
            if fields is None:
                continue
            bad = {n: (record.get(n), v) for n, v in fields.items() if record.get(n) != v}
            if bad:
                wrong += 1
                if len(wrong_examples) < 3:
                    wrong_examples.append(f"{_key(record, spec)}: {bad}")
    missing = sorted(set(scenario.expected) - emitted, key=str)
    examples = {
        "lost": [str(k) for k in missing[:5]],
        "duplicated": dup_examples[:5],
        "wrong": wrong_examples,
        "outside": outside_examples,
    }
    return Cell(
        row=spec.row,
        column=column.title,
        outcome=outcome,
        lost=len(missing),
        expected=len(scenario.expected),
        emitted=len(emitted),
        duplicates=duplicates,
        wrong_values=wrong,
        outside=outside,
        fired=scenario.fired,
        traceback=traceback,
        rerun=rerun,
        runs=len(runs),
        notes=scenario.notes,
        examples={k: v for k, v in examples.items() if v},
    )


def run_cell(spec: StreamSpec, column: Column, seed: int = 7) -> Cell:
    """One stream x fault on a fresh emulator."""
    if column.ecss_only and not spec.is_ecss:
        return Cell(spec.row, column.title, "n/a", fired=False)
    started = time.monotonic()
    emu = make_emulator(spec, seed)
    emu.start()
    try:
        scenario = column.run(emu, spec)
        cell = judge(emu, spec, column, scenario)
    except Exception as exc:  # the matrix reports a broken cell instead of dying
        cell = Cell(spec.row, column.title, f"failed: matrix error {type(exc).__name__}: {exc}")
    finally:
        emu.stop()
    cell.seconds = round(time.monotonic() - started, 2)
    return cell


@dataclass
class Matrix:
    """Every cell, in row and column order."""

    rows: list[StreamSpec]
    columns: list[Column]
    cells: dict[tuple[str, str], Cell]
    seconds: float

    def cell(self, row: str, column_key: str) -> Cell:
        title = next(c.title for c in self.columns if c.key == column_key)
        return self.cells[(row, title)]

    def markdown(self) -> str:
        header = ["stream", *(c.title for c in self.columns)]
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        for spec in self.rows:
            cells = [self.cells[(spec.row, c.title)].text() for c in self.columns]
            lines.append("| " + " | ".join([spec.row, *cells]) + " |")
        return "\n".join(lines)

    def problems(self) -> list[str]:
        """Cells that break the contract: lost records, unexpected failures, an
        expected failure that did not happen, a fault that did not fire."""
        found = []
        for column in self.columns:
            for spec in self.rows:
                cell = self.cells[(spec.row, column.title)]
                if not cell.applicable:
                    continue
                where = f"{spec.row} x {column.title}"
                if cell.lost != 0:
                    found.append(f"{where}: {cell.lost} lost {cell.examples.get('lost', '')}")
                if cell.failed != column.expect_failure:
                    found.append(f"{where}: {cell.outcome}")
                if cell.rerun is not None and cell.rerun != "completed":
                    found.append(f"{where}: rerun {cell.rerun}")
                if not cell.fired:
                    found.append(f"{where}: the fault was not triggered")
                if cell.traceback:
                    found.append(f"{where}: a traceback instead of a clear error")
                found += [
                    f"{where}: {note}"
                    for note in cell.notes
                    if "not honoured" in note or "not checked" in note
                ]
                if cell.duplicates or cell.wrong_values or cell.outside:
                    found.append(
                        f"{where}: {cell.duplicates} duplicated within a run, "
                        f"{cell.wrong_values} with wrong date-times, "
                        f"{cell.outside} outside the range {cell.examples}"
                    )
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "columns": [c.title for c in self.columns],
            "rows": [s.row for s in self.rows],
            "cells": [asdict(cell) for cell in self.cells.values()],
        }


def select(items: Sequence[Any], wanted: Sequence[str] | None, attr: str) -> list[Any]:
    """Items whose ``attr`` (or title/row) is in ``wanted`` (all when None)."""
    if not wanted:
        return list(items)
    chosen = [i for i in items if getattr(i, attr) in wanted]
    unknown = set(wanted) - {getattr(i, attr) for i in items}
    if unknown:
        known = ", ".join(getattr(i, attr) for i in items)
        raise ValueError(f"unknown {attr}(s) {sorted(unknown)}; known: {known}")
    return chosen


def run_matrix(
    rows: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    *,
    cells: Iterable[tuple[str, str]] | None = None,
    workers: int = 2,
    progress: Callable[[Cell], None] | None = None,
) -> Matrix:
    """Run the chosen rows x columns (or exactly ``cells``, as (row, column key) pairs),
    ``workers`` cells at a time, each on its own emulator."""
    specs = select(ROWS, rows, "row")
    cols = select(COLUMNS, columns, "key")
    wanted = set(cells) if cells is not None else None
    if wanted is not None:
        specs = [s for s in specs if any(r == s.row for r, _ in wanted)]
        cols = [c for c in cols if any(k == c.key for _, k in wanted)]
    jobs = [
        (spec, column)
        for spec in specs
        for column in cols
        if wanted is None or (spec.row, column.key) in wanted
    ]
    started = time.monotonic()
    results: dict[tuple[str, str], Cell] = {}
    # the slowest cells first, so the pool does not end on one long cell
    slow_first = {"429": 0, "restart": 1, "sigkill": 2, "slow": 3, "late": 4, "dst": 5}
    ordered = sorted(jobs, key=lambda job: slow_first.get(job[1].key, 9))

    def work(job: tuple[StreamSpec, Column]) -> Cell:
        cell = run_cell(*job)
        if progress is not None:
            progress(cell)
        return cell

    with quiet_hangups(), ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for cell in pool.map(work, ordered):
            results[(cell.row, cell.column)] = cell
    for spec in specs:  # cells left out by ``cells`` show as not run
        for column in cols:
            results.setdefault((spec.row, column.title), Cell(spec.row, column.title, "n/a"))
    ordered_results = {
        (spec.row, column.title): results[(spec.row, column.title)]
        for spec in specs
        for column in cols
    }
    return Matrix(specs, cols, ordered_results, round(time.monotonic() - started, 1))
