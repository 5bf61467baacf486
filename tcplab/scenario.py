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
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tcplab.core.scenario import (APP_HOSTS, HOSTS, STEP_CALLS, Expect, Fault, HostExpect,
                                  Lasting, Repeat, Scenario, Step, Timing, Tolerance, all_steps)
from tcplab import scenario_faults
from tcplab.core.faults import Forge, HostFault
from tcplab.core.segments import ALIASES, VOCABULARY, canonical_name, senders
from tcplab.errors import ScenarioError
from tcplab.units import parse_duration, parse_percent

__all__ = ["discover", "load_scenario", "load_text"]

_TOP_KEYS = ("scenario", "summary", "claims", "hosts", "apps", "faults", "expect", "timeout",
             "settle", "$schema")  # $schema: for editors, ignored
_EXPECTABLE_CALLS = tuple(c for c in STEP_CALLS if c not in ("sleep", "repeat"))
_HOST_EXPECT_KEYS = _EXPECTABLE_CALLS + ("retransmits", "sends", "gives_up_after", "states",
                                          "sockets", "lasts", "returns_after", "largest")
# Key tables of the nested mappings; tcplab/schema.py builds the JSON Schema from them too.
_HOST_KEYS = ("sysctls",)
_FAULT_ACTIONS = ("drop", "delay", "duplicate", "strip-mss")
_FAULT_KEYS = _FAULT_ACTIONS + ("nth", "from", "by")
_EXPECT_KEYS = APP_HOSTS + ("model", "tolerance")
_MODELS = ("linux",)
_TOLERANCE_KEYS = ("abs", "rel")
_TIMING_KEYS = ("intervals", "offsets", "count")
_LASTING_KEYS = ("at_least",)  # lasts: {STATE: {at_least: DURATION}}
_SHUTDOWN_HOWS = ("wr", "rd", "rdwr")
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
MAX_FILE = 1024 * 1024

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
    value, raw = _value(node), _show(node.value)
    if value is None or isinstance(value, str):
        return "nothing (null)" if value is None else f"the string {_show(value)}"
    if value is not _NOT_PLAIN:
        return f"the {'boolean' if isinstance(value, bool) else 'number'} {raw[1:-1]}"
    if node.tag.startswith(_TAG):  # a timestamp, binary, set, ... or a bad !!int
        return f"the {node.tag.removeprefix(_TAG)} {raw}"
    return f"{raw} tagged {_show(node.tag)}"


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


def _covers(earlier: Fault, later: Fault) -> bool:
    """Does the earlier fault decide every segment `later` could ever act on? The first
    matching fault decides, so a drop or a delay of all of them leaves nothing."""
    def sides(f: Fault) -> frozenset[str]:
        return frozenset({f.sender}) if f.sender else senders(f.segment)
    return (earlier.segment == later.segment and sides(later) <= sides(earlier)
            and (earlier.nth is None or (later.nth is not None
                                         and set(later.nth) <= set(earlier.nth))))


# --- the reader -----------------------------------------------------------------------

Entries = dict[str, tuple[Node, Node]]  # key -> (key node, value node), in file order


class _Map:
    """A checked mapping: value nodes by key, and each key's dotted path and line."""

    def __init__(self, key: str, entries: Entries):
        self.key, self.entries = key, entries

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def node(self, name: str) -> Node:
        return self.entries[name][1]

    def path(self, name: str) -> str:
        return _join(self.key, name)

    def line(self, name: str) -> int:
        return _line(self.entries[name][0])

    def get(self, name: str, parse: Callable[..., Any], default: Any = None, **kw: Any) -> Any:
        """parse(value node, key path, **kw) if the key is there, else the default."""
        return parse(self.node(name), self.path(name), **kw) if name in self else default


