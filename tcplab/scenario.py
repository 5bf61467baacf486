"""Scenario files: YAML text -> tcplab.core.scenario.Scenario, or one ScenarioError.

We compose() the YAML into a node tree instead of safe_load()ing it: every node keeps its
line, so every error can say file:line: key: what was expected and what was found.
Scalars become Python values one at a time, from the tag PyYAML's safe resolver gave
them, and only where the format wants a value; nothing else is ever constructed, so
alias bombs and odd tags cost nothing and cannot raise anything but ScenarioError.
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tcplab.core.scenario import (APP_HOSTS, HOSTS, STEP_CALLS, Expect, Fault, HostExpect,
                                  Scenario, Step, Timing, Tolerance)
from tcplab.core.segments import ALIASES, VOCABULARY, canonical_name, senders
from tcplab.errors import ScenarioError
from tcplab.units import parse_duration, parse_percent

__all__ = ["discover", "load_scenario", "load_text"]

_TOP_KEYS = ("scenario", "summary", "claims", "hosts", "apps", "faults", "expect", "timeout",
             "settle", "$schema")  # $schema: for editors, ignored
_EXPECTABLE_CALLS = tuple(c for c in STEP_CALLS if c != "sleep")
_HOST_EXPECT_KEYS = _EXPECTABLE_CALLS + ("retransmits", "sends", "gives_up_after", "states")
_CLAIM = re.compile(r"[HTF][0-9]+")
_SYSCTL = re.compile(r"net\.[a-z0-9_.\-]+")  # only net.* sysctls are per network namespace
_CONNECT = re.compile(r"([A-Za-z0-9_.\-]+):([0-9]+)")
_ERRNO_NAMES = frozenset(errno.errorcode.values())  # the names the app agent reports
_STATES = ("CLOSE", "LISTEN", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2",
           "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT")
# Textbook and RFC spellings -> the kernel's names (what inet_diag and the tracepoint say).
_STATE_ALIASES = {"CLOSED": "CLOSE", "SYN_RCVD": "SYN_RECV", "SYN_RECEIVED": "SYN_RECV",
                  "FIN_WAIT_1": "FIN_WAIT1", "FIN_WAIT_2": "FIN_WAIT2"}
_MAX_SEND = 16 * 1024 * 1024

# --- scalars and messages ---------------------------------------------------------------

_TAG = "tag:yaml.org,2002:"
_NOT_PLAIN = object()  # a list, a mapping, or a scalar that is not null/bool/int/float/str
_c = yaml.constructor.SafeConstructor()
_BUILD: dict[str, Callable[[Node], Any]] = {
    _TAG + "null": lambda node: None, _TAG + "bool": _c.construct_yaml_bool,
    _TAG + "int": _c.construct_yaml_int, _TAG + "float": _c.construct_yaml_float,
    _TAG + "str": lambda node: node.value,
}


def _value(node: Node) -> Any:
    """The Python value of a scalar node, or _NOT_PLAIN. Explicit tags can carry text the
    constructor chokes on (`!!int abc`, `!!bool maybe`): that is just not a value."""
    build = _BUILD.get(node.tag) if isinstance(node, ScalarNode) else None
    try:
        return build(node) if build else _NOT_PLAIN
    except (ValueError, KeyError, TypeError, ArithmeticError, yaml.YAMLError):
        return _NOT_PLAIN


def _show(text: str, limit: int = 50) -> str:
    """repr() keeps a message on one line; long values are cut."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[:limit - 4] + "...'"


def _found(node: Node) -> str:
    """What the file has at `node`, for 'expected X, found Y'."""
    if not isinstance(node, ScalarNode):
        return "a mapping" if isinstance(node, MappingNode) else "a list"
    value = _value(node)
    if value is None:
        return "nothing (null)"
    if isinstance(value, str):
        return f"the string {_show(value)}"
    raw = _show(node.value)[1:-1]
    if isinstance(value, bool):
        return f"the boolean {raw}"
    if isinstance(value, (int, float)):
        return f"the number {raw}"
    if node.tag.startswith(_TAG):  # a timestamp, binary, set, ... or a bad !!int
        return f"the {node.tag.removeprefix(_TAG)} {_show(node.value)}"
    return f"{_show(node.value)} tagged {_show(node.tag)}"


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _join(prefix: str, name: str) -> str:
    """A key path; odd names (newlines, empty, very long) are quoted to keep one line."""
    if not name.isprintable() or not name.strip() or len(name) > 50:
        name = _show(name)
    return f"{prefix}.{name}" if prefix else name


