"""`faults:`: segment faults (drop, delay, duplicate, strip-mss of a named segment),
time-window host faults (link-down, crash, reboot, kill) and forged segments (forge:
rst | stale-syn), into core/faults.py's types. Every mistake is one `file:line: key:
message` line, and a fault that could never act is one too. Times are measured from
the moment the apps start (the Record's t = 0).
"""

from __future__ import annotations

import dataclasses
from functools import partial

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tcplab.core.faults import DELAY, FORGES, HOST_FAULTS, RANDOM_ACTIONS, Fault, Forge, HostFault
from tcplab.core.scenario import APP_HOSTS
from tcplab.core.segments import senders
from tcplab.format import keys
from tcplab.format.reader import Map, Reader, found, line_of, show, value
from tcplab.units import parse_percent

AnyFault = Fault | HostFault | Forge


def faults(r: Reader, node: Node, key: str, timeout: float, seed: int | None = None) -> tuple[AnyFault, ...]:
    parsed: list[AnyFault | None] = []  # None: an entry with a mistake (noted)
    items = r.items(node, key)
    for item, ikey in items:
        before = r.failures
        fault = r.attempt(entry, r, item, ikey, timeout, seed)
        if isinstance(fault, Fault) and not r.failed_since(before):
            # A fault that can never act is a mistake in the scenario, not a harmless no-op.
            r.attempt(_check_reachable, r, item, ikey, fault, parsed)
        parsed.append(None if r.failed_since(before) else fault)
    _check_all(r, items, parsed)
    return tuple(f for f in parsed if f is not None)


def entry(r: Reader, node: Node, key: str, timeout: float, seed: int | None) -> AnyFault | None:
    action = action_of(node)  # link-down, crash, ..., forge; None for a segment's fault
    if action == "forge":
        return forge(r, node, key, timeout)
    if action:
        return host_fault(r, node, key, timeout)
    return segment_fault(r, node, key, timeout, seed)


def _check_reachable(r: Reader, node: Node, key: str, fault: Fault, parsed: list[AnyFault | None]) -> None:
    for earlier in (f for f in parsed if isinstance(f, Fault)):
        if dataclasses.replace(fault, line=earlier.line) == earlier:
            r.fail(node, key, f"the same fault as the one at line {earlier.line}")
        if _covers(earlier, fault):
            r.fail(
                node,
                key,
                f"can never match: the fault at line {earlier.line} "
                f"({earlier.describe()}) decides first for every "
                "segment it could see",
            )


def segment_fault(r: Reader, node: Node, key: str, timeout: float, seed: int | None = None) -> Fault | None:
    f = r.mapping(node, key, keys.FAULT_KEYS)
    actions = [a for a in keys.FAULT_ACTIONS if a in f]
    if not actions and f.unknown:
        return None  # a misspelt action, noted as an unknown key: one mistake, one line
    if len(actions) != 1:
        r.fail(
            node,
            key,
            "expected exactly one of drop: NAME, delay: NAME, "
            "duplicate: NAME, strip-mss: NAME (or link-down, crash, "
            "reboot, kill: HOST, forge: KIND), found "
            + (f"both ({' and '.join(actions)})" if actions else "neither"),
        )
    action = actions[0]
    name = r.string(f.node(action), f.path(action), what="a segment name such as syn")
    segment = r.segment(name, f.node(action), f.path(action))
    sender = f.get("from", r.choice, choices=APP_HOSTS)
    if sender and sender not in senders(segment):
        only = " and ".join(sorted(senders(segment)))
        r.fail(
            f.node("from"),
            f.path("from"),
            f"{segment} is only sent by the {only}, so a fault on it from the {sender} can never match",
        )
    if action in ("drop", "strip-mss") and "by" in f:
        r.fail(
            f.line("by"),
            f.path("by"),
            f"by is for delay only (and a duplicate's copy); a {action} has no delay",
        )
    if action == "strip-mss" and segment not in ("syn", "syn-ack"):
        r.fail(f.node(action), f.path(action), f"only syn and syn-ack carry the MSS option, found {segment}")
    if action == "delay" and f.missing("by"):
        r.fail(node, f.path("by"), "missing (a delay needs by: DURATION, e.g. by: 500ms)")
    before = r.failures
    by = f.get(
        "by", r.duration, 0.0, positive=action == "delay", limit=timeout, below=True, why=" (the timeout)"
    )
    probability, jitter = dice(r, f, action, None if r.failed_since(before) else by)
    random = probability < 1.0 or jitter > 0
    if random and seed is None:
        r.fail(
            node,
            key,
            "a random fault needs the scenario's seed (a top-level seed: N, "
            "e.g. seed: 1), so that a run can be repeated exactly",
        )
    return Fault(
        action,
        segment,
        f.get("nth", lambda n, k: nth(r, n, k)),
        sender,
        by,
        line_of(node),
        probability,
        jitter,
        seed if random else None,
    )


