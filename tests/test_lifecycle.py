"""The rules of a pipeline's life, one regression test each (issue: never lose a call
over a pipeline's life). Each runs the real tap against the emulator, with the tap's
"now" set through ``TAP_CALLCENTER_TEST_NOW`` where the rule depends on the clock.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from emulator import ConpeekConfig, EcssConfig, Emulator, ThuliumConfig
from harness import (
    TAP_COMMAND,
    TapRun,
    discover,
    expected_in_range,
    full_table,
    parse_messages,
    run_tap,
    run_tap_until_killed,
    select_only,
    tap_config,
)
from tap_callcenter.state import StateError
from tap_callcenter.tap import TapCallcenter
from tests.conftest import FAST_HTTP, SPRING, assert_stream_matches, thulium_config

CONNECTIONS = "thulium_connections"
SUMMARIES = "conpeek_voice_campaign_request_summary"
NOW_VARIABLE = "TAP_CALLCENTER_TEST_NOW"


def at(now: str) -> dict[str, str]:
    """Environment that sets the tap's "now"."""
    return {NOW_VARIABLE: now}


def iso(text: str) -> str:
    """A canonical UTC ISO string, as the tap writes bookmarks."""
    return dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc).isoformat()


def minus(text: str, minutes: float) -> str:
    return (dt.datetime.fromisoformat(text) - dt.timedelta(minutes=minutes)).isoformat()


def connections(emu: Emulator, start: str, end: str) -> dict:
    return expected_in_range(emu.thulium.expected("connections"), "date", start, end)


def state_with(stream: str, **values: str) -> dict:
    key = {"thulium_connections": "date", "thulium_recordings": "created_at"}.get(
        stream, "created_date"
    )
    return {"bookmarks": {stream: {"replication_key": key, **values}}}


@pytest.fixture
def conpeek_emu():
    emu = Emulator(seed=5, port=0, conpeek=ConpeekConfig(dialogs=1500, summaries=800))
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def conpeek_config(emu: Emulator, **overrides: object) -> dict:
    return tap_config(emu, "conpeek", **{"window_days": 0.5, **FAST_HTTP, **overrides})


# ------------------------------------------------------------------ end_date and now


def test_end_date_after_now_stops_at_now(thulium_emulator) -> None:
    emu, now = thulium_emulator, "2024-10-27T12:00:00+00:00"
    start = "2024-10-26T00:00:00+00:00"
    run = run_tap(thulium_config(emu, start, "2024-10-30T00:00:00Z"), env=at(now))
    assert_stream_matches(run, CONNECTIONS, connections(emu, start, now), ("connection_id",))
    assert run.records[CONNECTIONS]
    for stream in (CONNECTIONS, "thulium_recordings"):
        assert run.bookmark(stream) == now, "a bookmark passed the time of its run"


def test_a_bookmark_later_than_now_is_not_trusted(thulium_emulator) -> None:
    emu, now = thulium_emulator, "2024-10-27T12:00:00+00:00"
    start = "2024-10-26T00:00:00+00:00"
    config = thulium_config(emu, start, now)
    del config["end_date"]
    state = state_with(CONNECTIONS, replication_key_value="2024-10-30T04:15:00+00:00")
    run = run_tap(config, state=state, env=at(now))
    assert "later than now" in run.stderr and "2024-10-30T04:15:00" in run.stderr
    assert_stream_matches(run, CONNECTIONS, connections(emu, start, now), ("connection_id",))
    assert run.bookmark(CONNECTIONS) == now


def test_a_bookmark_older_than_the_default_start_date_wins(thulium_emulator) -> None:
    # paused for seven months: the default start_date (30 days ago) must not skip them
    emu, now = thulium_emulator, "2024-10-28T00:00:00+00:00"
    config = thulium_config(emu, "2024-01-01T00:00:00Z", now, window_days=40)
    del config["start_date"], config["end_date"]
    bookmark = "2024-03-31T12:00:00+00:00"
    run = run_tap(
        config, state=state_with(CONNECTIONS, replication_key_value=bookmark), env=at(now)
    )
    expected = connections(emu, minus(bookmark, 60), now)
    assert any(k["local"].startswith("2024-03-31") for k in expected.values())
    assert_stream_matches(run, CONNECTIONS, expected, ("connection_id",))