class _Reader:
    """Walks the node tree along the format; every check fails with file, line and key."""

    def __init__(self, path: str):
        self.path = path
        self.lines: dict[str, int] = {}  # dotted key -> line, for checks made after loading

    def fail(self, where: Node | int, key: str, message: str) -> NoReturn:
        raise ScenarioError(self.path, where if isinstance(where, int) else _line(where), key,
                            message)

    # generic shapes

    def entries(self, node: Node, key: str) -> Entries:
        """A mapping's entries. Duplicate keys are errors: PyYAML would silently keep the
        last one, and a scenario that says two things is wrong."""
        if not isinstance(node, MappingNode):
            self.fail(node, key, f"expected a mapping, found {_found(node)}")
        found: Entries = {}
        for knode, vnode in node.value:
            if knode.tag == _TAG + "merge":  # expanding them would need cycle and blow-up guards
                self.fail(knode, key, "merge keys (<<) are not supported; alias a whole "
                                      "mapping or list instead")
            if not isinstance(knode, ScalarNode):
                self.fail(knode, key, f"expected a name as key, found {_found(knode)}")
            if knode.value in found:
                self.fail(knode, _join(key, knode.value),
                          f"duplicate key (first given at line {_line(found[knode.value][0])})")
            found[knode.value] = (knode, vnode)
        return found

    def mapping(self, node: Node, key: str, allowed: tuple[str, ...],
                required: tuple[str, ...] = ()) -> _Map:
        found = _Map(key, self.entries(node, key))
        for name in found:
            if name not in allowed:
                listed = ", ".join(a for a in allowed if a != "$schema")
                self.fail(found.line(name), found.path(name), f"unknown key {_show(name)}"
                          f"{_hint(name, allowed)} (expected one of: {listed})")
        for name in required:
            if name not in found:
                self.fail(node, found.path(name), "missing")
        return found

    def items(self, node: Node, key: str, nonempty: bool = False) -> list[tuple[Node, str]]:
        """A list's items, each with its key path."""
        if not isinstance(node, SequenceNode):
            self.fail(node, key, f"expected a list, found {_found(node)}")
        if nonempty and not node.value:
            self.fail(node, key, "expected a non-empty list, found an empty one")
        return [(item, f"{key}[{i}]") for i, item in enumerate(node.value)]

    def string(self, node: Node, key: str, what: str, blank: bool = True,
               one_line: bool = False) -> str:
        value = _value(node)
        if (not isinstance(value, str) or (not blank and not value.strip())
                or (one_line and any(c in value for c in "\r\n\0"))):
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

    def durations(self, node: Node, key: str) -> tuple[float, ...]:
        return tuple(self.duration(item, ikey) for item, ikey in self.items(node, key))

    def percent(self, node: Node, key: str) -> float:
        try:
            return parse_percent(_value(node))
        except (ValueError, OverflowError):
            self.fail(node, key, f"expected a percentage such as 12.5%, found {_found(node)}")

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
        name = top.get("scenario", self.string, what="a one-line scenario name", blank=False,
                       one_line=True)
        summary = top.get("summary", self.string, what="a summary", blank=False)
        claims = top.get("claims", self.claims, ())
        sysctls = top.get("hosts", self.hosts, {host: {} for host in HOSTS})
        # The timeout comes before the rest: a delay's `by` and `gives_up_after` must fit in it.
        timeout = top.get("timeout", self.duration, 60.0, positive=True, limit=3600)
        settle = top.get("settle", self.duration, 1.0, limit=600)
        apps = top.get("apps", self.apps)
        faults = top.get("faults", self.faults, (), timeout=timeout)
        return Scenario(
            path=self.path, name=name, summary=summary.strip(), claims=claims, sysctls=sysctls,
            apps=apps, faults=tuple(f for f in faults if isinstance(f, Fault)),
            expect=top.get("expect", self.expect, Expect(), apps=apps, timeout=timeout),
            timeout=timeout, settle=settle, lines=dict(self.lines),
            host_faults=tuple(f for f in faults if isinstance(f, HostFault)),
            forges=tuple(f for f in faults if isinstance(f, Forge)))

    def claims(self, node: Node, key: str) -> tuple[str, ...]:
        ids: list[str] = []
        what = "a claim ID such as H2, T8 or F1 (see CLAIMS.md)"
        for item, ikey in self.items(node, key):
            if not _CLAIM.fullmatch(claim := self.string(item, ikey, what)):
                self.fail(item, ikey, f"expected {what}, found {_found(item)}")
            if claim in ids:
                self.fail(item, ikey, f"{claim} is listed twice")
            ids.append(claim)
        return tuple(ids)

    def hosts(self, node: Node, key: str) -> dict[str, dict[str, str]]:
        hosts, result = self.mapping(node, key, HOSTS), {host: {} for host in HOSTS}
        for host in hosts:
            settings = self.mapping(hosts.node(host), hosts.path(host), _HOST_KEYS)
            result[host] = settings.get("sysctls", self.sysctls, {})
        return result

    def sysctls(self, node: Node, key: str) -> dict[str, str]:
        result = {}
        for name, (knode, vnode) in self.entries(node, key).items():
            if not _SYSCTL.fullmatch(name):
                self.fail(knode, _join(key, name), "expected a per-namespace sysctl name such "
                          "as net.ipv4.tcp_syn_retries (only net.* can differ per host)")
            value = _value(vnode)
            if type(value) is not int:  # written to /proc/sys as text: one line of it
                value = self.string(vnode, _join(key, name), "an integer or a one-line string",
                                    blank=False, one_line=True)
            result[name] = str(value)
            self.lines[_join(key, name)] = _line(knode)
        return result

    def apps(self, node: Node, key: str) -> dict[str, tuple[Step, ...]]:
        found = self.mapping(node, key, APP_HOSTS, required=APP_HOSTS)
        return {host: found.get(host, self.steps, host=host) for host in APP_HOSTS}

    def steps(self, node: Node, key: str, host: str) -> tuple[Step, ...]:
        steps = tuple(self.step(item, ikey) for item, ikey in self.items(node, key, True))
        self.check_order(steps, key, host, listened=False)
        if host == "client" and not any(s.call == "connect" for s in all_steps(steps)):
            self.fail(node, key, "the client needs a connect step, e.g. connect: server:8080")
        return steps

    def check_order(self, steps: tuple[Step, ...], key: str, host: str, listened: bool) -> None:
        """The lab has one listener (the server); the client connects to the server, and
        the server to the client only for a simultaneous open. A call on a socket that
        cannot exist yet would only fail with EBADF at run time."""
        connected = False
        for i, step in enumerate(steps):
            where, skey = step.line, f"{key}[{i}].{step.call}"
            if step.call == "listen" and host != "server":
                self.fail(where, skey, "only the server can listen")
            if step.call == "connect" and step.arg[0] == host:
                self.fail(where, skey, f"the {host} cannot connect to itself; connect to "
                                       f"{'server' if host == 'client' else 'client'}:PORT")
            if step.call == "accept" and not listened:
                self.fail(where, skey, "accept needs an earlier listen in the same list")
            if step.call in ("send", "recv", "close", "shutdown") and not connected:
                first = "connect" if host == "client" else "accept"
                self.fail(where, skey, f"{step.call} needs a connection: put {first} before it"
                                       + (" (each repeat iteration has its own socket)"
                                          if "repeat" in key else ""))
            if step.call == "flood" and host != "client":
                self.fail(where, skey, "only the client floods (its spoofed sources are "
                                       "addresses of the client's subnet)")
            if isinstance(step.arg, Repeat):
                self.check_order(step.arg.steps, f"{skey}.steps", host, listened)
            listened = listened or step.call == "listen"
            connected = connected or step.call in ("connect", "accept")

    def step(self, node: Node, key: str) -> Step:
        """`accept` (a bare name) or `listen: 8080` (a one-key mapping)."""
        if isinstance(node, MappingNode):
            found = self.entries(node, key)
            if len(found) != 1:
                self.fail(node, key, f"expected one call per step, found {len(found)} keys "
                          f"({', '.join(map(_show, found))}); give each call its own list item")
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

    def faults(self, node: Node, key: str, timeout: float) -> tuple[Fault, ...]:
        faults: list[Fault] = []
        items = self.items(node, key)
        for item, ikey in items:
            if action := scenario_faults.action_of(item):  # link-down, crash, ..., forge
                faults.append(scenario_faults.parse(self, item, ikey, timeout, action))
                continue
            fault = self.fault(item, ikey, timeout)
            # A fault that can never act is a mistake in the scenario, not a harmless no-op.
            for earlier in (f for f in faults if isinstance(f, Fault)):
                if dataclasses.replace(fault, line=earlier.line) == earlier:
                    self.fail(item, ikey, f"the same fault as the one at line {earlier.line}")
                if _covers(earlier, fault):
                    self.fail(item, ikey, f"can never match: the fault at line {earlier.line} "
                                          f"({earlier.describe()}) decides first for every "
                                          "segment it could see")
            faults.append(fault)
        scenario_faults.check_all(self, items, faults)
        return tuple(faults)

    def fault(self, node: Node, key: str, timeout: float) -> Fault:
        f = self.mapping(node, key, _FAULT_KEYS)
        actions = [a for a in _FAULT_ACTIONS if a in f]
        if len(actions) != 1:
            self.fail(node, key, "expected exactly one of drop: NAME, delay: NAME, "
                                 "duplicate: NAME, strip-mss: NAME (or link-down, crash, "
                                 "reboot, kill: HOST, forge: KIND), found "
                                 + (f"both ({' and '.join(actions)})" if actions
                                    else "neither"))
        action = actions[0]
        name = f.get(action, self.string, what="a segment name such as syn")
        segment = self.segment(name, f.node(action), f.path(action))
        sender = f.get("from", self.choice, choices=APP_HOSTS)
        if sender and sender not in senders(segment):
            only = " and ".join(sorted(senders(segment)))
            self.fail(f.node("from"), f.path("from"), f"{segment} is only sent by the {only}, "
                      f"so a fault on it from the {sender} can never match")
        if action in ("drop", "strip-mss") and "by" in f:
            self.fail(f.line("by"), f.path("by"), f"by is for delay only (and a duplicate's "
                                                  f"copy); a {action} has no delay")
        if action == "strip-mss" and segment not in ("syn", "syn-ack"):
            self.fail(f.node(action), f.path(action), "only syn and syn-ack carry the MSS "
                                                      f"option, found {segment}")
        if action == "delay" and "by" not in f:
            self.fail(node, f.path("by"), "missing (a delay needs by: DURATION, e.g. by: 500ms)")
        by = f.get("by", self.duration, 0.0, positive=action == "delay", limit=timeout,
                   below=True, why=" (the timeout)")
        return Fault(action, segment, f.get("nth", self.nth), sender, by, _line(node))

    def nth(self, node: Node, key: str) -> tuple[int, ...] | None:
        if _value(node) == "all":
            return None
        if not isinstance(node, SequenceNode):
            what = "all, an occurrence number from 1 to 1000 or a list of them"
            return (self.integer(node, key, 1, 1000, what),)
        numbers: list[int] = []
        for item, ikey in self.items(node, key, nonempty=True):
            if (n := self.integer(item, ikey, 1, 1000)) in numbers:
                self.fail(item, ikey, f"occurrence {n} is listed twice")
            numbers.append(n)
        return tuple(sorted(numbers))

    def expect(self, node: Node, key: str, apps: dict[str, tuple[Step, ...]],
               timeout: float) -> Expect:
        e = self.mapping(node, key, _EXPECT_KEYS)
        return Expect(
            hosts={host: e.get(host, self.host_expect, steps=apps[host], timeout=timeout)
                   for host in APP_HOSTS if host in e},
            model=e.get("model", self.choice, choices=_MODELS),
            tolerance=e.get("tolerance", self.tolerance, Tolerance()))

    def tolerance(self, node: Node, key: str) -> Tolerance:
        t, default = self.mapping(node, key, _TOLERANCE_KEYS), Tolerance()
        return Tolerance(abs=t.get("abs", self.duration, default.abs),
                         rel=t.get("rel", self.percent, default.rel))

    def host_expect(self, node: Node, key: str, steps: tuple[Step, ...],
                    timeout: float) -> HostExpect:
        h = self.mapping(node, key, _HOST_EXPECT_KEYS)
        host = key.rpartition(".")[2]
        lines = {name: h.line(name) for name in h}
        calls = {}
        for call in (name for name in h if name in _EXPECTABLE_CALLS):
            if not any(step.call == call for step in all_steps(steps)):
                self.fail(h.line(call), h.path(call),
                          f"can never match: apps.{host} has no {call} step")
            calls[call] = h.get(call, self.call_results)
        return HostExpect(
            calls=calls,
            retransmits=h.get("retransmits", self.per_segment, {}, host=host, lines=lines,
                              each=self.timing),
            sends=h.get("sends", self.per_segment, {}, host=host, lines=lines,
                        each=lambda n, k, line: self.integer(n, k, 0)),
            largest=h.get("largest", self.per_segment, {}, host=host, lines=lines,
                          each=lambda n, k, line: self.integer(n, k, 0, 65535)),
            gives_up_after=h.get("gives_up_after", self.duration, limit=timeout, below=True,
                                 why=" (the timeout stops the run first)"),
            states=h.get("states", self.states),
            sockets=h.get("sockets", self.state_counts, {}),
            lasts=h.get("lasts", self.lastings, {}, timeout=timeout),
            returns_after=h.get("returns_after", self.returns_after, {}, host=host,
                                steps=steps),
            lines=lines)

    def call_results(self, node: Node, key: str) -> str | dict[str, int]:
        """`connect: ok` (every connect) or `connect: {ok: 10, EADDRNOTAVAIL: 5}` (how
        many calls ended each way; repeated calls)."""
        if not isinstance(node, MappingNode):
            return self.result(node, key)
        counts: dict[str, int] = {}
        for name, (knode, vnode) in self.entries(node, key).items():
            result = self.result(knode, _join(key, name))
            counts[result] = self.integer(vnode, _join(key, name), 0)
        if not counts:
            self.fail(node, key, "expected at least one RESULT: COUNT, e.g. {ok: 3}")
        return counts

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

    def per_segment(self, node: Node, key: str, host: str, lines: dict[str, int],
                    each: Callable[[Node, str, int], Any]) -> dict[str, Any]:
        """`retransmits:` and `sends:` map segment names to something. The host must be
        able to send that segment, or the expectation could never be met."""
        label, result = key.rpartition(".")[2], {}
        for name, (knode, vnode) in self.entries(node, key).items():
            skey = _join(key, name)
            segment = self.segment(name, knode, skey)
            if host not in senders(segment):
                self.fail(knode, skey, f"can never match: the {host} never sends {segment}")
            if segment in result:
                self.fail(knode, skey, f"{name} is another name for {segment}, given at line "
                                       f"{lines[f'{label}.{segment}']}")
            lines[f"{label}.{segment}"] = _line(knode)
            result[segment] = each(vnode, skey, _line(knode))
        return result

    def timing(self, node: Node, key: str, line: int) -> Timing:
        t = self.mapping(node, key, _TIMING_KEYS)
        if not t.entries:
            self.fail(node, key, "expected at least one of intervals, offsets, count")
        intervals = t.get("intervals", self.durations)
        offsets = t.get("offsets", self.durations)
        for i, (item, ikey) in enumerate(self.items(t.node("offsets"), t.path("offsets"))
                                         if offsets else []):
            if i and offsets[i] < offsets[i - 1]:
                self.fail(item, ikey, "offsets are times since the first send and cannot "
                                      f"decrease, found {_show(item.value)[1:-1]}")
        count = t.get("count", self.integer, lo=0)
        sizes = {name: len(v) for name, v in (("intervals", intervals), ("offsets", offsets))
                 if v is not None} | ({"count": count} if count is not None else {})
        if len(set(sizes.values())) > 1:
            last = list(sizes)[-1]  # blame the last one the format lists
            said = ", ".join(f"{name} {size}" for name, size in sizes.items())
            self.fail(t.node(last), t.path(last), f"intervals, offsets and count must agree in "
                                                  f"length, found {said}")
        return Timing(intervals, offsets, count, line)

    def states(self, node: Node, key: str) -> tuple[str, ...]:
        return tuple(self.state(item, ikey) for item, ikey in self.items(node, key, True))

    def state(self, node: Node, key: str, text: str | None = None) -> str:
        if text is None:
            text = self.string(node, key, "a TCP state name such as SYN_SENT")
        name = text.strip().upper().replace("-", "_").removeprefix("TCP_")
        name = _STATE_ALIASES.get(name, name)
        if name not in _STATES:
            self.fail(node, key, f"unknown TCP state {_show(text)}{_hint(name, _STATES)} "
                                 f"(expected one of: {', '.join(_STATES)})")
        return name

    def per_state(self, node: Node, key: str, each: Callable[[Node, str, str], Any]
                  ) -> dict[str, Any]:
        """`sockets:` and `lasts:` map state names to something. CLOSE is where a socket
        is gone: it cannot be counted, and a stay in it never ends."""
        result: dict[str, Any] = {}
        lines: dict[str, int] = {}
        for text, (knode, vnode) in self.entries(node, key).items():
            skey = _join(key, text)
            name = self.state(knode, skey, text)
            if name == "CLOSE":
                self.fail(knode, skey, "can never match: CLOSE means the socket is gone, so "
                                       "it is never counted and never left")
            if name in result:
                self.fail(knode, skey, f"{text} is another name for {name}, given at line "
                                       f"{lines[name]}")
            lines[name] = _line(knode)
            result[name] = each(vnode, skey, name)
        return result

    def state_counts(self, node: Node, key: str) -> dict[str, int]:
        return self.per_state(node, key, lambda n, k, _state: self.integer(n, k, 0))

    def lastings(self, node: Node, key: str, timeout: float) -> dict[str, Lasting]:
        def lasting(n: Node, k: str, _state: str) -> Lasting:
            why = " (the timeout stops the run first)"
            if _value(n) == "forever":
                return Lasting(forever=True, line=_line(n))
            if isinstance(n, MappingNode):
                m = self.mapping(n, k, _LASTING_KEYS, required=_LASTING_KEYS)
                return Lasting(at_least=m.get("at_least", self.duration, limit=timeout,
                                              below=True, why=why), line=_line(n))
            try:
                parse_duration(_value(n))
            except (ValueError, OverflowError):
                self.fail(n, k, "expected a duration such as 60s, forever, or {at_least: "
                                f"DURATION}}, found {_found(n)}")
            return Lasting(seconds=self.duration(n, k, limit=timeout, below=True, why=why),
                           line=_line(n))
        return self.per_state(node, key, lasting)

    def returns_after(self, node: Node, key: str, host: str, steps: tuple[Step, ...]
                      ) -> dict[str, str]:
        """CALL: SEGMENT, the call returns once that segment from the peer arrived."""
        peer = "server" if host == "client" else "client"
        result = {}
        for call, (knode, vnode) in self.entries(node, key).items():
            ckey = _join(key, call)
            if not any(step.call == call for step in all_steps(steps)):
                self.fail(knode, ckey, f"can never match: apps.{host} has no "
                                       f"{_show(call)[1:-1]} step")
            segment = self.segment(self.string(vnode, ckey, "a segment name such as syn-ack"),
                                   vnode, ckey)
            if peer not in senders(segment):
                self.fail(vnode, ckey, f"can never match: the {peer} never sends {segment}, "
                                       f"so the {host} never receives it")
            result[call] = segment
        return result


