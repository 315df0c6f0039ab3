"""The reported failure, end to end: a server sending loosely typed values (Conpeek's
``machine_detected`` as 0/1, ids as numeric strings, "" for absent values) made
target-jsonl stop with ``0 is not of type 'boolean', 'null'`` and ``meltano run`` fail.
target-jsonl validates every RECORD against its SCHEMA; here it must load every one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator import ConpeekConfig, EcssConfig, Emulator, ThuliumConfig
from tests.meltano.test_meltano import jsonl_counts, meltano, settings_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def loose_emu() -> Iterator[Emulator]:
    emulator = Emulator(
        seed=23,
        port=0,
        loose_types=True,
        thulium=ThuliumConfig(connections=600),
        conpeek=ConpeekConfig(dialogs=600, summaries=200),
        ecss=EcssConfig(calls=300),
    )
    emulator.start()
    yield emulator
    emulator.stop()


def test_meltano_run_into_a_validating_target_with_a_loose_server(loose_emu, tmp_path) -> None:
    text = (ROOT / "meltano.yml").read_text().replace("pip_url: -e .", f"pip_url: -e {ROOT}")
    (tmp_path / "meltano.yml").write_text(text)
    installed = meltano(tmp_path, "install", "tap-callcenter", "target-jsonl", env={})
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    out = tmp_path / "out"
    result = meltano(
        tmp_path,
        "run",
        "tap-callcenter",
        "target-jsonl",
        env=settings_env(loose_emu, TARGET_JSONL_DESTINATION_PATH=str(out)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = jsonl_counts(out)
    assert len(rows) == 5 and all(rows.values())
    dialogs = rows["conpeek_cdr_dialog"]
    assert {r["machine_detected"] for r in dialogs} >= {True, False}
    assert all(isinstance(r["project_id"], str) for r in dialogs)
