"""Typed decoding: a page decoded in C (msgspec) straight into structs, and each struct turned into a
record without per-field checks in Python.

The typed path is an accelerator, never a second meaning: a page whose JSON does not fit the
provider's structs is decoded as plain JSON and read item by item, as before; a struct that holds
anything the fast converter does not take as is (a timestamp string, a figure out of bounds, an
empty id) raises ``Untyped`` and that one item is read item by item, from the same fields. Both
paths give the same records (``tests/test_typed.py`` holds them to it).
"""

from __future__ import annotations

from typing import Any

import msgspec


class Untyped(Exception):
    """An item the typed converter does not take as is: it is read item by item instead."""


def is_typed(items: list[Any]) -> bool:
    return bool(items) and isinstance(items[0], msgspec.Struct)


def as_plain(item: msgspec.Struct) -> dict[str, Any]:
    """The item as the plain JSON object the item-by-item path reads."""
    plain: dict[str, Any] = msgspec.to_builtins(item)
    return plain


class Fields(msgspec.Struct, gc=False):
    """An item decoded typed whose fields the plain readers read as they read a JSON object's: ``get``
    gives a declared field's value as it was decoded (``Any``: what the plain decoder gives), and None
    for a field not declared, as for a key the object does not have."""

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)
