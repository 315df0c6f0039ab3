"""Several accounts of one provider through ``inherit_from`` (examples/accounts.meltano.yml):
each account reads its own server with its own credentials and keeps its own state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from emulator import Emulator, ThuliumConfig
from tests.meltano.helpers import (
    END,
    MIDDLE,
    ROOT,
    START,
    install_project,
    jsonl_counts,
    meltano,
    meltano_run,
)

EXAMPLE = ROOT / "examples" / "accounts.meltano.yml"
ACCOUNTS = {"acme": ("acme_api", "acme-secret", 41), "globex": ("globex_api", "globex-secret", 42)}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Emulator]]:
    """One Thulium per account, each accepting only that account's credentials."""
    emulators = {
        name: Emulator(
            seed=seed,
            port=0,
            thulium=ThuliumConfig(connections=500, username=user, password=password),
        )
        for name, (user, password, seed) in ACCOUNTS.items()
    }
    for emulator in emulators.values():
        emulator.start()
    yield emulators
    for emulator in emulators.values():
        emulator.stop()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The repository's meltano.yml including the example, as its comments say."""
    path = tmp_path_factory.mktemp("meltano-accounts")
    (path / "accounts.meltano.yml").write_text(EXAMPLE.read_text())
    tail = "include_paths:\n- ./accounts.meltano.yml\n"
    return install_project(path, "tap-callcenter", "target-jsonl", meltano_yml_tail=tail)


def account_env(servers: dict[str, Emulator], name: str, end: str, out: Path) -> dict[str, str]:
    prefix = f"TAP_CALLCENTER__{name.upper()}_"
    _user, password, _seed = ACCOUNTS[name]
    return {
        # the account's own variables (the example's api_url is a placeholder) ...
        f"{prefix}THULIUM_API_URL": servers[name].thulium_api_url,
        f"{prefix}THULIUM_PASSWORD": password,
        f"{prefix}START_DATE": START,
        f"{prefix}END_DATE": end,
        # ... win over the parent's, which reach every account that has none of its own
        "TAP_CALLCENTER_THULIUM_PASSWORD": "the-parent-password-is-wrong",
        "TARGET_JSONL_DESTINATION_PATH": str(out),
    }


def run_account(project: Path, servers, name: str, end: str, out: Path) -> dict[str, list]:
    meltano_run(
        project, f"tap-callcenter--{name}", "target-jsonl", env=account_env(servers, name, end, out)
    )
    return jsonl_counts(out)


def bookmark(project: Path, name: str) -> str:
    result = meltano(project, "state", "get", f"dev:tap-callcenter--{name}-to-target-jsonl", env={})
    assert result.returncode == 0, result.stderr[-2000:]
    state = json.loads(result.stdout.strip().splitlines()[-1])["singer_state"]
    return state["bookmarks"]["thulium_connections"]["replication_key_value"]


def truth(server: Emulator, start: str, end: str) -> set[str]:
    return {
        row["key"][0]
        for row in server.thulium.expected("connections")
        if start.replace("Z", "+00:00") <= row["expected_fields"]["date"] < end
    }


def test_two_accounts_each_with_their_own_settings_and_state(project, servers, tmp_path) -> None:
    acme = run_account(project, servers, "acme", MIDDLE, tmp_path / "acme-1")
    globex = run_account(project, servers, "globex", END, tmp_path / "globex-1")
    for name, out, end in (("acme", acme, MIDDLE), ("globex", globex, END)):
        got = {r["connection_id"] for r in out["thulium_connections"]}
        assert got == truth(servers[name], START, end), name
        assert set(out) == {"thulium_connections", "thulium_recordings"}, name
    assert bookmark(project, "acme") == "2024-10-27T00:00:00+00:00"
    assert bookmark(project, "globex") == "2024-10-28T00:00:00+00:00"

    # acme's next run is incremental from its own bookmark; globex's state is untouched
    again = run_account(project, servers, "acme", END, tmp_path / "acme-2")
    dates = [r["date"] for r in again["thulium_connections"]]
    assert dates and min(dates) >= "2024-10-26T23:00:00+00:00"  # bookmark - lookback
    got = {r["connection_id"] for r in again["thulium_connections"]}
    assert got == truth(servers["acme"], "2024-10-26T23:00:00Z", END)
    assert bookmark(project, "acme") == "2024-10-28T00:00:00+00:00"
    assert bookmark(project, "globex") == "2024-10-28T00:00:00+00:00"


def test_each_account_has_its_own_loader_schema(project) -> None:
    for name in ACCOUNTS:
        result = meltano(project, "config", "print", f"target-postgres--{name}", env={})
        assert result.returncode == 0, result.stderr[-2000:]
        assert json.loads(result.stdout)["default_target_schema"] == name


def test_the_example_accounts_inherit_from_the_tap() -> None:
    plugins = yaml.safe_load(EXAMPLE.read_text())["plugins"]["extractors"]
    assert {p["name"] for p in plugins} == {f"tap-callcenter--{name}" for name in ACCOUNTS}
    assert all(p["inherit_from"] == "tap-callcenter" for p in plugins)
    assert all("password" not in p["config"]["thulium"] for p in plugins), "no secret in yml"
