"""What the Meltano tests share: the ``meltano`` command, a project installed from this
checkout, the tap's settings as environment variables, and the tap's own output as the
reference every loader is compared with."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from emulator import Emulator
from harness import run_tap, tap_config

ROOT = Path(__file__).resolve().parents[2]
START, MIDDLE, END = "2024-10-26T00:00:00Z", "2024-10-27T00:00:00Z", "2024-10-28T00:00:00Z"


def meltano_binary() -> str:
    for candidate in (
        os.environ.get("MELTANO_BIN"),
        str(ROOT / ".venv-meltano/bin/meltano"),
        shutil.which("meltano"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("meltano not found: ./test.sh installs it into .venv-meltano (or set MELTANO_BIN)")


def meltano(project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``meltano *args`` in ``project``, with no tap or target setting but ``env``'s."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_CALLCENTER", "TARGET_"))}
    return subprocess.run(
        [meltano_binary(), *args],
        cwd=project,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def meltano_run(project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``meltano run *args``, which must succeed."""
    result = meltano(project, "run", *args, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def install_project(path: Path, *plugins: str, meltano_yml_tail: str = "") -> Path:
    """A Meltano project at ``path``: the repo's meltano.yml (plus ``meltano_yml_tail``)
    with the tap installed from this checkout, and ``plugins`` (all when none) installed."""
    text = (ROOT / "meltano.yml").read_text().replace("pip_url: -e .", f"pip_url: -e {ROOT}")
    (path / "meltano.yml").write_text(text + meltano_yml_tail)
    result = meltano(path, "install", *plugins, env={})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return path


def settings_env(emu: Emulator, **extra: str) -> dict[str, str]:
    """Every tap setting for ``emu`` as Meltano's environment variables, START to MIDDLE."""
    thulium, conpeek, ecss = emu.thulium.config, emu.conpeek.config, emu.ecss.config
    env = {
        "TAP_CALLCENTER_START_DATE": START,
        "TAP_CALLCENTER_END_DATE": MIDDLE,
        "TAP_CALLCENTER_BACKOFF_FACTOR": "0.05",
        "TAP_CALLCENTER_THULIUM_API_URL": emu.thulium_api_url,
        "TAP_CALLCENTER_THULIUM_USERNAME": thulium.username,
        "TAP_CALLCENTER_THULIUM_PASSWORD": thulium.password,
        "TAP_CALLCENTER_CONPEEK_API_URL": emu.conpeek_api_url,
        "TAP_CALLCENTER_CONPEEK_API_KEY": conpeek.api_key,
        "TAP_CALLCENTER_ECSS_API_URL": emu.ecss_api_url,
        "TAP_CALLCENTER_ECSS_DOMAIN": ecss.domain,
        "TAP_CALLCENTER_ECSS_CLIENT_ID": ecss.client_id,
        "TAP_CALLCENTER_ECSS_API_KEY": ecss.api_key,
        "TAP_CALLCENTER_ECSS_PHONE_NUMBER": ecss.phone_number,
        "TAP_CALLCENTER_ECSS_TIMEZONE": ecss.timezone,
    }
    env.update(extra)
    return env


def jsonl_counts(directory: Path) -> dict[str, list[dict]]:
    """Every row target-jsonl wrote, per stream."""
    out = {}
    for path in sorted(directory.glob("*.jsonl")):
        out[path.stem] = [json.loads(line) for line in path.read_text().splitlines() if line]
    return out


def tap_records(emu: Emulator, end: str) -> dict[str, list[dict]]:
    """What the tap itself emits for START .. ``end`` with the settings of
    :func:`settings_env` (the reference for the loaders)."""
    run = run_tap(tap_config(emu, start_date=START, end_date=end, backoff_factor=0.05))
    assert run.returncode == 0, run.stderr[-2000:]
    return run.records
