"""The `faults:` entries that are not drop/delay of a named segment: time-window host
faults (link-down, crash, reboot, kill) and forged segments (forge: rst | stale-syn).
Parsed with tcplab/scenario.py's reader, so every mistake is one `file:line: key:
message` line. Times are measured from the moment the apps start (the Record's t = 0).
"""

from __future__ import annotations

from yaml.nodes import MappingNode, Node, ScalarNode

from tcplab.core.faults import FORGES, HOST_FAULTS, Forge, HostFault
from tcplab.core.scenario import APP_HOSTS
from tcplab.core.segments import senders

HOST_FAULT_KEYS = (*HOST_FAULTS, "at", "until")
FORGE_KEYS = ("forge", "to", "at", "after", "nth", "from")
ACTION_KEYS = (*HOST_FAULTS, "forge")


def action_of(node: Node) -> str | None:
    """Which of these faults a `faults:` item is, by its keys (None: drop/delay/...)."""
    if not isinstance(node, MappingNode):
        return None
    keys = [k.value for k, _v in node.value if isinstance(k, ScalarNode)]
    return next((k for k in keys if k in ACTION_KEYS), None)


def parse(r, node: Node, key: str, timeout: float, action: str):
    return forge(r, node, key, timeout) if action == "forge" else \
        host_fault(r, node, key, timeout)


def _time(r, f, name: str, timeout: float) -> float:
    return f.get(name, r.duration, limit=timeout, below=True,
                 why=" (the timeout stops the run first)")


def host_fault(r, node: Node, key: str, timeout: float) -> HostFault:
    f = r.mapping(node, key, HOST_FAULT_KEYS)
    actions = [a for a in HOST_FAULTS if a in f]
    if len(actions) != 1:
        r.fail(node, key, f"expected one of {', '.join(HOST_FAULTS)} per fault, found "
                          + " and ".join(actions))
    action = actions[0]
    hosts, takes_until, needs_until, _what = HOST_FAULTS[action]
    host = r.string(f.node(action), f.path(action), " or ".join(hosts))
    if host not in hosts:
        why = " (the router is the lab's, not a host a scenario can fail)" \
            if host == "router" else ""
        r.fail(f.node(action), f.path(action), f"expected {' or '.join(hosts)}, found "
                                               f"the string {host!r}{why}")
    if "at" not in f:
        r.fail(node, f.path("at"), f"missing ({action} needs at: DURATION, the time since "
                                   "the apps started, e.g. at: 2s)")
    at = _time(r, f, "at", timeout)
    until = None
    if "until" in f:
        if not takes_until:
            r.fail(f.line("until"), f.path("until"), f"{action} has no end; until is for "
                                                     "link-down and reboot")
        until = _time(r, f, "until", timeout)
        if until <= at:
            r.fail(f.node("until"), f.path("until"), f"expected a time after at ({at:g}s), "
                                                     f"found {until:g}s")
    elif needs_until:
        r.fail(node, f.path("until"), f"missing ({action} needs until: DURATION, when the "
                                      "host is back up)")
    return HostFault(action, host, at, until, node.start_mark.line + 1)


def forge(r, node: Node, key: str, timeout: float) -> Forge:
    f = r.mapping(node, key, FORGE_KEYS)
    kind = r.choice(f.node("forge"), f.path("forge"), FORGES)
    line = node.start_mark.line + 1
    if kind == "stale-syn":
        for extra in ("to", "at", "after", "nth", "from"):
            if extra in f:
                r.fail(f.line(extra), f.path(extra), "forge: stale-syn takes no other key "
                       "(it always goes ahead of the client's first SYN, to the server)")
        return Forge(kind, line=line)
    if "to" not in f:
        r.fail(node, f.path("to"), "missing (forge: rst needs to: client or to: server)")
    to = r.choice(f.node("to"), f.path("to"), APP_HOSTS)
    if ("at" in f) == ("after" in f):
        r.fail(node, key, "forge: rst needs exactly one of at: DURATION or after: NAME, "
                          "found " + ("both" if "at" in f else "neither"))
    if "at" in f:
        for extra in ("nth", "from"):
            if extra in f:
                r.fail(f.line(extra), f.path(extra), f"{extra} is for after: NAME; a forge "
                                                     "at a time happens once")
        return Forge(kind, to, at=_time(r, f, "at", timeout), line=line)
    name = r.string(f.node("after"), f.path("after"), "a segment name such as data")
    after = r.segment(name, f.node("after"), f.path("after"))
    sender = f.get("from", r.choice, choices=APP_HOSTS)
    if sender and sender not in senders(after):
        only = " and ".join(sorted(senders(after)))
        r.fail(f.node("from"), f.path("from"), f"{after} is only sent by the {only}, so a "
                                               f"forge after it from the {sender} never happens")
    return Forge(kind, to, after=after, nth=f.get("nth", r.nth), sender=sender, line=line)


def check_all(r, items: list, faults: list) -> None:
    """Across entries: one host fault per action and host, and nothing after a crash of
    the same host (a crashed host has no later to speak of)."""
    seen: dict[tuple[str, str], int] = {}
    for (node, key), f in zip(items, faults):
        if not isinstance(f, HostFault):
            continue
        if (f.action, f.host) in seen:
            r.fail(node, key, f"{f.action} {f.host} is given twice (first at line "
                              f"{seen[(f.action, f.host)]})")
        seen[(f.action, f.host)] = f.line
    crashes = {f.host: f for f in faults if isinstance(f, HostFault) and f.action == "crash"}
    for (node, key), f in zip(items, faults):
        if isinstance(f, HostFault) and f.action != "crash" and f.host in crashes \
                and f.at >= crashes[f.host].at:
            r.fail(node, key, f"can never act: the {f.host} crashed at "
                              f"{crashes[f.host].at:g}s (line {crashes[f.host].line})")
