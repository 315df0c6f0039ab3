"""Run the real ``tap-callcenter`` command as a subprocess and read its Singer output.

Every run goes through :mod:`harness.launch`, so besides what the tap wrote each
:class:`TapRun` carries the tap process's own wall time and peak RSS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker

TAP_COMMAND = [sys.executable, "-m", "tap_callcenter"]
#: Starts the tap and reports its own rusage (see the module's docstring).
LAUNCHER = Path(__file__).resolve().with_name("launch.py")

Message = dict[str, Any]


@dataclass
class TapRun:
    """What one run of the tap wrote, and what the run cost."""

    returncode: int
    stdout: str
    stderr: str
    messages: list[Message] = field(default_factory=list)
    #: Wall time of the tap process, from its start to its exit.
    seconds: float = 0.0
    #: Peak resident set of the tap process itself (the kernel's ``ru_maxrss``), KiB.
    peak_rss_kib: int = 0
    #: The runner stopped the tap with a signal on purpose (``kill_after_states``).
    killed: bool = False
    #: The runner killed the tap after this many seconds: it never finished.
    timed_out_after: float | None = None
    #: The config the tap ran with.
    config: dict[str, Any] | None = None

    @property
    def records(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for message in self.messages:
            if message.get("type") == "RECORD":
                out[message["stream"]].append(message["record"])
        return out

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m.get("type") == "STATE"]

    @property
    def last_state(self) -> dict[str, Any] | None:
        states = self.states
        return states[-1] if states else None

    def bookmark(self, stream: str) -> Any:
        state = self.last_state or {}
        return state.get("bookmarks", {}).get(stream, {}).get("replication_key_value")

    @property
    def timed_out(self) -> bool:
        return self.timed_out_after is not None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def error(self) -> str:
        """The tap's own error line (the message after the log prefix), else the tail."""
        if self.timed_out_after is not None:
            return f"timed out after {self.timed_out_after:.0f} s (killed)"
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "| ERROR" in line]
        if errors:
            return errors[-1].split(" | ", 3)[-1].strip()
        if lines:
            return lines[-1].strip()
        return f"exit code {self.returncode}, nothing on stderr"


#: ``format: date-time`` checked for real (jsonschema alone skips it without extras):
#: ISO 8601 with an explicit offset, as every target expects.
FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None


def parse_messages(stdout: str) -> list[Message]:
    """Singer messages, one per line; every RECORD is checked against the latest SCHEMA
    of its stream (a validating target is the judge: a RECORD that breaks its SCHEMA
    stops the pipeline), so every end-to-end test checks it."""
    messages = []
    validators: dict[str, Draft7Validator] = {}
    for raw in stdout.splitlines():
        line = raw.strip()
        if not line:
            continue
        message = json.loads(line)
        messages.append(message)
        kind = message.get("type")
        if kind == "SCHEMA":
            validators[message["stream"]] = Draft7Validator(
                message["schema"], format_checker=FORMATS
            )
        elif kind == "RECORD":
            stream = message["stream"]
            assert stream in validators, f"RECORD of {stream!r} before its SCHEMA"
            errors = list(validators[stream].iter_errors(message["record"]))
            assert not errors, (
                f"RECORD of {stream!r} breaks its SCHEMA: "
                + "; ".join(
                    f"{'.'.join(map(str, e.path)) or '(record)'}: {e.message}" for e in errors
                )
                + f" -- record {json.dumps(message['record'])[:600]}"
            )
    return messages


def write_json_arg(tmp: Path, name: str, data: dict[str, Any] | None) -> list[str]:
    """``--<name> <file>`` with ``data`` written to the file, or nothing for None."""
    if data is None:
        return []
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(data))
    return [f"--{name}", str(path)]


def _is_state(line: str) -> bool:
    return bool(line.strip()) and json.loads(line).get("type") == "STATE"


