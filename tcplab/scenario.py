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
        return Scenario(
            path=self.path, name=name, summary=summary.strip(), claims=claims, sysctls=sysctls,
            apps=apps, faults=top.get("faults", self.faults, (), timeout=timeout),
            expect=top.get("expect", self.expect, Expect(), apps=apps, timeout=timeout),
            timeout=timeout, settle=settle, lines=dict(self.lines))

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
            settings = self.mapping(hosts.node(host), hosts.path(host), ("sysctls",))
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
        for item, ikey in self.items(node, key):
            fault = self.fault(item, ikey, timeout)
            # A fault that can never act is a mistake in the scenario, not a harmless no-op.
            for earlier in faults:
                if dataclasses.replace(fault, line=earlier.line) == earlier:
                    self.fail(item, ikey, f"the same fault as the one at line {earlier.line}")
                if _covers(earlier, fault):
                    self.fail(item, ikey, f"can never match: the fault at line {earlier.line} "
                                          f"({earlier.describe()}) decides first for every "
                                          "segment it could see")
            faults.append(fault)
        return tuple(faults)

    def fault(self, node: Node, key: str, timeout: float) -> Fault:
        f = self.mapping(node, key, ("drop", "delay", "nth", "from", "by"))
        actions = [a for a in ("drop", "delay") if a in f]
        if len(actions) != 1:
            self.fail(node, key, "expected exactly one of drop: NAME or delay: NAME, found "
                                 + ("both" if actions else "neither"))
        action = actions[0]
        name = f.get(action, self.string, what="a segment name such as syn")
        segment = self.segment(name, f.node(action), f.path(action))
        sender = f.get("from", self.choice, choices=APP_HOSTS)
        if sender and sender not in senders(segment):
            only = " and ".join(sorted(senders(segment)))
            self.fail(f.node("from"), f.path("from"), f"{segment} is only sent by the {only}, "
                      f"so a fault on it from the {sender} can never match")
        if action == "drop" and "by" in f:
            self.fail(f.line("by"), f.path("by"), "by is for delay only; a drop has no delay")
        if action == "delay" and "by" not in f:
            self.fail(node, f.path("by"), "missing (a delay needs by: DURATION, e.g. by: 500ms)")
        by = f.get("by", self.duration, 0.0, positive=True, limit=timeout, below=True,
                   why=" (the timeout)")
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
        e = self.mapping(node, key, ("client", "server", "model", "tolerance"))
        return Expect(
            hosts={host: e.get(host, self.host_expect, steps=apps[host], timeout=timeout)
                   for host in APP_HOSTS if host in e},
            model=e.get("model", self.choice, choices=("linux",)),
            tolerance=e.get("tolerance", self.tolerance, Tolerance()))

    def tolerance(self, node: Node, key: str) -> Tolerance:
        t, default = self.mapping(node, key, ("abs", "rel")), Tolerance()
        return Tolerance(abs=t.get("abs", self.duration, default.abs),
                         rel=t.get("rel", self.percent, default.rel))

    def host_expect(self, node: Node, key: str, steps: tuple[Step, ...],
                    timeout: float) -> HostExpect:
        h = self.mapping(node, key, _HOST_EXPECT_KEYS)
        host = key.rpartition(".")[2]
        lines = {name: h.line(name) for name in h}
        calls = {}
        for call in (name for name in h if name in _EXPECTABLE_CALLS):
            if not any(step.call == call for step in steps):
                self.fail(h.line(call), h.path(call),
                          f"can never match: apps.{host} has no {call} step")
            calls[call] = h.get(call, self.result)
        return HostExpect(
            calls=calls,
            retransmits=h.get("retransmits", self.per_segment, {}, host=host, lines=lines,
                              each=self.timing),
            sends=h.get("sends", self.per_segment, {}, host=host, lines=lines,
                        each=lambda n, k, line: self.integer(n, k, 0)),
            gives_up_after=h.get("gives_up_after", self.duration, limit=timeout, below=True,
                                 why=" (the timeout stops the run first)"),
            states=h.get("states", self.states),
            lines=lines)

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
        t = self.mapping(node, key, ("intervals", "offsets", "count"))
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
        names = []
        for item, ikey in self.items(node, key, nonempty=True):
            text = self.string(item, ikey, "a TCP state name such as SYN_SENT")
            name = text.strip().upper().replace("-", "_").removeprefix("TCP_")
            name = _STATE_ALIASES.get(name, name)
            if name not in _STATES:
                self.fail(item, ikey, f"unknown TCP state {_show(text)}{_hint(name, _STATES)} "
                                      f"(expected one of: {', '.join(_STATES)})")
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