def test_start_date_applies_only_without_a_bookmark(thulium_emulator) -> None:
    # a start_date later than the bookmark does not skip what lies between them
    emu, bookmark, end = thulium_emulator, "2024-10-26T06:00:00+00:00", "2024-10-28T00:00:00Z"
    config = thulium_config(emu, "2024-10-27T00:00:00Z", end)
    run = run_tap(config, state=state_with(CONNECTIONS, replication_key_value=bookmark))
    expected = connections(emu, minus(bookmark, 60), "2024-10-28T00:00:00+00:00")
    assert_stream_matches(run, CONNECTIONS, expected, ("connection_id",))


# ------------------------------------------------------------------ Conpeek bounds


def test_fractional_bounds_lose_no_record_stamped_on_a_whole_second(conpeek_emu) -> None:
    emu = conpeek_emu
    # dialogs stamped exactly at midnight: inside a window that ends half a second later
    emu.conpeek.insert_dialogs(4, at_utc_range=("2024-03-31T00:00:00Z", "2024-03-31T00:00:01Z"))
    start, end = "2024-03-30T00:00:00.500000+00:00", "2024-04-01T00:00:00+00:00"
    run = run_tap(conpeek_config(emu, start_date=start, end_date=end, window_days=1))
    expected = expected_in_range(emu.conpeek.expected("cdr_dialog"), "start_time", start, end)
    midnight = [
        k
        for k, v in expected.items()
        if v["expected_fields"]["start_time"].endswith("31T00:00:00+00:00")
    ]
    assert len(midnight) >= 4
    assert_stream_matches(run, "conpeek_cdr_dialog", expected, ("dialog_uuid",))


# ------------------------------------------------------------------ daylight saving


def test_a_late_call_in_the_repeated_hour_is_found_by_the_lookback(thulium_emulator) -> None:
    emu = thulium_emulator
    start = "2024-10-26T18:00:00+00:00"
    config = thulium_config(emu, start, "2024-10-28T00:00:00Z")
    del config["end_date"]
    # 01:40Z is 02:40 CET, in the second occurrence of the repeated hour
    first = run_tap(config, env=at("2024-10-27T01:40:00+00:00"))
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.bookmark(CONNECTIONS) == "2024-10-27T01:40:00+00:00"
    # calls made at 01:30Z (02:30 CET) arrive late; they are stamped 02:30, which the
    # contract converts to its first occurrence, 00:30Z: 70 minutes before the bookmark
    late = emu.thulium.insert_connections(
        3, at_utc_range=("2024-10-27T01:30:00Z", "2024-10-27T01:31:00Z")
    )
    second = run_tap(config, state=first.last_state, env=at("2024-10-27T02:10:00+00:00"))
    assert second.returncode == 0, second.stderr[-2000:]
    emitted = {r["connection_id"]: r for r in second.records[CONNECTIONS]}
    for call in late:
        assert call["connection_id"] in emitted, "a late call of the repeated hour was lost"
        assert emitted[call["connection_id"]]["date"] == "2024-10-27T00:30:00+00:00"


def test_a_window_inside_the_second_occurrence_sends_no_inverted_range() -> None:
    emu = Emulator(
        seed=3, port=0, thulium=ThuliumConfig(connections=500), ecss=EcssConfig(calls=500)
    )
    emu.start()
    try:
        config = tap_config(
            emu,
            "thulium",
            "ecss",
            start_date="2024-10-27T01:10:00Z",
            end_date="2024-10-27T01:20:00Z",
            **FAST_HTTP,
        )
        run = run_tap(config)
        assert run.returncode == 0, run.stderr[-2000:]
        data = [e for e in emu.requests_log if not e["path"].endswith("/login")]
        assert data == [], f"requests for a window no wall time maps into: {data[:3]}"
        assert run.bookmark(CONNECTIONS) == "2024-10-27T01:20:00+00:00"
    finally:
        emu.stop()


# ------------------------------------------------------------------ catalog modes


def test_full_table_reads_from_start_date_and_ignores_the_bookmark(thulium_emulator) -> None:
    emu = thulium_emulator
    start, end = "2024-10-26T00:00:00+00:00", "2024-10-28T00:00:00+00:00"
    config = thulium_config(emu, start, end)
    first = run_tap(config)
    assert first.returncode == 0
    discovered = full_table(discover(config), CONNECTIONS)
    second = run_tap(config, state=first.last_state, catalog=discovered)
    assert_stream_matches(second, CONNECTIONS, connections(emu, start, end), ("connection_id",))
    # the other stream stays incremental: only its lookback is read again
    recordings = second.records["thulium_recordings"]
    assert recordings and all(r["created_at"] >= minus(end, 60) for r in recordings)


