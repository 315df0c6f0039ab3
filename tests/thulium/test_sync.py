"""End-to-end Thulium syncs against the emulator: completeness, UTC, state, resume."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from harness import run_tap, run_tap_until_killed, utc
from tests.conftest import AUTUMN, SPRING, expected_keys, thulium_config

STREAMS = {
    "thulium_connections": ("connections", "date", ("connection_id",)),
    "thulium_recordings": ("recordings", "created_at", ("connection_id", "filename")),
}


def keys_of(records: list[dict], key_fields: tuple[str, ...]) -> list[tuple]:
    return [tuple(r[f] for f in key_fields) for r in records]


def assert_complete_and_correct(emu, run, start: str, end: str) -> None:
    """Every expected record once, with the expected UTC values, nothing else."""
    assert run.returncode == 0, run.stderr[-3000:]
    for stream, (api_stream, field, key_fields) in STREAMS.items():
        expected = expected_keys(emu, api_stream, start, end, field)
        records = run.records[stream]
        keys = keys_of(records, key_fields)
        dupes = [k for k, n in Counter(keys).items() if n > 1]
        assert not dupes, f"{stream}: duplicated keys {dupes[:5]}"
        assert set(keys) == set(expected), (
            f"{stream}: missing {sorted(set(expected) - set(keys))[:5]}, "
            f"unexpected {sorted(set(keys) - set(expected))[:5]}"
        )
        for record in records:
            want = expected[tuple(record[f] for f in key_fields)]["expected_fields"]
            for name, value in want.items():
                assert record[name] == value, (stream, record, want)
                assert record[name].endswith("+00:00")


# a window that ends at 01:30Z on 2024-10-27 ends inside the repeated hour's second pass
AUTUMN_SPLIT = ("2024-10-26T01:30:00+00:00", "2024-10-28T01:30:00+00:00")


@pytest.mark.parametrize(
    "period",
    [SPRING, AUTUMN, AUTUMN_SPLIT],
    ids=["spring-forward", "fall-back", "fall-back-window-edge-in-repeated-hour"],
)
@pytest.mark.parametrize("window_days", [0.5, 0.1003], ids=["12h-windows", "odd-windows"])
def test_full_sync_is_complete_without_duplicates_in_utc(
    thulium_emulator, period, window_days
) -> None:
    # odd windows end mid-minute: the inclusive minute bounds then return neighbours
    start, end = period
    run = run_tap(thulium_config(thulium_emulator, start, end, window_days=window_days))
    assert_complete_and_correct(thulium_emulator, run, start, end)
    # both occurrences of the repeated autumn hour and the minutes after each jump exist
    if period == AUTUMN:
        locals_ = [r["local"] for r in thulium_emulator.thulium.expected("connections")]
        assert sum(1 for v in locals_ if v.startswith("2024-10-27 02:")) >= 4


def test_dst_wall_times_convert_by_the_documented_convention(thulium_emulator) -> None:
    start, end = AUTUMN
    run = run_tap(thulium_config(thulium_emulator, start, end))
    assert run.returncode == 0, run.stderr[-2000:]
    by_key = {r["connection_id"]: r for r in run.records["thulium_connections"]}
    checked = 0
    for item in thulium_emulator.thulium.expected("connections"):
        local = item["local"]
        if local.startswith("2024-10-27 02:") and item["key"][0] in by_key:
            # a repeated wall time takes its first occurrence (CEST, UTC+2)
            wall = dt.datetime.strptime(local, "%Y-%m-%d %H:%M").replace(tzinfo=dt.timezone.utc)
            assert utc(by_key[item["key"][0]]["date"]) == wall - dt.timedelta(hours=2)
            checked += 1
    assert checked >= 4


def test_records_keep_fields_the_schema_does_not_list_and_nulls(thulium_emulator) -> None:
    start, end = SPRING
    run = run_tap(thulium_config(thulium_emulator, start, end))
    assert run.returncode == 0, run.stderr[-2000:]
    connections = run.records["thulium_connections"]
    raw = {tuple(i["key"]): i["record"] for i in thulium_emulator.thulium.expected("connections")}
    extra = [c for c in connections if "campaign_name" in c]
    assert extra, "an undocumented field was dropped"
    for record in connections:
        source = raw[(record["connection_id"],)]
        for name in ("outbound_id", "customer_id", "queue_id"):
            if source.get(name) == "":
                assert record[name] is None
            elif source.get(name) is not None:
                assert record[name] == int(source[name])
        assert isinstance(record["duration"], int)
        assert isinstance(record.get("tags"), list)
    rated = [c for c in connections if c.get("rating")]
    assert rated and set(rated[0]["rating"]) >= {"type", "rate"}


def test_incremental_run_picks_up_new_and_late_records(thulium_emulator) -> None:
    emu = thulium_emulator
    start, end = AUTUMN
    first_end = "2024-10-27T12:00:00+00:00"
    first = run_tap(thulium_config(emu, start, first_end))
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.bookmark("thulium_connections") == first_end

    # a call that started 30 min before the bookmark ended after the first sync
    late = emu.thulium.insert_connections(
        3, at_utc_range=("2024-10-27T11:25:00Z", "2024-10-27T11:35:00Z")
    )
    # and calls that started after the first sync
    new = emu.thulium.insert_connections(
        3, at_utc_range=("2024-10-27T13:00:00Z", "2024-10-27T14:00:00Z")
    )
    # a call far before the lookback is not re-read (nor expected)
    second = run_tap(thulium_config(emu, start, end), state=first.last_state)
    assert second.returncode == 0, second.stderr[-2000:]
    got = {r["connection_id"] for r in second.records["thulium_connections"]}
    assert {c["connection_id"] for c in late} <= got
    assert {c["connection_id"] for c in new} <= got
    # the second run starts at bookmark - lookback: nothing older is emitted again
    lookback_start = utc(first_end) - dt.timedelta(minutes=60)
    assert all(utc(r["date"]) >= lookback_start for r in second.records["thulium_connections"])
    # together the two runs hold everything
    all_keys = {(r["connection_id"],) for r in first.records["thulium_connections"]} | {
        (k,) for k in got
    }
    assert all_keys == set(expected_keys(emu, "connections", start, end, "date"))


def test_killed_backfill_resumes_from_last_state_losing_nothing(thulium_emulator) -> None:
    emu = thulium_emulator
    start, end = SPRING
    config = thulium_config(emu, start, end, window_days=0.125)  # 3 h windows
    emu.faults.latency_ms = 5
    killed = run_tap_until_killed(config, kill_after_states=4)
    assert killed.returncode != 0  # SIGKILL
    state = killed.last_state
    bookmark = killed.bookmark("thulium_connections")
    assert bookmark is not None and utc(start) < utc(bookmark) < utc(end)
    emu.faults.latency_ms = 0

    resumed = run_tap(config, state=state)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected = expected_keys(emu, "connections", start, end, "date")
    first = {(r["connection_id"],) for r in killed.records["thulium_connections"]}
    second = {(r["connection_id"],): r for r in resumed.records["thulium_connections"]}
    assert first | set(second) == set(expected)
    # the resumed run re-reads at most the lookback before the bookmark
    reread = [second[k] for k in first & set(second)]
    floor = utc(bookmark) - dt.timedelta(minutes=60)
    assert all(utc(r["date"]) >= floor for r in reread)
    assert min(utc(r["date"]) for r in second.values()) >= floor


def test_state_is_emitted_after_each_window(thulium_emulator) -> None:
    start, end = SPRING
    run = run_tap(thulium_config(thulium_emulator, start, end, window_days=0.5))
    assert run.returncode == 0
    bookmarks = [
        s["bookmarks"]["thulium_connections"]["replication_key_value"]
        for s in run.states
        if "thulium_connections" in s.get("bookmarks", {})
        and "replication_key_value" in s["bookmarks"]["thulium_connections"]
    ]
    windows = [(utc(start) + dt.timedelta(hours=12 * i)).isoformat() for i in range(1, 5)]
    for window_end in windows:
        assert window_end in bookmarks
    # STATE after a window comes after every record of that window
    seen_state_for = None
    for message in run.messages:
        if message["type"] == "STATE":
            value = (
                message["value"]["bookmarks"]
                .get("thulium_connections", {})
                .get("replication_key_value")
            )
            seen_state_for = value or seen_state_for
        elif (
            message["type"] == "RECORD"
            and message["stream"] == "thulium_connections"
            and seen_state_for
        ):
            assert message["record"]["date"] >= seen_state_for


@pytest.mark.parametrize("concurrency", [1, 8], ids=["sequential", "parallel-pages"])
def test_a_server_that_clamps_limit_loses_nothing(thulium_emulator, concurrency) -> None:
    """The tap asks for 100 records a page; this server gives at most 30. Offsets must
    advance by the records received (30), and the parallel pages must be planned with
    the first page's size, not re-read in order as if the result had changed."""
    emu = thulium_emulator
    emu.thulium.max_limit = 30
    start, end = SPRING
    run = run_tap(thulium_config(emu, start, end, window_days=1, max_concurrency=concurrency))
    assert_complete_and_correct(emu, run, start, end)
    requests = [e for e in emu.requests_log if e["path"].endswith("/connections")]
    assert requests and all(e["query"]["limit"] == "100" for e in requests)
    expected = expected_keys(emu, "connections", start, end, "date")
    assert len(requests) >= len(expected) / 30, "the server did not clamp: the test is void"
    assert "reading the window again in order" not in run.stderr
