"""Each fault knob of the emulator is survived; bad input ends in one clear error."""

from __future__ import annotations

import threading
import time

import pytest

from harness import run_tap, utc
from tests.conftest import SPRING, expected_keys, thulium_config
from tests.thulium.test_sync import assert_complete_and_correct

START, END = SPRING


@pytest.mark.parametrize(
    ("knobs", "log_needle"),
    [
        ({"unavailable_next": 3}, "HTTP 503"),
        ({"drop_next": 3}, "dropped"),
        ({"truncate_next": 2}, "retrying"),
        ({"malformed_next": 2}, "not the expected JSON"),
        ({"slow_next": 1, "slow_seconds": 4}, "timeout"),
        ({"unavailable_every": 6, "drop_every": 11, "truncate_every": 13}, "retrying"),
    ],
    ids=[
        "503-burst",
        "dropped-connections",
        "truncated-bodies",
        "malformed-bodies",
        "slower-than-timeout",
        "mixed",
    ],
)
def test_transient_faults_are_retried_and_nothing_is_lost(
    thulium_emulator, knobs, log_needle
) -> None:
    for name, value in knobs.items():
        setattr(thulium_emulator.faults, name, value)
    # concurrent requests share the emulator's fault counters, so a request may meet
    # several faults in a row: allow enough tries for that
    run = run_tap(thulium_config(thulium_emulator, START, END, request_timeout=2, max_tries=10))
    assert_complete_and_correct(thulium_emulator, run, START, END)
    assert log_needle in run.stderr


def test_429_waits_as_long_as_retry_after_says(thulium_emulator) -> None:
    emu = thulium_emulator
    emu.faults.rate_limit_next = 2
    emu.faults.retry_after_seconds = 1
    run = run_tap(thulium_config(emu, START, END))  # backoff_factor 0.05 s on its own
    assert_complete_and_correct(emu, run, START, END)
    log = [e for e in emu.requests_log if "/thulium/" in e["path"]]
    limited = [i for i, e in enumerate(log) if e["status"] == 429]
    assert len(limited) == 2
    for i in limited:
        # the retry of the same request (other requests may run in between)
        retry = next(
            e for e in log[i + 1 :] if (e["path"], e["query"]) == (log[i]["path"], log[i]["query"])
        )
        assert retry["ts"] - log[i]["ts"] >= 0.95, "Retry-After was not honoured"


def test_a_429_pauses_every_request_of_the_stream(thulium_emulator) -> None:
    """After a 429 with ``Retry-After: 1`` no request of the stream starts for a second,
    except those already on their way when the refusal arrived (at most
    ``max_concurrency - 1``). Counted, not timed: on a loaded machine an in-flight
    request may reach the server late, but a stream that ignores the pause sends its
    other windows' pages (dozens) within that second."""
    emu = thulium_emulator
    concurrency = 8
    emu.faults.latency_ms = 50
    emu.faults.rate_limit_next = 1  # the first request is refused with Retry-After: 1
    emu.faults.retry_after_seconds = 1
    config = thulium_config(emu, START, END, window_days=0.25, max_concurrency=concurrency)
    run = run_tap(config)
    assert_complete_and_correct(emu, run, START, END)
    log = [e for e in emu.requests_log if "/thulium/" in e["path"]]
    refused = [e for e in log if e["status"] == 429]
    assert len(refused) == 1
    entry = refused[0]
    same_stream = [e for e in log if e["path"] == entry["path"] and e is not entry]
    assert len(same_stream) > 3 * concurrency, "too few requests to show a missing pause"
    during = [e for e in same_stream if entry["ts"] <= e["ts"] < entry["ts"] + 1.0]
    assert len(during) <= concurrency - 1, (
        f"{len(during)} requests started during the Retry-After pause "
        f"(at most {concurrency - 1} can have been in flight)"
    )


