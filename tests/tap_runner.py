"""Run the real ``tap-callcenter`` command as a subprocess and read its Singer output."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from jsonschema import Draft7Validator, FormatChecker

TAP_COMMAND = [sys.executable, "-m", "tap_callcenter.tap"]


@dataclass
class TapRun:
    """What one run of the tap wrote."""

    returncode: int
    stdout: str
    stderr: str
    messages: list[dict] = field(default_factory=list)

    @property
    def records(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = defaultdict(list)
        for message in self.messages:
            if message.get("type") == "RECORD":
                out[message["stream"]].append(message["record"])
        return out

    @property
    def states(self) -> list[dict]:
        return [m["value"] for m in self.messages if m.get("type") == "STATE"]

    @property
    def last_state(self) -> dict | None:
        states = self.states
        return states[-1] if states else None

    def bookmark(self, stream: str) -> str | None:
        state = self.last_state or {}
        return state.get("bookmarks", {}).get(stream, {}).get("replication_key_value")


#: ``format: date-time`` checked for real (jsonschema alone skips it without extras):
#: ISO 8601 with an explicit offset, as every target expects.
FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None


def parse_messages(stdout: str) -> list[dict]:
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
                + "; ".join(f"{'.'.join(map(str, e.path)) or '(record)'}: {e.message}" for e in errors)
                + f" -- record {json.dumps(message['record'])[:600]}"
            )
    return messages


def write_json_arg(tmp: Path, name: str, data: dict | None) -> list[str]:
    if data is None:
        return []
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(data))
    return [f"--{name}", str(path)]


def run_tap(
    config: dict,
    *,
    state: dict | None = None,
    catalog: dict | None = None,
    extra_args: tuple[str, ...] = (),
    timeout: float = 240,
    env: dict | None = None,
) -> TapRun:
    """Run a sync (or another command via ``extra_args``) to completion."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        args = [
            *TAP_COMMAND,
            *write_json_arg(tmp, "config", config),
            *write_json_arg(tmp, "state", state),
        ]
        args += [*write_json_arg(tmp, "catalog", catalog), *extra_args]
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            check=False,
        )
    messages = parse_messages(proc.stdout) if not extra_args else []
    return TapRun(proc.returncode, proc.stdout, proc.stderr, messages)


def run_tap_until_killed(
    config: dict,
    *,
    kill_after_states: int,
    state: dict | None = None,
    catalog: dict | None = None,
    timeout: float = 240,
    sig: signal.Signals = signal.SIGKILL,
    env: dict | None = None,
) -> TapRun:
    """Run a sync and send ``sig`` right after it has written ``kill_after_states`` STATEs.

    Every line written before the signal is kept, as a runner like Meltano would keep
    them; after a SIGTERM the tap's own last lines are read too (it must exit quickly).
    """
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        args = [
            *TAP_COMMAND,
            *write_json_arg(tmp, "config", config),
            *write_json_arg(tmp, "state", state),
            *write_json_arg(tmp, "catalog", catalog),
        ]
        err_path = tmp / "stderr.txt"
        with err_path.open("w") as err:
            proc = subprocess.Popen(
                args,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env={**os.environ, **(env or {})},
            )
            lines: list[str] = []
            seen_states = 0
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if line.strip() and json.loads(line).get("type") == "STATE":
                    seen_states += 1
                    if seen_states >= kill_after_states:
                        proc.send_signal(sig)
                        break
            if sig != signal.SIGKILL:
                lines.append(proc.stdout.read())
            proc.wait(timeout=timeout)
        stderr = err_path.read_text()
    stdout = "".join(lines)
    return TapRun(proc.returncode, stdout, stderr, parse_messages(stdout))