# --- step arguments: one parser per call ----------------------------------------------------

def _connect(r: _Reader, node: Node, key: str) -> tuple[str, int]:
    what = "server:PORT such as server:8080"
    if not (match := _CONNECT.fullmatch(r.string(node, key, what))):
        r.fail(node, key, f"expected {what}, found {_found(node)}")
    # Addresses are the lab's business; the name is all we need. The server connects to
    # the client only for a simultaneous open (steps() checks who connects to whom).
    if match[1] not in APP_HOSTS:
        r.fail(node, key, f"expected server:PORT (or client:PORT from the server), found "
                          f"{_show(match[1])}")
    if not 1 <= int(match[2]) <= 65535:
        r.fail(node, key, f"expected a port number from 1 to 65535, found {match[2]}")
    return (match[1], int(match[2]))


def _send(r: _Reader, node: Node, key: str) -> int | str:
    if isinstance(text := _value(node), str):
        return text  # those bytes, UTF-8 encoded
    return r.integer(node, key, 0, _MAX_SEND, f"a byte count from 0 to {_MAX_SEND} or a string")


# call -> (argument parser, or None when it takes none; may the argument be left out;
#          an example for messages)
def _port(r: _Reader, node: Node, key: str) -> int:
    return r.integer(node, key, 1, 65535, "a port number from 1 to 65535")