def _hint(word: str, choices: Iterable[str]) -> str:
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean {lowered[close[0]]!r}?" if close else ""


def _covers(drop: Fault, later: Fault) -> bool:
    """Does the earlier fault `drop` remove every segment `later` could ever act on?"""
    def sides(f: Fault) -> frozenset[str]:
        return frozenset({f.sender}) if f.sender else senders(f.segment)
    return (drop.action == "drop" and drop.segment == later.segment
            and sides(later) <= sides(drop)
            and (drop.nth is None or (later.nth is not None and set(later.nth) <= set(drop.nth))))


# --- the reader -----------------------------------------------------------------------------

Entries = dict[str, tuple[Node, Node]]  # key -> (key node, value node), in file order


class _Reader:
    """Walks the node tree along the format; every check fails with file, line and key."""

    def __init__(self, path: str):
        self.path = path
        self.seen: dict[int, Entries] = {}  # id(mapping node) -> entries: merges stay linear

    def fail(self, where: Node | int, key: str, message: str) -> NoReturn:
        raise ScenarioError(self.path, where if isinstance(where, int) else _line(where), key,
                            message)

    # generic shapes

    def entries(self, node: Node, key: str, inside: frozenset[int] = frozenset()) -> Entries:
        """A mapping's entries. Duplicate keys are errors (PyYAML would silently keep the
        last); merge keys (<<: *anchor) are expanded, the mapping's own keys winning."""
        if not isinstance(node, MappingNode):
            self.fail(node, key, f"expected a mapping, found {_found(node)}")
        if id(node) in inside:
            self.fail(node, key, "a merge key (<<) includes the mapping it is part of")
        if id(node) in self.seen:
            return self.seen[id(node)]
        own: Entries = {}
        merged: Entries = {}
        for knode, vnode in node.value:
            if knode.tag == _TAG + "merge":
                for source in vnode.value if isinstance(vnode, SequenceNode) else [vnode]:
                    for name, pair in self.entries(source, key, inside | {id(node)}).items():
                        merged.setdefault(name, pair)
            elif not isinstance(knode, ScalarNode):
                self.fail(knode, key, f"expected a name as key, found {_found(knode)}")
            elif knode.value in own:
                self.fail(knode, _join(key, knode.value),
                          f"duplicate key (first given at line {_line(own[knode.value][0])})")
            else:
                own[knode.value] = (knode, vnode)
        self.seen[id(node)] = merged | own
        return merged | own

    def mapping(self, node: Node, key: str, allowed: tuple[str, ...],
                required: tuple[str, ...] = ()) -> Entries:
        found = self.entries(node, key)
        for name, (knode, _) in found.items():
            if name not in allowed:
                listed = ", ".join(a for a in allowed if a != "$schema")
                self.fail(knode, _join(key, name), f"unknown key {_show(name)}"
                                                   f"{_hint(name, allowed)} (expected one of: {listed})")
        for name in required:
            if name not in found:
                self.fail(node, _join(key, name), "missing")
        return found

    def seq(self, node: Node, key: str, nonempty: bool = False) -> list[Node]:
        if not isinstance(node, SequenceNode):
            self.fail(node, key, f"expected a list, found {_found(node)}")
        if nonempty and not node.value:
            self.fail(node, key, "expected a non-empty list, found an empty one")
        return node.value

    def string(self, node: Node, key: str, what: str, one_line: bool = False) -> str:
        value = _value(node)
        if not isinstance(value, str) or (one_line and (
                not value.strip() or any(c in value for c in "\r\n\0"))):
            self.fail(node, key, f"expected {what}, found {_found(node)}")
        return value

    def choice(self, node: Node, key: str, choices: tuple[str, ...]) -> str:
        text = self.string(node, key, " or ".join(choices))
        if text not in choices:
            self.fail(node, key, f"expected {' or '.join(choices)}, found {_found(node)}"
                                 f"{_hint(text, choices)}")
        return text

    def integer(self, node: Node, key: str, lo: int, hi: int | None = None,
                what: str | None = None) -> int:
        value = _value(node)
        what = what or (f"an integer from {lo} to {hi}" if hi is not None else f"an integer >= {lo}")
        if type(value) is not int:  # bool is an int subclass: `yes` must not pass as 1
            quoted = isinstance(value, str) and value.strip().lstrip("+-").isdigit()
            self.fail(node, key, f"expected {what}, found {_found(node)}"
                                 + (" (remove the quotes)" if quoted else ""))
        if value < lo or (hi is not None and value > hi):
            self.fail(node, key, f"expected {what}, found {_show(node.value)[1:-1]}")
        return value

    def duration(self, node: Node, key: str, positive: bool = False,
                 limit: float | None = None, below: bool = False, why: str = "") -> float:
        try:
            seconds = parse_duration(_value(node))
        except (ValueError, OverflowError):  # float() of a 400-digit integer overflows
            self.fail(node, key, f"expected a duration such as 1.5s or 200ms, found {_found(node)}")
        too_long = limit is not None and (seconds >= limit if below else seconds > limit)
        if too_long or (positive and seconds <= 0):
            bounds = ["above 0"] if positive else []
            if limit is not None:
                bounds.append(f"{'below' if below else 'at most'} {limit:g}s{why}")
            self.fail(node, key, f"expected a duration {' and '.join(bounds)}, "
                                 f"found {_show(node.value)[1:-1]}")
        return seconds

    def segment(self, name: str, where: Node, key: str) -> str:
        canonical = canonical_name(name)
        if canonical is None:
            self.fail(where, key, f"unknown segment name {_show(name)}"
                                  f"{_hint(name, (*VOCABULARY, *ALIASES))} (expected one of: "
                                  f"{', '.join(VOCABULARY)}, or an alias: {', '.join(ALIASES)})")
        return canonical

    # the format, top down

    def scenario(self, root: Node) -> Scenario:
        if not isinstance(root, MappingNode):
            self.fail(root, "", "expected a mapping of scenario keys (scenario, summary, apps, "
                                f"...) at the top level, found {_found(root)}")
        top = self.mapping(root, "", _TOP_KEYS, required=("scenario", "summary", "apps"))
        v = {name: pair[1] for name, pair in top.items()}
        name = self.string(v["scenario"], "scenario", "a one-line scenario name", one_line=True)
        summary = self.string(v["summary"], "summary", "a summary")
        if not summary.strip():
            self.fail(v["summary"], "summary", "expected a summary, found an empty string")
        claims = self.claims(v["claims"]) if "claims" in v else ()
        sysctls = self.hosts(v["hosts"]) if "hosts" in v else {host: {} for host in HOSTS}
        # The timeout comes before the rest: a delay's `by` and `gives_up_after` must fit in it.
        timeout = (self.duration(v["timeout"], "timeout", positive=True, limit=3600)
                   if "timeout" in v else 60.0)
        settle = self.duration(v["settle"], "settle", limit=600) if "settle" in v else 1.0
        apps = self.apps(v["apps"])
        return Scenario(
            path=self.path, name=name, summary=summary.strip(), claims=claims, sysctls=sysctls,
            apps=apps, faults=self.faults(v["faults"], timeout) if "faults" in v else (),
            expect=self.expect(v["expect"], apps, timeout) if "expect" in v else Expect(),
            timeout=timeout, settle=settle)

    def claims(self, node: Node) -> tuple[str, ...]:
        ids: list[str] = []
        for i, item in enumerate(self.seq(node, "claims")):
            what = "a claim ID such as H2, T8 or F1 (see CLAIMS.md)"
            if not _CLAIM.fullmatch(claim := self.string(item, f"claims[{i}]", what)):
                self.fail(item, f"claims[{i}]", f"expected {what}, found {_found(item)}")
            if claim in ids:
                self.fail(item, f"claims[{i}]", f"{claim} is listed twice")
            ids.append(claim)
        return tuple(ids)

    def hosts(self, node: Node) -> dict[str, dict[str, str]]:
        result: dict[str, dict[str, str]] = {host: {} for host in HOSTS}
        for host, (_, hnode) in self.mapping(node, "hosts", HOSTS).items():
            settings = self.mapping(hnode, f"hosts.{host}", ("sysctls",))
            if "sysctls" in settings:
                result[host] = self.sysctls(settings["sysctls"][1], f"hosts.{host}.sysctls")
        return result

    def sysctls(self, node: Node, key: str) -> dict[str, str]:
        result = {}
        for name, (knode, vnode) in self.entries(node, key).items():
            if not _SYSCTL.fullmatch(name):
                self.fail(knode, _join(key, name), "expected a per-namespace sysctl name such as "
                                                  "net.ipv4.tcp_syn_retries (only net.* can "
                                                  "differ per host)")
            value = _value(vnode)
            if type(value) is not int:  # written to /proc/sys as text; one line of it
                value = self.string(vnode, _join(key, name), "an integer or a one-line string",
                                    one_line=True)
            result[name] = str(value)
        return result

    def apps(self, node: Node) -> dict[str, tuple[Step, ...]]:
        found = self.mapping(node, "apps", APP_HOSTS, required=APP_HOSTS)
        return {host: self.steps(found[host][1], f"apps.{host}", host) for host in APP_HOSTS}

    def steps(self, node: Node, key: str, host: str) -> tuple[Step, ...]:
        steps = tuple(self.step(item, f"{key}[{i}]")
                      for i, item in enumerate(self.seq(node, key, nonempty=True)))
        # The lab has one listener (the server) and one connecting side (the client); a
        # call on a socket that cannot exist yet would only fail with EBADF at run time.
        listened = connected = False
        for i, step in enumerate(steps):
            where, skey = step.line, f"{key}[{i}].{step.call}"
            if step.call == "listen" and host != "server":
                self.fail(where, skey, "only the server can listen")
            if step.call == "connect" and host != "client":
                self.fail(where, skey, "only the client can connect")
            if step.call == "accept" and not listened:
                self.fail(where, skey, "accept needs an earlier listen in the same list")
            if step.call in ("send", "recv", "close", "shutdown") and not connected:
                first = "connect" if host == "client" else "accept"
                self.fail(where, skey, f"{step.call} needs a connection: put {first} before it")
            listened = listened or step.call == "listen"
            connected = connected or step.call in ("connect", "accept")
        if host == "client" and not any(step.call == "connect" for step in steps):
            self.fail(node, key, "the client needs a connect step, e.g. connect: server:8080")
        return steps

    def step(self, node: Node, key: str) -> Step:
        """`accept` (a bare name) or `listen: 8080` (a one-key mapping)."""
        if isinstance(node, MappingNode):
            found = self.entries(node, key)
            if len(found) != 1:
                self.fail(node, key, f"expected one call per step, found {len(found)} keys"
                                     f" ({', '.join(map(_show, found))}); give each call its own list item")
            ((call, (where, arg)),) = found.items()
        elif isinstance(_value(node), str):
            call, where, arg = node.value, node, None
        else:
            self.fail(node, key, f"expected a call such as accept or listen: 8080, "
                                 f"found {_found(node)}")
        if call not in _STEP_ARGS:
            self.fail(where, key, f"unknown call {_show(call)}{_hint(call, STEP_CALLS)} "
                                  f"(expected one of: {', '.join(STEP_CALLS)})")
        parse, bare_ok, example = _STEP_ARGS[call]
        if arg is None or _value(arg) is None:  # `close` and `close:` mean the same
            if not bare_ok:
                self.fail(node, f"{key}.{call}", f"{call} needs an argument, e.g. {example}")
            return Step(call, None, _line(node))
        if parse is None:
            self.fail(arg, f"{key}.{call}", f"{call} takes no argument, found {_found(arg)}")
        return Step(call, parse(self, arg, f"{key}.{call}"), _line(node))

    def faults(self, node: Node, timeout: float) -> tuple[Fault, ...]:
        faults: list[Fault] = []
        for i, item in enumerate(self.seq(node, "faults")):
            fault = self.fault(item, f"faults[{i}]", timeout)
            # A fault that can never act is a mistake in the scenario, not a harmless no-op.
            for earlier in faults:
                if dataclasses.replace(fault, line=earlier.line) == earlier:
                    self.fail(item, f"faults[{i}]", f"the same fault as the one at line "
                                                    f"{earlier.line}")
                if _covers(earlier, fault):
                    self.fail(item, f"faults[{i}]", f"can never match: the fault at line "
                                                    f"{earlier.line} ({earlier.describe()}) "
                                                    "drops every segment it could see")
            faults.append(fault)
        return tuple(faults)

    def fault(self, node: Node, key: str, timeout: float) -> Fault:
        found = self.mapping(node, key, ("drop", "delay", "nth", "from", "by"))
        actions = [a for a in ("drop", "delay") if a in found]
        if len(actions) != 1:
            self.fail(node, key, "expected exactly one of drop: NAME or delay: NAME, found "
                                 + ("both" if actions else "neither"))
        action, v = actions[0], {name: pair[1] for name, pair in found.items()}
        name = self.string(v[action], f"{key}.{action}", "a segment name such as syn")
        segment = self.segment(name, v[action], f"{key}.{action}")
        nth = self.nth(v["nth"], f"{key}.nth") if "nth" in v else None
        sender = self.choice(v["from"], f"{key}.from", APP_HOSTS) if "from" in v else None
        if sender and sender not in senders(segment):
            only = " and ".join(sorted(senders(segment)))
            self.fail(v["from"], f"{key}.from", f"{segment} is only sent by the {only}, so a "
                                                f"fault on it from the {sender} can never match")
        if action == "drop" and "by" in v:
            self.fail(found["by"][0], f"{key}.by", "by is for delay only; a drop has no delay")
        if action == "delay" and "by" not in v:
            self.fail(node, f"{key}.by", "missing (a delay needs by: DURATION, e.g. by: 500ms)")
        by = (self.duration(v["by"], f"{key}.by", positive=True, limit=timeout, below=True,
                            why=" (the timeout)") if "by" in v else 0.0)
        return Fault(action, segment, nth, sender, by, _line(node))

    def nth(self, node: Node, key: str) -> tuple[int, ...] | None:
        if _value(node) == "all":
            return None
        if not isinstance(node, SequenceNode):
            what = "all, an occurrence number from 1 to 1000 or a list of them"
            return (self.integer(node, key, 1, 1000, what),)
        numbers: list[int] = []
        for i, item in enumerate(self.seq(node, key, nonempty=True)):
            if (n := self.integer(item, f"{key}[{i}]", 1, 1000)) in numbers:
                self.fail(item, f"{key}[{i}]", f"occurrence {n} is listed twice")
            numbers.append(n)
        return tuple(sorted(numbers))

    def expect(self, node: Node, apps: dict[str, tuple[Step, ...]], timeout: float) -> Expect:
        found = self.mapping(node, "expect", ("client", "server", "model", "tolerance"))
        v = {name: pair[1] for name, pair in found.items()}
        return Expect(
            hosts={host: self.host_expect(v[host], f"expect.{host}", host, apps[host], timeout)
                   for host in APP_HOSTS if host in v},
            model=self.choice(v["model"], "expect.model", ("linux",)) if "model" in v else None,
            tolerance=self.tolerance(v["tolerance"]) if "tolerance" in v else Tolerance())

    def tolerance(self, node: Node) -> Tolerance:
        v = {name: pair[1] for name, pair in
             self.mapping(node, "expect.tolerance", ("abs", "rel")).items()}
        rel = Tolerance().rel
        if "rel" in v:
            try:
                rel = parse_percent(_value(v["rel"]))
            except (ValueError, OverflowError):
                self.fail(v["rel"], "expect.tolerance.rel",
                          f"expected a percentage such as 12.5%, found {_found(v['rel'])}")
        absolute = (self.duration(v["abs"], "expect.tolerance.abs") if "abs" in v
                    else Tolerance().abs)
        return Tolerance(abs=absolute, rel=rel)

    def host_expect(self, node: Node, key: str, host: str, steps: tuple[Step, ...],
                    timeout: float) -> HostExpect:
        found = self.mapping(node, key, _HOST_EXPECT_KEYS)
        lines = {name: _line(knode) for name, (knode, _) in found.items()}
        v = {name: pair[1] for name, pair in found.items()}
        calls = {}
        for call in (name for name in found if name in _EXPECTABLE_CALLS):
            if not any(step.call == call for step in steps):
                self.fail(found[call][0], f"{key}.{call}",
                          f"can never match: apps.{host} has no {call} step")
            calls[call] = self.result(v[call], f"{key}.{call}")
        retransmits, sends = (
            self.per_segment(v[label], key, label, host, lines, parse) if label in v else {}
            for label, parse in (("retransmits", self.timing),
                                 ("sends", lambda n, k, _line: self.integer(n, k, 0))))
        gives_up = (self.duration(v["gives_up_after"], f"{key}.gives_up_after", limit=timeout,
                                  below=True, why=" (the timeout stops the run first)")
                    if "gives_up_after" in v else None)
        states = self.states(v["states"], f"{key}.states") if "states" in v else None
        return HostExpect(calls, retransmits, sends, gives_up, states, lines)

    def result(self, node: Node, key: str) -> str:
        what = "ok or an errno name such as ETIMEDOUT"
        text = self.string(node, key, what)
        if text == "ok" or text in _ERRNO_NAMES:
            return text
        code = getattr(errno, text, None) if text.isidentifier() else None
        hint = (f"; Python reports errno {code} as {errno.errorcode[code]}"
                if type(code) is int and code in errno.errorcode
                else _hint(text, ("ok", *sorted(_ERRNO_NAMES))))
        self.fail(node, key, f"expected {what}, found {_found(node)}{hint}")

    def per_segment(self, node: Node, key: str, label: str, host: str, lines: dict[str, int],
                    parse: Callable[[Node, str, int], Any]) -> dict[str, Any]:
        """`retransmits:` and `sends:` map segment names to something. The host must be
        able to send that segment, or the expectation could never be met."""
        result: dict[str, Any] = {}
        for name, (knode, vnode) in self.entries(node, f"{key}.{label}").items():
            skey = _join(f"{key}.{label}", name)
            segment = self.segment(name, knode, skey)
            if host not in senders(segment):
                self.fail(knode, skey, f"can never match: the {host} never sends {segment}")
            if segment in result:
                self.fail(knode, skey, f"{name} is another name for {segment}, given at line "
                                       f"{lines[f'{label}.{segment}']}")
            lines[f"{label}.{segment}"] = _line(knode)
            result[segment] = parse(vnode, skey, _line(knode))
        return result

    def timing(self, node: Node, key: str, line: int) -> Timing:
        found = self.mapping(node, key, ("intervals", "offsets", "count"))
        if not found:
            self.fail(node, key, "expected at least one of intervals, offsets, count")
        lists = {name: tuple(self.duration(item, f"{key}.{name}[{i}]")
                             for i, item in enumerate(self.seq(found[name][1], f"{key}.{name}")))
                 for name in ("intervals", "offsets") if name in found}
        offsets = lists.get("offsets", ())
        for i in range(1, len(offsets)):
            if offsets[i] < offsets[i - 1]:
                item = found["offsets"][1].value[i]
                self.fail(item, f"{key}.offsets[{i}]", "offsets are times since the first send "
                                                      f"and cannot decrease, found {_show(item.value)[1:-1]}")
        count = self.integer(found["count"][1], f"{key}.count", 0) if "count" in found else None
        said = [f"{len(values)} {name}" for name, values in lists.items()]
        if len({len(values) for values in lists.values()} | {count} - {None}) > 1:
            last = "count" if count is not None else "offsets"  # blame the last one given
            said += [f"count {count}"] if count is not None else []
            self.fail(found[last][1], f"{key}.{last}",
                      f"intervals, offsets and count must agree, found {', '.join(said)}")
        return Timing(lists.get("intervals"), lists.get("offsets"), count, line)

    def states(self, node: Node, key: str) -> tuple[str, ...]:
        names = []
        for i, item in enumerate(self.seq(node, key, nonempty=True)):
            text = self.string(item, f"{key}[{i}]", "a TCP state name such as SYN_SENT")
            name = text.strip().upper().replace("-", "_").removeprefix("TCP_")
            name = _STATE_ALIASES.get(name, name)
            if name not in _STATES:
                self.fail(item, f"{key}[{i}]", f"unknown TCP state {_show(text)}"
                                               f"{_hint(name, _STATES)} (expected one of: "
                                               f"{', '.join(_STATES)})")
            names.append(name)
        return tuple(names)


