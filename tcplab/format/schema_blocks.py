"""The JSON Schema pieces every part of the scenario schema (schema.py) is made of."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/$defs/{name}"}


def int_range(lo: int, hi: int | None = None) -> Schema:
    return {"type": "integer", "minimum": lo, **({"maximum": hi} if hi is not None else {})}


def closed_object(props: Schema, required: tuple[str, ...] = ()) -> Schema:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": props,
        **({"required": list(required)} if required else {}),
    }


def keyed(names: tuple[str, ...], known: Schema, required: tuple[str, ...] = ()) -> Schema:
    """A mapping with exactly the loader's key `names`; a key without a schema in `known`
    (added to the loader since) takes any value."""
    return closed_object({k: known.get(k, {}) for k in names}, required)
