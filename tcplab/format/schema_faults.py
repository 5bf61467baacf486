"""The scenario schema's `faults:` items (schema.py): segment faults, host faults and
forges, with the loader's rules between their keys (tcplab/format/faults.py)."""

from __future__ import annotations

from tcplab.core.faults import DELAY, FORGES, HOST_FAULTS, RANDOM_ACTIONS
from tcplab.core.scenario import APP_HOSTS
from tcplab.core.segments import ALIASES, VOCABULARY, senders
from tcplab.format import keys
from tcplab.format.schema_blocks import Schema, closed_object, int_range, ref
from tcplab.format.schema_docs import described

# `at` and `until` of the time-window faults (the docs describe them in prose only).
_TIME = {
    "description": "seconds since the apps started (the record's t = 0), below timeout",
    **ref("duration"),
}


def _nth() -> Schema:
    return {
        "anyOf": [
            {"const": "all"},
            int_range(1, 1000),
            {"type": "array", "minItems": 1, "uniqueItems": True, "items": int_range(1, 1000)},
        ]
    }


def _only_from(key: str) -> list[Schema]:
    """`from:` a side that never sends the segment named in `key` can never match."""
    rules = []
    for host in APP_HOSTS:
        only = [n for n in (*VOCABULARY, *ALIASES) if senders(ALIASES.get(n, n)) == {host}]
        rules.append(
            {
                "if": {"required": [key, "from"], "properties": {key: {"enum": only}}},
                "then": {"properties": {"from": {"const": host}}},
            }
        )
    return rules


def segment_fault(docs: dict[str, str]) -> Schema:
    actions = keys.FAULT_ACTIONS
    known = {action: ref("segment") for action in actions} | {
        "nth": _nth(),
        "from": {"enum": list(APP_HOSTS)},
        "by": ref("positiveDuration"),
        "probability": {
            "anyOf": [  # above 0 (never acting is a mistake), at most 100 %
                {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                {
                    "type": "string",
                    "pattern": "^\\s*(100(\\.0*)?|[0-9]?[0-9](\\.[0-9]*)?|\\.[0-9]+)\\s*%\\s*$",
                    "not": {"pattern": "^\\s*0*\\.?0*\\s*%"},
                },
            ]
        },
        "jitter": ref("positiveDuration"),
    }
    rules = [rule for action in actions for rule in _only_from(action)]
    # The loader's rules: by only where a delay or a copy's lag means something; the MSS
    # option rides on the handshake's SYNs only.
    for action in ("drop", "strip-mss"):
        if action in actions:
            rules.append({"if": {"required": [action]}, "then": {"not": {"required": ["by"]}}})
    # The dice: a probability on drop, delay, duplicate; a jitter on a delay only.
    for key, allowed in (("probability", RANDOM_ACTIONS), ("jitter", (DELAY,))):
        rules.append({"if": {"required": [key]}, "then": {"anyOf": [{"required": [a]} for a in allowed]}})
    if "delay" in actions:  # (if/then, not dependentRequired: draft-07 has no such keyword)
        rules.append({"if": {"required": ["delay"]}, "then": {"required": ["by"]}})
    if "strip-mss" in actions:
        mss = [n for n in (*VOCABULARY, *ALIASES) if ALIASES.get(n, n) in ("syn", "syn-ack")]
        rules.append({"properties": {"strip-mss": {"enum": mss}}})
    fault = closed_object({k: described(known.get(k, {}), docs, k, "key") for k in keys.FAULT_KEYS})
    return fault | {"oneOf": [{"required": [a]} for a in actions], "allOf": rules}


def host_fault(docs: dict[str, str]) -> Schema:
    props = {
        action: described({"enum": list(hosts)}, docs, action, "entry")
        for action, (hosts, *_rest) in HOST_FAULTS.items()
    }
    props |= {"at": _TIME, "until": _TIME}
    rules = []
    for action, (_hosts, takes_until, needs_until, _what) in HOST_FAULTS.items():
        if needs_until:
            rules.append({"if": {"required": [action]}, "then": {"required": ["until"]}})
        elif not takes_until:
            rules.append({"if": {"required": [action]}, "then": {"not": {"required": ["until"]}}})
    fault = closed_object({k: props.get(k, {}) for k in keys.HOST_FAULT_KEYS}, ("at",))
    return fault | {"oneOf": [{"required": [a]} for a in HOST_FAULTS], "allOf": rules}


def forge_fault(docs: dict[str, str]) -> Schema:
    known = {
        "forge": {"enum": list(FORGES)},
        "to": {"enum": list(APP_HOSTS)},
        "at": _TIME,
        "after": ref("segment"),
        "nth": _nth(),
        "from": {"enum": list(APP_HOSTS)},
    }
    others = [k for k in keys.FORGE_KEYS if k != "forge"]
    # nth and from mean what they mean on a segment fault; the rest is the forge's row.
    forge = closed_object(
        {
            k: described(known.get(k, {}), docs, k, "key" if k in keys.FAULT_KEYS else "entry")
            for k in keys.FORGE_KEYS
        },
        ("forge",),
    )
    # The loader's rules: stale-syn stands alone; rst goes `to` a host, at a time (once)
    # or after a named segment (nth, from).
    return forge | {
        "allOf": [
            {
                "if": {"properties": {"forge": {"const": "stale-syn"}}},
                "then": {"not": {"anyOf": [{"required": [k]} for k in others]}},
                "else": {
                    "required": ["to"],
                    "oneOf": [
                        {
                            "required": ["at"],
                            "not": {"anyOf": [{"required": ["nth"]}, {"required": ["from"]}]},
                        },
                        {"required": ["after"]},
                    ],
                },
            },
            *_only_from("after"),
        ]
    }


def fault() -> Schema:
    """Which kind a `faults:` item is goes by its keys, as format/faults.py's action_of()."""
    return {
        "if": {"type": "object", "anyOf": [{"required": ["forge"]}]},
        "then": ref("forgeFault"),
        "else": {
            "if": {"type": "object", "anyOf": [{"required": [a]} for a in HOST_FAULTS]},
            "then": ref("hostFault"),
            "else": ref("segmentFault"),
        },
    }
