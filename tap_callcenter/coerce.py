"""Value coercions shared by the providers: numbers are numbers, empty means null, and
every record fits its stream's SCHEMA (:class:`Conformer`)."""

from __future__ import annotations

import json
import math
import re
import threading
import typing as t
from collections import Counter
from dataclasses import dataclass


def optional_int(value: t.Any) -> t.Any:
    """``""``/None -> None; integer strings -> int; anything else unchanged (kept, not lost)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.lstrip("-").isdigit():
            return int(stripped)
    return value


def optional_bool(value: t.Any) -> t.Any:
    """``""``/None -> None; "true"/"false"/"1"/"0" -> bool; anything else unchanged."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
    return value


def optional_str(value: t.Any) -> t.Any:
    """``""`` -> None (an optional id or date the API leaves empty)."""
    return None if value == "" else value


# -- every record fits its SCHEMA ------------------------------------------------------

#: Declared in every stream's schema: a JSON object (as text) of the values that did not
#: fit their field's declared type, by field name (nested ones dotted: ``rating.rate``).
#: Such a field is null in the record; nothing is lost, and no loader is stopped by it.
RAW_VALUES = "_raw_values"

_INTEGER_TEXT = re.compile(r"[+-]?\d+")
_DECIMAL_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


class NoFit(ValueError):
    """A value that no declared type of its field can hold without losing information."""


def _number_text(value: str) -> int | float:
    text = value.strip()
    if _INTEGER_TEXT.fullmatch(text):
        return int(text)
    if _DECIMAL_TEXT.fullmatch(text):
        number = float(text)
        if math.isfinite(number):
            return number
    raise NoFit(value)


def to_integer(value: t.Any) -> int:
    """12, "12", " 12 ", 12.0, "12.0", True -> 12 / 1; "12.5", "abc", 12.5 do not fit."""
    if isinstance(value, (bool, int)):
        return int(value)
    if isinstance(value, str):
        value = _number_text(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    raise NoFit(value)


def to_number(value: t.Any) -> int | float:
    """Numbers and number text ("12.5", "1e3"); True -> 1; NaN and infinities do not fit."""
    if isinstance(value, (bool, int)):
        return int(value)
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, str):
        return _number_text(value)
    raise NoFit(value)


