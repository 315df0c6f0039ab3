"""The Meltano plugin definition: every setting of the tap declared, in meltano.yml and in
the standalone hub/tap-callcenter.yml alike, each read from its environment variable; and
the standalone definition added to a new, empty project with ``meltano add``, installed
and run there."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import certifi
import pytest
import yaml

from emulator import Emulator, ThuliumConfig
from harness import parse_messages, run_tap
from tap_callcenter.tap import CONFIG_SCHEMA, PROVIDERS, TapCallcenter
from tests.meltano.helpers import meltano

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_NAMES = [provider.name for provider in PROVIDERS]
HUB_FILE = ROOT / "hub" / "tap-callcenter.yml"

#: What a JSON-schema type may be declared as in Meltano. Numbers are ``string``:
#: Meltano 4.4 cannot write ``kind: decimal`` into the tap's JSON config, and the tap
#: parses numbers given as strings.
KINDS = {
    "integer": {"integer"},
    "number": {"string"},
    "boolean": {"boolean"},
    "object": {"object"},
    "string": {"string", "options", "password"},
}


def tap_settings() -> dict[str, dict]:
    """The tap's config schema (with the SDK's built-in settings), nested blocks flattened
    to Meltano's dotted names."""
    schema = copy.deepcopy(CONFIG_SCHEMA)
    TapCallcenter.append_builtin_config(schema)
    flat = {}
    for name, spec in schema["properties"].items():
        if name in PROVIDER_NAMES:
            for key, sub in spec["properties"].items():
                flat[f"{name}.{key}"] = sub
        else:
            flat[name] = spec
    return flat


def extractor_in_meltano_yml() -> dict:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    (plugin,) = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-callcenter"]
    return plugin


def hub_definition() -> dict:
    return yaml.safe_load(HUB_FILE.read_text())


@pytest.mark.parametrize("source", ["meltano.yml", "hub/tap-callcenter.yml"])
def test_every_tap_setting_is_declared_with_a_matching_kind(source: str) -> None:
    plugin = extractor_in_meltano_yml() if source == "meltano.yml" else hub_definition()
    declared = {s["name"]: s for s in plugin["settings"]}
    expected = tap_settings()
    assert sorted(declared) == sorted(expected), (
        f"{source}: missing {sorted(set(expected) - set(declared))}, "
        f"unknown to the tap {sorted(set(declared) - set(expected))}"
    )
    for name, spec in expected.items():
        setting = declared[name]
        types = [t for t in spec["type"] if t != "null"]
        if spec.get("format") == "date-time":
            assert setting["kind"] == "date_iso8601", name
        else:
            assert setting["kind"] in KINDS[types[0]], (name, setting["kind"], types)
        secret = bool(spec.get("secret"))
        assert bool(setting.get("sensitive")) == secret, f"{name}: sensitive must be {secret}"
        assert (setting["kind"] == "password") == secret, name
        assert setting.get("label") and setting.get("description"), f"{name}: label, description"
        assert "value" not in setting, f"{name}: a default would switch its provider on"
        if "enum" in spec:
            assert {o["value"] for o in setting["options"]} == set(spec["enum"]) - {None}, name


def test_each_provider_is_one_settings_group_of_its_required_settings() -> None:
    groups = extractor_in_meltano_yml()["settings_group_validation"]
    schema = CONFIG_SCHEMA["properties"]
    expected = [
        sorted(f"{provider}.{key}" for key in schema[provider]["required"])
        for provider in PROVIDER_NAMES
    ]
    assert sorted(sorted(g) for g in groups) == sorted(expected)


def test_the_hub_definition_is_the_one_in_meltano_yml() -> None:
    hub, local = hub_definition(), extractor_in_meltano_yml()
    for key in ("name", "namespace", "executable", "capabilities", "settings_group_validation"):
        assert hub[key] == local[key], key
    assert hub["settings"] == local["settings"]
    assert local["pip_url"] == "-e ."