def test_full_table_after_a_gap_keeps_the_bookmark(thulium_emulator) -> None:
    # found by the pipeline-life test: a FULL_TABLE run from a start_date later than the
    # bookmark moved the bookmark past a range nothing had read
    emu = thulium_emulator
    bookmark, start = "2024-10-26T06:00:00+00:00", "2024-10-27T00:00:00Z"
    config = thulium_config(emu, start, "2024-10-28T00:00:00Z")
    discovered = full_table(discover(config), CONNECTIONS)
    state = state_with(CONNECTIONS, replication_key_value=bookmark)
    full = run_tap(config, state=state, catalog=discovered)
    assert full.returncode == 0, full.stderr[-2000:]
    assert full.bookmark(CONNECTIONS) == bookmark
    assert "starts after the bookmark" in full.stderr
    incremental = run_tap(config, state=full.last_state)
    emitted = {r["connection_id"] for r in full.records[CONNECTIONS]}
    emitted |= {r["connection_id"] for r in incremental.records[CONNECTIONS]}
    gap = connections(emu, bookmark, "2024-10-27T00:00:00+00:00")
    assert gap and {k[0] for k in gap} <= emitted


def test_batch_is_not_advertised_and_batch_config_is_refused() -> None:
    about = run_tap({}, extra_args=("--about", "--format", "json"), timeout=60)
    assert "batch" not in json.loads(about.stdout)["capabilities"]
    config = {
        "thulium": {"api_url": "http://127.0.0.1:9/api", "username": "u", "password": "p-123"},
        "batch_config": {"encoding": {"format": "jsonl"}, "storage": {"root": "file:///tmp"}},
    }
    run = run_tap(config, timeout=60)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "batch_config" in run.stderr and "not supported" in run.stderr


# ------------------------------------------------------------------ SIGTERM


def test_sigterm_stops_quickly_with_143_and_a_state_safe_to_resume(thulium_emulator) -> None:
    emu = thulium_emulator
    start, end = "2024-10-26T00:00:00+00:00", "2024-10-28T00:00:00+00:00"
    config = thulium_config(emu, start, end, window_days=0.1, max_concurrency=8)
    config["request_timeout"] = 60
    emu.faults.set(latency_ms=30)
    with tempfile.TemporaryDirectory() as tmp:
        path, err_path = Path(tmp) / "config.json", Path(tmp) / "stderr.txt"
        path.write_text(json.dumps(config))
        with err_path.open("w") as err:
            proc = subprocess.Popen(
                [*TAP_COMMAND, "--config", str(path)], stdout=subprocess.PIPE, stderr=err, text=True
            )
            assert proc.stdout is not None
            lines: list[str] = []
            states = 0
            for line in proc.stdout:
                lines.append(line)
                states += json.loads(line).get("type") == "STATE"
                if states >= 3:
                    break
            # the server now hangs: every request in flight waits for a minute
            emu.faults.set(slow_next=10_000, slow_seconds=60)
            proc.send_signal(signal.SIGTERM)
            began = time.monotonic()
            stdout = proc.stdout
            rest = threading.Thread(target=lambda: lines.append(stdout.read()))
            rest.start()  # read while the tap writes out what it holds
            rest.join(timeout=10)  # bounded: a tap that ignored the signal fails below
            took = time.monotonic() - began
            if rest.is_alive():
                proc.kill()
                rest.join()
            proc.wait()
        stderr = err_path.read_text()
    assert proc.returncode == 143, stderr[-2000:]
    assert took < 10, f"took {took:.1f} s to stop"
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr
    killed = TapRun(proc.returncode, "".join(lines), stderr, parse_messages("".join(lines)))
    emu.faults.reset()
    resumed = run_tap(config, state=killed.last_state)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    emitted = {r["connection_id"] for r in killed.records[CONNECTIONS]}
    emitted |= {r["connection_id"] for r in resumed.records[CONNECTIONS]}
    assert emitted == {k[0] for k in connections(emu, start, end)}


# ------------------------------------------------------------------ input state