_LISTEN_KEYS = ("port", "backlog")  # the mapping forms' keys (tcplab/schema.py reads them)


def _listen(r: _Reader, node: Node, key: str) -> int | dict[str, int]:
    if not isinstance(node, MappingNode):
        return _port(r, node, key)
    m = r.mapping(node, key, _LISTEN_KEYS, required=("port",))
    # listen(2) takes any int; the kernel caps it at net.core.somaxconn.
    return {"port": m.get("port", lambda n, k: _port(r, n, k)),
            "backlog": m.get("backlog", r.integer, 128, lo=0, hi=65535)}


def _whole_seconds(r: _Reader, node: Node, key: str, hi: int) -> int:
    """TCP_KEEPIDLE and TCP_KEEPINTVL are whole seconds from 1 to 32767."""
    seconds = r.duration(node, key)
    if seconds != int(seconds) or not 1 <= seconds <= hi:
        r.fail(node, key, f"expected whole seconds from 1s to {hi}s (the kernel takes "
                          f"seconds), found {_show(node.value)[1:-1]}")
    return int(seconds)


_KEEPALIVE_KEYS = ("idle", "interval", "count")


def _keepalive(r: _Reader, node: Node, key: str) -> bool | dict[str, int | None]:
    if _value(node) is True:  # `on`, `yes`, `true`: SO_KEEPALIVE with the sysctls
        return True
    if not isinstance(node, MappingNode):
        r.fail(node, key, f"expected on or a mapping of idle, interval, count, found "
                          f"{_found(node)}")
    k = r.mapping(node, key, _KEEPALIVE_KEYS)
    return {"idle": k.get("idle", lambda n, key: _whole_seconds(r, n, key, 32767)),
            "interval": k.get("interval", lambda n, key: _whole_seconds(r, n, key, 32767)),
            "count": k.get("count", r.integer, lo=1, hi=127)}


