"""The JSON Schema (draft 2020-12) of scenario files, built from the loader's own tables.

Editors (yaml-language-server) and CI (check-jsonschema) use it; `tcplab schema` prints
it and schema/scenario.schema.json is that output, committed. Every key list, name list
and pattern comes from the tables the loader checks against (keys.py,
tcplab/core/segments.py, tcplab/core/faults.py, tcplab/units.py), so a key added to the
loader is in the schema at the next regeneration. Descriptions are
the rows and paragraphs of docs/scenario-format.md (left out when the docs are not
beside the package, e.g. in a wheel).

The loader stays the judge: the schema catches shapes (unknown keys, wrong types, names
and ranges), not the rules that span keys (an expected call must be among the host's
steps, a fault shadowed by an earlier one, offsets that decrease, ...).

This module puts the schema together and holds its top level, `hosts:` and the apps'
steps; `faults:` is schema_faults.py's, `expect:` schema_expect.py's, the descriptions
schema_docs.py's, and the pieces they all use schema_blocks.py's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tcplab.core.scenario import APP_HOSTS, HOSTS
from tcplab.core.segments import ALIASES, VOCABULARY
from tcplab.format import keys
from tcplab.format.schema_blocks import Schema, int_range, keyed, ref
from tcplab.format.schema_docs import described, doc_descriptions
from tcplab.format.schema_expect import expect
from tcplab.format.schema_faults import fault, forge_fault, host_fault, segment_fault
from tcplab.units import DURATION

DOCS = Path(__file__).resolve().parents[2] / "docs" / "scenario-format.md"
COMMITTED = Path(__file__).resolve().parents[2] / "schema" / "scenario.schema.json"
REGENERATE = ".venv/bin/python -m tcplab schema > schema/scenario.schema.json"

# The schema declares draft 2020-12 but keeps to keywords draft-07 has too (if/then,
# const, propertyNames, contains; $ref never beside another check): yaml-language-server
# validates with draft-07 semantics, and so it judges files as check-jsonschema does.
_ONE_LINE = {"not": {"pattern": "[\\r\\n\\x00]"}}  # the loader's one_line=True
# Which host may make a call (the loader's steps() rules); other calls are anyone's.
_CALL_HOST = {"listen": "server", "flood": "client"}


# --- the pieces ---------------------------------------------------------------------------


def _defs(docs: dict[str, str]) -> Schema:
    segments = [*VOCABULARY, *ALIASES]
    states = [*keys.STATES, *keys.STATE_ALIASES]
    return {
        "duration": described(
            {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": DURATION.pattern}]},
            docs,
            "durations",
        ),
        # Above 0 as well: a number > 0, or text with a non-zero digit before any unit.
        "positiveDuration": {
            "allOf": [
                ref("duration"),
                {
                    "anyOf": [
                        {"type": "number", "exclusiveMinimum": 0},
                        {"type": "string", "pattern": "^\\s*\\.?[0-9]*[1-9]"},
                        {"type": "string", "pattern": "^\\s*[0-9]+\\.[0-9]*[1-9]"},
                    ]
                },
            ]
        },
        "percent": {
            "description": "12.5% or a ratio such as 0.125",
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": 10},
                {
                    "type": "string",
                    "pattern": "^\\s*([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+)?\\s*%\\s*$",
                },
            ],
        },
        "segment": {
            "description": "; ".join(
                f"{name}{' (' + ', '.join(aliases) + ')' if aliases else ''}"
                f": {docs.get(f'name:{name}', desc)}"
                for name, (aliases, _s, _q, desc) in VOCABULARY.items()
            ),
            "enum": segments,
        },
        "result": {
            "description": docs.get("<call>", "ok or an errno name"),
            "type": "string",
            "enum": ["ok", *sorted(keys.ERRNO_NAMES)],
        },
        # Every call's result, or how many calls ended each way ({ok: 10, EAGAIN: 5}).
        "callResults": {
            "anyOf": [
                ref("result"),
                {
                    "type": "object",
                    "minProperties": 1,
                    "propertyNames": ref("result"),
                    "additionalProperties": {"type": "integer", "minimum": 0},
                },
            ]
        },
        # The loader folds case, '-' for '_' and a TCP_ prefix before looking names up.
        "state": {
            "type": "string",
            "anyOf": [
                {"enum": list(keys.STATES)},
                {
                    "pattern": "^\\s*("
                    + _any_case("TCP_")
                    + ")?("
                    + "|".join(map(_any_case, states))
                    + ")\\s*$"
                },
            ],
        },
        # sockets and lasts: CLOSE is where a socket is gone, never counted nor left.
        "stayState": {
            "allOf": [
                ref("state"),
                {
                    "not": {
                        "pattern": "^\\s*("
                        + _any_case("TCP_")
                        + ")?("
                        + _any_case("CLOSE")
                        + "|"
                        + _any_case("CLOSED")
                        + ")\\s*$"
                    }
                },
            ]
        },
        "timing": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {key: _TIMING.get(key, {}) for key in keys.TIMING_KEYS},
        },
        **{f"{host}Step": _step(host, docs) for host in APP_HOSTS},
        **{f"{host}RepeatedStep": _step(host, docs, repeated=True) for host in APP_HOSTS},
        "segmentFault": segment_fault(docs),
        "hostFault": host_fault(docs),
        "forgeFault": forge_fault(docs),
    }


def _any_case(word: str) -> str:
    return "".join(
        f"[{c.upper()}{c.lower()}]" if c.isalpha() else "[_-]" if c == "_" else re.escape(c) for c in word
    )


_TIMING = {
    "intervals": {"type": "array", "items": ref("duration")},
    "offsets": {"type": "array", "items": ref("duration")},
    "count": {"type": "integer", "minimum": 0},
}


_PORT = int_range(1, 65535)
# `keepalive: on`: YAML 1.1 (PyYAML, the loader) reads these as true; editors that read
# YAML 1.2 see text, so the words are accepted as well.
_YAML11_TRUE = ["on", "On", "ON", "yes", "Yes", "YES", "y", "Y", "true", "True", "TRUE"]


def _args(host: str) -> dict[str, Schema]:
    """Argument schemas of the calls docs/scenario-format.md describes; a call added to
    the loader without one here still gets a schema from its keys.STEP_FORMS entry."""
    peer = "server" if host == "client" else "client"
    return {
        "listen": {
            "anyOf": [
                _PORT,
                keyed(keys.LISTEN_KEYS, {"port": _PORT, "backlog": int_range(0, 65535)}, ("port",)),
            ]
        },
        "connect": {
            "type": "string",
            "pattern": f"^{peer}:0*([1-9][0-9]{{0,3}}|[1-5][0-9]{{4}}|"
            "6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$",
        },
        "send": {"anyOf": [int_range(0, keys.MAX_SEND), {"type": "string"}]},
        "recv": int_range(1),
        "sleep": ref("duration"),
        "shutdown": {"enum": list(keys.SHUTDOWN_HOWS)},
        "bind": _PORT,
        "linger": int_range(0, 3600),
        "keepalive": {
            "anyOf": [
                {"const": True},
                {"enum": _YAML11_TRUE},
                keyed(
                    keys.KEEPALIVE_KEYS,
                    {
                        "idle": ref("positiveDuration"),
                        "interval": ref("positiveDuration"),
                        "count": int_range(1, 127),
                    },
                ),
            ]
        },
        "syncnt": int_range(1, 127),
        "rcvtimeo": ref("positiveDuration"),
        "repeat": keyed(
            keys.REPEAT_KEYS,
            {
                "times": int_range(1, 1000),
                "parallel": {"type": "boolean"},
                "steps": {"type": "array", "minItems": 1, "items": ref(f"{host}RepeatedStep")},
            },
            ("times", "steps"),
        ),
        "flood": keyed(keys.FLOOD_KEYS, {"syns": int_range(1, 10000), "port": _PORT}, keys.FLOOD_KEYS),
    }


def _step_arg(call: str, host: str, docs: dict[str, str]) -> Schema:
    form = keys.STEP_FORMS[call]
    if not form.takes_arg:
        arg: Schema = {"type": "null"}
    else:
        arg = _args(host).get(call, {})
        if form.bare_ok:
            arg = {"anyOf": [{"type": "null"}, arg]} if arg else {}
    return {"description": docs.get(f"step:{call}", f"e.g. {form.example}"), **arg}


def _step(host: str, docs: dict[str, str], repeated: bool = False) -> Schema:
    calls = [
        c
        for c in keys.STEP_FORMS
        if _CALL_HOST.get(c, host) == host and not (repeated and c in keys.NOT_REPEATED)
    ]
    return {
        "anyOf": [
            {"enum": [c for c in calls if keys.STEP_FORMS[c].bare_ok]},
            {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 1,
                "additionalProperties": False,
                "properties": {c: _step_arg(c, host, docs) for c in calls},
            },
        ]
    }


def _steps(host: str) -> Schema:
    steps: Schema = {"type": "array", "minItems": 1, "items": ref(f"{host}Step")}
    if host == "client":  # the loader's "the client needs a connect step" (repeats count)
        steps["contains"] = {
            "anyOf": [
                {"type": "object", "required": ["connect"]},
                {
                    "type": "object",
                    "required": ["repeat"],
                    "properties": {
                        "repeat": {"properties": {"steps": {"contains": {"required": ["connect"]}}}}
                    },
                },
            ]
        }
    return steps


def _hosts() -> Schema:
    sysctls = {
        "type": "object",
        "propertyNames": {"pattern": f"^{keys.SYSCTL.pattern}$"},
        "additionalProperties": {
            "anyOf": [{"type": "integer"}, {"type": "string", "pattern": "\\S", **_ONE_LINE}]
        },
    }
    host = {
        "type": "object",
        "additionalProperties": False,
        "properties": {k: {"sysctls": sysctls}.get(k, {}) for k in keys.HOST_KEYS},
    }
    return {"type": "object", "additionalProperties": False, "properties": {h: host for h in HOSTS}}


def _top(docs: dict[str, str]) -> Schema:
    return {
        "scenario": {"type": "string", "pattern": "\\S", **_ONE_LINE},
        "summary": {"type": "string", "pattern": "\\S"},
        "claims": {
            "type": "array",
            "uniqueItems": True,
            "items": {"type": "string", "pattern": f"^{keys.CLAIM.pattern}$"},
        },
        "hosts": _hosts(),
        "apps": {
            "type": "object",
            "additionalProperties": False,
            "required": list(APP_HOSTS),
            "properties": {h: _steps(h) for h in APP_HOSTS},
        },
        "faults": {"type": "array", "items": fault()},
        "expect": expect(docs),
        "timeout": ref("positiveDuration"),
        "settle": ref("duration"),
        "seed": {"type": "integer", "minimum": 0, "maximum": keys.MAX_SEED},
        "$schema": {"type": "string"},
    }


def build(docs_text: str | None = None) -> Schema:
    """The schema; descriptions from `docs_text` (default: docs/scenario-format.md)."""
    if docs_text is None:
        docs_text = DOCS.read_text(encoding="utf-8") if DOCS.is_file() else ""
    docs = doc_descriptions(docs_text)
    known = _top(docs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "tcplab scenario",
        "description": "One TCP behaviour to break and judge on a real Linux kernel "
        "(docs/scenario-format.md). Generated by `tcplab schema`.",
        "type": "object",
        "required": ["scenario", "summary", "apps"],
        "additionalProperties": False,
        "properties": {k: described(known.get(k, {}), docs, k) for k in keys.TOP_KEYS},
        "$defs": _defs(docs),
    }


def schema_text() -> str:
    """What `tcplab schema` prints and schema/scenario.schema.json holds."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