def every_setting_as_environment() -> tuple[dict[str, str], dict]:
    """A valid value for every setting, as Meltano's environment variables, and the
    config the tap must receive."""
    values = {
        "start_date": "2024-10-26T00:00:00Z",
        "end_date": "2024-10-27T00:00:00Z",
        "lookback_minutes": "30",
        "window_days": "0.5",
        "request_timeout": "20",
        "max_tries": "3",
        "backoff_factor": "0.5",
        "backoff_max_wait": "5",
        "max_concurrency": "3",
        "max_response_mib": "16",
        "ca_bundle": certifi.where(),  # a PEM file that exists
        "conpeek.api_url": "http://127.0.0.1:9/conpeek",
        "conpeek.api_key": "conpeek-secret",
        "conpeek.sync_closures": "false",
        "thulium.api_url": "http://127.0.0.1:9/thulium/api",
        "thulium.username": "api_user",
        "thulium.password": "thulium-secret",
        "thulium.timezone": "Europe/Warsaw",
        "ecss.api_url": "http://127.0.0.1:9",
        "ecss.domain": "cc.demo",
        "ecss.client_id": "client",
        "ecss.api_key": "ecss-secret",
        "ecss.phone_number": "1000",
        "ecss.transport": "websocket",
        "ecss.ws_url": "ws://127.0.0.1:9",
        "ecss.timezone": "Asia/Novosibirsk",
        "ecss.sessions": "2",
        "ecss.page_size": "50",
        "stream_maps": '{"thulium_connections": {"src": "md5(src)"}}',
        "stream_map_config": '{"salt": "x"}',
        "faker_config": '{"seed": 1}',
        "flattening_enabled": "true",
        "flattening_max_depth": "2",
        "flattening_max_key_length": "60",
        "flattening_separator": "__",
    }
    assert sorted(values) == sorted(tap_settings())
    env = {
        "TAP_CALLCENTER_" + name.upper().replace(".", "_"): value for name, value in values.items()
    }
    return env, values


def test_meltano_passes_every_setting_from_its_environment_variable(tmp_path) -> None:
    (tmp_path / "meltano.yml").write_text((ROOT / "meltano.yml").read_text())
    env, values = every_setting_as_environment()
    result = meltano(tmp_path, "config", "--unsafe", "print", "tap-callcenter", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads(result.stdout)
    received = {}
    for name in values:
        block, _, key = name.rpartition(".")
        received[name] = (config.get(block) or {}).get(key) if block else config.get(name)
    ignored = sorted(name for name, value in received.items() if value is None)
    assert not ignored, f"Meltano ignored the environment variables of {ignored}"
    # ... and the tap accepts the config Meltano writes (types included)
    run = run_tap(config, extra_args=("--discover",))
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout)["streams"]


@pytest.fixture(scope="module")
def thulium_emu():
    emulator = Emulator(seed=5, port=0, thulium=ThuliumConfig(connections=300))
    emulator.start()
    yield emulator
    emulator.stop()


def test_meltano_add_from_the_hub_definition_in_a_new_empty_project(tmp_path, thulium_emu) -> None:
    """What a user outside this repository does: a new project, ``meltano add`` with the
    standalone definition (pip_url pointed at this checkout, installed as a package, not
    editable), then a sync through Meltano."""
    ref = tmp_path / "tap-callcenter.yml"
    text = HUB_FILE.read_text()
    placeholder = "\npip_url: git+https://YOUR-GIT-HOST/tap-callcenter.git\n"
    assert placeholder in text
    ref.write_text(text.replace(placeholder, f"\npip_url: {ROOT}\n"))
    result = meltano(tmp_path, "init", "project", "--no-usage-stats", env={})
    assert result.returncode == 0, result.stderr[-3000:]
    project = tmp_path / "project"
    result = meltano(
        project,
        "add",
        "--plugin-type",
        "extractor",
        "tap-callcenter",
        "--from-ref",
        str(ref),
        env={},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    added = yaml.safe_load((project / "meltano.yml").read_text())["plugins"]["extractors"][0]

    def secrets(settings: list[dict]) -> list[tuple[str, bool]]:
        # Meltano 4.4 writes `kind: password` + `sensitive: true` back as `kind: string`
        return [(s["name"], bool(s.get("sensitive"))) for s in settings]

    assert secrets(added["settings"]) == secrets(hub_definition()["settings"])

    about = meltano(project, "invoke", "tap-callcenter", "--about", "--format", "json", env={})
    assert about.returncode == 0, about.stderr[-3000:]
    assert json.loads(about.stdout)["name"] == "tap-callcenter"

    thulium = thulium_emu.thulium.config
    env = {
        "TAP_CALLCENTER_START_DATE": "2024-10-26T00:00:00Z",
        "TAP_CALLCENTER_END_DATE": "2024-10-27T00:00:00Z",
        "TAP_CALLCENTER_THULIUM_API_URL": thulium_emu.thulium_api_url,
        "TAP_CALLCENTER_THULIUM_USERNAME": thulium.username,
        "TAP_CALLCENTER_THULIUM_PASSWORD": thulium.password,
    }
    run = meltano(project, "invoke", "tap-callcenter", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    messages = parse_messages(run.stdout)  # every RECORD checked against its SCHEMA
    streams = {m["stream"] for m in messages if m["type"] == "RECORD"}
    assert streams == {"thulium_connections", "thulium_recordings"}
