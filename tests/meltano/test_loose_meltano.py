"""The reported failure, end to end: a server sending loosely typed values (Conpeek's
``machine_detected`` as 0/1, ids as numeric strings, "" for absent values) made
target-jsonl stop with ``0 is not of type 'boolean', 'null'`` and ``meltano run`` fail.
target-jsonl validates every RECORD against its SCHEMA; here it must load every one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator import ConpeekConfig, EcssConfig, Emulator, ThuliumConfig
from tests.meltano.helpers import install_project, jsonl_counts, meltano_run, settings_env


@pytest.fixture(scope="module")
def loose_emu() -> Iterator[Emulator]:
    with Emulator(
        seed=23,
        port=0,
        loose_types=True,
        thulium=ThuliumConfig(connections=600),
        conpeek=ConpeekConfig(dialogs=600, summaries=200),
        ecss=EcssConfig(calls=300),
    ) as emulator:
        yield emulator


def test_meltano_run_into_a_validating_target_with_a_loose_server(loose_emu, tmp_path) -> None:
    install_project(tmp_path, "tap-callcenter", "target-jsonl")
    out = tmp_path / "out"
    meltano_run(
        tmp_path,
        "tap-callcenter",
        "target-jsonl",
        env=settings_env(loose_emu, TARGET_JSONL_DESTINATION_PATH=str(out)),
    )
    rows = jsonl_counts(out)
    assert len(rows) == 5 and all(rows.values())
    dialogs = rows["conpeek_cdr_dialog"]
    assert {r["machine_detected"] for r in dialogs} >= {True, False}
    assert all(isinstance(r["project_id"], str) for r in dialogs)