def run_with_state_text(config: dict, text: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as tmp:
        config_path, state_path = Path(tmp) / "config.json", Path(tmp) / "state.json"
        config_path.write_text(json.dumps(config))
        state_path.write_text(text)
        return subprocess.run(
            [*TAP_COMMAND, "--config", str(config_path), "--state", str(state_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("", ["state file", "empty"]),
        ("{not json", ["state file", "not JSON"]),
        ('{"bookmarks": []}', ["bookmarks", "[]"]),
        ("[1, 2]", ["JSON object", "[1, 2]"]),
        (
            json.dumps(state_with(CONNECTIONS, replication_key_value="yesterday")),
            [CONNECTIONS, '"yesterday"', "replication_key_value"],
        ),
        (
            json.dumps({"bookmarks": {CONNECTIONS: {"replication_key_value": 1730000000}}}),
            [CONNECTIONS, "1730000000"],
        ),
        (
            json.dumps({"bookmarks": {CONNECTIONS: "2024-10-27"}}),
            [CONNECTIONS, "must be an object"],
        ),
    ],
)
def test_malformed_state_is_one_clear_error(text: str, needles: list[str]) -> None:
    config = {"thulium": {"api_url": "http://127.0.0.1:9/api", "username": "u", "password": "pw-1"}}
    proc = run_with_state_text(config, text)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    for needle in needles:
        assert needle in last, last


def test_a_saved_state_message_is_read_as_its_value(thulium_emulator) -> None:
    emu = thulium_emulator
    config = thulium_config(emu, "2024-10-26T00:00:00Z", "2024-10-27T00:00:00Z")
    first = run_tap(config)
    line = json.dumps({"type": "STATE", "value": first.last_state})
    proc = run_with_state_text({**config, "end_date": "2024-10-27T06:00:00Z"}, line)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dates = [
        m["record"]["date"]
        for m in parse_messages(proc.stdout)
        if m["type"] == "RECORD" and m["stream"] == CONNECTIONS
    ]
    assert dates and min(dates) >= "2024-10-26T23:00:00", "the saved state was not used"


# ------------------------------------------------------------------ closures


def summary_requests(emu: Emulator, prop: str) -> list[dict]:
    return [
        e
        for e in emu.requests_log
        if e["path"].endswith("/voice_campaign_request_summary")
        and f'"property":"{prop}"' in (e["query"].get("filter") or "")
    ]


def test_first_run_makes_no_closures_requests(conpeek_emu) -> None:
    emu = conpeek_emu
    run = run_tap(conpeek_config(emu, start_date=SPRING[0], end_date=SPRING[1]))
    assert run.returncode == 0, run.stderr[-2000:]
    assert summary_requests(emu, "created_date")
    assert summary_requests(emu, "closed_date") == []
    assert run.last_state["bookmarks"][SUMMARIES]["closed_date_bookmark"] == SPRING[1]


def closed_open_summaries(emu: Emulator, start: str, before: str, n: int, at_utc: str) -> list:
    open_ones = [
        row["key"][0]
        for row in emu.conpeek.expected("voice_campaign_request_summary")
        if row["record"]["state"] == "OPEN"
        and start <= row["expected_fields"]["created_date"] < before
    ]
    return [str(i) for i in emu.conpeek.close_summaries(n, at_utc=at_utc, ids=open_ones[:n])]


def closed_in(emu: Emulator, created: tuple[str, str], closed: tuple[str, str]) -> list:
    """Ids of summaries created and closed in these ranges, by the emulator's truth."""
    return sorted(
        str(row["key"][0])  # ids are text in the tap's records
        for row in emu.conpeek.expected("voice_campaign_request_summary")
        if created[0] <= row["expected_fields"]["created_date"] < created[1]
        and closed[0] <= (row["expected_fields"].get("closed_date") or "") < closed[1]
    )


def test_resumed_backfill_resends_only_closures_since_it_began(conpeek_emu) -> None:
    emu = conpeek_emu
    start, end = SPRING
    config = conpeek_config(emu, start_date=start, end_date=end, window_days=0.25)
    discovered = select_only(discover(config), SUMMARIES)
    killed = run_tap_until_killed(config, kill_after_states=4, catalog=discovered)
    state = killed.last_state
    assert state["bookmarks"][SUMMARIES]["closed_date_bookmark"] == end
    # summaries created in the part already read close just before the end
    created_from = state["bookmarks"][SUMMARIES]["replication_key_value"]
    closed = closed_open_summaries(emu, start, minus(created_from, 120), 3, minus(end, 20))
    assert len(closed) == 3
    resumed = run_tap(config, state=state, catalog=discovered)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    from_closures = [
        r for r in resumed.records[SUMMARIES] if r["created_date"] < minus(created_from, 60)
    ]
    # exactly the summaries created before this run's range and closed since the closures
    # bookmark (the end of the first run) minus the lookback: not every earlier closure
    expected = closed_in(emu, (start, minus(created_from, 60)), (minus(end, 60), end))
    assert set(closed) <= set(expected)
    assert sorted(r["id"] for r in from_closures) == expected


def test_closures_switched_on_later_start_at_the_bookmark(conpeek_emu) -> None:
    emu = conpeek_emu
    start, end = SPRING
    config = conpeek_config(emu, start_date=start, end_date=end)
    config["conpeek"]["sync_closures"] = False
    first = run_tap(config)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "closed_date_bookmark" not in first.last_state["bookmarks"][SUMMARIES]
    closed = closed_open_summaries(emu, start, minus(end, 180), 2, minus(end, 10))
    assert len(closed) == 2
    config["conpeek"]["sync_closures"] = True
    second = run_tap(config, state=first.last_state)
    assert second.returncode == 0, second.stderr[-2000:]
    older = [r for r in second.records[SUMMARIES] if r["created_date"] < minus(end, 60)]
    expected = closed_in(emu, (start, minus(end, 60)), (minus(end, 60), end))
    assert set(closed) <= set(expected)
    assert len(expected) < len(closed_in(emu, (start, end), (start, end))) / 4
    assert sorted(r["id"] for r in older) == expected, "closures before the bookmark re-sent"
    assert all(r["state"] == "CLOSED" for r in older)


def test_closures_reach_summaries_created_before_the_default_start_date(conpeek_emu) -> None:
    emu = conpeek_emu
    now = "2024-10-28T00:00:00+00:00"
    config = conpeek_config(emu, window_days=30)
    state = {
        "bookmarks": {
            SUMMARIES: {
                "replication_key": "created_date",
                "replication_key_value": minus(now, 30),
                "closed_date_bookmark": minus(now, 30),
                "created_date_floor": SPRING[0],
            }
        }
    }
    # created in March (seven months before now), closed ten minutes ago
    closed = closed_open_summaries(emu, SPRING[0], SPRING[1], 2, minus(now, 10))
    assert len(closed) == 2
    run = run_tap(config, state=state, env=at(now))
    assert run.returncode == 0, run.stderr[-2000:]
    emitted = {r["id"]: r for r in run.records[SUMMARIES]}
    for summary_id in closed:
        assert emitted[summary_id]["state"] == "CLOSED"


# ------------------------------------------------------------------ completeness report


def test_completeness_report_counts_what_was_read_again(thulium_emulator) -> None:
    emu = thulium_emulator
    start, middle = "2024-10-26T00:00:00+00:00", "2024-10-27T00:00:00+00:00"
    first = run_tap(thulium_config(emu, start, middle))
    second = run_tap(thulium_config(emu, start, "2024-10-27T12:00:00Z"), state=first.last_state)
    assert second.returncode == 0, second.stderr[-2000:]
    reread = connections(emu, minus(middle, 60), middle)
    emitted = second.records[CONNECTIONS]
    assert reread and emitted
    line = next(
        line for line in second.stderr.splitlines() if f"{CONNECTIONS}: completeness:" in line
    )
    assert f"emitted={len(emitted)}," in line
    assert f"reread={len(reread)}," in line
    assert "without_key=0," in line and "short_windows=0" in line
    metric = [
        json.loads(line.split("METRIC: ", 1)[1])
        for line in second.stderr.splitlines()
        if "METRIC: " in line and '"records_emitted"' in line and CONNECTIONS in line
    ]
    assert metric and metric[-1]["value"] == len(emitted)


def test_a_test_now_is_announced() -> None:
    config = {"thulium": {"api_url": "http://127.0.0.1:9/api", "username": "u", "password": "pw"}}
    run = run_tap(config, extra_args=("--discover",), env=at("2024-10-27T00:00:00Z"), timeout=60)
    assert run.returncode == 0
    assert NOW_VARIABLE in run.stderr and "tests only" in run.stderr


def test_a_state_given_as_a_dict_is_checked_too() -> None:
    # the SDK's test helpers and embedding code pass the state as a dict, not a file
    config = {"thulium": {"api_url": "http://127.0.0.1:9/api", "username": "u", "password": "pw"}}
    with pytest.raises(StateError, match="yesterday"):
        TapCallcenter(
            config=config, state=state_with(CONNECTIONS, replication_key_value="yesterday")
        )


def test_a_start_date_after_now_says_there_is_nothing_to_sync() -> None:
    config = {
        "start_date": "2024-11-01T00:00:00Z",
        "thulium": {"api_url": "http://127.0.0.1:9/api", "username": "u", "password": "pw"},
    }
    run = run_tap(config, env=at("2024-10-27T00:00:00Z"), timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "nothing to sync" in run.stderr and "2024-11-01T00:00:00+00:00" in run.stderr
    assert not run.records
