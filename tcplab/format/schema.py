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
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tcplab.core.faults import DELAY, FORGES, HOST_FAULTS, RANDOM_ACTIONS
from tcplab.core.scenario import APP_HOSTS, HOSTS
from tcplab.core.segments import ALIASES, VOCABULARY, senders
from tcplab.format import keys
from tcplab.units import DURATION

DOCS = Path(__file__).resolve().parents[2] / "docs" / "scenario-format.md"
COMMITTED = Path(__file__).resolve().parents[2] / "schema" / "scenario.schema.json"
REGENERATE = ".venv/bin/python -m tcplab schema > schema/scenario.schema.json"

Schema = dict[str, Any]
# The schema declares draft 2020-12 but keeps to keywords draft-07 has too (if/then,
# const, propertyNames, contains; $ref never beside another check): yaml-language-server
# validates with draft-07 semantics, and so it judges files as check-jsonschema does.
_ONE_LINE = {"not": {"pattern": "[\\r\\n\\x00]"}}  # the loader's one_line=True
# Which host may make a call (the loader's steps() rules); other calls are anyone's.
_CALL_HOST = {"listen": "server", "flood": "client"}
# Top-level keys the docs describe only in their example's comments, or not at all.
_FALLBACK = {"timeout": "the whole run is stopped after this long (default 60 s)",
             "settle": "keep observing this long after both apps finished (default 1 s)",
             "$schema": "for editors; ignored by tcplab"}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/$defs/{name}"}


# `at` and `until` of the time-window faults (the docs describe them in prose only).
_TIME = {"description": "seconds since the apps started (the record's t = 0), below "
                        "timeout", **_ref("duration")}


# --- descriptions from docs/scenario-format.md ------------------------------------------

def _plain(markdown: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)  # [text](link) -> text
    return text.replace("\\|", "|").replace("`", "").strip()


def doc_descriptions(text: str) -> dict[str, str]:
    """Descriptions by key: each table row's first-cell keys (`drop: NAME` -> drop, with
    its other cells as the description; the first row naming a key wins), each `## key`
    section's first paragraph (unless it only leads into a table, ending in ':'), and the
    comments of the format example (`scenario: x  # name`). Keys the docs give in several
    forms (the segment table) all get the row. A row is also filed under its table's
    first header cell, `step:keepalive` apart from `name:keepalive` (a segment)."""
    found: dict[str, str] = {}
    header: list[str] = []
    scope = ""
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) < 2:
            scope = ""
            continue
        if all(set(c) <= set("-: ") for c in cells):  # the separator under the header
            scope = header[0].lower() if header else ""
            continue
        header = cells
        described = " — ".join(_plain(c) for c in cells[1:])
        for token in re.findall(r"`([^`]+)`", cells[0]):
            key = re.split(r"[:\s]", token.strip(), maxsplit=1)[0]
            found.setdefault(key, described)
            if scope:
                found.setdefault(f"{scope}:{key}", described)
    for name, body in re.findall(r"^## (\S+)\n+((?:.+\n)+)", text, re.M):
        if not body.rstrip().endswith(":"):
            found.setdefault(name.lower(), _plain(" ".join(body.split())))
    for key, comment in re.findall(r"^([a-z$]+):[^#\n]*#\s*(.+)$", text, re.M):
        found.setdefault(key, _plain(comment))
    return found


def _described(schema: Schema, docs: dict[str, str], key: str, scope: str = "") -> Schema:
    """`schema` with the docs' description of `key` (in the table headed `scope`)."""
    text = docs.get(f"{scope}:{key}" if scope else key) or _FALLBACK.get(key)
    return {"description": text, **schema} if text else schema


# --- the pieces ---------------------------------------------------------------------------