# Steps a repeat cannot hold, and why.
_NOT_REPEATED = {"listen": "one listener per port: put listen before the repeat",
                 "repeat": "repeats do not nest",
                 "flood": "one flood step sends as many SYNs as asked: raise syns instead"}


_REPEAT_KEYS = ("times", "parallel", "steps")


def _repeat(r: _Reader, node: Node, key: str) -> Repeat:
    m = r.mapping(node, key, _REPEAT_KEYS, required=("times", "steps"))
    parallel = m.get("parallel", lambda n, k: _value(n), False)
    if type(parallel) is not bool:
        r.fail(m.node("parallel"), m.path("parallel"), f"expected true or false, found "
                                                       f"{_found(m.node('parallel'))}")
    steps = tuple(r.step(item, ikey) for item, ikey in r.items(m.node("steps"),
                                                                 m.path("steps"), True))
    for i, step in enumerate(steps):
        if step.call in _NOT_REPEATED:
            r.fail(step.line, f"{m.path('steps')}[{i}].{step.call}",
                   f"{step.call} cannot be inside a repeat ({_NOT_REPEATED[step.call]})")
    # 1000 threads or sockets is already far beyond what a lab run needs.
    return Repeat(m.get("times", r.integer, lo=1, hi=1000), parallel, steps)