# --- step arguments: one parser per call ----------------------------------------------------

def _connect(r: _Reader, node: Node, key: str) -> tuple[str, int]:
    what = "server:PORT such as server:8080"
    if not (match := _CONNECT.fullmatch(r.string(node, key, what))):
        r.fail(node, key, f"expected {what}, found {_found(node)}")
    if match[1] != "server":  # addresses are the lab's business; the name is all we need
        r.fail(node, key, f"only the server can be connected to, found {_show(match[1])}")
    if not 1 <= int(match[2]) <= 65535:
        r.fail(node, key, f"expected a port number from 1 to 65535, found {match[2]}")
    return ("server", int(match[2]))


def _send(r: _Reader, node: Node, key: str) -> int | str:
    if isinstance(text := _value(node), str):
        return text  # those bytes, UTF-8 encoded
    return r.integer(node, key, 0, _MAX_SEND, f"a byte count from 0 to {_MAX_SEND} or a string")


# call -> (argument parser, or None when it takes none; may the argument be left out;
#          an example for messages)
_STEP_ARGS: dict[str, tuple[Callable[[_Reader, Node, str], Any] | None, bool, str]] = {
    "listen": (lambda r, n, k: r.integer(n, k, 1, 65535, "a port number from 1 to 65535"),
               False, "listen: 8080"),
    "accept": (None, True, "accept"),
    "connect": (_connect, False, "connect: server:8080"),
    "send": (_send, False, "send: 1000"),
    "recv": (lambda r, n, k: r.integer(n, k, 1), True, "recv: 1000"),
    "sleep": (lambda r, n, k: r.duration(n, k), False, "sleep: 2s"),
    "close": (None, True, "close"),
    "shutdown": (lambda r, n, k: r.choice(n, k, ("wr", "rd", "rdwr")), False, "shutdown: wr"),
}
assert tuple(_STEP_ARGS) == STEP_CALLS