def test_records_inserted_while_paging_are_not_duplicated(thulium_emulator) -> None:
    emu = thulium_emulator
    before = {tuple(i["key"]) for i in emu.thulium.expected("connections")}
    emu.thulium.insert_while_paging = 2
    run = run_tap(thulium_config(emu, START, END, window_days=1))
    assert run.returncode == 0, run.stderr[-2000:]
    keys = [r["connection_id"] for r in run.records["thulium_connections"]]
    assert len(keys) == len(set(keys)), "a shifted page produced duplicates"
    # everything that existed before the run is there
    emu.thulium.insert_while_paging = 0
    original = {k for k in expected_keys(emu, "connections", START, END, "date") if k in before}
    assert original <= {(k,) for k in keys}
    assert "repeat(s) dropped" in run.stderr
    assert any(
        " 0 repeat(s)" not in line
        for line in run.stderr.splitlines()
        if "repeat(s) dropped" in line
    )


def test_emulator_restart_mid_sync_is_survived(thulium_emulator) -> None:
    emu = thulium_emulator
    emu.faults.latency_ms = 20
    # sequential, so most requests come after the restart
    config = thulium_config(
        emu, START, END, window_days=0.125, backoff_factor=0.3, max_tries=8, max_concurrency=1
    )
    restarted = threading.Event()

    def restart_after_a_few_requests() -> None:
        while len(emu.requests_log) < 5:
            time.sleep(0.01)
        emu.stop()
        time.sleep(1.0)
        emu.start()
        restarted.set()

    restarter = threading.Thread(target=restart_after_a_few_requests, daemon=True)
    restarter.start()
    run = run_tap(config)
    restarter.join(timeout=30)
    assert restarted.is_set()
    assert_complete_and_correct(emu, run, START, END)
    assert "retrying" in run.stderr


def _assert_clean_error(run, *needles: str, secret: str) -> None:
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert secret not in run.stdout + run.stderr
    last = [line for line in run.stderr.splitlines() if "ERROR" in line][-1]
    for needle in needles:
        assert needle in last, last


def test_wrong_password_names_provider_stream_and_path(thulium_emulator) -> None:
    config = thulium_config(thulium_emulator, START, END)
    config["thulium"]["password"] = "Wrong-Secret-Value-77"
    run = run_tap(config)
    _assert_clean_error(
        run,
        "thulium",
        "thulium_connections",
        "GET /thulium/api/connections",
        "401",
        "thulium.password",
        secret="Wrong-Secret-Value-77",
    )
    assert not run.records  # nothing emitted, nothing lost: the state is untouched
    assert "***" not in run.stdout


def test_body_that_stays_malformed_fails_clearly(thulium_emulator) -> None:
    thulium_emulator.faults.malformed_next = -1
    config = thulium_config(thulium_emulator, START, END, max_tries=3)
    run = run_tap(config)
    _assert_clean_error(
        run,
        "thulium_connections",
        "gave up after 3 attempts",
        "not the expected JSON",
        secret=config["thulium"]["password"],
    )


def test_endless_429_gives_up_with_a_clear_error(thulium_emulator) -> None:
    thulium_emulator.faults.rate_limit_next = -1
    thulium_emulator.faults.retry_after_seconds = 0
    config = thulium_config(thulium_emulator, START, END, max_tries=3)
    run = run_tap(config)
    _assert_clean_error(
        run, "thulium_connections", "HTTP 429", secret=config["thulium"]["password"]
    )


def test_failure_mid_run_leaves_a_state_that_resumes_without_loss(thulium_emulator) -> None:
    emu = thulium_emulator
    config = thulium_config(emu, START, END, window_days=0.125, max_tries=2)
    # connections sync fine; recordings (synced after them) fail for good
    emu.faults.path_contains = "/recordings"
    emu.faults.malformed_next = -1
    failed = run_tap(config)
    assert failed.returncode == 1
    state = failed.last_state
    assert failed.bookmark("thulium_connections") == utc(END).isoformat()
    assert "thulium_recordings" not in state.get("bookmarks", {}) or not failed.bookmark(
        "thulium_recordings"
    )

    emu.faults.reset()
    resumed = run_tap(config, state=state)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for stream, api, field, key in (
        ("thulium_connections", "connections", "date", ("connection_id",)),
        ("thulium_recordings", "recordings", "created_at", ("connection_id", "filename")),
    ):
        got = {tuple(r[k] for k in key) for r in failed.records[stream] + resumed.records[stream]}
        assert got == set(expected_keys(emu, api, START, END, field)), stream
    # connections resumed from their bookmark: only the lookback was read again
    assert all(
        r["date"] >= "2024-03-31T23:00:00+00:00" for r in resumed.records["thulium_connections"]
    )
