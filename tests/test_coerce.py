"""Every record fits its SCHEMA: the conversions that lose nothing, and the rule for the
values that cannot be converted (null in the field, the value kept in ``_raw_values``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from tap_callcenter import schemas as schema_package
from tap_callcenter.coerce import (
    RAW_VALUES,
    Conformer,
    NoFit,
    to_boolean,
    to_integer,
    to_number,
    to_string,
)
from tap_callcenter.tap import PROVIDERS

SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "count": {"type": ["integer", "null"]},
        "ratio": {"type": ["number", "null"]},
        "flag": {"type": ["boolean", "null"]},
        "name": {"type": ["string", "null"]},
        "ref": {"type": ["string", "null"]},
        "at": {"type": ["string", "null"], "format": "date-time"},
        "tags": {"type": ["array", "null"], "items": {"type": ["string"]}},
        "rating": {
            "type": ["object", "null"],
            "properties": {"rate": {"type": ["integer", "null"]}},
        },
        RAW_VALUES: {"type": ["string", "null"]},
    },
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, 12),
        ("12", 12),
        (" 12 ", 12),
        ("+12", 12),
        ("-3", -3),
        (12.0, 12),
        ("12.0", 12),
        ("1e3", 1000),
        (True, 1),
        (False, 0),
    ],
)
def test_integers_that_convert_without_loss(value, expected) -> None:
    result = to_integer(value)
    assert result == expected and type(result) is int


@pytest.mark.parametrize("value", ["12.5", 12.5, "abc", "1_000", "0x1F", "", math.nan, [], {}])
def test_integers_that_do_not_fit(value) -> None:
    with pytest.raises(NoFit):
        to_integer(value)


def test_numbers() -> None:
    assert to_number("12.5") == 12.5 and to_number("12") == 12 and to_number(True) == 1
    for value in ("nan", "inf", math.inf, "12,5", ""):
        with pytest.raises(NoFit):
            to_number(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, True),
        (0, False),
        ("1", True),
        ("0", False),
        ("true", True),
        ("FALSE", False),
        ("yes", True),
        ("no", False),
        (1.0, True),
        (True, True),
    ],
)
def test_booleans_accept_0_and_1(value, expected) -> None:
    assert to_boolean(value) is expected


@pytest.mark.parametrize("value", [2, -1, "maybe", "", 0.5])
def test_booleans_that_do_not_fit(value) -> None:
    with pytest.raises(NoFit):
        to_boolean(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, "12"),
        (12.0, "12"),
        (1416225570.341, "1416225570.341"),
        (True, "true"),
        ("a1f3", "a1f3"),
        ({"a": 1}, '{"a":1}'),
        ([1, "x"], '[1,"x"]'),
    ],
)
def test_every_value_converts_to_text(value, expected) -> None:
    assert to_string(value) == expected


def test_a_loosely_typed_record_is_converted_and_then_valid() -> None:
    conformer = Conformer(SCHEMA, empty_as_null=("ref",))
    record = {
        "id": 123,
        "count": "7",
        "ratio": "0.5",
        "flag": 0,
        "name": "",
        "ref": "",
        "at": "",
        "tags": [1, "b"],
        "rating": {"rate": "4"},
        "extra": "12",
    }
    assert conformer(record) == 0
    assert record == {
        "id": "123",
        "count": 7,
        "ratio": 0.5,
        "flag": False,
        "name": "",
        "ref": None,
        "at": None,
        "tags": ["1", "b"],
        "rating": {"rate": 4},
        "extra": "12",
    }
    assert not list(Draft7Validator(SCHEMA).iter_errors(record))


def test_a_value_that_cannot_be_converted_is_null_and_kept_raw_and_counted() -> None:
    conformer = Conformer(SCHEMA)
    records = [
        {"id": "a", "count": "12.5", "flag": "maybe", "rating": {"rate": "happy"}},
        {"id": "b", "count": "3.5"},
        {"id": "c", "count": 4},
    ]
    assert [conformer(r) for r in records] == [3, 1, 0]
    first = records[0]
    assert first["count"] is None and first["flag"] is None and first["rating"] == {"rate": None}
    assert json.loads(first[RAW_VALUES]) == {
        "count": "12.5",
        "flag": "maybe",
        "rating.rate": "happy",
    }
    assert RAW_VALUES not in records[2]
    for record in records:
        assert not list(Draft7Validator(SCHEMA).iter_errors(record))
    assert conformer.counts == {"count": 2, "flag": 1, "rating.rate": 1}
    lines = conformer.warnings("s")
    assert lines[0].startswith("s: 2 value(s) of field 'count' did not fit its declared type")
    assert '(first: "12.5")' in lines[0] and "'_raw_values'" in lines[0]


def test_a_primary_key_is_never_nulled() -> None:
    conformer = Conformer(SCHEMA)
    for value, expected in ((42, "42"), (4.5, "4.5"), ({"k": 1}, '{"k":1}'), ("", "")):
        record = {"id": value}
        conformer(record)
        assert record["id"] == expected


# ------------------------------------------------------------------ the shipped schemas


@pytest.mark.parametrize(
    "stream_class",
    [c for provider in PROVIDERS for c in provider.streams],
    ids=lambda c: c.name,
)
def test_each_schema_keeps_keys_non_null_text_and_declares_raw_values(stream_class) -> None:
    """Only primary keys may be non-nullable, and they are text (every value fits text,
    so a key is never nulled); ids are text; ``_raw_values`` is declared (loaders drop
    what is not declared)."""
    path = Path(schema_package.__file__).parent / f"{stream_class.name}.json"
    properties = json.loads(path.read_text())["properties"]
    assert properties[RAW_VALUES]["type"] == ["string", "null"]
    for name, spec in properties.items():
        types = [spec["type"]] if isinstance(spec["type"], str) else spec["type"]
        if "null" not in types:
            assert name in stream_class.primary_keys, f"{name} is not nullable"
            assert types == ["string"], f"key {name} must be text"
    for name in stream_class.primary_keys:
        assert properties[name]["type"] == "string", name