_FLOOD_KEYS = ("syns", "port")


def _flood(r: _Reader, node: Node, key: str) -> dict[str, int]:
    m = r.mapping(node, key, _FLOOD_KEYS, required=_FLOOD_KEYS)
    return {"syns": m.get("syns", r.integer, lo=1, hi=10000),
            "port": m.get("port", lambda n, k: _port(r, n, k))}


_STEP_ARGS: dict[str, tuple[Callable[[_Reader, Node, str], Any] | None, bool, str]] = {
    "listen": (_listen, False, "listen: 8080"),
    "accept": (None, True, "accept"),
    "connect": (_connect, False, "connect: server:8080"),
    "send": (_send, False, "send: 1000"),
    "recv": (lambda r, n, k: r.integer(n, k, 1), True, "recv: 1000"),
    "sleep": (lambda r, n, k: r.duration(n, k), False, "sleep: 2s"),
    "close": (None, True, "close"),
    "shutdown": (lambda r, n, k: r.choice(n, k, _SHUTDOWN_HOWS), False, "shutdown: wr"),
    "bind": (_port, False, "bind: 40000"),
    "linger": (lambda r, n, k: r.integer(n, k, 0, 3600, "whole seconds from 0 to 3600"),
               False, "linger: 0"),
    "keepalive": (_keepalive, False, "keepalive: {idle: 2s, interval: 1s, count: 3}"),
    "syncnt": (lambda r, n, k: r.integer(n, k, 1, 127), False, "syncnt: 2"),
    "rcvtimeo": (lambda r, n, k: r.duration(n, k, positive=True), False, "rcvtimeo: 2s"),
    "repeat": (_repeat, False, "repeat: {times: 3, steps: [connect: server:8080]}"),
    "flood": (_flood, False, "flood: {syns: 500, port: 8080}"),
    "netstat": (None, True, "netstat"),
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
        with open(path, "rb") as f:  # bounded: /dev/zero is not a scenario
            data = f.read(MAX_FILE + 1)
        if len(data) > MAX_FILE:
            raise ScenarioError(shown, None, "", f"larger than {MAX_FILE // 1024} KiB: "
                                                 "not a scenario file")
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        why = {errno.ENOENT: "no such file or directory",
               errno.EISDIR: "is a directory, expected a scenario file"}.get(
            getattr(e, "errno", None), f"cannot read: {getattr(e, 'strerror', None) or e}")
        raise ScenarioError(shown, None, "", why) from None
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
