"""Benchmark tap-callcenter's Thulium stream against a plain client and a generic peer.

For every latency setting and record count, starts the bundled emulator as its own
process (``python -m emulator``) with all N Thulium connections inside one known UTC
period, then runs, one after the other and each as a subprocess, on the same data:

* ``tap``: ``.venv/bin/tap-callcenter`` (only ``thulium`` configured, only
  ``thulium_connections`` selected), stdout read and counted by this script;
* ``plain``: ``benchmarks/plain_client.py`` (requests.Session + json, one date range,
  limit 100 / offset), records written to /dev/null, count reported by itself;
* ``peer``: ``tap-rest-api-msdk==1.4.2`` in ``benchmarks/.venv-peer`` (installed on first
  use), configured as in /work/shared/peer-tap.md, stdout read and counted;
* ``concurrent`` (Thulium): the plain client with ``--workers`` = the tap's
  ``max_concurrency``: the same pages, that many in flight. Not a goal's yardstick: it
  shows what a plain requests + json client reaches with the tap's concurrency on this
  server.

Per run: wall time (process start to exit, start-up included), records/s, peak RSS,
records. Each client is started by ``harness/launch.py``, a tiny process that forks and
execs it: peak RSS is the kernel's own figure, the client's ``ru_maxrss`` from
``os.wait4()`` in the launcher (exact, no sampling; started from this script instead,
Linux would report this script's own high-water mark for any client smaller than it), or,
if larger, the peak of the summed VmRSS of the client's process tree sampled from /proc
every 0.1 s (only matters if a client forks worker processes); wall time is the
launcher's, from fork to exit.

Usage::

    .venv/bin/python benchmarks/run.py                          # 0/20/100 ms x 30k/120k
    .venv/bin/python benchmarks/run.py --latency-ms 0 20 --records 30000 --repeat 3
    .venv/bin/python benchmarks/run.py --records 1000000 --latency-ms 0 \\
        --json benchmarks/results-1m.json --markdown benchmarks/results-1m.md
    .venv/bin/python benchmarks/run.py --tap-setting max_concurrency=4 --clients tap plain
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from zoneinfo import ZoneInfo

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
if str(REPO) not in sys.path:  # run as ``python benchmarks/run.py``
    sys.path.insert(0, str(REPO))

from harness.catalog import discover, select_only  # noqa: E402
from harness.config import tap_config as emulator_tap_config  # noqa: E402
from harness.tap import LAUNCHER  # noqa: E402
from tap_callcenter.settings import DEFAULTS  # noqa: E402

VENV_BIN = REPO / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
TAP_EXE = VENV_BIN / "tap-callcenter"
PLAIN_CLIENT = BENCH_DIR / "plain_client.py"
PEER_VENV = BENCH_DIR / ".venv-peer"
PEER_DIST = "tap-rest-api-msdk"
PEER_VERSION = "1.4.2"
STREAM = "thulium_connections"
CLIENTS = ("tap", "plain", "peer", "concurrent")
#: Clients that read Thulium only.
THULIUM_ONLY = ("peer", "concurrent")
DEFAULT_MAX_CONCURRENCY = int(DEFAULTS["max_concurrency"])
PLAIN_PROVIDERS = BENCH_DIR / "plain_providers.py"
#: provider -> the stream the tap syncs (and the plain client reads)
STREAMS = {
    "thulium": "thulium_connections",
    "conpeek": "conpeek_cdr_dialog",
    "ecss-http": "ecss_operator_call_history",
    "ecss-ws": "ecss_operator_call_history",
}
PROVIDERS = tuple(STREAMS)
#: The memory case: the same 30 days as 30 one-day windows (30k records) and as ONE
#: window (1M records); the tap's peak RSS must not depend on the records per window.
MEMORY_PERIOD = "2024-04-01T00:00:00+00:00/2024-05-01T00:00:00+00:00"
#: One week, no DST change in Europe/Warsaw: the data set is the same for everyone.
DEFAULT_PERIOD = "2024-05-06T00:00:00+00:00/2024-05-13T00:00:00+00:00"
#: A Singer RECORD line, as written by singer-sdk (compact) or by the stdlib json.
RECORD_MARKERS = (b'\n{"type":"RECORD"', b'\n{"type": "RECORD"')
KIB_PER_MIB = 1024
MEMORY_METHOD = (
    "peak RSS = max(the client's own ru_maxrss, from os.wait4() in harness/launch.py, "
    "peak of the summed VmRSS of its process tree sampled from /proc every 0.1 s); the "
    "counting reader is this script, not the client, so it is not included"
)


# -- measurement -------------------------------------------------------------------


@dataclass
class RunResult:
    """One run of one client."""

    client: str
    returncode: int
    wall_s: float
    records: int | None
    peak_rss_mib: float
    maxrss_mib: float
    tree_rss_mib: float
    first_record_s: float | None = None
    requests: int | None = None
    error: str | None = None
    #: Fingerprint of tap_callcenter/ at start (tap runs only): the tap is being edited.
    tap_source: str | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.error is None and self.records is not None

    @property
    def rec_per_s(self) -> float | None:
        if not self.ok or self.records is None or self.wall_s <= 0:
            return None
        return self.records / self.wall_s

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        rate = self.rec_per_s
        data["rec_per_s"] = round(rate, 1) if rate is not None else None
        return data


def _ppid_map() -> dict[int, list[int]]:
    """parent pid -> child pids, from /proc/<pid>/stat (no /proc/<pid>/task/*/children here)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: split after it.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def _vm_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class TreeRssSampler(threading.Thread):
    """Samples the summed VmRSS of a process and all its descendants."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self._stop_event = threading.Event()

    def _tree(self) -> list[int]:
        children = _ppid_map()
        found, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def run(self) -> None:
        while not self._stop_event.is_set():
            total = sum(_vm_kib(pid, "VmRSS") for pid in self._tree())
            self.peak_kib = max(self.peak_kib, total)
            self._stop_event.wait(self.interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join(timeout=5)
        return self.peak_kib


def _kill_group(pid: int) -> None:
    """Kill the process group of a child started with ``start_new_session=True``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _read_counting(stream: IO[bytes], started: float) -> tuple[int, float | None, bytes]:
    """Read a pipe to EOF in 1 MiB chunks; count Singer RECORD lines.

    Returns (records, seconds to the first record, last 4 KiB of output)."""
    fd = stream.fileno()
    pending = b"\n"  # every line is counted with the newline that precedes it
    count = 0
    first: float | None = None
    tail = b""
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        tail = (tail + chunk)[-4096:]
        data = pending + chunk
        cut = data.rfind(b"\n")
        if cut <= 0:
            pending = data
            continue
        complete, pending = data[:cut], data[cut:]
        found = sum(complete.count(marker) for marker in RECORD_MARKERS)
        if found and first is None:
            first = time.perf_counter() - started
        count += found
    found = sum(pending.count(marker) for marker in RECORD_MARKERS)
    if found and first is None:
        first = time.perf_counter() - started
    return count + found, first, tail


def measure(
    client: str,
    command: Sequence[str | Path],
    *,
    self_reported: bool,
    timeout: float,
) -> RunResult:
    """Run one client to completion; count its records (or parse its summary line)."""
    report_read, report_write = os.pipe()
    with tempfile.TemporaryFile() as err, os.fdopen(report_read, "rb") as report:
        started = time.perf_counter()
        # started by a tiny launcher, so that its ru_maxrss is the client's own, not
        # this process's (Linux keeps the replaced image's high-water mark over exec)
        proc = subprocess.Popen(
            [PYTHON, "-I", "-S", LAUNCHER, str(report_write), *map(str, command)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=REPO,
            start_new_session=True,
            pass_fds=(report_write,),
        )
        os.close(report_write)
        child = int(report.readline() or proc.pid)
        sampler = TreeRssSampler(child)
        sampler.start()
        timer = threading.Timer(timeout, _kill_group, (proc.pid,))
        timer.start()
        assert proc.stdout is not None
        try:
            counted, first, tail = _read_counting(proc.stdout, started)
        finally:
            proc.stdout.close()
        _, status, _usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        timed_out = not timer.is_alive()
        timer.cancel()
        tree_kib = sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr_tail = err.read()[-3000:].decode("utf-8", "replace")
        reported = report.readline().split()
    own_kib = float(reported[0]) if reported else 0.0
    if len(reported) > 1:
        wall = float(reported[1])  # from fork to exit: the launcher's start not counted
    maxrss_mib = own_kib / KIB_PER_MIB  # KiB on Linux
    tree_mib = tree_kib / KIB_PER_MIB
    result = RunResult(
        client=client,
        returncode=proc.returncode,
        wall_s=round(wall, 3),
        records=counted,
        peak_rss_mib=round(max(maxrss_mib, tree_mib), 1),
        maxrss_mib=round(maxrss_mib, 1),
        tree_rss_mib=round(tree_mib, 1),
        first_record_s=round(first, 3) if first is not None else None,
    )
    if self_reported:
        result.records = None
        lines = [line for line in tail.decode("utf-8", "replace").splitlines() if line.strip()]
        try:
            summary = json.loads(lines[-1])
            result.records = int(summary["records"])
            result.requests = int(summary["requests"])
        except (IndexError, ValueError, KeyError, TypeError):
            if proc.returncode == 0:
                result.error = "no summary line on stdout"
    if timed_out:
        result.error = f"killed after the {timeout:g} s timeout"
    elif proc.returncode != 0:
        last = [line for line in stderr_tail.splitlines() if line.strip()][-5:]
        result.error = f"exit {proc.returncode}: " + " | ".join(last)
    return result


def tap_source_fingerprint() -> str:
    """Short hash of the tap's sources, to tell whether it changed between runs."""
    digest = hashlib.sha256()
    package = REPO / "tap_callcenter"
    for path in sorted(package.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".json"}:
            digest.update(str(path.relative_to(package)).encode())
            with contextlib.suppress(OSError):
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


# -- the emulator ------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The UTC period of the generated data, and the local wall-clock range covering it."""

    start: datetime
    end: datetime
    tz: str

    @classmethod
    def parse(cls, text: str, tz: str) -> Period:
        start_text, sep, end_text = text.partition("/")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected START/END, got {text!r}")
        start, end = (
            datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            for value in (start_text, end_text)
        )
        if start.tzinfo is None or end.tzinfo is None:
            raise argparse.ArgumentTypeError("the period needs UTC offsets (…+00:00 or Z)")
        if end <= start:
            raise argparse.ArgumentTypeError("the period must end after it starts")
        return cls(start.astimezone(timezone.utc), end.astimezone(timezone.utc), tz)

    def emulator_arg(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"

    def utc_bounds(self) -> tuple[str, str]:
        """``start_date``/``end_date`` for the tap (end exclusive)."""
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        return self.start.strftime(fmt), self.end.strftime(fmt)

    def local_minutes(self) -> tuple[str, str]:
        """First and last local minute (inclusive) for ``date_from``/``date_to``.

        Naive on purpose: outside a DST change this covers the period exactly."""
        zone = ZoneInfo(self.tz)
        first = self.start.astimezone(zone)
        last = (self.end - timedelta(minutes=1)).astimezone(zone)
        return first.strftime("%Y-%m-%d %H:%M"), last.strftime("%Y-%m-%d %H:%M")


class EmulatorProcess:
    """``python -m emulator`` as a child process, stopped with SIGTERM."""

    def __init__(
        self,
        records: int,
        latency_ms: float,
        period: Period,
        seed: int,
        log: Path,
        provider: str = "thulium",
    ) -> None:
        # Only the measured provider gets data, so start-up and memory are its own.
        counts = {
            "thulium": records if provider == "thulium" else 0,
            "conpeek": records if provider == "conpeek" else 0,
            "ecss": records if provider.startswith("ecss") else 0,
        }
        self.command = [
            str(PYTHON),
            "-m",
            "emulator",
            "--port",
            "0",
            "--seed",
            str(seed),
            "--thulium-connections",
            str(counts["thulium"]),
            "--thulium-period",
            period.emulator_arg(),
            "--thulium-timezone",
            period.tz,
            "--latency-ms",
            f"{latency_ms:g}",
            "--conpeek-dialogs",
            str(counts["conpeek"]),
            "--conpeek-summaries",
            "0",
            "--conpeek-period",
            period.emulator_arg(),
            "--ecss-calls",
            str(counts["ecss"]),
            "--ecss-period",
            period.emulator_arg(),
        ]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self.startup_s = 0.0

    def __enter__(self) -> EmulatorProcess:
        started = time.perf_counter()
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=REPO,
                start_new_session=True,
            )
        assert self.proc.stdout is not None
        line = b""
        deadline = started + 600
        while not line.endswith(b"\n"):
            left = deadline - time.perf_counter()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, left))
            if not ready:
                self.stop()
                raise RuntimeError("the emulator did not print its address within 600 s")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                self.stop()
                raise RuntimeError(
                    f"the emulator exited before listening; see {self.log}: "
                    + self.log.read_text(errors="replace")[-1000:]
                )
            line += chunk
        self.info = json.loads(line.decode("utf-8").splitlines()[0])
        self.startup_s = time.perf_counter() - started
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc.pid)
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# -- clients -----------------------------------------------------------------------


def _json_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def parse_tap_setting(text: str) -> tuple[list[str], Any]:
    """``key=value`` (dotted keys go into blocks: ``thulium.timezone=UTC``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip().split("."), _json_value(raw)


def tap_config(
    info: dict[str, Any],
    period: Period,
    extra: Sequence[tuple[list[str], Any]],
    provider: str = "thulium",
    ecss_sessions: int = 1,
) -> dict[str, Any]:
    """One provider's config (``ecss-ws``: ECSS over its websocket) from what the
    emulator process printed (its ``describe()``), plus ``--tap-setting`` values."""
    start, end = period.utc_bounds()
    block: dict[str, Any] = {"thulium": {"timezone": period.tz}}.get(provider, {})
    if provider.startswith("ecss"):
        transport = "websocket" if provider == "ecss-ws" else "http"
        block = {"transport": transport, "sessions": ecss_sessions}
    name = provider.split("-", maxsplit=1)[0]
    config = emulator_tap_config(info, name, start_date=start, end_date=end, **{name: block})
    for path, value in extra:
        node = config
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return config


def write_catalog(config: dict[str, Any], catalog_path: Path, stream: str) -> None:
    """The tap's discovered catalog with only ``stream`` selected."""
    catalog = select_only(discover(config, timeout=300), stream)
    catalog_path.write_text(json.dumps(catalog), encoding="utf-8")


def peer_config(thulium: dict[str, Any], period: Period) -> dict[str, Any]:
    """Exactly the configuration of /work/shared/peer-tap.md."""
    date_from, date_to = period.local_minutes()
    return {
        "api_url": thulium["api_url"],
        "auth_method": "basic",
        "username": thulium["username"],
        "password": thulium["password"],
        "pagination_request_style": "simple_offset_paginator",
        "pagination_response_style": "offset",
        "pagination_page_size": 100,
        "pagination_initial_offset": 0,
        "streams": [
            {
                "name": STREAM,
                "path": "/connections",
                "records_path": "$.result[*]",
                "offset_records_jsonpath": "$.result",
                "primary_keys": ["connection_id"],
                "params": {"date_from": date_from, "date_to": date_to},
            }
        ],
    }


def peer_version(venv: Path) -> str | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    done = subprocess.run(
        [
            str(python),
            "-c",
            f"import importlib.metadata as m; print(m.version({PEER_DIST!r}))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_peer(venv: Path) -> Path:
    """Create ``venv`` and pip-install the peer into it unless it is already there."""
    executable = venv / "bin" / PEER_DIST
    if peer_version(venv) == PEER_VERSION and executable.exists():
        return executable
    print(f"installing {PEER_DIST}=={PEER_VERSION} into {venv} ...", flush=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"{PEER_DIST}=={PEER_VERSION}",
        ],
        check=True,
    )
    if peer_version(venv) != PEER_VERSION or not executable.exists():
        raise RuntimeError(f"{PEER_DIST} {PEER_VERSION} did not install into {venv}")
    return executable


# -- one setting -------------------------------------------------------------------


@dataclass
class Setting:
    """All runs at one latency and record count."""

    latency_ms: float
    records: int
    provider: str = "thulium"
    #: the tap's window_days when the case sets it (the memory case), else its default
    window_days: float | None = None
    windows: int | None = None
    emulator_startup_s: float = 0.0
    runs: dict[str, list[RunResult]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def median(self, client: str, attr: str) -> float | None:
        values = [
            value
            for run in self.runs.get(client, [])
            if run.ok and (value := getattr(run, attr)) is not None
        ]
        return statistics.median(values) if values else None

    def ratio(self, a: str, b: str) -> float | None:
        """Throughput of ``a`` over throughput of ``b`` (>1: ``a`` is faster)."""
        ra, rb = self.median(a, "rec_per_s"), self.median(b, "rec_per_s")
        return ra / rb if ra is not None and rb else None

    def check(self) -> None:
        counts: dict[str, set[int]] = {}
        for client, runs in self.runs.items():
            for run in runs:
                if not run.ok:
                    self.warnings.append(f"{client} failed: {run.error}")
                elif run.records is not None:
                    counts.setdefault(client, set()).add(run.records)
        sources = {run.tap_source for run in self.runs.get("tap", []) if run.tap_source}
        if len(sources) > 1:
            self.warnings.append(
                f"tap_callcenter/ changed between tap runs (sources {sorted(sources)}):"
                " these tap figures mix versions"
            )
        seen = {n for values in counts.values() for n in values}
        if seen and seen != {self.records}:
            detail = ", ".join(f"{c}={sorted(v)}" for c, v in counts.items())
            self.warnings.append(
                f"record counts differ (emulator holds {self.records:,}): {detail}"
            )

    def as_json(self) -> dict[str, Any]:
        clients = {}
        for client, runs in self.runs.items():
            clients[client] = {
                "median": {
                    attr: _round(self.median(client, attr))
                    for attr in ("wall_s", "rec_per_s", "peak_rss_mib", "first_record_s")
                },
                "runs": [run.as_json() for run in runs],
            }
        return {
            "provider": self.provider,
            "window_days": self.window_days,
            "windows": self.windows,
            "latency_ms": self.latency_ms,
            "records": self.records,
            "emulator_startup_s": round(self.emulator_startup_s, 2),
            "clients": clients,
            "ratios": {
                "tap_over_plain": _round(self.ratio("tap", "plain"), 3),
                "tap_over_peer": _round(self.ratio("tap", "peer"), 3),
                "peer_over_plain": _round(self.ratio("peer", "plain"), 3),
                "tap_over_concurrent": _round(self.ratio("tap", "concurrent"), 3),
            },
            "warnings": self.warnings,
        }


def _round(value: float | None, digits: int = 2) -> float | None:
    return round(value, digits) if value is not None else None


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def plain_command(provider: str, info: dict[str, Any], period: Period) -> list[str | Path]:
    """The plain client's command line for ``provider`` over ``period``."""
    if provider == "thulium":
        thulium = info["thulium"]
        date_from, date_to = period.local_minutes()
        return [
            PYTHON,
            PLAIN_CLIENT,
            "--api-url",
            thulium["api_url"],
            "--username",
            thulium["username"],
            "--password",
            thulium["password"],
            "--date-from",
            date_from,
            "--date-to",
            date_to,
            "--output",
            os.devnull,
        ]
    if provider == "conpeek":
        fmt = "%Y-%m-%d %H:%M:%S"
        return [
            PYTHON,
            PLAIN_PROVIDERS,
            "conpeek",
            "--api-url",
            info["conpeek"]["api_url"],
            "--api-key",
            info["conpeek"]["api_key"],
            "--start",
            period.start.strftime(fmt),
            "--end",
            period.end.strftime(fmt),
        ]
    ecss = info["ecss"]
    zone = ZoneInfo(ecss["timezone"])
    fmt = "%Y/%m/%d %H:%M:%S"
    last = period.end - timedelta(seconds=1)  # both bounds inclusive, to the second
    return [
        PYTHON,
        PLAIN_PROVIDERS,
        provider,
        "--api-url",
        ecss["api_url"],
        "--ws-url",
        ecss["ws_url"],
        "--domain",
        ecss["domain"],
        "--client-id",
        ecss["client_id"],
        "--api-key",
        ecss["api_key"],
        "--phone-number",
        ecss["phone_number"],
        "--start",
        period.start.astimezone(zone).strftime(fmt),
        "--end",
        last.astimezone(zone).strftime(fmt),
    ]


def run_setting(
    latency_ms: float,
    records: int,
    clients: Sequence[str],
    args: argparse.Namespace,
    peer_exe: Path | None,
    workdir: Path,
    provider: str = "thulium",
    period: Period | None = None,
    window_days: float | None = None,
) -> Setting:
    period = period or args.period
    clients = [c for c in clients if c not in THULIUM_ONLY or provider == "thulium"]
    setting = Setting(
        latency_ms, records, provider, window_days, runs={client: [] for client in clients}
    )
    tag = f"{provider}-{latency_ms:g}ms-{records}-{window_days or 'default'}"
    what = f", window_days {window_days:g}" if window_days else ""
    print(f"\n== {provider}, latency {latency_ms:g} ms, {records:,} records{what} ==", flush=True)
    with EmulatorProcess(
        records, latency_ms, period, args.seed, workdir / f"emulator-{tag}.log", provider
    ) as emulator:
        setting.emulator_startup_s = emulator.startup_s
        print(f"   emulator ready in {emulator.startup_s:.1f} s", flush=True)
        thulium = emulator.info["thulium"]
        commands: dict[str, list[str | Path]] = {}
        if "tap" in clients:
            config_path = workdir / f"tap-{tag}.json"
            catalog_path = workdir / f"catalog-{tag}.json"
            extra = list(args.tap_setting)
            if window_days:
                extra.append((["window_days"], window_days))
            config = tap_config(emulator.info, period, extra, provider, args.ecss_sessions)
            config_path.write_text(json.dumps(config), encoding="utf-8")
            write_catalog(config, catalog_path, STREAMS[provider])
            commands["tap"] = [TAP_EXE, "--config", config_path, "--catalog", catalog_path]
            size = timedelta(days=float(config.get("window_days", 1)))
            setting.windows = -(-(period.end - period.start) // size)
        if "plain" in clients:
            commands["plain"] = plain_command(provider, emulator.info, period)
        if "concurrent" in clients:
            workers = dict((tuple(path), value) for path, value in args.tap_setting).get(
                ("max_concurrency",), DEFAULT_MAX_CONCURRENCY
            )
            commands["concurrent"] = [
                *plain_command(provider, emulator.info, period),
                "--workers",
                str(workers),
            ]
        if "peer" in clients and peer_exe is not None:
            peer_path = workdir / f"peer-{tag}.json"
            peer_path.write_text(json.dumps(peer_config(thulium, period)), encoding="utf-8")
            commands["peer"] = [peer_exe, "--config", peer_path]
        for rep in range(args.repeat):
            # Rotate the order so no client always runs first (or last) on a noisy box.
            order = list(clients[rep % len(clients) :]) + list(clients[: rep % len(clients)])
            for client in order:
                source = tap_source_fingerprint() if client == "tap" else None
                result = measure(
                    client,
                    commands[client],
                    self_reported=client in ("plain", "concurrent"),
                    timeout=args.timeout,
                )
                result.tap_source = source
                setting.runs[client].append(result)
                status = "ok" if result.ok else f"FAILED ({result.error})"
                print(
                    f"   [{rep + 1}/{args.repeat}] {client:<10} {_fmt(result.records, ',d'):>10}"
                    f" rec  {result.wall_s:8.2f} s  {_fmt(result.rec_per_s, ',.0f'):>8} rec/s"
                    f"  {result.peak_rss_mib:6.1f} MiB  {status}",
                    flush=True,
                )
    setting.check()
    print_setting(setting, clients, args.repeat)
    return setting


def print_setting(setting: Setting, clients: Sequence[str], repeat: int) -> None:
    what = "median of " + str(repeat) if repeat > 1 else "one run"
    print(
        f"\n   {setting.provider}, latency {setting.latency_ms:g} ms, {setting.records:,} records"
        f" in {setting.windows or '?'} window(s) ({what})"
    )
    print(f"   {'client':<10} {'records':>10} {'wall s':>8} {'rec/s':>9} {'peak RSS MiB':>13}")
    for client in clients:
        counts = sorted({r.records for r in setting.runs[client] if r.ok and r.records})
        print(
            f"   {client:<10} {','.join(f'{n:,}' for n in counts) or '-':>10}"
            f" {_fmt(setting.median(client, 'wall_s'), '.2f'):>8}"
            f" {_fmt(setting.median(client, 'rec_per_s'), ',.0f'):>9}"
            f" {_fmt(setting.median(client, 'peak_rss_mib'), '.1f'):>13}"
        )
    print(
        f"   tap/plain {_fmt(setting.ratio('tap', 'plain'), '.2f')}"
        f"   tap/peer {_fmt(setting.ratio('tap', 'peer'), '.2f')}"
        f"   peer/plain {_fmt(setting.ratio('peer', 'plain'), '.2f')}"
        f"   tap/concurrent {_fmt(setting.ratio('tap', 'concurrent'), '.2f')}"
        "   (throughput ratios, >1 = the tap is faster)"
    )
    for warning in setting.warnings:
        print(f"   WARNING: {warning}")


# -- reports -----------------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def meta(args: argparse.Namespace, started: datetime) -> dict[str, Any]:
    return {
        "started_at": started.isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "tap_callcenter": _version("tap-callcenter"),
        "singer_sdk": _version("singer-sdk"),
        "peer": f"{PEER_DIST} {PEER_VERSION}" if "peer" in args.clients else None,
        "period_utc": args.period.emulator_arg(),
        "timezone": args.period.tz,
        "seed": args.seed,
        "repeat": args.repeat,
        "tap_settings": {".".join(path): value for path, value in args.tap_setting},
        "tap_sources": [],
        "memory": MEMORY_METHOD,
        "wall_time": "process start to exit, interpreter start-up included",
    }


def markdown(settings: Sequence[Setting], info: dict[str, Any]) -> str:
    extra = ", ".join(f"`{k}={json.dumps(v)}`" for k, v in info["tap_settings"].items())
    what = f"median of {info['repeat']} runs" if info["repeat"] > 1 else "one run"
    lines = [
        f"Run {info['started_at']} on {info['cpus']} CPU(s) ({info['cpu_model']}), "
        f"Python {info['python']}, tap-callcenter {info['tap_callcenter']} "
        f"(singer-sdk {info['singer_sdk']}), {what} per cell"
        + (f", tap settings {extra}" if extra else "")
        + f", ECSS with `ecss.sessions={info.get('ecss_sessions')}`"
        + (
            f", tap_callcenter/ source fingerprint {', '.join(info['tap_sources'])}"
            if info["tap_sources"]
            else ""
        )
        + (" (CHANGED DURING THE RUN)" if len(info["tap_sources"]) > 1 else "")
        + ". Ratios are throughput ratios (>1: the tap is faster); the peer and `concurrent`"
        " (the plain client with as many requests in flight as the tap's max_concurrency)"
        " read Thulium only.",
        "",
        "| provider | latency | records | windows | "
        + " | ".join(
            [f"{c} rec/s" for c in CLIENTS]
            + [f"tap/{c}" for c in CLIENTS[1:]]
            + [f"{c} wall s" for c in CLIENTS]
            + [f"{c} MiB" for c in CLIENTS]
        )
        + " |",
        "|---|---:|---:|---:" + "|---:" * (4 * len(CLIENTS) - 1) + "|",
    ]
    for s in settings:
        cells = [s.provider, f"{s.latency_ms:g} ms", f"{s.records:,}", _fmt(s.windows, "d")]
        cells += [_fmt(s.median(c, "rec_per_s"), ",.0f") for c in CLIENTS]
        cells += [_fmt(s.ratio("tap", other), ".2f") for other in CLIENTS[1:]]
        cells += [_fmt(s.median(c, "wall_s"), ".2f") for c in CLIENTS]
        cells += [_fmt(s.median(c, "peak_rss_mib"), ".0f") for c in CLIENTS]
        lines.append("| " + " | ".join(cells) + " |")
    memory = [s for s in settings if s.window_days]
    if len(memory) == 2:
        small, large = sorted(memory, key=lambda s: s.records)
        a, b = small.median("tap", "peak_rss_mib"), large.median("tap", "peak_rss_mib")
        if a and b:
            lines += [
                "",
                f"Memory: tap peak RSS {a:.0f} MiB for {small.records:,} records in "
                f"{small.windows} windows, {b:.0f} MiB for {large.records:,} records in "
                f"{large.windows} window(s): {b / a:.2f}x.",
            ]
    if info.get("startup_s") is not None:
        lines += [
            "",
            f"Start-up: `tap-callcenter --about` {info['startup_s']:.2f} s (median of 5); "
            f"`python -c 'import requests'` {info['plain_startup_s']:.2f} s.",
        ]
    warnings = [
        f"- {s.provider}, {s.latency_ms:g} ms, {s.records:,}: {w}"
        for s in settings
        for w in s.warnings
    ]
    if warnings:
        lines += ["", "Warnings:", "", *warnings]
    return "\n".join(lines) + "\n"


def compile_package() -> None:
    """Byte-compile tap_callcenter/, as pip does when it installs a wheel (and Meltano
    when it installs the plugin). The work tree's editable install has no bytecode where
    PYTHONDONTWRITEBYTECODE is set (it is on these machines): the tap would compile its
    29 modules at every start, 23 ms that no installed tap pays."""
    compileall.compile_dir(REPO / "tap_callcenter", quiet=1)


def startup_seconds(command: Sequence[str | Path], times: int = 5) -> float:
    """Median wall time of a short command (start-up and imports)."""
    walls = []
    for _ in range(times):
        began = time.perf_counter()
        subprocess.run([str(c) for c in command], capture_output=True, check=False, cwd=REPO)
        walls.append(time.perf_counter() - began)
    return statistics.median(walls)


# -- main --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Benchmark tap-callcenter (Thulium) against a plain client and a peer tap.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 20.0, 100.0])
    parser.add_argument("--records", type=int, nargs="+", default=[30_000, 120_000])
    parser.add_argument("--repeat", type=int, default=1, help="runs per client; medians")
    parser.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS))
    parser.add_argument("--providers", nargs="+", choices=PROVIDERS, default=list(PROVIDERS))
    parser.add_argument(
        "--other-records",
        type=int,
        nargs="*",
        default=[30_000],
        help="record counts for Conpeek and ECSS (the --records are Thulium's)",
    )
    parser.add_argument(
        "--scale-records",
        type=int,
        nargs="*",
        default=[1_000_000],
        help="Thulium at 0 ms with these many records (the scale run); none to skip",
    )
    parser.add_argument(
        "--memory-records",
        type=int,
        nargs="*",
        default=[30_000, 1_000_000],
        help="tap only, 0 ms, 30 days: SMALL in 30 one-day windows, LARGE in one window;"
        " none to skip",
    )
    parser.add_argument("--ecss-sessions", type=int, default=4, help="the tap's ecss.sessions")
    parser.add_argument(
        "--tap-setting",
        type=parse_tap_setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra tap setting, JSON value (e.g. max_concurrency=4, thulium.timezone=UTC)",
    )
    parser.add_argument("--period", default=DEFAULT_PERIOD, help="UTC START/END of the data")
    parser.add_argument("--timezone", default="Europe/Warsaw")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds per client run")
    parser.add_argument("--peer-venv", type=Path, default=PEER_VENV)
    parser.add_argument("--json", type=Path, default=BENCH_DIR / "results.json")
    parser.add_argument("--markdown", type=Path, default=BENCH_DIR / "results.md")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.period = Period.parse(args.period, args.timezone)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    clients = [c for c in CLIENTS if c in args.clients]
    args.clients = clients
    started = datetime.now(timezone.utc)
    peer_exe = ensure_peer(args.peer_venv) if "peer" in clients else None
    compile_package()
    settings: list[Setting] = []
    info = meta(args, started)
    info["ecss_sessions"] = args.ecss_sessions
    info["startup_s"] = startup_seconds([TAP_EXE, "--about"])
    info["plain_startup_s"] = startup_seconds([PYTHON, "-c", "import requests"])
    print(
        f"start-up: tap-callcenter --about {info['startup_s']:.2f} s,"
        f" python + requests {info['plain_startup_s']:.2f} s",
        flush=True,
    )
    memory_period = Period.parse(MEMORY_PERIOD, args.timezone)
    cases: list[dict[str, Any]] = [
        {"provider": provider, "latency_ms": latency, "records": records}
        for provider in args.providers
        for latency in args.latency_ms
        for records in (args.records if provider == "thulium" else args.other_records)
    ]
    if "thulium" in args.providers:
        cases += [
            {"provider": "thulium", "latency_ms": 0.0, "records": n} for n in args.scale_records
        ]
    if len(args.memory_records) == 2 and "tap" in clients:
        small, large = args.memory_records
        cases += [
            {"records": small, "window_days": 1.0, "clients": ["tap"]},
            {"records": large, "window_days": 30.0, "clients": ["tap"]},
        ]
    with tempfile.TemporaryDirectory(prefix="tap-callcenter-bench-") as tmp:
        for case in cases:
            try:
                setting = run_setting(
                    case.get("latency_ms", 0.0),
                    case["records"],
                    case.get("clients", clients),
                    args,
                    peer_exe,
                    Path(tmp),
                    case.get("provider", "thulium"),
                    memory_period if case.get("window_days") else None,
                    case.get("window_days"),
                )
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                # Discovery refused the config, the emulator did not start, ...: the
                # same would happen for every setting.
                print(f"error: {exc}", file=sys.stderr)
                return 2
            settings.append(setting)
            info["tap_sources"] = sorted(
                {run.tap_source for s in settings for run in s.runs.get("tap", [])} - {None}
            )
            # Written after every setting: a long run interrupted keeps what it has.
            args.json.write_text(
                json.dumps({"meta": info, "settings": [s.as_json() for s in settings]}, indent=2)
                + "\n",
                encoding="utf-8",
            )
            args.markdown.write_text(markdown(settings, info), encoding="utf-8")
    if len(info["tap_sources"]) > 1:
        print(
            "\nWARNING: tap_callcenter/ changed during this run"
            f" (source fingerprints {info['tap_sources']}); compare with care."
        )
    print("\n" + markdown(settings, info))
    print(f"wrote {args.json} and {args.markdown}")
    return 1 if any(s.warnings for s in settings) else 0


if __name__ == "__main__":
    sys.exit(main())