def _defs(docs: dict[str, str]) -> Schema:
    segments = [*VOCABULARY, *ALIASES]
    states = [*keys.STATES, *keys.STATE_ALIASES]
    return {
        "duration": _described({"anyOf": [
            {"type": "number", "minimum": 0},
            {"type": "string", "pattern": DURATION.pattern}]}, docs, "durations"),
        # Above 0 as well: a number > 0, or text with a non-zero digit before any unit.
        "positiveDuration": {"allOf": [_ref("duration"), {"anyOf": [
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "string", "pattern": "^\\s*\\.?[0-9]*[1-9]"},
            {"type": "string", "pattern": "^\\s*[0-9]+\\.[0-9]*[1-9]"}]}]},
        "percent": {"description": "12.5% or a ratio such as 0.125", "anyOf": [
            {"type": "number", "minimum": 0, "maximum": 10},
            {"type": "string",
             "pattern": "^\\s*([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+)?\\s*%\\s*$"}]},
        "segment": {
            "description": "; ".join(f"{name}{' (' + ', '.join(aliases) + ')' if aliases else ''}"
                                     f": {docs.get(f'name:{name}', desc)}"
                                     for name, (aliases, _s, _q, desc) in VOCABULARY.items()),
            "enum": segments},
        "result": {"description": docs.get("<call>", "ok or an errno name"), "type": "string",
                   "enum": ["ok", *sorted(keys.ERRNO_NAMES)]},
        # Every call's result, or how many calls ended each way ({ok: 10, EAGAIN: 5}).
        "callResults": {"anyOf": [_ref("result"), {
            "type": "object", "minProperties": 1, "propertyNames": _ref("result"),
            "additionalProperties": {"type": "integer", "minimum": 0}}]},
        # The loader folds case, '-' for '_' and a TCP_ prefix before looking names up.
        "state": {"type": "string", "anyOf": [{"enum": list(keys.STATES)}, {
            "pattern": "^\\s*(" + _any_case("TCP_") + ")?("
                       + "|".join(map(_any_case, states)) + ")\\s*$"}]},
        # sockets and lasts: CLOSE is where a socket is gone, never counted nor left.
        "stayState": {"allOf": [_ref("state"), {"not": {
            "pattern": "^\\s*(" + _any_case("TCP_") + ")?(" + _any_case("CLOSE") + "|"
                       + _any_case("CLOSED") + ")\\s*$"}}]},
        "timing": {"type": "object", "minProperties": 1, "additionalProperties": False,
                   "properties": {key: _TIMING.get(key, {}) for key in keys.TIMING_KEYS}},
        **{f"{host}Step": _step(host, docs) for host in APP_HOSTS},
        **{f"{host}RepeatedStep": _step(host, docs, repeated=True) for host in APP_HOSTS},
        "segmentFault": _segment_fault(docs),
        "hostFault": _host_fault(docs),
        "forgeFault": _forge(docs),
    }


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else "[_-]" if c == "_" else
                   re.escape(c) for c in word)


_TIMING = {"intervals": {"type": "array", "items": _ref("duration")},
           "offsets": {"type": "array", "items": _ref("duration")},
           "count": {"type": "integer", "minimum": 0}}


def _int(lo: int, hi: int | None = None) -> Schema:
    return {"type": "integer", "minimum": lo, **({"maximum": hi} if hi is not None else {})}


def _object(props: Schema, required: tuple[str, ...] = ()) -> Schema:
    return {"type": "object", "additionalProperties": False, "properties": props,
            **({"required": list(required)} if required else {})}


def _keyed(names: tuple[str, ...], known: Schema, required: tuple[str, ...] = ()) -> Schema:
    """A mapping with exactly the loader's key `names`; a key without a schema in `known`
    (added to the loader since) takes any value."""
    return _object({k: known.get(k, {}) for k in names}, required)


_PORT = _int(1, 65535)
# `keepalive: on`: YAML 1.1 (PyYAML, the loader) reads these as true; editors that read
# YAML 1.2 see text, so the words are accepted as well.
_YAML11_TRUE = ["on", "On", "ON", "yes", "Yes", "YES", "y", "Y", "true", "True", "TRUE"]


