"""The simulated clock: set and moved in-process, through ``/_emulator/clock`` and ``--now``."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from emulator import ConpeekConfig, EcssConfig, Emulator, ThuliumConfig
from emulator.base import SimClock, parse_instant

ROOT = Path(__file__).resolve().parents[2]
T0 = 1711843200  # 2024-03-31T00:00:00Z


def small() -> dict[str, object]:
    return {
        "thulium": ThuliumConfig(connections=50),
        "conpeek": ConpeekConfig(dialogs=50, summaries=20),
        "ecss": EcssConfig(calls=50),
    }


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(seed=2, **small()) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "emu" in request.fixturenames:
        server = request.getfixturevalue("emu")
        server.set_now(None)
        server.faults.reset()


@pytest.mark.parametrize(
    "value",
    [
        T0,
        float(T0) + 0.75,
        "2024-03-31T00:00:00Z",
        "2024-03-31T00:00:00+00:00",
        "2024-03-31T02:00:00+02:00",
        "2024-03-30T19:00:00-05:00",
        dt.datetime(2024, 3, 31, tzinfo=dt.timezone.utc),
        dt.datetime(2024, 3, 31, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    ],
)
def test_set_now_accepts_every_instant_form(emu, value) -> None:
    assert emu.set_now(value) == T0
    assert emu.now == T0
    for provider in emu.providers.values():
        assert provider.sim_clock.now == T0  # one clock, shared by every provider


def test_no_clock_by_default_and_none_removes_it(emu) -> None:
    assert Emulator(seed=2, **small()).now is None
    assert emu.now is None
    emu.set_now(T0)
    assert emu.set_now(None) is None
    assert emu.now is None
    assert emu.thulium.sim_clock.now is None


def test_advance_moves_forward_only_when_a_clock_is_set(emu) -> None:
    with pytest.raises(ValueError, match="no simulated clock"):
        emu.advance(60)
    emu.set_now(T0)
    assert emu.advance(90) == T0 + 90
    assert emu.advance(45 * 86400) == T0 + 90 + 45 * 86400
    assert emu.now == T0 + 90 + 45 * 86400
    with pytest.raises(ValueError, match="non-negative"):
        emu.advance(-1)
    assert emu.now == T0 + 90 + 45 * 86400
    emu.set_now("2024-01-01T00:00:00Z")  # set goes back too
    assert emu.now == 1704067200


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("2024-03-31T00:00:00", ValueError),  # naive: which zone?
        (dt.datetime(2024, 3, 31), ValueError),
        ("yesterday", ValueError),
        (True, TypeError),
        ([T0], TypeError),
    ],
)
def test_bad_instants_are_refused_and_leave_the_clock_alone(emu, value, error) -> None:
    emu.set_now(T0)
    with pytest.raises(error):
        emu.set_now(value)
    assert emu.now == T0


def test_constructor_starts_the_clock() -> None:
    emu = Emulator(seed=2, now="2024-03-31T00:00:00Z", **small())
    assert emu.now == T0
    assert emu.conpeek.sim_clock is emu.sim_clock
    assert SimClock().now is None and parse_instant(None) is None


# -- control endpoints ------------------------------------------------------------------------


def clock(emu: Emulator, body: object = None) -> requests.Response:
    url = f"{emu.url}/_emulator/clock"
    if body is None:
        return requests.get(url, timeout=5)
    return requests.post(url, json=body, timeout=5)


def test_control_endpoint_reads_sets_and_advances(emu) -> None:
    assert clock(emu).json() == {"now": None}
    r = clock(emu, {"now": "2024-03-31T02:00:00+02:00"})
    assert r.status_code == 200
    assert r.json() == {"now": "2024-03-31T00:00:00+00:00"}
    assert emu.now == T0
    r = clock(emu, {"advance_seconds": 3600})
    assert r.json() == {"now": "2024-03-31T01:00:00+00:00"}
    assert emu.now == T0 + 3600
    assert clock(emu).json() == {"now": "2024-03-31T01:00:00+00:00"}
    assert clock(emu, {"now": None}).json() == {"now": None}
    assert emu.now is None


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"now": "2024-03-31T00:00:00Z", "advance_seconds": 5},
        {"later": 5},
        {"now": "2024-03-31 00:00:00"},
        {"now": "soon"},
        {"advance_seconds": "5"},
        {"advance_seconds": -5},
        [1],
    ],
)
def test_control_endpoint_rejects_bad_bodies_with_400(emu, body) -> None:
    emu.set_now(T0)
    r = clock(emu, body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]
    assert emu.now == T0


def test_advance_without_a_clock_is_a_400(emu) -> None:
    r = clock(emu, {"advance_seconds": 60})
    assert r.status_code == 400 and "no simulated clock" in r.json()["error"]


def test_clock_endpoints_are_never_fault_injected(emu) -> None:
    emu.faults.set(rate_limit_every=1, drop_every=1)
    assert clock(emu, {"now": "2024-03-31T00:00:00Z"}).status_code == 200
    assert clock(emu).json() == {"now": "2024-03-31T00:00:00+00:00"}
    assert not [e for e in emu.requests_log if "clock" in e["path"]]


def test_cli_now_starts_the_clock() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulator",
            "--port",
            "0",
            "--thulium-connections",
            "100",
            "--conpeek-dialogs",
            "100",
            "--conpeek-summaries",
            "20",
            "--ecss-calls",
            "100",
            "--now",
            "2024-03-31T00:00:00Z",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert requests.get(f"{info['url']}/_emulator/clock", timeout=5).json() == {
            "now": "2024-03-31T00:00:00+00:00"
        }
        auth = (info["thulium"]["username"], info["thulium"]["password"])
        body = requests.get(info["thulium"]["api_url"] + "/connections", auth=auth, timeout=5)
        assert 0 < body.json()["count"] < 100  # the spring data half delivered, no autumn
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_refuses_a_naive_now() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "emulator", "--port", "0", "--now", "2024-03-31 00:00:00"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert "--now" in run.stderr and "naive" in run.stderr
