"""A small Erlang External Term Format codec for the ECSS paging ``tag``.

The real ECSS-10 tag is ``base64(term_to_binary({tag, history, ..., [Filters]}))``;
the emulator builds its tags the same way so they look and behave like the real
ones: opaque, never a plain number, and a garbled one fails to decode.

Terms: :class:`Atom` (ATOM_EXT), ``bytes`` (BINARY_EXT), ``int`` (SMALL_INTEGER,
INTEGER or SMALL_BIG), ``tuple`` (SMALL_TUPLE_EXT) and ``list`` (LIST_EXT / NIL_EXT).
"""

from __future__ import annotations

import struct
from typing import Any

_VERSION = 131
_SMALL_INT = 97
_INT = 98
_ATOM = 100
_SMALL_TUPLE = 104
_NIL = 106
_LIST = 108
_BINARY = 109
_SMALL_BIG = 110
_MAX_DEPTH = 32


class Atom(str):
    """An Erlang atom (a ``str`` subclass, so it compares equal to its name)."""

    __slots__ = ()


def encode(term: Any) -> bytes:
    """``term_to_binary``: the version byte then the term."""
    out = bytearray([_VERSION])
    _encode(term, out)
    return bytes(out)


def _encode(term: Any, out: bytearray) -> None:
    if isinstance(term, Atom):
        raw = term.encode("latin-1")
        out += struct.pack(">BH", _ATOM, len(raw)) + raw
    elif isinstance(term, bool):
        _encode(Atom("true" if term else "false"), out)
    elif isinstance(term, int):
        if 0 <= term <= 255:
            out += bytes([_SMALL_INT, term])
        elif -(2**31) <= term < 2**31:
            out += struct.pack(">Bi", _INT, term)
        else:
            magnitude = abs(term)
            digits = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "little")
            out += bytes([_SMALL_BIG, len(digits), 1 if term < 0 else 0]) + digits
    elif isinstance(term, bytes):
        out += struct.pack(">BI", _BINARY, len(term)) + term
    elif isinstance(term, str):
        _encode(term.encode(), out)
    elif isinstance(term, tuple):
        out += bytes([_SMALL_TUPLE, len(term)])
        for item in term:
            _encode(item, out)
    elif isinstance(term, list):
        if term:
            out += struct.pack(">BI", _LIST, len(term))
            for item in term:
                _encode(item, out)
        out.append(_NIL)
    else:
        raise TypeError(f"cannot encode {type(term).__name__} as an Erlang term")


def decode(data: bytes) -> Any:
    """``binary_to_term`` for the subset above; anything else raises ``ValueError``."""
    if not data or data[0] != _VERSION:
        raise ValueError("not an Erlang external term (bad version byte)")
    term, pos = _decode(data, 1, 0)
    if pos != len(data):
        raise ValueError("trailing bytes after the Erlang term")
    return term


def _take(data: bytes, pos: int, n: int) -> bytes:
    if pos + n > len(data):
        raise ValueError("Erlang term is truncated")
    return data[pos : pos + n]


def _decode(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if depth > _MAX_DEPTH:
        raise ValueError("Erlang term is nested too deeply")
    tag = _take(data, pos, 1)[0]
    pos += 1
    if tag == _SMALL_INT:
        return _take(data, pos, 1)[0], pos + 1
    if tag == _INT:
        return struct.unpack(">i", _take(data, pos, 4))[0], pos + 4
    if tag == _ATOM:
        (n,) = struct.unpack(">H", _take(data, pos, 2))
        return Atom(_take(data, pos + 2, n).decode("latin-1")), pos + 2 + n
    if tag == _BINARY:
        (n,) = struct.unpack(">I", _take(data, pos, 4))
        return _take(data, pos + 4, n), pos + 4 + n
    if tag == _SMALL_BIG:
        n, sign = _take(data, pos, 2)
        value = int.from_bytes(_take(data, pos + 2, n), "little")
        return (-value if sign else value), pos + 2 + n
    if tag == _SMALL_TUPLE:
        arity = _take(data, pos, 1)[0]
        pos += 1
        items = []
        for _ in range(arity):
            item, pos = _decode(data, pos, depth + 1)
            items.append(item)
        return tuple(items), pos
    if tag == _NIL:
        return [], pos
    if tag == _LIST:
        (n,) = struct.unpack(">I", _take(data, pos, 4))
        pos += 4
        if n > len(data):
            raise ValueError("Erlang list length is impossible")
        elements = []
        for _ in range(n):
            item, pos = _decode(data, pos, depth + 1)
            elements.append(item)
        if _take(data, pos, 1)[0] != _NIL:
            raise ValueError("improper Erlang list")
        return elements, pos + 1
    raise ValueError(f"unsupported Erlang term tag {tag}")