def dice(r: Reader, f: Map, action: str, by: float | None) -> tuple[float, float]:
    """A fault's `probability` (drop, delay, duplicate) and a delay's `jitter` (`by`
    None: it had a mistake, so the jitter is not measured against it)."""
    for name, allowed in (("probability", RANDOM_ACTIONS), ("jitter", (DELAY,))):
        if name in f and action not in allowed:
            r.fail(f.line(name), f.path(name), f"{name} is for {', '.join(allowed)} only, not {action}")
    probability = f.get("probability", partial(chance, r), 1.0)
    jitter = f.get("jitter", r.duration, 0.0, positive=True)
    if by is not None and jitter > by:
        r.fail(
            f.node("jitter"),
            f.path("jitter"),
            f"expected at most by ({by:g}s): the "
            f"hold is uniform in [by - jitter, by + jitter], found {jitter:g}s",
        )
    return probability, jitter


def chance(r: Reader, node: Node, key: str) -> float:
    """30% or 0.3: above 0 (a fault that never acts is a mistake) and at most 100%."""
    what = "a probability such as 30% or 0.3, above 0 and at most 100%"
    number = value(node)
    if isinstance(number, (int, float)) and not isinstance(number, bool) and 1 < number <= 100:
        r.fail(node, key, f"expected {what}, found {node.value} (did you mean {node.value}%?)")
    try:
        p = parse_percent(number)
    except (ValueError, OverflowError):
        r.fail(node, key, f"expected {what}, found {found(node)}")
    if not 0 < p <= 1:
        why = " (a fault that never acts is a mistake)" if p == 0 else ""
        r.fail(node, key, f"expected {what}, found {show(str(node.value))[1:-1]}{why}")
    return p


def nth(r: Reader, node: Node, key: str) -> tuple[int, ...] | None:
    if value(node) == "all":
        return None
    if not isinstance(node, SequenceNode):
        what = "all, an occurrence number from 1 to 1000 or a list of them"
        return (r.integer(node, key, 1, 1000, what),)
    numbers: list[int] = []
    for item, ikey in r.items(node, key, nonempty=True):
        if (n := r.integer(item, ikey, 1, 1000)) in numbers:
            r.fail(item, ikey, f"occurrence {n} is listed twice")
        numbers.append(n)
    return tuple(sorted(numbers))


def _covers(earlier: Fault, later: Fault) -> bool:
    """Does the earlier fault decide every segment `later` could ever act on? The first
    matching fault decides, so a drop or a delay of all of them leaves nothing."""

    def sides(f: Fault) -> frozenset[str]:
        return frozenset({f.sender}) if f.sender else senders(f.segment)

    return (
        earlier.probability == 1.0
        and earlier.segment == later.segment
        and sides(later) <= sides(earlier)
        and (earlier.nth is None or (later.nth is not None and set(later.nth) <= set(earlier.nth)))
    )


# --- host faults and forged segments -------------------------------------------------------


def action_of(node: Node) -> str | None:
    """Which host fault or forge a `faults:` item is, by its keys (None: a segment fault)."""
    if not isinstance(node, MappingNode):
        return None
    names = [k.value for k, _v in node.value if isinstance(k, ScalarNode)]
    return next((k for k in names if k in keys.ACTION_KEYS), None)


def _time(r: Reader, f: Map, name: str, timeout: float) -> float:
    return f.get(name, r.duration, limit=timeout, below=True, why=" (the timeout stops the run first)")


