"""End-to-end ECSS syncs against the emulator, over both transports."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Iterator

import pytest

from emulator import EcssConfig, Emulator
from harness import expected_in_range, run_tap, run_tap_until_killed, tap_config, utc
from tests.conftest import AUTUMN, FAST_HTTP, SPRING, assert_stream_matches

pytestmark = pytest.mark.emulator(seed=5, ecss=EcssConfig(calls=3000))

STREAM = "ecss_operator_call_history"
KEY = ("call_ref",)
TRANSPORTS = ["http", "websocket"]
# a window that ends at 01:30Z on 2024-10-27 ends inside the repeated autumn hour
AUTUMN_SPLIT = ("2024-10-26T01:30:00+00:00", "2024-10-28T01:30:00+00:00")


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    """This module's emulator (``pytestmark``)."""
    return emulator


def ecss_config(emu, start: str, end: str, transport: str = "http", **overrides) -> dict:
    settings = {"start_date": start, "end_date": end, "window_days": 0.5, **FAST_HTTP}
    return tap_config(emu, "ecss", ecss={"transport": transport}, **{**settings, **overrides})


def expected(emu, start: str, end: str) -> dict:
    return expected_in_range(emu.ecss.expected(), "start_time", start, end)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    "period", [SPRING, AUTUMN_SPLIT], ids=["spring", "autumn-edge-in-repeated-hour"]
)
def test_full_sync_is_complete_without_duplicates_in_utc(emu, transport, period) -> None:
    start, end = period
    run = run_tap(ecss_config(emu, start, end, transport, window_days=0.5))
    assert_stream_matches(run, STREAM, expected(emu, start, end), KEY)
    records = run.records[STREAM]
    assert all(isinstance(r["duration"], int) for r in records)
    assert any(r["queue_id"] is None for r in records)
    assert any(r["answer_time"] is None for r in records)
    assert any(len(r.get("url_list") or []) > 0 for r in records)
    assert all(isinstance(r.get("url_list", []), list) for r in records)


def test_both_transports_give_identical_records(emu) -> None:
    start, end = AUTUMN
    http = run_tap(ecss_config(emu, start, end, "http"))
    ws = run_tap(ecss_config(emu, start, end, "websocket"))
    assert http.returncode == 0 and ws.returncode == 0, (http.stderr[-1500:], ws.stderr[-1500:])
    dump = lambda run: sorted(json.dumps(r, sort_keys=True) for r in run.records[STREAM])  # noqa: E731
    assert dump(http) == dump(ws)
    assert len(dump(http)) > 100


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_incremental_run_picks_up_late_calls(emu, transport) -> None:
    start, end = AUTUMN
    middle = "2024-10-27T12:00:00+00:00"
    first = run_tap(ecss_config(emu, start, middle, transport))
    assert first.returncode == 0, first.stderr[-2000:]
    late = emu.ecss.insert_calls(3, at_utc_range=("2024-10-27T11:20:00Z", "2024-10-27T11:40:00Z"))
    second = run_tap(ecss_config(emu, start, end, transport), state=first.last_state)
    assert second.returncode == 0, second.stderr[-2000:]
    refs = {r["call_ref"] for r in second.records[STREAM]}
    assert {c["call_ref"] for c in late} <= refs
    all_refs = {(r["call_ref"],) for r in first.records[STREAM]} | {(r,) for r in refs}
    assert all_refs == set(expected(emu, start, end))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_killed_backfill_resumes_losing_nothing(emu, transport) -> None:
    start, end = SPRING
    config = ecss_config(emu, start, end, transport, window_days=0.125)
    emu.faults.latency_ms = 5
    killed = run_tap_until_killed(config, kill_after_states=4)
    bookmark = killed.bookmark(STREAM)
    assert bookmark and utc(start) < utc(bookmark) < utc(end)
    emu.faults.latency_ms = 0
    resumed = run_tap(config, state=killed.last_state)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    got = {(r["call_ref"],) for r in killed.records[STREAM]} | {
        (r["call_ref"],) for r in resumed.records[STREAM]
    }
    assert got == set(expected(emu, start, end))


@contextlib.contextmanager
def sessions_expire_after(emu, counts: tuple[int, ...]) -> Iterator[list[int]]:
    """Invalidate every ECSS session once the emulator has logged each of ``counts``
    data requests: event-based, so a loaded machine cannot make it fire twice in a row
    or not at all (a short session TTL could do both)."""
    fired: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        pending = sorted(counts)
        while pending and not stop.is_set():
            seen = sum(1 for e in list(emu.requests_log) if "operator_call_history" in e["path"])
            if seen >= pending[0]:
                emu.ecss.expire_sessions()
                fired.append(pending.pop(0))
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield fired
    finally:
        stop.set()
        watcher.join(timeout=10)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_expired_sessions_are_renewed(emu, transport) -> None:
    start, end = SPRING
    emu.faults.latency_ms = 10  # the sync lasts long enough for both expiries
    with sessions_expire_after(emu, (3, 9)) as fired:
        run = run_tap(ecss_config(emu, start, end, transport, window_days=0.25))
    assert fired == [3, 9]
    assert_stream_matches(run, STREAM, expected(emu, start, end), KEY)
    assert run.stderr.count("session expired; logging in again") == 2, run.stderr[-2000:]
    refused = [
        e for e in emu.requests_log if "operator_call_history" in e["path"] and e["status"] == 403
    ]
    assert len(refused) == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_several_sessions_read_windows_at_once_and_lose_nothing(emu, transport) -> None:
    """``ecss.sessions`` 3: windows overlap, each over its own login (and websocket);
    every call once, and a session that expires is renewed by the worker holding it."""
    start, end = SPRING
    emu.faults.latency_ms = 10
    config = ecss_config(emu, start, end, transport, window_days=0.25)
    config["ecss"]["sessions"] = 3
    logins_before = sum(1 for e in emu.requests_log if e["path"].endswith("/login"))
    with sessions_expire_after(emu, (6,)) as fired:
        run = run_tap(config)
    assert fired == [6]
    assert_stream_matches(run, STREAM, expected(emu, start, end), KEY)
    logins = sum(1 for e in emu.requests_log if e["path"].endswith("/login")) - logins_before
    assert 2 <= logins <= 3 + 3, logins  # a login per worker, again after the expiry
    assert "session expired; logging in again" in run.stderr