def to_boolean(value: t.Any) -> bool:
    """true/false, 0/1 (numbers or text), "yes"/"no", "t"/"f"; anything else does not fit."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise NoFit(value)


def to_string(value: t.Any) -> str:
    """Any JSON value as text without loss: 12 -> "12", 12.0 -> "12", true -> "true",
    objects and arrays as compact JSON. (A number the server sent for an id has already
    lost any trailing zero of a decimal id in JSON: ``1416225570.340`` -> ``"1416225570.34"``.)"""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NoFit(value)
        return str(int(value)) if value.is_integer() else repr(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _refuse(value: t.Any) -> t.Any:
    raise NoFit(value)


#: JSON-schema type -> (Python types that fit as they are, converter), in the order a
#: value is tried against a field with several types (text last: everything fits it).
_TYPES: dict[str, tuple[tuple[type, ...], t.Callable[[t.Any], t.Any]]] = {
    "boolean": ((bool,), to_boolean),
    "integer": ((int,), to_integer),
    "number": ((int, float), to_number),
    "object": ((dict,), _refuse),
    "array": ((list,), _refuse),
    "string": ((str,), to_string),
}


@dataclass
class _Field:
    """How one declared property is made to fit."""

    name: str
    nullable: bool
    #: Exact Python types that fit as they are (``type(v) in fits``: bool is no int).
    fits: frozenset[type]
    converters: tuple[t.Callable[[t.Any], t.Any], ...]
    #: "" means absent here (any type but plain text, date-times, optional ids) -> null.
    empty_is_null: bool
    items: _Field | None = None
    nested: Conformer | None = None


def _plan(name: str, spec: t.Mapping[str, t.Any], empty_as_null: bool) -> _Field:
    declared = spec.get("type") or []
    declared = [declared] if isinstance(declared, str) else list(declared)
    types = [kind for kind in _TYPES if kind in declared]
    fits = {py for kind in types for py in _TYPES[kind][0]}
    if "number" in types:
        fits.discard(bool)
    plain_text = types == ["string"] and "format" not in spec
    items = spec.get("items") if "array" in types else None
    nested = spec.get("properties") if "object" in types else None
    return _Field(
        name=name,
        nullable="null" in declared,
        fits=frozenset(fits),
        converters=tuple(_TYPES[kind][1] for kind in types),
        empty_is_null=empty_as_null or not plain_text,
        items=_plan(f"{name}[]", items, False) if isinstance(items, dict) else None,
        nested=Conformer(spec, prefix=f"{name}.") if nested else None,
    )


class Conformer:
    """Makes a record's declared fields fit the stream's SCHEMA (undeclared fields are
    kept as they are: the schemas allow additional properties).

    - A value of a declared type passes as it is (the common case, one type check).
    - A value that converts without losing information is converted: "12" -> 12,
      12.0 -> 12, 0/1 and "true"/"false" -> booleans, 12 -> "12" for a text field.
    - "" is null where "" cannot mean a value: numbers, booleans, objects, arrays,
      date-times, and the optional ids a stream lists in ``empty_as_null_fields``.
    - Anything else (``"12.5"`` for an integer, ``"maybe"`` for a boolean) does not fit:
      the field becomes null and the value is kept, as JSON text, under ``_raw_values``;
      ``counts`` counts it by field, for the WARNING at the end of the stream (see
      :meth:`warnings`).
    A primary key is never nulled: keys are text, and every value fits text.
    """

    def __init__(
        self,
        schema: t.Mapping[str, t.Any],
        empty_as_null: t.Iterable[str] = (),
        prefix: str = "",
    ) -> None:
        nulls = set(empty_as_null)
        properties = schema.get("properties") or {}
        self.fields = [
            _plan(name, spec, name in nulls)
            for name, spec in properties.items()
            if name != RAW_VALUES
        ]
        self.prefix = prefix
        #: The hot loop's view of the fields: (name, types that fit, "" means null
        #: here, plan) — plain tuples, and a field with items or nested properties
        #: always goes to the full path.
        self._quick = tuple(
            (
                spec.name,
                spec.fits if spec.items is None and spec.nested is None else frozenset(),
                spec.empty_is_null and spec.nullable,
                spec,
            )
            for spec in self.fields
        )
        #: Values that did not fit, by (dotted) field name, and the first of each.
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, t.Any] = {}
        self.lock = threading.Lock()

    def __call__(self, record: dict[str, t.Any]) -> int:
        """Fit ``record`` in place, ``_raw_values`` added when a value did not fit;
        return the number of values that did not (0 but for odd servers)."""
        raw = self.conform(record)
        if not raw:
            return 0
        record[RAW_VALUES] = json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
        with self.lock:  # pages may be transformed in several threads
            for name, value in raw.items():
                self.counts[name] += 1
                self.examples.setdefault(name, value)
        return len(raw)

    def conform(self, record: dict[str, t.Any]) -> dict[str, t.Any]:
        """Fit ``record`` in place; return the values that did not fit, by field."""
        raw: dict[str, t.Any] = {}
        get = record.get
        for name, fits, empty_to_null, spec in self._quick:
            value = get(name)
            if value is None:  # absent or null: nothing to fit
                continue
            if type(value) in fits:  # the common case: one lookup
                if empty_to_null and value == "":
                    record[name] = None
                continue
            try:
                record[name] = self._fit(spec, value, raw)
            except NoFit:
                if not spec.nullable:  # a key: leave it for the engine's key check
                    continue
                record[name] = None
                raw[self.prefix + name] = value
        return raw

    def _fit(self, spec: _Field, value: t.Any, raw: dict[str, t.Any]) -> t.Any:
        if value == "" and spec.empty_is_null and spec.nullable and not isinstance(value, bool):
            return None
        if spec.items is not None and isinstance(value, list):
            return [self._item(spec.items, item) for item in value]
        if spec.nested is not None and isinstance(value, dict):
            raw.update(spec.nested.conform(value))
            return value
        return self._item(spec, value)  # never None here: ``conform`` skips nulls

    def _item(self, spec: _Field, value: t.Any) -> t.Any:
        if type(value) in spec.fits or (value is None and spec.nullable):
            return value
        for convert in spec.converters:
            try:
                return convert(value)
            except NoFit:
                continue
        raise NoFit(value)

    def warnings(self, stream: str) -> list[str]:
        """One line per field whose values did not fit, with their count."""
        return [
            f"{stream}: {count} value(s) of field {name!r} did not fit its declared type "
            f"(first: {json.dumps(self.examples[name], ensure_ascii=False)[:80]}): the field "
            f"is null in those records and the value is kept as text in {RAW_VALUES!r}"
            for name, count in sorted(self.counts.items())
        ]


class RecordShape:
    """API record -> output record: absent-meaning empties to null, API date-times to
    UTC ISO 8601 (``to_utc``), numbers and flags from text, then fitted to the SCHEMA
    (:class:`Conformer`). One per stream; safe to share between threads."""

    def __init__(
        self,
        schema: t.Mapping[str, t.Any],
        to_utc: t.Callable[[t.Any], str | None],
        *,
        empty_as_null: tuple[str, ...] = (),
        times: tuple[str, ...] = (),
        integers: tuple[str, ...] = (),
        booleans: tuple[str, ...] = (),
    ) -> None:
        self.conformer = Conformer(schema, empty_as_null)
        self.to_utc = to_utc
        properties = schema.get("properties") or {}
        self.steps = [
            (fields, convert)
            for fields, convert in (
                (_undone(properties, empty_as_null, ("string",)), optional_str),
                (times, to_utc),
                (_undone(properties, integers, ("integer",)), optional_int),
                (_undone(properties, booleans, ("boolean",)), optional_bool),
            )
            if fields
        ]

    def __call__(self, record: dict[str, t.Any]) -> int:
        """Shape ``record`` in place; return how many values did not fit their type.
        Raises ``ValueError`` for a date-time that is no date-time at all."""
        for fields, convert in self.steps:
            for name in fields:
                if name in record:
                    record[name] = convert(record[name])
        return self.conformer(record)


def _undone(
    properties: t.Mapping[str, t.Any], fields: tuple[str, ...], kinds: tuple[str, ...]
) -> tuple[str, ...]:
    """The ``fields`` a coercion step must still touch: not those the schema declares
    nullable and of one of ``kinds`` only, which the Conformer brings to the same value
    anyway ("" -> null, "12" -> 12, "true" -> true); a step per record saved."""
    undone = []
    for name in fields:
        declared = (properties.get(name) or {}).get("type") or []
        declared = {declared} if isinstance(declared, str) else set(declared)
        if not ("null" in declared and declared - {"null"} and declared - {"null"} <= set(kinds)):
            undone.append(name)
    return tuple(undone)
