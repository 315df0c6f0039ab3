"""Packaging: declared dependencies, the SDK's private names, time zones without system
files, and secrets kept out of git."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import subprocess
import sys
import typing as t
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from singer_sdk import Stream, Tap
from singer_sdk.plugin_base import PluginBase
from singer_sdk.streams.rest import _HTTPStream

import tap_callcenter
from tap_callcenter.sdk_private import PRIVATE_SDK_NAMES

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(tap_callcenter.__file__).parent


def requirements() -> dict[str, Requirement]:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {Requirement(text).name.lower(): Requirement(text) for text in project["dependencies"]}


def test_the_sdk_is_a_compatible_range_not_a_pin() -> None:
    sdk = requirements()["singer-sdk"]
    assert str(sdk.specifier) == "~=0.54.9"


def test_every_third_party_module_the_tap_imports_is_a_declared_dependency() -> None:
    declared = set(requirements())
    owners = packages_distributions()
    missing, clashing = {}, {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "tap_callcenter":
                    continue
                dists = {d.lower() for d in owners.get(top, [top])}
                if not dists & declared:
                    missing[top] = str(path.relative_to(ROOT))
                if len(dists) > 1:  # e.g. backoff and python-backoff: one overwrites the other
                    clashing[top] = sorted(dists)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
    assert not clashing, f"modules installed by more than one distribution: {clashing}"


def test_tzdata_is_declared_for_systems_without_zone_files() -> None:
    assert "tzdata" in requirements()


def test_zones_resolve_without_system_zone_files(tmp_path) -> None:
    """PYTHONTZPATH at an empty folder hides /usr/share/zoneinfo: zones then come from
    the tzdata package only (as on a slim image or Windows)."""
    script = (
        "from tap_callcenter.timeconv import load_zone; "
        "print(load_zone('Europe/Warsaw'), load_zone('Asia/Novosibirsk'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={"PYTHONTZPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Europe/Warsaw" in result.stdout


# ------------------------------------------------------------------ private SDK names


def sdk_private_uses() -> dict[str, str]:
    """Every private SDK name the tap's code relies on: ``module.name`` for imports from
    a private SDK module, ``SdkClass._name`` for a ``_name`` that a tap class defines or
    reads and that an SDK class in its MRO defines (as a class attribute, or as
    ``self._name = ...`` in its source) -> the tap module using it."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module_name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        module = importlib.import_module(module_name)
        for node in ast.walk(ast.parse(path.read_text())):
            sdk_module = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
            if sdk_module.startswith("singer_sdk") and any(
                part.startswith("_") for part in sdk_module.split(".")
            ):
                for alias in t.cast("ast.ImportFrom", node).names:
                    found[f"{sdk_module}.{alias.name}"] = module_name
            if not isinstance(node, ast.ClassDef):
                continue
            cls = getattr(module, node.name, None)
            if not inspect.isclass(cls):
                continue
            names = set()
            for sub in ast.walk(node):
                if isinstance(sub, ast.Attribute):
                    names.add(sub.attr)
                elif isinstance(sub, ast.FunctionDef):
                    names.add(sub.name)
            names = {n for n in names if n.startswith("_") and not n.startswith("__")}
            for name in sorted(names):
                for base in cls.__mro__[1:]:
                    if not base.__module__.startswith("singer_sdk"):
                        continue
                    try:
                        source = inspect.getsource(base)
                    except (OSError, TypeError):
                        source = ""
                    if name in vars(base) or re.search(rf"self\.{name}\s*(:[^=]*)?=[^=]", source):
                        found.setdefault(f"{base.__qualname__}.{name}", module_name)
                        break
    return found


def test_every_private_sdk_name_the_code_uses_is_listed_with_a_reason() -> None:
    used = sdk_private_uses()
    assert set(used) == set(PRIVATE_SDK_NAMES), (
        f"used but not listed in tap_callcenter/sdk_private.py: "
        f"{sorted(set(used) - set(PRIVATE_SDK_NAMES))}; listed but no longer used: "
        f"{sorted(set(PRIVATE_SDK_NAMES) - set(used))}"
    )
    assert all(len(why) > 20 for why in PRIVATE_SDK_NAMES.values())


@pytest.mark.parametrize("name", sorted(PRIVATE_SDK_NAMES))
def test_each_listed_private_name_exists_in_the_installed_sdk(name: str) -> None:
    owner, _, attr = name.rpartition(".")
    classes = {"PluginBase": PluginBase, "Tap": Tap, "Stream": Stream, "_HTTPStream": _HTTPStream}
    if owner in classes:
        cls = classes[owner]
        source = inspect.getsource(cls)
        assert attr in vars(cls) or re.search(rf"self\.{attr}\s*(:[^=]*)?=[^=]", source), name
    else:
        assert hasattr(importlib.import_module(owner), attr), name


# ------------------------------------------------------------------ secrets and git


@pytest.mark.parametrize("path", [".env", ".secrets/thulium.json", "output/demo.duckdb"])
def test_secrets_and_outputs_are_ignored_by_git(path: str) -> None:
    result = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT, check=False
    )
    assert result.returncode == 0, f"{path} is not ignored by .gitignore"


def test_a_fresh_clone_has_the_output_folder_the_loaders_write_to() -> None:
    """target-duckdb cannot create output/ (meltano.yml writes output/demo.duckdb): the
    folder is in git, so `meltano run tap-callcenter target-duckdb` works on a fresh clone."""
    result = subprocess.run(
        ["git", "ls-files", "--error-unmatch", "output/.gitkeep"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, "output/.gitkeep is not tracked by git"
    project = (ROOT / "meltano.yml").read_text()
    assert "filepath: $MELTANO_PROJECT_ROOT/output/demo.duckdb" in project