def host_fault(r: Reader, node: Node, key: str, timeout: float) -> HostFault:
    f = r.mapping(node, key, keys.HOST_FAULT_KEYS)
    actions = [a for a in HOST_FAULTS if a in f]
    if len(actions) != 1:
        r.fail(
            node, key, f"expected one of {', '.join(HOST_FAULTS)} per fault, found " + " and ".join(actions)
        )
    action = actions[0]
    hosts, takes_until, needs_until, _what = HOST_FAULTS[action]
    host = r.string(f.node(action), f.path(action), " or ".join(hosts))
    if host not in hosts:
        why = " (the router is the lab's, not a host a scenario can fail)" if host == "router" else ""
        r.fail(
            f.node(action), f.path(action), f"expected {' or '.join(hosts)}, found the string {host!r}{why}"
        )
    if f.missing("at"):
        r.fail(
            node,
            f.path("at"),
            f"missing ({action} needs at: DURATION, the time since the apps started, e.g. at: 2s)",
        )
    at = _time(r, f, "at", timeout)
    until = None
    if "until" in f:
        if not takes_until:
            r.fail(
                f.line("until"), f.path("until"), f"{action} has no end; until is for link-down and reboot"
            )
        until = _time(r, f, "until", timeout)
        if at is not None and until is not None and until <= at:
            r.fail(f.node("until"), f.path("until"), f"expected a time after at ({at:g}s), found {until:g}s")
    elif needs_until and f.missing("until"):
        r.fail(node, f.path("until"), f"missing ({action} needs until: DURATION, when the host is back up)")
    return HostFault(action, host, at, until, line_of(node))


def forge(r: Reader, node: Node, key: str, timeout: float) -> Forge | None:
    f = r.mapping(node, key, keys.FORGE_KEYS)
    kind = r.choice(f.node("forge"), f.path("forge"), FORGES)
    line = line_of(node)
    if kind == "stale-syn":
        for extra in ("to", "at", "after", "nth", "from"):
            if extra in f:
                r.fail(
                    f.line(extra),
                    f.path(extra),
                    "forge: stale-syn takes no other key "
                    "(it always goes ahead of the client's first SYN, to the server)",
                )
        return Forge(kind, line=line)
    if f.missing("to"):
        r.fail(node, f.path("to"), "missing (forge: rst needs to: client or to: server)")
    if "to" not in f or not ("at" in f or "after" in f) and f.unknown:
        return None  # a misspelt key, noted: one mistake, one line
    to = r.choice(f.node("to"), f.path("to"), APP_HOSTS)
    if ("at" in f) == ("after" in f):
        r.fail(
            node,
            key,
            "forge: rst needs exactly one of at: DURATION or after: NAME, "
            "found " + ("both" if "at" in f else "neither"),
        )
    if "at" in f:
        for extra in ("nth", "from"):
            if extra in f:
                r.fail(
                    f.line(extra),
                    f.path(extra),
                    f"{extra} is for after: NAME; a forge at a time happens once",
                )
        return Forge(kind, to, at=_time(r, f, "at", timeout), line=line)
    name = r.string(f.node("after"), f.path("after"), "a segment name such as data")
    after = r.segment(name, f.node("after"), f.path("after"))
    sender = f.get("from", r.choice, choices=APP_HOSTS)
    if sender and sender not in senders(after):
        only = " and ".join(sorted(senders(after)))
        r.fail(
            f.node("from"),
            f.path("from"),
            f"{after} is only sent by the {only}, so a forge after it from the {sender} never happens",
        )
    return Forge(kind, to, after=after, nth=f.get("nth", lambda n, k: nth(r, n, k)), sender=sender, line=line)


def _check_all(r: Reader, items: list[tuple[Node, str]], parsed: list[AnyFault | None]) -> None:
    """Across entries: one host fault per action and host, and nothing after a crash of
    the same host (a crashed host has no later to speak of)."""
    seen: dict[tuple[str, str], int] = {}
    for (node, key), f in zip(items, parsed):
        if not isinstance(f, HostFault):
            continue
        if (f.action, f.host) in seen:
            r.fail(
                node, key, f"{f.action} {f.host} is given twice (first at line {seen[(f.action, f.host)]})"
            )
        seen[(f.action, f.host)] = f.line
    crashes = {f.host: f for f in parsed if isinstance(f, HostFault) and f.action == "crash"}
    for (node, key), f in zip(items, parsed):
        if (
            isinstance(f, HostFault)
            and f.action != "crash"
            and f.host in crashes
            and f.at >= crashes[f.host].at
        ):
            r.fail(
                node,
                key,
                f"can never act: the {f.host} crashed at "
                f"{crashes[f.host].at:g}s (line {crashes[f.host].line})",
            )