def _args(host: str) -> dict[str, Schema]:
    """Argument schemas of the calls docs/scenario-format.md describes; a call added to
    the loader without one here still gets a schema from its keys.STEP_FORMS entry."""
    peer = "server" if host == "client" else "client"
    return {
        "listen": {"anyOf": [_PORT, _keyed(keys.LISTEN_KEYS, {
            "port": _PORT, "backlog": _int(0, 65535)}, ("port",))]},
        "connect": {"type": "string", "pattern": f"^{peer}:0*([1-9][0-9]{{0,3}}|[1-5][0-9]{{4}}|"
                    "6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"},
        "send": {"anyOf": [_int(0, keys.MAX_SEND), {"type": "string"}]},
        "recv": _int(1),
        "sleep": _ref("duration"),
        "shutdown": {"enum": list(keys.SHUTDOWN_HOWS)},
        "bind": _PORT,
        "linger": _int(0, 3600),
        "keepalive": {"anyOf": [{"const": True}, {"enum": _YAML11_TRUE}, _keyed(
            keys.KEEPALIVE_KEYS, {"idle": _ref("positiveDuration"),
                                     "interval": _ref("positiveDuration"),
                                     "count": _int(1, 127)})]},
        "syncnt": _int(1, 127),
        "rcvtimeo": _ref("positiveDuration"),
        "repeat": _keyed(keys.REPEAT_KEYS, {
            "times": _int(1, 1000), "parallel": {"type": "boolean"},
            "steps": {"type": "array", "minItems": 1, "items": _ref(f"{host}RepeatedStep")}},
            ("times", "steps")),
        "flood": _keyed(keys.FLOOD_KEYS, {"syns": _int(1, 10000), "port": _PORT},
                        keys.FLOOD_KEYS),
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
    calls = [c for c in keys.STEP_FORMS if _CALL_HOST.get(c, host) == host
             and not (repeated and c in keys.NOT_REPEATED)]
    return {"anyOf": [
        {"enum": [c for c in calls if keys.STEP_FORMS[c].bare_ok]},
        {"type": "object", "minProperties": 1, "maxProperties": 1,
         "additionalProperties": False,
         "properties": {c: _step_arg(c, host, docs) for c in calls}}]}


def _steps(host: str) -> Schema:
    steps: Schema = {"type": "array", "minItems": 1, "items": _ref(f"{host}Step")}
    if host == "client":  # the loader's "the client needs a connect step" (repeats count)
        steps["contains"] = {"anyOf": [
            {"type": "object", "required": ["connect"]},
            {"type": "object", "required": ["repeat"], "properties": {"repeat": {
                "properties": {"steps": {"contains": {"required": ["connect"]}}}}}}]}
    return steps


def _nth() -> Schema:
    return {"anyOf": [{"const": "all"}, _int(1, 1000),
                      {"type": "array", "minItems": 1, "uniqueItems": True,
                       "items": _int(1, 1000)}]}


def _only_from(key: str) -> list[Schema]:
    """`from:` a side that never sends the segment named in `key` can never match."""
    rules = []
    for host in APP_HOSTS:
        only = [n for n in (*VOCABULARY, *ALIASES) if senders(ALIASES.get(n, n)) == {host}]
        rules.append({"if": {"required": [key, "from"], "properties": {key: {"enum": only}}},
                      "then": {"properties": {"from": {"const": host}}}})
    return rules


def _segment_fault(docs: dict[str, str]) -> Schema:
    actions = keys.FAULT_ACTIONS
    known = {action: _ref("segment") for action in actions} | {
        "nth": _nth(), "from": {"enum": list(APP_HOSTS)}, "by": _ref("positiveDuration"),
        "probability": {"anyOf": [  # above 0 (never acting is a mistake), at most 100 %
            {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            {"type": "string", "pattern": "^\\s*(100(\\.0*)?|[0-9]?[0-9](\\.[0-9]*)?|\\.[0-9]+)"
                                          "\\s*%\\s*$", "not": {"pattern": "^\\s*0*\\.?0*\\s*%"}}]},
        "jitter": _ref("positiveDuration")}
    rules = [rule for action in actions for rule in _only_from(action)]
    # The loader's rules: by only where a delay or a copy's lag means something; the MSS
    # option rides on the handshake's SYNs only.
    for action in ("drop", "strip-mss"):
        if action in actions:
            rules.append({"if": {"required": [action]}, "then": {"not": {"required": ["by"]}}})
    # The dice: a probability on drop, delay, duplicate; a jitter on a delay only.
    for key, allowed in (("probability", RANDOM_ACTIONS), ("jitter", (DELAY,))):
        rules.append({"if": {"required": [key]},
                      "then": {"anyOf": [{"required": [a]} for a in allowed]}})
    if "delay" in actions:  # (if/then, not dependentRequired: draft-07 has no such keyword)
        rules.append({"if": {"required": ["delay"]}, "then": {"required": ["by"]}})
    if "strip-mss" in actions:
        mss = [n for n in (*VOCABULARY, *ALIASES) if ALIASES.get(n, n) in ("syn", "syn-ack")]
        rules.append({"properties": {"strip-mss": {"enum": mss}}})
    fault = _object({k: _described(known.get(k, {}), docs, k, "key")
                     for k in keys.FAULT_KEYS})
    return fault | {"oneOf": [{"required": [a]} for a in actions], "allOf": rules}


def _host_fault(docs: dict[str, str]) -> Schema:
    props = {action: _described({"enum": list(hosts)}, docs, action, "entry")
             for action, (hosts, *_rest) in HOST_FAULTS.items()}
    props |= {"at": _TIME, "until": _TIME}
    rules = []
    for action, (_hosts, takes_until, needs_until, _what) in HOST_FAULTS.items():
        if needs_until:
            rules.append({"if": {"required": [action]}, "then": {"required": ["until"]}})
        elif not takes_until:
            rules.append({"if": {"required": [action]},
                          "then": {"not": {"required": ["until"]}}})
    fault = _object({k: props.get(k, {}) for k in keys.HOST_FAULT_KEYS}, ("at",))
    return fault | {"oneOf": [{"required": [a]} for a in HOST_FAULTS], "allOf": rules}


def _forge(docs: dict[str, str]) -> Schema:
    known = {"forge": {"enum": list(FORGES)}, "to": {"enum": list(APP_HOSTS)},
             "at": _TIME, "after": _ref("segment"), "nth": _nth(),
             "from": {"enum": list(APP_HOSTS)}}
    others = [k for k in keys.FORGE_KEYS if k != "forge"]
    # nth and from mean what they mean on a segment fault; the rest is the forge's row.
    forge = _object({k: _described(known.get(k, {}), docs, k,
                                   "key" if k in keys.FAULT_KEYS else "entry")
                     for k in keys.FORGE_KEYS}, ("forge",))
    # The loader's rules: stale-syn stands alone; rst goes `to` a host, at a time (once)
    # or after a named segment (nth, from).
    return forge | {"allOf": [
        {"if": {"properties": {"forge": {"const": "stale-syn"}}},
         "then": {"not": {"anyOf": [{"required": [k]} for k in others]}},
         "else": {"required": ["to"], "oneOf": [
             {"required": ["at"], "not": {"anyOf": [{"required": ["nth"]},
                                                    {"required": ["from"]}]}},
             {"required": ["after"]}]}},
        *_only_from("after")]}


def _fault() -> Schema:
    """Which kind a `faults:` item is goes by its keys, as format/faults.py's action_of()."""
    return {"if": {"type": "object", "anyOf": [{"required": ["forge"]}]},
            "then": _ref("forgeFault"),
            "else": {"if": {"type": "object",
                            "anyOf": [{"required": [a]} for a in HOST_FAULTS]},
                     "then": _ref("hostFault"), "else": _ref("segmentFault")}}


def _host_expect(host: str, docs: dict[str, str]) -> Schema:
    sendable = [n for n in (*VOCABULARY, *ALIASES) if host in senders(ALIASES.get(n, n))]
    per_segment = {"type": "object", "propertyNames": {"enum": sendable}}
    known = {"retransmits": {**per_segment, "additionalProperties": _ref("timing")},
             "sends": {**per_segment,
                       "additionalProperties": {"type": "integer", "minimum": 0}},
             "gives_up_after": _ref("duration"),
             "resent": {**per_segment, "propertyNames": {"enum": [
                 n for n in sendable if VOCABULARY[ALIASES.get(n, n)][2]]},
                 "additionalProperties": {"anyOf": [
                     {"type": "integer", "minimum": 0},
                     _keyed(keys.BOUND_KEYS, {k: {"type": "integer", "minimum": 0}
                                              for k in keys.BOUND_KEYS}, ())]}},
             "received": {"type": "integer", "minimum": 0},
             "states": {"type": "array", "minItems": 1, "items": _ref("state")},
             "largest": {**per_segment,
                         "additionalProperties": {"type": "integer", "minimum": 0,
                                                  "maximum": 65535}},
             "sockets": {"type": "object", "propertyNames": _ref("stayState"),
                         "additionalProperties": {"type": "integer", "minimum": 0}},
             "lasts": {"type": "object", "propertyNames": _ref("stayState"),
                       "additionalProperties": {"anyOf": [
                           _ref("duration"), {"const": "forever"},
                           _keyed(keys.LASTING_KEYS, {"at_least": _ref("duration")},
                                  keys.LASTING_KEYS)]}},
             # CALL: a segment the peer sends (the host receives it).
             "returns_after": {"type": "object", "propertyNames": {"enum": list(
                 keys.STEP_FORMS)}, "additionalProperties": {"enum": [
                     n for n in (*VOCABULARY, *ALIASES)
                     if senders(ALIASES.get(n, n)) - {host}]}}}
    props = {key: _described(_ref("callResults"), docs, "<call>", "key")
             if key in keys.EXPECTABLE_CALLS
             else _described(known.get(key, {}), docs, key, "key")
             for key in keys.HOST_EXPECT_KEYS}
    return {"type": "object", "additionalProperties": False, "properties": props}


# `expect.kernels` keys: one or two bounds, ">= 6.5", "< 6.13", ">= 6.5, < 6.13"
# (core/kernel_expect.py, which also rejects an empty range).
_BOUND = r"\s*(>=|<)\s*\d+\.\d+\s*"
KERNEL_RANGE = f"^{_BOUND}(,{_BOUND})?$"


def _expect(docs: dict[str, str]) -> Schema:
    known = {"model": {"enum": list(keys.MODELS)},
             "tolerance": {"type": "object", "additionalProperties": False, "properties": {
                 key: {"abs": _ref("duration"), "rel": _ref("percent")}.get(key, {})
                 for key in keys.TOLERANCE_KEYS}},
             "kernels": {"type": "object", "propertyNames": {"pattern": KERNEL_RANGE},
                         "additionalProperties": {
                             "type": "object", "additionalProperties": False, "minProperties": 1,
                             "properties": {h: _host_expect(h, docs) for h in APP_HOSTS}}}}
    props = {key: _host_expect(key, docs) if key in APP_HOSTS
             else _described(known.get(key, {}), docs, key) for key in keys.EXPECT_KEYS}
    return {"type": "object", "additionalProperties": False, "properties": props}


def _hosts() -> Schema:
    sysctls = {"type": "object",
               "propertyNames": {"pattern": f"^{keys.SYSCTL.pattern}$"},
               "additionalProperties": {"anyOf": [
                   {"type": "integer"}, {"type": "string", "pattern": "\\S", **_ONE_LINE}]}}
    host = {"type": "object", "additionalProperties": False,
            "properties": {k: {"sysctls": sysctls}.get(k, {}) for k in keys.HOST_KEYS}}
    return {"type": "object", "additionalProperties": False,
            "properties": {h: host for h in HOSTS}}


def _top(docs: dict[str, str]) -> Schema:
    return {
        "scenario": {"type": "string", "pattern": "\\S", **_ONE_LINE},
        "summary": {"type": "string", "pattern": "\\S"},
        "claims": {"type": "array", "uniqueItems": True,
                   "items": {"type": "string", "pattern": f"^{keys.CLAIM.pattern}$"}},
        "hosts": _hosts(),
        "apps": {"type": "object", "additionalProperties": False,
                 "required": list(APP_HOSTS),
                 "properties": {h: _steps(h) for h in APP_HOSTS}},
        "faults": {"type": "array", "items": _fault()},
        "expect": _expect(docs),
        "timeout": _ref("positiveDuration"),
        "settle": _ref("duration"),
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
        "properties": {k: _described(known.get(k, {}), docs, k) for k in keys.TOP_KEYS},
        "$defs": _defs(docs),
    }


def schema_text() -> str:
    """What `tcplab schema` prints and schema/scenario.schema.json holds."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