def test_a_session_refused_right_after_a_new_login_is_a_clear_error(emu) -> None:
    """Renewed once, not forever: every session dies at once, so the retry after the
    new login is refused again."""
    emu.ecss.set(session_ttl_seconds=0)
    run = run_tap(ecss_config(emu, *SPRING, "http"), timeout=60)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert "refused again right after a new login" in last and "ecss.api_key" in last, last
    assert run.stderr.count("logging in again") == 1


def _retry_gaps(emu, status: int) -> list[float]:
    """Seconds from each refused data request to the next one (ECSS is sequential, so
    the next one is its retry)."""
    log = [e for e in emu.requests_log if "operator_call_history" in e["path"]]
    return [
        after["ts"] - entry["ts"]
        for entry, after in itertools.pairwise(log)
        if entry["status"] == status
    ]


def test_429_over_http_waits_its_retry_after(emu) -> None:
    """ECSS requests do not go through the stream-wide pause: only the retry's own wait
    can honour Retry-After here."""
    emu.faults.set(path_contains="operator_call_history", rate_limit_next=2, retry_after_seconds=1)
    start, end = SPRING
    run = run_tap(ecss_config(emu, start, end, "http"))  # backoff_factor 0.05 s on its own
    assert_stream_matches(run, STREAM, expected(emu, start, end), KEY)
    gaps = _retry_gaps(emu, 429)
    assert len(gaps) == 2, gaps
    assert min(gaps) >= 0.95, f"Retry-After: 1 not honoured: retried after {gaps}"


def test_429_over_the_websocket_backs_off_exponentially(emu) -> None:
    """A websocket status-429 frame carries no Retry-After: the retries wait the
    exponential backoff (0.4 s, 0.8 s, then capped at backoff_max_wait 1 s), not nothing."""
    emu.faults.set(path_contains="operator_call_history", rate_limit_next=3)
    start, end = SPRING
    run = run_tap(ecss_config(emu, start, end, "websocket", backoff_factor=0.4, max_tries=6))
    assert_stream_matches(run, STREAM, expected(emu, start, end), KEY)
    gaps = _retry_gaps(emu, 429)
    assert len(gaps) == 3, gaps
    for attempt, gap in enumerate(gaps):
        want = min(0.4 * 2**attempt, FAST_HTTP["backoff_max_wait"])
        assert gap >= want * 0.95, f"retry {attempt + 1} after {gap:.2f} s: {gaps}"


@contextlib.contextmanager
def loop_guard(emu, after_requests: int) -> Iterator[None]:
    """Once the emulator has logged ``after_requests`` data requests, answer every
    further one with 503: a tap that loops then fails in seconds instead of running
    into the test's timeout."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen = sum(1 for e in list(emu.requests_log) if "operator_call_history" in e["path"])
            if seen >= after_requests:
                emu.faults.set(unavailable_next=-1)
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=10)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_repeated_tag_is_an_error_not_a_loop(emu, transport) -> None:
    """The server answers tags A, B, then A again: a tag it already sent in this window,
    though not the previous one (which the SDK's own check would catch)."""
    emu.ecss.set(repeat_tag="aba")  # the cycle goes on (B, A, B, ...) for a client that loops
    with loop_guard(emu, after_requests=30):  # a looping tap then meets 503s and gives up
        run = run_tap(ecss_config(emu, *SPRING, transport), timeout=60)
    assert run.returncode == 1, run.stderr[-2000:]
    # the first page (tag A), the page for A (tag B), the page for B (tag A again): stop
    pages = [e for e in emu.requests_log if "operator_call_history" in e["path"]]
    assert len(pages) == 3, f"{len(pages)} pages: not stopped at the third (A, B, A)"
    last = run.stderr.strip().splitlines()[-1]
    assert "ecss / ecss_operator_call_history" in last and "tag" in last and "already" in last
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("transport", "knobs"),
    [
        ("http", {"faults": {"malformed_next": 2}}),
        ("http", {"faults": {"drop_next": 2, "unavailable_next": 2}}),
        ("websocket", {"ecss": {"ws_malformed_next": 2}}),
        ("websocket", {"ecss": {"ws_drop_next": 2}}),
    ],
    ids=["http-malformed-xml", "http-drops-503", "ws-malformed-frames", "ws-drops"],
)
def test_transient_faults_are_survived(emu, transport, knobs) -> None:
    for name, value in knobs.get("faults", {}).items():
        setattr(emu.faults, name, value)
    if "ecss" in knobs:
        emu.ecss.set(**knobs["ecss"])
    start, end = SPRING
    run = run_tap(ecss_config(emu, start, end, transport))
    assert_stream_matches(run, STREAM, expected(emu, start, end), KEY)
    assert "retrying" in run.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wrong_credentials_are_a_clear_error(emu, transport) -> None:
    config = ecss_config(emu, *SPRING, transport)
    config["ecss"]["api_key"] = "Wrong-Ecss-Key-31"
    run = run_tap(config, timeout=60)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "Wrong-Ecss-Key-31" not in run.stdout + run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert "ecss / ecss_operator_call_history" in last and "login refused" in last and "403" in last
    assert "/login" in last and "ecss.api_key" in last
