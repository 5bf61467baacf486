"""`apps:`: each host's steps, one call per step, with one argument parser per call
(the forms are keys.STEP_FORMS), and the order rules that keep a step from acting on
a socket that cannot exist yet."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from yaml.nodes import MappingNode, Node

from tcplab.core.scenario import APP_HOSTS, STEP_CALLS, Repeat, Step, all_steps
from tcplab.format import keys
from tcplab.format.reader import Reader, found, hint, line_of, show, value

_CONNECT = re.compile(r"([A-Za-z0-9_.\-]+):([0-9]+)")


def apps(r: Reader, node: Node, key: str) -> dict[str, tuple[Step, ...] | None]:
    """Each host's steps; None for a host whose steps had a mistake (the expectations'
    checks against its steps then leave it alone)."""
    hosts = r.mapping(node, key, APP_HOSTS, required=APP_HOSTS)
    return {host: hosts.get(host, lambda n, k, host=host: steps(r, n, k, host)) for host in APP_HOSTS}


def steps(r: Reader, node: Node, key: str, host: str) -> tuple[Step, ...] | None:
    """The steps, each mistake noted; None if there was one (the order rules need all)."""
    before = r.failures
    parsed = tuple(r.attempt(step, r, item, ikey) for item, ikey in r.items(node, key, True))
    if r.failed_since(before):
        return None
    check_order(r, parsed, key, host, listened=False)
    if host == "client" and not any(s.call == "connect" for s in all_steps(parsed)):
        r.fail(node, key, "the client needs a connect step, e.g. connect: server:8080")
    return parsed


def check_order(r: Reader, steps: tuple[Step, ...], key: str, host: str, listened: bool) -> None:
    """The lab has one listener (the server); the client connects to the server, and
    the server to the client only for a simultaneous open. A call on a socket that
    cannot exist yet would only fail with EBADF at run time."""
    connected = False
    for i, s in enumerate(steps):
        where, skey = s.line, f"{key}[{i}].{s.call}"
        if s.call == "listen" and host != "server":
            r.fail(where, skey, "only the server can listen")
        if s.call == "connect" and s.arg[0] == host:
            r.fail(
                where,
                skey,
                f"the {host} cannot connect to itself; connect to "
                f"{'server' if host == 'client' else 'client'}:PORT",
            )
        if s.call == "accept" and not listened:
            r.fail(where, skey, "accept needs an earlier listen in the same list")
        if s.call in ("send", "recv", "close", "shutdown") and not connected:
            first = "connect" if host == "client" else "accept"
            r.fail(
                where,
                skey,
                f"{s.call} needs a connection: put {first} before it"
                + (" (each repeat iteration has its own socket)" if "repeat" in key else ""),
            )
        if s.call == "flood" and host != "client":
            r.fail(
                where,
                skey,
                "only the client floods (its spoofed sources are addresses of the client's subnet)",
            )
        if isinstance(s.arg, Repeat):
            check_order(r, s.arg.steps, f"{skey}.steps", host, listened)
        listened = listened or s.call == "listen"
        connected = connected or s.call in ("connect", "accept")


def step(r: Reader, node: Node, key: str) -> Step:
    """`accept` (a bare name) or `listen: 8080` (a one-key mapping)."""
    if isinstance(node, MappingNode):
        entries = r.entries(node, key)
        if len(entries) != 1:
            r.fail(
                node,
                key,
                f"expected one call per step, found {len(entries)} keys "
                f"({', '.join(map(show, entries))}); give each call its own "
                "list item",
            )
        ((call, (where, arg)),) = entries.items()
    elif isinstance(value(node), str):
        call, where, arg = node.value, node, None
    else:
        r.fail(node, key, f"expected a call such as accept or listen: 8080, found {found(node)}")
    if call not in keys.STEP_FORMS:
        r.fail(
            where,
            key,
            f"unknown call {show(call)}{hint(call, STEP_CALLS)} (expected one of: {', '.join(STEP_CALLS)})",
        )
    form = keys.STEP_FORMS[call]
    if arg is None or value(arg) is None:  # `close` and `close:` mean the same
        if not form.bare_ok:
            r.fail(node, f"{key}.{call}", f"{call} needs an argument, e.g. {form.example}")
        return Step(call, None, line_of(node))
    if not form.takes_arg:
        r.fail(arg, f"{key}.{call}", f"{call} takes no argument, found {found(arg)}")
    return Step(call, _PARSE[call](r, arg, f"{key}.{call}"), line_of(node))


# --- step arguments: one parser per call ----------------------------------------------------


def _connect(r: Reader, node: Node, key: str) -> tuple[str, int]:
    what = "server:PORT such as server:8080"
    if not (match := _CONNECT.fullmatch(r.string(node, key, what))):
        r.fail(node, key, f"expected {what}, found {found(node)}")
    # Addresses are the lab's business; the name is all we need. The server connects to
    # the client only for a simultaneous open (check_order() checks who connects to whom).
    if match[1] not in APP_HOSTS:
        r.fail(node, key, f"expected server:PORT (or client:PORT from the server), found {show(match[1])}")
    if not 1 <= int(match[2]) <= 65535:
        r.fail(node, key, f"expected a port number from 1 to 65535, found {match[2]}")
    return (match[1], int(match[2]))


def _send(r: Reader, node: Node, key: str) -> int | str:
    if isinstance(text := value(node), str):
        return text  # those bytes, UTF-8 encoded
    return r.integer(node, key, 0, keys.MAX_SEND, f"a byte count from 0 to {keys.MAX_SEND} or a string")


def _port(r: Reader, node: Node, key: str) -> int:
    return r.integer(node, key, 1, 65535, "a port number from 1 to 65535")


def _listen(r: Reader, node: Node, key: str) -> int | dict[str, int]:
    if not isinstance(node, MappingNode):
        return _port(r, node, key)
    m = r.mapping(node, key, keys.LISTEN_KEYS, required=("port",))
    # listen(2) takes any int; the kernel caps it at net.core.somaxconn.
    return {
        "port": m.get("port", lambda n, k: _port(r, n, k)),
        "backlog": m.get("backlog", r.integer, 128, lo=0, hi=65535),
    }


def _whole_seconds(r: Reader, node: Node, key: str, hi: int) -> int:
    """TCP_KEEPIDLE and TCP_KEEPINTVL are whole seconds from 1 to 32767."""
    seconds = r.duration(node, key)
    if seconds != int(seconds) or not 1 <= seconds <= hi:
        r.fail(
            node,
            key,
            f"expected whole seconds from 1s to {hi}s (the kernel takes "
            f"seconds), found {show(node.value)[1:-1]}",
        )
    return int(seconds)


def _keepalive(r: Reader, node: Node, key: str) -> bool | dict[str, int | None]:
    if value(node) is True:  # `on`, `yes`, `true`: SO_KEEPALIVE with the sysctls
        return True
    if not isinstance(node, MappingNode):
        r.fail(node, key, f"expected on or a mapping of idle, interval, count, found {found(node)}")
    k = r.mapping(node, key, keys.KEEPALIVE_KEYS)
    return {
        "idle": k.get("idle", lambda n, key: _whole_seconds(r, n, key, 32767)),
        "interval": k.get("interval", lambda n, key: _whole_seconds(r, n, key, 32767)),
        "count": k.get("count", r.integer, lo=1, hi=127),
    }


def _repeat(r: Reader, node: Node, key: str) -> Repeat:
    m = r.mapping(node, key, keys.REPEAT_KEYS, required=("times", "steps"))
    parallel = m.get("parallel", lambda n, k: value(n), False)
    if type(parallel) is not bool:
        r.fail(
            m.node("parallel"),
            m.path("parallel"),
            f"expected true or false, found {found(m.node('parallel'))}",
        )
    inner = m.get("steps", lambda n, k: tuple(step(r, item, ikey) for item, ikey in r.items(n, k, True)), ())
    for i, s in enumerate(inner):
        if s.call in keys.NOT_REPEATED:
            r.fail(
                s.line,
                f"{m.path('steps')}[{i}].{s.call}",
                f"{s.call} cannot be inside a repeat ({keys.NOT_REPEATED[s.call]})",
            )
    # 1000 threads or sockets is already far beyond what a lab run needs.
    return Repeat(m.get("times", r.integer, lo=1, hi=1000), parallel, inner)


def _flood(r: Reader, node: Node, key: str) -> dict[str, int]:
    m = r.mapping(node, key, keys.FLOOD_KEYS, required=keys.FLOOD_KEYS)
    return {
        "syns": m.get("syns", r.integer, lo=1, hi=10000),
        "port": m.get("port", lambda n, k: _port(r, n, k)),
    }


# call -> its argument's parser, for the calls whose form takes one
_PARSE: dict[str, Callable[[Reader, Node, str], Any]] = {
    "listen": _listen,
    "connect": _connect,
    "send": _send,
    "recv": lambda r, n, k: r.integer(n, k, 1),
    "sleep": lambda r, n, k: r.duration(n, k),
    "shutdown": lambda r, n, k: r.choice(n, k, keys.SHUTDOWN_HOWS),
    "bind": _port,
    "linger": lambda r, n, k: r.integer(n, k, 0, 3600, "whole seconds from 0 to 3600"),
    "keepalive": _keepalive,
    "syncnt": lambda r, n, k: r.integer(n, k, 1, 127),
    "rcvtimeo": lambda r, n, k: r.duration(n, k, positive=True),
    "repeat": _repeat,
    "flood": _flood,
}
assert set(_PARSE) == {call for call, form in keys.STEP_FORMS.items() if form.takes_arg}
