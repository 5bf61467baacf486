"""The scenario schema's `expect:` (schema.py): the model, the tolerance, each host's
expectations and the per-kernel ones."""

from __future__ import annotations

from tcplab.core.scenario import APP_HOSTS
from tcplab.core.segments import ALIASES, VOCABULARY, senders
from tcplab.format import keys
from tcplab.format.schema_blocks import Schema, keyed, ref
from tcplab.format.schema_docs import described


def _host_expect(host: str, docs: dict[str, str]) -> Schema:
    sendable = [n for n in (*VOCABULARY, *ALIASES) if host in senders(ALIASES.get(n, n))]
    per_segment = {"type": "object", "propertyNames": {"enum": sendable}}
    known = {
        "retransmits": {**per_segment, "additionalProperties": ref("timing")},
        "sends": {**per_segment, "additionalProperties": {"type": "integer", "minimum": 0}},
        "gives_up_after": ref("duration"),
        "resent": {
            **per_segment,
            "propertyNames": {"enum": [n for n in sendable if VOCABULARY[ALIASES.get(n, n)][2]]},
            "additionalProperties": {
                "anyOf": [
                    {"type": "integer", "minimum": 0},
                    keyed(
                        keys.BOUND_KEYS, {k: {"type": "integer", "minimum": 0} for k in keys.BOUND_KEYS}, ()
                    ),
                ]
            },
        },
        "received": {"type": "integer", "minimum": 0},
        "states": {"type": "array", "minItems": 1, "items": ref("state")},
        "largest": {
            **per_segment,
            "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 65535},
        },
        "sockets": {
            "type": "object",
            "propertyNames": ref("stayState"),
            "additionalProperties": {"type": "integer", "minimum": 0},
        },
        "lasts": {
            "type": "object",
            "propertyNames": ref("stayState"),
            "additionalProperties": {
                "anyOf": [
                    ref("duration"),
                    {"const": "forever"},
                    keyed(keys.LASTING_KEYS, {"at_least": ref("duration")}, keys.LASTING_KEYS),
                ]
            },
        },
        # CALL: a segment the peer sends (the host receives it).
        "returns_after": {
            "type": "object",
            "propertyNames": {"enum": list(keys.STEP_FORMS)},
            "additionalProperties": {
                "enum": [n for n in (*VOCABULARY, *ALIASES) if senders(ALIASES.get(n, n)) - {host}]
            },
        },
    }
    props = {
        key: described(ref("callResults"), docs, "<call>", "key")
        if key in keys.EXPECTABLE_CALLS
        else described(known.get(key, {}), docs, key, "key")
        for key in keys.HOST_EXPECT_KEYS
    }
    return {"type": "object", "additionalProperties": False, "properties": props}


# `expect.kernels` keys: one or two bounds, ">= 6.5", "< 6.13", ">= 6.5, < 6.13"
# (core/kernel_expect.py, which also rejects an empty range).
_BOUND = r"\s*(>=|<)\s*\d+\.\d+\s*"
KERNEL_RANGE = f"^{_BOUND}(,{_BOUND})?$"


def expect(docs: dict[str, str]) -> Schema:
    known = {
        "model": {"enum": list(keys.MODELS)},
        "tolerance": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                key: {"abs": ref("duration"), "rel": ref("percent")}.get(key, {})
                for key in keys.TOLERANCE_KEYS
            },
        },
        "kernels": {
            "type": "object",
            "propertyNames": {"pattern": KERNEL_RANGE},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": {h: _host_expect(h, docs) for h in APP_HOSTS},
            },
        },
    }
    props = {
        key: _host_expect(key, docs) if key in APP_HOSTS else described(known.get(key, {}), docs, key)
        for key in keys.EXPECT_KEYS
    }
    return {"type": "object", "additionalProperties": False, "properties": props}