# --- entry points -------------------------------------------------------------------------

def _compose(text: str, path: str) -> Node:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        context = e.context or ""
        if e.context and e.context_mark and mark and e.context_mark.line != mark.line:
            context += f" (line {e.context_mark.line + 1})"
        said = ", ".join(part for part in (context, e.problem) if part)
        raise ScenarioError(path, mark.line + 1 if mark else None, "",
                            f"invalid YAML: {said}".replace("\n", " ")) from None
    except yaml.reader.ReaderError as e:  # a character YAML does not allow, e.g. NUL
        raise ScenarioError(path, text[:e.position].count("\n") + 1, "",
                            f"invalid YAML: character U+{e.character:04X} is not allowed") from None
    except yaml.YAMLError as e:
        raise ScenarioError(path, None, "", f"invalid YAML: {e}".replace("\n", " ")) from None
    except RecursionError:
        raise ScenarioError(path, None, "", "invalid YAML: nested too deeply") from None
    if root is None:
        raise ScenarioError(path, None, "", "empty file: expected a mapping with at least "
                                            "scenario, summary and apps")
    return root


def load_text(text: str, path: str) -> Scenario:
    """Parse scenario text; `path` is used in messages and as Scenario.path."""
    return _Reader(path).scenario(_compose(text, path))


def load_scenario(path: str | Path) -> Scenario:
    shown = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ScenarioError(shown, None, "", "no such file or directory") from None
    except IsADirectoryError:
        raise ScenarioError(shown, None, "", "is a directory, expected a scenario file") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise ScenarioError(shown, None, "", f"cannot read: {getattr(e, 'strerror', None) or e}"
                            ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ScenarioError(shown, data[:e.start].count(b"\n") + 1, "",
                            f"expected UTF-8 text, found byte 0x{data[e.start]:02x}") from None
    return load_text(text, shown)


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; directories -> their *.yaml and *.yml files, recursively, sorted.
    Hidden files and directories (.git, editor droppings) are skipped; repeats dropped."""
    found: list[Path] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise ScenarioError(str(given), None, "", "no such file or directory")
        files = [path] if not path.is_dir() else sorted(
            f for f in path.rglob("*") if f.suffix in (".yaml", ".yml") and f.is_file()
            and not any(part.startswith(".") for part in f.relative_to(path).parts))
        for file in files:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                found.append(file)
    return found