def _execute(
    config: dict[str, Any],
    *,
    state: dict[str, Any] | None,
    catalog: dict[str, Any] | None,
    extra_args: tuple[str, ...],
    env: dict[str, str] | None,
    timeout: float,
    kill_after_states: int | None,
    sig: signal.Signals,
) -> TapRun:
    """One tap process through the launcher: all it wrote, its cost, how it ended."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        args = [
            *TAP_COMMAND,
            *write_json_arg(tmp, "config", config),
            *write_json_arg(tmp, "state", state),
            *write_json_arg(tmp, "catalog", catalog),
            *extra_args,
        ]
        err_path = tmp / "stderr.txt"
        report_read, report_write = os.pipe()
        with err_path.open("w") as err, os.fdopen(report_read) as report:
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", str(LAUNCHER), str(report_write), *args],
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                    env={**os.environ, **(env or {})},
                    pass_fds=(report_write,),
                )
            finally:
                os.close(report_write)
            tap_pid = int(report.readline() or 0)  # 0: the launcher failed to start it
            timed_out = threading.Event()

            def send(number: signal.Signals) -> None:
                """To the tap itself (the launcher only mirrors how it ended)."""
                with contextlib.suppress(OSError):
                    if tap_pid:
                        os.kill(tap_pid, number)
                    else:
                        proc.send_signal(number)

            def kill_on_timeout() -> None:
                timed_out.set()
                send(signal.SIGKILL)

            timer = threading.Timer(timeout, kill_on_timeout)
            timer.start()
            killed = False
            try:
                assert proc.stdout is not None
                if kill_after_states is None:
                    stdout = proc.stdout.read()
                else:
                    lines: list[str] = []
                    seen_states = 0
                    for line in proc.stdout:
                        lines.append(line)
                        if _is_state(line):
                            seen_states += 1
                            if seen_states >= kill_after_states:
                                # Every line written before the signal is kept, as a runner
                                # like Meltano would keep them; after a catchable signal the
                                # tap's own last lines are read too (it must exit quickly).
                                send(sig)
                                killed = True
                                break
                    if sig != signal.SIGKILL:
                        lines.append(proc.stdout.read())
                    stdout = "".join(lines)
                proc.stdout.close()
                proc.wait()
            finally:
                timer.cancel()
            usage = report.readline().split()
        stderr = err_path.read_text()
    return TapRun(
        returncode=proc.returncode,
        stdout=stdout,
        stderr=stderr,
        seconds=float(usage[1]) if len(usage) == 2 else 0.0,
        peak_rss_kib=int(usage[0]) if len(usage) == 2 else 0,
        killed=killed,
        timed_out_after=timeout if timed_out.is_set() else None,
        config=config,
    )


def run_tap(
    config: dict[str, Any],
    *,
    state: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
    extra_args: tuple[str, ...] = (),
    timeout: float = 240,
    env: dict[str, str] | None = None,
    raise_on_timeout: bool = True,
) -> TapRun:
    """Run a sync (or another command via ``extra_args``) to completion.

    A tap still running after ``timeout`` seconds is killed; then
    ``subprocess.TimeoutExpired`` is raised, or with ``raise_on_timeout=False`` the run
    is returned with ``timed_out_after`` set (a matrix reports it instead of dying)."""
    run = _execute(
        config,
        state=state,
        catalog=catalog,
        extra_args=extra_args,
        env=env,
        timeout=timeout,
        kill_after_states=None,
        sig=signal.SIGKILL,
    )
    return _finish(run, validate=not extra_args, raise_on_timeout=raise_on_timeout)


def run_tap_until_killed(
    config: dict[str, Any],
    *,
    kill_after_states: int,
    state: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
    timeout: float = 240,
    sig: signal.Signals = signal.SIGKILL,
    env: dict[str, str] | None = None,
    raise_on_timeout: bool = True,
) -> TapRun:
    """Run a sync and send ``sig`` right after it has written ``kill_after_states`` STATEs.

    Every line written before the signal is kept, as a runner like Meltano would keep
    them; after a SIGTERM the tap's own last lines are read too (it must exit quickly).
    """
    run = _execute(
        config,
        state=state,
        catalog=catalog,
        extra_args=(),
        env=env,
        timeout=timeout,
        kill_after_states=kill_after_states,
        sig=sig,
    )
    return _finish(run, validate=True, raise_on_timeout=raise_on_timeout)


def _finish(run: TapRun, *, validate: bool, raise_on_timeout: bool) -> TapRun:
    if run.timed_out_after is not None and raise_on_timeout:
        raise subprocess.TimeoutExpired(TAP_COMMAND, run.timed_out_after, run.stdout, run.stderr)
    if validate:
        run.messages = parse_messages(run.stdout)
    return run
