"""Bad settings fail before any request, name the setting, and never print a secret."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from harness import run_tap, utc
from tests.conftest import SPRING, thulium_config

SECRET = "pw-Do-Not-Print-42"
THULIUM = {"api_url": "http://127.0.0.1:9/api", "username": "u", "password": SECRET}


def _assert_clean_failure(result, *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr + result.stdout
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("config", "needles"),
    [
        ({"thulim": THULIUM}, ["unknown setting 'thulim'", "did you mean 'thulium'"]),
        ({"thulium": {**THULIUM, "pasword": "x"}}, ["unknown setting 'thulium.pasword'"]),
        (
            {"thulium": {k: v for k, v in THULIUM.items() if k != "password"}},
            ["thulium", "'password' is a required property"],
        ),
        (
            {"thulium": {**THULIUM, "timezone": "Europe/Warsw"}},
            ["thulium.timezone", "Europe/Warsw"],
        ),
        ({"thulium": THULIUM, "start_date": "yesterday"}, ["start_date", "yesterday"]),
        (
            {"thulium": THULIUM, "start_date": "2024-02-01T00:00:00Z", "end_date": "2024-01-01"},
            ["end_date", "later than"],
        ),
        ({}, ["no provider configured"]),
        ({"thulium": THULIUM, "lookback_minutes": "sixty"}, ["lookback_minutes"]),
        # out of range: each names the setting, before any request
        ({"thulium": THULIUM, "lookback_minutes": -600}, ["lookback_minutes", "minimum"]),
        ({"thulium": THULIUM, "lookback_minutes": 10**7}, ["lookback_minutes", "maximum"]),
        ({"thulium": THULIUM, "max_tries": 0}, ["max_tries", "minimum"]),
        ({"thulium": THULIUM, "window_days": 0}, ["window_days", "minimum"]),
        ({"thulium": THULIUM, "window_days": 1e12}, ["window_days", "maximum"]),
        ({"thulium": THULIUM, "request_timeout": 0}, ["request_timeout", "minimum"]),
        ({"thulium": THULIUM, "request_timeout": -1}, ["request_timeout", "minimum"]),
        ({"thulium": THULIUM, "backoff_factor": -0.5}, ["backoff_factor", "minimum"]),
        ({"thulium": THULIUM, "backoff_max_wait": -1}, ["backoff_max_wait", "minimum"]),
        ({"thulium": THULIUM, "max_concurrency": 0}, ["max_concurrency", "minimum"]),
        (
            {
                "ecss": {
                    "api_url": "http://127.0.0.1:9",
                    "domain": "d",
                    "client_id": "c",
                    "api_key": SECRET,
                    "phone_number": "1",
                    "timezone": "UTC",
                    "page_size": 0,
                }
            },
            ["ecss.page_size", "minimum"],
        ),
        (
            {"thulium": THULIUM, "batch_config": {"encoding": {"format": "jsonl"}}},
            ["batch_config", "not supported"],
        ),
    ],
)
@pytest.mark.parametrize("command", [(), ("--discover",)])
def test_bad_config_is_rejected_clearly(config, needles, command) -> None:
    result = run_tap(config, extra_args=command, timeout=60)
    _assert_clean_failure(result, *needles)


def test_only_configured_providers_are_discovered() -> None:
    result = run_tap({"thulium": THULIUM}, extra_args=("--discover",), timeout=60)
    assert result.returncode == 0, result.stderr
    names = {s["tap_stream_id"] for s in json.loads(result.stdout)["streams"]}
    assert names == {"thulium_connections", "thulium_recordings"}


def test_about_lists_settings() -> None:
    result = run_tap({}, extra_args=("--about", "--format", "json"), timeout=60)
    assert result.returncode == 0
    about = json.loads(result.stdout)
    assert "thulium" in about["settings"]["properties"]
    assert (
        about["settings"]["properties"]["thulium"]["properties"]["password"].get("secret") is True
    )


def test_numbers_given_as_strings_are_accepted() -> None:
    # environment variables and Meltano string settings arrive as text
    config = {"thulium": THULIUM, "window_days": "0.5", "lookback_minutes": "90", "max_tries": "3"}
    result = run_tap(config, extra_args=("--discover",), timeout=60)
    assert result.returncode == 0, result.stderr


def test_numbers_given_as_strings_keep_their_value(thulium_emulator) -> None:
    """Accepted is not enough: "0.25" must mean 6 h windows (not 0, not 1 day), "90"
    a 90-minute lookback, "2" two tries."""
    emu = thulium_emulator
    start, end = SPRING
    config = thulium_config(emu, start, end)
    config.update(
        window_days="0.25",
        lookback_minutes="90",
        max_tries="2",
        backoff_factor="0.05",
        request_timeout="5",
        max_concurrency="2",
    )
    first = run_tap(config)
    assert first.returncode == 0, first.stderr[-2000:]
    bookmarks = [
        s["bookmarks"]["thulium_connections"]["replication_key_value"]
        for s in first.states
        if "replication_key_value" in s.get("bookmarks", {}).get("thulium_connections", {})
    ]
    six_hours = [(utc(start) + dt.timedelta(hours=6 * i)).isoformat() for i in range(1, 9)]
    # (later STATEs, written for the recordings stream, repeat the final value)
    assert list(dict.fromkeys(bookmarks)) == six_hours
    # an incremental run restarts 90 minutes before the bookmark
    second = run_tap(config, state=first.last_state)
    assert second.returncode == 0, second.stderr[-2000:]
    dates = [r["date"] for r in second.records["thulium_connections"]]
    assert dates and min(utc(d) for d in dates) >= utc(end) - dt.timedelta(minutes=90)
    assert min(utc(d) for d in dates) < utc(end) - dt.timedelta(minutes=60), "not 90 min"
    # and gives up after 2 tries
    emu.faults.unavailable_next = -1
    failed = run_tap(config)
    assert failed.returncode == 1
    assert "gave up after 2 attempts" in failed.stderr, failed.stderr[-2000:]


def test_config_env_reads_nested_provider_settings() -> None:
    env = {
        "TAP_CALLCENTER_START_DATE": "2024-01-01T00:00:00Z",
        "TAP_CALLCENTER_THULIUM_API_URL": "http://127.0.0.1:9/api",
        "TAP_CALLCENTER_THULIUM_USERNAME": "u",
        "TAP_CALLCENTER_THULIUM_PASSWORD": SECRET,
        "TAP_CALLCENTER_MAX_TRIES": "2",
    }
    result = run_tap({}, extra_args=("--config", "ENV", "--discover"), timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    names = {s["tap_stream_id"] for s in json.loads(result.stdout)["streams"]}
    assert names == {"thulium_connections", "thulium_recordings"}
    assert SECRET not in result.stdout + result.stderr

    missing = {k: v for k, v in env.items() if not k.endswith("PASSWORD")}
    result = run_tap({}, extra_args=("--config", "ENV", "--discover"), timeout=60, env=missing)
    _assert_clean_failure(result, "'password' is a required property")
