"""The tap's own catalog (``--discover``), narrowed to what a run should sync."""

from __future__ import annotations

import json
from typing import Any

from harness.tap import run_tap

Catalog = dict[str, Any]


def discover(config: dict[str, Any], *, timeout: float = 240) -> Catalog:
    """The catalog the tap discovers with ``config``."""
    run = run_tap(config, extra_args=("--discover",), timeout=timeout)
    if run.returncode != 0:
        raise RuntimeError(f"--discover failed: {run.stderr[-2000:]}")
    catalog: Catalog = json.loads(run.stdout)
    return catalog


def _stream_metadata(
    catalog: Catalog, streams: tuple[str, ...]
) -> list[tuple[str, dict[str, Any]]]:
    """(stream, its stream-level metadata) for every stream; the named ones must exist."""
    found = [
        (entry["tap_stream_id"], item.setdefault("metadata", {}))
        for entry in catalog.get("streams", [])
        for item in entry.get("metadata", [])
        if not item.get("breadcrumb")
    ]
    missing = set(streams) - {name for name, _ in found}
    if missing:
        raise RuntimeError(f"stream(s) {sorted(missing)} not in the discovered catalog")
    return found


def select_only(catalog: Catalog, *streams: str) -> Catalog:
    """Select ``streams`` and deselect every other stream (in place; returned too)."""
    for name, metadata in _stream_metadata(catalog, streams):
        metadata["selected"] = name in streams
    return catalog


def full_table(catalog: Catalog, *streams: str) -> Catalog:
    """Switch ``streams`` to FULL_TABLE replication (in place; returned too)."""
    for name, metadata in _stream_metadata(catalog, streams):
        if name in streams:
            metadata["replication-method"] = "FULL_TABLE"
    return catalog
