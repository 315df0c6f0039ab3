"""Run the tap as a real subprocess and measure it: wall time and its own peak RSS.

The tap is spawned by the harness's launcher (``harness/launch.py``: a child forked from
the test process would count the test process's memory in its ``ru_maxrss``). A
watchdog kills it (and says why) when it outlives its deadline or its resident memory
passes a ceiling, so a case that makes a broken tap hang or balloon fails in bounded
time without starving the machine.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import quote, quote_plus

from harness.hostile.servers import (
    CONPEEK_KEY,
    ECSS_DOMAIN,
    ECSS_KEY,
    THULIUM_PASSWORD,
    THULIUM_USER,
    Target,
)
from harness.tap import LAUNCHER, TAP_COMMAND

#: Kill the child when its resident memory passes this (the assertions are stricter):
#: the unfixed tap grows by gigabytes on some cases, on a machine shared with others.
RSS_CEILING_MIB = 700
#: Variables that would make TLS trust depend on the environment the tests run in.
_TRUST_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")

#: The hostile runs' range: one window (``window_days`` 1), so request counts are exact.
START, END = "2024-03-30T00:00:00Z", "2024-03-30T06:00:00Z"


@dataclass
class Measured:
    """One run of the tap, measured."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    peak_rss_mib: float
    #: Why the harness killed the child ("deadline …", "memory …"), None if it ended.
    killed: str | None

    @property
    def last_line(self) -> str:
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""

    @property
    def records(self) -> list[dict]:
        out = []
        for line in self.stdout.splitlines():
            if line.strip().startswith("{"):
                message = json.loads(line)
                if message.get("type") == "RECORD":
                    out.append(message["record"])
        return out

    def summary(self) -> str:
        tail = "\n".join(self.stderr.strip().splitlines()[-6:])
        return (
            f"exit {self.returncode}, {self.wall_s:.1f} s, peak RSS {self.peak_rss_mib:.0f} MiB"
            f"{', killed by the harness: ' + self.killed if self.killed else ''}\n"
            f"last stderr lines:\n{tail}"
        )


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def run_measured(
    config: dict,
    *,
    catalog: dict | None = None,
    env: dict[str, str] | None = None,
    deadline_s: float = 60.0,
    extra_args: tuple[str, ...] = (),
) -> Measured:
    """Run the tap to its end (or until the watchdog kills it) and measure it, through
    the harness's launcher (``harness/launch.py``: the tap's own peak RSS and time)."""
    base_env = {k: v for k, v in os.environ.items() if k not in _TRUST_VARIABLES}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        args = [*TAP_COMMAND, "--config", str(tmp / "config.json"), *extra_args]
        (tmp / "config.json").write_text(json.dumps(config))
        if catalog is not None:
            (tmp / "catalog.json").write_text(json.dumps(catalog))
            args += ["--catalog", str(tmp / "catalog.json")]
        out_path, err_path = tmp / "stdout", tmp / "stderr"
        report_read, report_write = os.pipe()
        out, err = out_path.open("wb"), err_path.open("wb")
        with out, err, os.fdopen(report_read) as report:
            started = time.monotonic()
            try:
                launcher = subprocess.Popen(
                    [sys.executable, "-I", "-S", str(LAUNCHER), str(report_write), *args],
                    stdout=out,
                    stderr=err,
                    env={**base_env, **(env or {})},
                    pass_fds=(report_write,),
                )
            finally:
                os.close(report_write)
            tap_pid = int(report.readline() or 0)
            killed = _watch(launcher, tap_pid, started, deadline_s)
            figures = report.readline().split()  # "<maxrss KiB> <seconds>", if it ended
            wall = time.monotonic() - started
        stdout = out_path.read_text(errors="replace")
        stderr = err_path.read_text(errors="replace")
    peak = int(figures[0]) / 1024 if figures else 0.0
    return Measured(launcher.returncode, stdout, stderr, wall, peak, killed)


def _watch(
    launcher: subprocess.Popen, tap_pid: int, started: float, deadline_s: float
) -> str | None:
    """Wait for the run; kill the tap past ``deadline_s`` or ``RSS_CEILING_MIB`` (why)."""
    while launcher.poll() is None:
        elapsed = time.monotonic() - started
        rss = _rss_mib(tap_pid) if tap_pid else 0.0
        killed = None
        if elapsed > deadline_s:
            killed = f"deadline: still running after {deadline_s:.0f} s"
        elif rss > RSS_CEILING_MIB:
            killed = f"memory: resident {rss:.0f} MiB after {elapsed:.1f} s"
        if killed is not None:
            with contextlib.suppress(OSError):
                os.kill(tap_pid or launcher.pid, signal.SIGKILL)
            launcher.wait(timeout=30)
            return killed
        time.sleep(0.05)
    return None


# ------------------------------------------------------------------ configs


def secret_forms() -> list[str]:
    """Every secret of the hostile configs in every form the tap sends it."""
    forms: set[str] = set()
    for secret in (THULIUM_PASSWORD, CONPEEK_KEY, ECSS_KEY):
        forms |= {secret, quote_plus(secret), quote(secret, safe=""), quote(secret)}
    forms.add(base64.b64encode(f"{THULIUM_USER}:{THULIUM_PASSWORD}".encode()).decode())
    return sorted(forms)


def tap_config(
    target: Target, api_url: str, *, ws_url: str | None = None, **overrides: object
) -> dict:
    """A config for ``target`` at ``api_url`` (ECSS websocket: ``ws_url``), one window."""
    config: dict = {
        "start_date": START,
        "end_date": END,
        "window_days": 1,
        "request_timeout": 5,
        "max_tries": 2,
        "backoff_factor": 0.1,
        "backoff_max_wait": 1,
    }
    if target.provider == "thulium":
        config["thulium"] = {
            "api_url": f"{api_url}/api",
            "username": THULIUM_USER,
            "password": THULIUM_PASSWORD,
            "timezone": "Europe/Warsaw",
        }
    elif target.provider == "conpeek":
        config["conpeek"] = {"api_url": api_url, "api_key": CONPEEK_KEY}
    else:
        config["ecss"] = {
            "api_url": api_url,
            "domain": ECSS_DOMAIN,
            "client_id": "hostile-client",
            "api_key": ECSS_KEY,
            "phone_number": "102",
            "timezone": "Europe/Helsinki",
        }
        if target.websocket:
            config["ecss"].update(transport="websocket", ws_url=ws_url)
    config.update(overrides)
    return config


@cache
def _discovered(provider: str) -> str:
    from harness.hostile.servers import TARGETS  # noqa: PLC0415

    target = next(t for t in TARGETS.values() if t.provider == provider)
    config = tap_config(target, "http://127.0.0.1:9", ws_url="ws://127.0.0.1:9")
    run = run_measured(config, extra_args=("--discover",), deadline_s=120)
    assert run.returncode == 0, run.summary()
    return run.stdout


def catalog_for(target: Target) -> dict:
    """The provider's discovered catalog with only ``target``'s stream selected."""
    catalog = copy.deepcopy(json.loads(_discovered(target.provider)))
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if not item["breadcrumb"]:
                item["metadata"]["selected"] = entry["tap_stream_id"] == target.stream
    return catalog
