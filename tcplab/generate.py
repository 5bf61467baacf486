"""Generated scenarios (issue 11): seeded files composed from the format's own
vocabulary, to judge the kernel model on scenarios nobody tuned it to.

`generate(seed)` is pure: one `random.Random(seed)` decides everything, so a seed (with
the same kind, fast and linear_timeouts, and this version of the module) names one file
forever. A draw is: a kind (handshake, teardown, established), an app schedule from
SHAPES, one or two faults, and sysctls. Every timer chain a fault can start is bounded
by pinning the sysctl that ends it (small retries), and the timeout covers the worst
case those sysctls allow (`_worst`); a draw whose timeout would exceed the budget is
drawn again from the same generator, so the result is still a function of the seed.

Durations are whole microseconds (`Dur`), written exactly: an exact tie in a file is
two identical strings, a near tie 300us apart is `300us` apart.
"""

from __future__ import annotations

import json
import math
import os
import random
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("handshake", "teardown", "established", "any")
HOSTS = ("client", "server")
PORT = 8080
MS, S = 1_000, 1_000_000  # microseconds
BUDGET_S, FAST_BUDGET_S = 60, 10  # the longest timeout a generated file may have
LINEAR_SYSCTL = "/proc/sys/net/ipv4/tcp_syn_linear_timeouts"


class Dur(int):
    """A duration in whole microseconds, printed exactly: 1.5s, 200ms, 1.25ms, 300us."""

    def __str__(self) -> str:
        for unit, size, digits in (("s", S, 6), ("ms", MS, 3)):
            if self >= size:
                whole, frac = divmod(int(self), size)
                return f"{whole}.{frac:0{digits}d}".rstrip("0").rstrip(".") + unit
        return f"{int(self)}us"

    @property
    def seconds(self) -> float:
        return self / S


# --- vocabulary tables ------------------------------------------------------------------

LEADS = tuple(Dur(d) for d in (50 * MS, 100 * MS, 200 * MS, 500 * MS, 1 * S))
# How far apart two independent app calls are due: the races issue 11 found. "reactive"
# (one app answers the other's segment, e.g. recv then close) is a shape's own choice.
TIES = {"exact": (Dur(0),),
        "near": tuple(Dur(d) for d in (300, 500, 1 * MS, 2 * MS, 5 * MS)),
        "gap": tuple(Dur(d) for d in (100 * MS, 250 * MS, 500 * MS, 500 * MS, 1 * S))}
SIZES = (1, 100, 536, 1448, 3000)  # all within the initial window: no ACK clocking
TEXTS = ("hello", "ping", "bye")
REQUESTS = ("GET / HTTP/1.0", "GET /index.html HTTP/1.0", "HEAD / HTTP/1.0")
THINKS = tuple(Dur(d) for d in (0, 1 * MS, 100 * MS, 500 * MS))
HOST_FAULT_ATS = tuple(Dur(d) for d in (300 * MS, 500 * MS, 1 * S))
RCVTIMEOS = tuple(Dur(d) for d in (200 * MS, 500 * MS, 1 * S, 2 * S))
DELAYS = tuple(Dur(d) for d in (1 * MS, 3 * MS, 10 * MS, 50 * MS, 200 * MS, 500 * MS,
                                1 * S, 1500 * MS, 2 * S))
FAST_DELAYS = DELAYS[:6]
DUPLICATE_LAGS = tuple(Dur(d) for d in (0, 0, 1 * MS, 50 * MS, 300 * MS))
# (value, weight): nth None is `all`.
NTHS = ((1, 3), (2, 2), ((1, 2), 1), ((2, 3), 1), ((1, 3), 1), (None, 3))
ACTIONS = (("drop", 5), ("delay", 4), ("duplicate", 2))

PHASES = {
    "handshake": ("syn", "syn-ack", "ack"),
    "teardown": ("fin", "fin-ack", "peer-fin", "last-ack", "rst"),
    "established": ("data", "data-ack", "keepalive", "keepalive-ack"),
}
# Lost for good, these leave their sender retransmitting until tcp_retries2 (socket
# held) or tcp_orphan_retries (after close) gives up: 15 and 0 (= 8) by default, 15 and
# 2 minutes. A drop of all of them pins both small on both hosts.
CHAINED = frozenset({"data", "data-ack", "fin", "fin-ack", "peer-fin", "last-ack"})

SYN_RETRIES = "net.ipv4.tcp_syn_retries"
SYNACK_RETRIES = "net.ipv4.tcp_synack_retries"
LINEAR = "net.ipv4.tcp_syn_linear_timeouts"
ORPHAN_RETRIES = "net.ipv4.tcp_orphan_retries"
RETRIES2 = "net.ipv4.tcp_retries2"
FIN_TIMEOUT = "net.ipv4.tcp_fin_timeout"
# sysctl -> (hosts it matters on, values, values when fast). Small on purpose: a run
# waits out whatever chain they end.
SYSCTLS = {
    SYN_RETRIES: (("client",), (1, 2, 3), (1,)),
    LINEAR: (("client",), (0, 1, 2, 4), (0, 1)),
    SYNACK_RETRIES: (("server",), (1, 2, 3), (1,)),
    ORPHAN_RETRIES: (HOSTS, (1, 2, 3), (1, 2)),
    RETRIES2: (HOSTS, (3, 4), (3,)),
    FIN_TIMEOUT: (HOSTS, (1, 2, 3, 5), (1, 2)),
}
DEFAULTS = {SYN_RETRIES: 6, SYNACK_RETRIES: 5, ORPHAN_RETRIES: 8, RETRIES2: 15}
VARIATION = 0.2  # chance that a sysctl no fault needs is pinned anyway
SETTLE = Dur(500 * MS)
TAIL = Dur(300 * MS)  # every app outlives the modelled activity by this much
RTO = 0.25  # an upper bound of the first RTO after a lab handshake (0.204 s idle)
LATE = 1.1  # timer-wheel lateness, generously


def _pick(rng: random.Random, values):
    return values[rng.randrange(len(values))]


def _weighted(rng: random.Random, pairs):
    values, weights = zip(*pairs)
    return rng.choices(values, weights)[0]


# --- the plan of one scenario ---------------------------------------------------------------

Step = tuple[str, Any]  # (call, argument or None)
CONNECT: Step = ("connect", f"server:{PORT}")
ACCEPT: Step = ("accept", None)
CLOSE: Step = ("close", None)
RECV: Step = ("recv", None)


@dataclass
class Plan:
    """What a shape decided: the apps' steps, what they send, and how long each app is
    busy after the handshake (before its final sleep)."""

    phrase: str
    steps: dict[str, list[Step]]
    busy: dict[str, int]  # microseconds
    sends: dict[str, frozenset[str]]  # segment name -> hosts that send it here
    tie: str  # exact | near | gap | reactive
    host_fault: tuple[str, str, Dur] | None = None  # (crash|link-down|kill, host, at)
    pins: dict[str, dict[str, int]] = field(default_factory=lambda: {h: {} for h in HOSTS})


@dataclass
class Fault:
    action: str
    segment: str
    nth: int | tuple[int, ...] | None
    sender: str | None
    by: Dur | None

    def phrase(self) -> str:
        which = ("every" if self.nth is None
                 else f"the {_ordinal(self.nth)}" if isinstance(self.nth, int)
                 else "occurrences " + " and ".join(f"#{n}" for n in self.nth) + " of")
        what = f"{which} {self.segment}" + (f" from the {self.sender}" if self.sender else "")
        if self.action == "delay":
            return f"delays {what} by {self.by}"
        if self.action == "duplicate":
            return f"duplicates {what}" + (f" ({self.by} later)" if self.by else "")
        return f"drops {what}"


_SUFFIXES = {1: "st", 2: "nd", 3: "rd"}


def _ordinal(n: int) -> str:
    return f"{n}{_SUFFIXES.get(n, 'th')}"


def _other(host: str) -> str:
    return "server" if host == "client" else "client"


def _opening(host: str) -> list[Step]:
    return [CONNECT] if host == "client" else [ACCEPT]


def _sends(data: tuple[str, ...] = (), rst: tuple[str, ...] = (), closes: bool = True,
           **more: tuple[str, ...]) -> dict[str, frozenset[str]]:
    """Which host sends which segment name in a schedule. Teardown names come from both
    sides unless a shape knows better: in a tie either side may close first."""
    sends = {"syn": frozenset({"client"}), "syn-ack": frozenset({"server"}),
             "ack": frozenset({"client"})}
    if closes:
        sends |= {name: frozenset(HOSTS) for name in ("fin", "fin-ack", "peer-fin", "last-ack")}
    if data:
        sends["data"] = frozenset(data)
        sends["data-ack"] = frozenset(_other(h) for h in data)
    if rst:
        sends["rst"] = frozenset(rst)
    return sends | {name.replace("_", "-"): frozenset(hosts) for name, hosts in more.items()}


def _payload(rng: random.Random) -> int | str:
    return _pick(rng, TEXTS) if rng.random() < 0.3 else _pick(rng, SIZES)


def _size(payload: int | str) -> str:
    n = payload if isinstance(payload, int) else len(payload.encode())
    return f"{n} byte{'s' if n != 1 else ''}" + (f" ({payload!r})" if isinstance(payload, str)
                                                 else "")


def _tie(rng: random.Random, allowed: tuple[str, ...]) -> tuple[str, Dur]:
    tie = _pick(rng, allowed)
    return tie, (Dur(0) if tie == "reactive" else _pick(rng, TIES[tie]))


def _when(tie: str, off: Dur, whom: str) -> str:
    return {"reactive": f"as soon as its recv() returns (it reacts to the {whom})",
            "exact": f"at the same nominal moment as the {whom} (an exact tie)",
            "near": f"{off} after the {whom} (a near tie)",
            "gap": f"{off} after the {whom}"}[tie]


# How an app ends its side of the connection: (steps, words, sends an RST, weight).
CLOSINGS = (
    ([CLOSE], "closes", False, 6),
    ([("shutdown", "rdwr")], "shuts down both directions (shutdown: rdwr) and keeps the "
                             "socket", False, 1),
    ([("shutdown", "rd"), CLOSE], "shuts down reading, then closes", False, 1),
    ([("linger", 0), CLOSE], "closes with SO_LINGER 0 (an RST, no FIN)", True, 1),
)


def _closing(rng: random.Random) -> tuple[list[Step], str, bool]:
    steps, words, rst, _w = rng.choices(CLOSINGS, [c[3] for c in CLOSINGS])[0]
    return list(steps), words, rst


# --- shapes: the app schedules ----------------------------------------------------------------

def _send_close(rng: random.Random, fast: bool) -> Plan:
    """A little data and a close; the server reads and closes, reacting to it or on a
    timer of its own that ties with the client's close or not."""
    lead, data = _pick(rng, LEADS), _payload(rng)
    tie, off = _tie(rng, ("reactive", "exact", "near", "gap"))
    closing, words, rst = _closing(rng)
    client = [CONNECT, ("sleep", lead), ("send", data), *closing]
    server = [ACCEPT, RECV, CLOSE] if tie == "reactive" else \
        [ACCEPT, ("sleep", Dur(lead + off)), RECV, CLOSE]
    phrase = (f"the client sends {_size(data)} {lead} after the handshake and {words}; the "
              f"server reads and closes {_when(tie, off, 'client')}")
    return Plan(phrase, {"client": client, "server": server},
                {"client": lead, "server": lead + off}, _sends(("client",), ("client",) * rst),
                tie)


def _http10(rng: random.Random, fast: bool) -> Plan:
    """Request, half-close, reply: HTTP/1.0. The client's FIN_WAIT2 meets the reply."""
    request, reply, think = _pick(rng, REQUESTS), _pick(rng, SIZES), _pick(rng, THINKS)
    client = [CONNECT, ("send", request), ("shutdown", "wr"), ("recv", reply + 1), CLOSE]
    server = [ACCEPT, RECV, *([("sleep", think)] if think else []), ("send", reply), CLOSE]
    later = f"{think} later" if think else "at once"
    phrase = (f"HTTP/1.0 style: the client sends {request!r} and half-closes (shutdown: wr); "
              f"the server replies with {_size(reply)} {later} and closes; the client reads "
              "to the end and closes")
    return Plan(phrase, {"client": client, "server": server}, {"client": think, "server": think},
                _sends(HOSTS), "reactive")


def _both_close(rng: random.Random, fast: bool) -> Plan:
    """Both apps close on timers of their own: at once, a hair apart, or clearly apart."""
    lead = _pick(rng, LEADS)
    tie, off = _tie(rng, ("exact", "exact", "near", "near", "gap"))
    later = _pick(rng, HOSTS)
    data = _payload(rng) if rng.random() < 0.5 else None
    ends = {h: _closing(rng) for h in HOSTS}
    waits = {h: Dur(lead + (off if h == later else 0)) for h in HOSTS}
    client = [CONNECT, *([("send", data)] if data is not None else []),
              ("sleep", waits["client"]), *ends["client"][0]]
    server = [ACCEPT, *([RECV] if data is not None else []), ("sleep", waits["server"]),
              *ends["server"][0]]
    sent = f"the client sends {_size(data)}, then " if data is not None else ""
    first = _other(later)
    phrase = (f"{sent}the {first} {ends[first][1]} {lead} after the handshake and the "
              f"{later} {ends[later][1]} {_when(tie, off, first)}")
    return Plan(phrase, {"client": client, "server": server}, dict(waits),
                _sends(("client",) if data is not None else (),
                       tuple(h for h in HOSTS if ends[h][2])), tie)


def _server_first(rng: random.Random, fast: bool) -> Plan:
    """The server closes first; the client, waiting in recv(), closes when it sees the
    end: at once or a clear gap later (the 0.5 s of issue 11)."""
    lead = _pick(rng, LEADS)
    tie, off = _tie(rng, ("reactive", "gap"))
    closing, words, rst = _closing(rng)
    server = [ACCEPT, ("sleep", lead), *closing]
    client = [CONNECT, RECV, *([("sleep", off)] if off else []), CLOSE]
    phrase = (f"the server {words} {lead} after the handshake; the client, waiting in recv(), "
              f"closes {_when(tie, off, 'server') if off else 'as soon as recv() returns'}")
    return Plan(phrase, {"client": client, "server": server},
                {"server": lead, "client": lead + off}, _sends(rst=("server",) * rst), tie)


def _unread_close(rng: random.Random, fast: bool) -> Plan:
    """The server closes with data unread: an RST instead of a FIN (RFC 2525 2.17)."""
    first, second = _pick(rng, SIZES), _pick(rng, SIZES)
    pause = _pick(rng, LEADS[:3])
    client = [CONNECT, ("send", first), ("sleep", pause), ("send", second), RECV, CLOSE]
    server = [ACCEPT, ("recv", first), ("sleep", Dur(2 * pause)), CLOSE]
    phrase = (f"the client sends {_size(first)}, then {_size(second)} more {pause} later, and "
              f"waits in recv(); the server reads only the first {first} and closes "
              f"{Dur(2 * pause)} after the handshake with the rest unread")
    return Plan(phrase, {"client": client, "server": server},
                {"client": 2 * pause, "server": 2 * pause}, _sends(("client",), ("server",)),
                "reactive")


def _rcvtimeo(rng: random.Random, fast: bool) -> Plan:
    """One app gives up waiting (SO_RCVTIMEO, EAGAIN) and closes; the other reacts."""
    waiter, timeout = _pick(rng, HOSTS), _pick(rng, RCVTIMEOS[:3] if fast else RCVTIMEOS)
    tie, off = _tie(rng, ("reactive", "gap"))
    closing, words, rst = _closing(rng)
    other = _other(waiter)
    steps = {waiter: [*_opening(waiter), ("rcvtimeo", timeout), RECV, CLOSE],
             other: [*_opening(other), RECV, *([("sleep", off)] if off else []), *closing]}
    phrase = (f"the {waiter} sets SO_RCVTIMEO {timeout} and waits in recv() for data that "
              f"never comes, then closes; the {other}, waiting in recv() too, {words} "
              + (_when(tie, off, waiter) if off else "as soon as it sees the end"))
    return Plan(phrase, steps, {waiter: timeout, other: timeout + off},
                _sends(rst=(other,) * rst), tie)


def _keepalive(rng: random.Random, fast: bool) -> Plan:
    """Keepalive on an idle connection: answered by a live peer, or unanswered after the
    peer's host crashed, until the prober gives up (idle + count x interval)."""
    prober = _pick(rng, HOSTS)
    peer = _other(prober)
    idle, interval, count = _pick(rng, (1, 2, 3)), _pick(rng, (1, 2)), _pick(rng, (1, 2, 3))
    if fast:
        idle, count = min(idle, 2), min(count, 2)
    option = ("keepalive", {"idle": idle, "interval": interval, "count": count})
    said = (f"the {prober} turns keepalive on (idle {idle} s, interval {interval} s, count "
            f"{count}) and waits in recv() on an idle connection; ")
    prober_steps = [*_opening(prober), option, RECV, CLOSE]
    if rng.random() < 0.6:
        at = _pick(rng, HOST_FAULT_ATS[:2] if idle == 1 else HOST_FAULT_ATS)
        return Plan(said + f"the {peer} host crashes at {at}, so no probe is answered",
                    {prober: prober_steps, peer: _opening(peer)},
                    {prober: (idle + count * interval) * S, peer: 0},
                    _sends(rst=(prober,), closes=False, keepalive=(prober,)), "gap",
                    host_fault=("crash", peer, at))
    probes = _pick(rng, (1, 2))
    quiet = Dur(probes * idle * S + 500 * MS)
    closing, words, rst = _closing(rng)
    return Plan(said + f"the {peer} answers the probes and {words} after {quiet}",
                {prober: prober_steps, peer: [*_opening(peer), ("sleep", quiet), *closing]},
                {prober: quiet, peer: quiet},
                _sends(rst=(peer,) * rst, keepalive=(prober,), keepalive_ack=(peer,)), "gap")


def _into_silence(rng: random.Random, fast: bool) -> Plan:
    """Data sent to a peer whose host crashed or whose link is down: retransmissions
    until tcp_retries2 gives up (ETIMEDOUT, or ENETUNREACH from the router's ICMP)."""
    sender = _pick(rng, HOSTS)
    silent = _other(sender)
    how, at = _pick(rng, ("crash", "link-down")), _pick(rng, HOST_FAULT_ATS)
    wait, data = _pick(rng, LEADS[1:4]), _payload(rng)
    retries = _pick(rng, (3,) if fast else (3, 4, 5))
    giveup = _giveup(retries) * (1.25 if how == "link-down" else 1.0)  # ICMP reverts backoff
    went = (f"the {silent} host crashes at {at}" if how == "crash"
            else f"the router's link to the {silent} goes down at {at}")
    phrase = (f"{went}; {wait} later the {sender} sends {_size(data)} into the silence and "
              f"waits in recv() until tcp_retries2={retries} gives up, then closes")
    steps = {sender: [*_opening(sender), ("sleep", Dur(at + wait)), ("send", data), RECV, CLOSE],
             silent: _opening(silent)}
    plan = Plan(phrase, steps, {sender: at + wait + int(giveup * S), silent: 0},
                _sends((sender,), closes=False), "gap", host_fault=(how, silent, at))
    plan.pins[sender][RETRIES2] = retries
    return plan


def _kill_idle(rng: random.Random, fast: bool) -> Plan:
    """An application killed while its connection is idle: its kernel sends the FIN."""
    victim, at = _pick(rng, HOSTS), _pick(rng, HOST_FAULT_ATS)
    other = _other(victim)
    tie, off = _tie(rng, ("reactive", "gap"))
    closing, words, rst = _closing(rng)
    steps = {victim: _opening(victim),
             other: [*_opening(other), RECV, *([("sleep", off)] if off else []), *closing]}
    phrase = (f"the {victim}'s application is killed (SIGKILL) at {at} on an idle "
              f"connection, so its kernel closes the socket; the {other}, waiting in "
              f"recv(), {words} " + (_when(tie, off, victim + "'s FIN") if off
                                     else "as soon as it sees the FIN"))
    sends = _sends(rst=(other,) * rst, fin=(victim,), fin_ack=(other,), peer_fin=(other,),
                   last_ack=(victim,))
    # The victim is busy 0: its final sleep then outlasts `at` (it must still run then).
    return Plan(phrase, steps, {victim: 0, other: at + off}, sends, tie,
                host_fault=("kill", victim, at))


# shape -> (function, the kinds it serves). Handshake faults go only with shapes that
# have no host fault: a host fault's `at` must find the connection established and idle.
SHAPES: dict[str, tuple[Callable[[random.Random, bool], Plan], tuple[str, ...]]] = {
    "send-close": (_send_close, ("handshake", "teardown", "established")),
    "http10": (_http10, ("handshake", "teardown", "established")),
    "both-close": (_both_close, ("handshake", "teardown")),
    "server-first": (_server_first, ("handshake", "teardown")),
    "unread-close": (_unread_close, ("handshake", "teardown", "established")),
    "rcvtimeo": (_rcvtimeo, ("handshake", "teardown")),
    "keepalive": (_keepalive, ("established",)),
    "into-silence": (_into_silence, ("established",)),
    "kill-idle": (_kill_idle, ("teardown",)),
}


# --- faults and sysctls -----------------------------------------------------------------------

def _fault(rng: random.Random, name: str, sides: frozenset[str], fast: bool) -> Fault:
    action, nth = _weighted(rng, ACTIONS), _weighted(rng, NTHS)
    sender = None if rng.random() < 0.4 else _pick(rng, sorted(sides))
    by = None
    if action == "delay":
        by = _pick(rng, FAST_DELAYS if fast else DELAYS)
    elif action == "duplicate":
        by = _pick(rng, DUPLICATE_LAGS) or None
    return Fault(action, name, nth, sender, by)


def _faults(rng: random.Random, kind: str, plan: Plan, fast: bool) -> list[Fault]:
    """One or two segment faults (a host fault counts as one), each on a different name
    so that none can shadow the other; the first on a name of the kind's phase."""
    names = sorted(plan.sends)
    if plan.host_fault:
        wanted = 1 if rng.random() < 0.4 else 0
        firsts = [n for n in names if n not in PHASES["handshake"]]
    else:
        wanted = 2 if rng.random() < 0.4 else 1
        firsts = [n for n in PHASES[kind] if n in plan.sends]
    faults: list[Fault] = []
    for i in range(wanted):
        pool = firsts if i == 0 else [n for n in names if n != faults[0].segment
                                      and not (plan.host_fault and n in PHASES["handshake"])]
        name = _pick(rng, pool)
        faults.append(_fault(rng, name, plan.sends[name], fast))
    return faults


def _sysctls(rng: random.Random, plan: Plan, faults: list[Fault], fast: bool,
             linear: bool) -> dict[str, dict[str, int]]:
    """The pins the faults need to keep every chain short, then some variation."""
    pins = {h: dict(plan.pins[h]) for h in HOSTS}
    drops = {f.segment for f in faults if f.action == "drop"}
    needed: list[tuple[str, str]] = []
    if drops & {"syn", "syn-ack"}:
        needed += [("client", SYN_RETRIES)] + ([("client", LINEAR)] if linear else [])
    if drops & {"syn-ack", "ack"}:
        needed.append(("server", SYNACK_RETRIES))
    if any(f.action == "drop" and f.nth is None and f.segment in CHAINED for f in faults):
        needed += [(h, name) for h in HOSTS for name in (RETRIES2, ORPHAN_RETRIES)]
    for host, name in needed:
        pins[host].setdefault(name, _pick(rng, SYSCTLS[name][2 if fast else 1]))
    for name, (hosts, values, fast_values) in SYSCTLS.items():
        if name == LINEAR and not linear:
            continue  # this kernel has no such sysctl: naming it is a load error at run time
        for host in hosts:
            if name not in pins[host] and rng.random() < VARIATION:
                pins[host][name] = _pick(rng, fast_values if fast else values)
    return pins


# --- how long it can take ------------------------------------------------------------------

def _syn_giveup(retries: int, linear: int) -> float:
    """connect() gives up at the expiry after retries + linear retransmissions; the
    first linear + 1 waits are 1 s, then they double (tcp_write_timeout, 6.5+)."""
    waits = [1.0] * (linear + 1) + [2.0 ** k for k in range(1, retries + 1)]
    return sum(waits[:retries + linear + 1]) * LATE


def _synack_giveup(retries: int) -> float:
    return (2 ** (retries + 1) - 1) * LATE


def _giveup(retries: int) -> float:
    """When an RTO chain from the first transmission ends: the first expiry at which the
    time since the first RTO retransmission reaches tcp_model_timeout(retries, 200 ms);
    expiries at 2^k R (a tail loss probe at R first)."""
    limit, k = (2 ** (retries + 1) - 1) * 0.2, 1
    while (2 ** k - 2) * RTO < limit:
        k += 1
    return 2 ** k * RTO * LATE


def _worst(plan: Plan, faults: list[Fault], pins: dict[str, dict[str, int]],
           linear: bool) -> tuple[float, float]:
    """(handshake, body) in seconds: how long the handshake can take, and how long after
    it the modelled activity can go on. Bounds, not predictions."""
    client, server = pins["client"], pins["server"]
    drops = {f.segment for f in faults if f.action == "drop"}
    handshake = 0.0
    if drops & {"syn", "syn-ack"}:
        handshake += _syn_giveup(client.get(SYN_RETRIES, DEFAULTS[SYN_RETRIES]),
                                 client.get(LINEAR, 4 if linear else 0))
    if drops & {"syn-ack", "ack"}:  # a late SYN can start a new request: both chains
        handshake += _synack_giveup(server.get(SYNACK_RETRIES, DEFAULTS[SYNACK_RETRIES]))
    body = max(plan.busy.values()) / S
    for f in faults:
        lag = (f.by or 0) / S * (1 if f.action == "duplicate" else 3)  # each wait, in turn
        if f.segment in PHASES["handshake"]:
            handshake += lag
        else:
            body += lag
    if any(f.action == "drop" and f.nth is None and f.segment in CHAINED for f in faults):
        body += _giveup(max(p.get(n, DEFAULTS[n]) for p in (client, server)
                            for n in (RETRIES2, ORPHAN_RETRIES)))
    body += max((p.get(FIN_TIMEOUT, 0) for p in (client, server)), default=0) * LATE
    return handshake, body


# --- the file ------------------------------------------------------------------------------------

@dataclass
class Draft:
    """One generated scenario before it is written out."""

    seed: int
    kind: str  # as asked (any, ...): the command that writes it again says this
    phase: str  # what was drawn: handshake, teardown or established
    shape: str
    plan: Plan
    faults: list[Fault]
    pins: dict[str, dict[str, int]]
    timeout: int  # seconds
    body: float


def draft(seed: int, kind: str = "any", fast: bool = False,
          linear_timeouts: bool = False) -> Draft:
    """Draw until the timeout fits the budget (most draws do at once)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    rng = random.Random(seed)
    budget = FAST_BUDGET_S if fast else BUDGET_S
    for _attempt in range(200):
        phase = _pick(rng, KINDS[:3]) if kind == "any" else kind
        shape = _pick(rng, sorted(n for n, (_f, kinds) in SHAPES.items() if phase in kinds))
        plan = SHAPES[shape][0](rng, fast)
        faults = _faults(rng, phase, plan, fast)
        pins = _sysctls(rng, plan, faults, fast, linear_timeouts)
        handshake, body = _worst(plan, faults, pins, linear_timeouts)
        span = handshake + body + (TAIL + SETTLE) / S
        timeout = math.ceil(span + max(2.0, 0.15 * span))
        if timeout <= budget:
            return Draft(seed, kind, phase, shape, plan, faults, pins, timeout, body)
    raise RuntimeError(f"seed {seed}: no draw fits a {budget} s timeout (a generator bug)")


def generate(seed: int, kind: str = "any", fast: bool = False,
             linear_timeouts: bool = False) -> str:
    """The YAML text of scenario gen-<seed>; the same arguments give the same bytes."""
    return render(draft(seed, kind, fast, linear_timeouts), fast, linear_timeouts)


def command(seed: int, kind: str, fast: bool, linear_timeouts: bool) -> str:
    flags = (" --fast" if fast else "") + (" --linear-timeouts" if linear_timeouts
                                           else " --no-linear-timeouts")
    return f"tcplab generate --seed {seed} --count 1 --kind {kind}{flags} --out DIR"


def render(d: Draft, fast: bool, linear_timeouts: bool) -> str:
    summary = _summary(d)
    lines = [f"# Generated by tcplab generate, seed {d.seed}; `"
             f"{command(d.seed, d.kind, fast, linear_timeouts)}` writes it again.",
             f"scenario: gen-{d.seed}", "summary: >-",
             *("  " + line for line in textwrap.wrap(summary, 86))]
    if any(d.pins.values()):
        lines.append("hosts:")
        for host in HOSTS:
            if d.pins[host]:
                lines += [f"  {host}:", *_sysctls_yaml(d.pins[host])]
    lines.append("apps:")
    for host in ("server", "client"):
        steps = [*_with_listen(host, d.plan.steps[host]),
                 ("sleep", Dur(int(d.body * S) - d.plan.busy[host] + TAIL))]
        lines += _steps_yaml(host, steps)
    faults = [*map(_fault_yaml, d.faults)] + ([_host_fault_yaml(d.plan.host_fault)]
                                             if d.plan.host_fault else [])
    if faults:
        lines += ["faults:", *(line for f in faults for line in f)]
    lines += ["expect: {model: linux}", f"timeout: {d.timeout}s", f"settle: {SETTLE}"]
    return "\n".join(lines) + "\n"


def _sysctls_yaml(pins: dict[str, int]) -> list[str]:
    flow = "    sysctls: {" + ", ".join(f"{k}: {v}" for k, v in sorted(pins.items())) + "}"
    if len(flow) <= 92:
        return [flow]
    return ["    sysctls:", *(f"      {k}: {v}" for k, v in sorted(pins.items()))]


def _with_listen(host: str, steps: list[Step]) -> list[Step]:
    return [("listen", PORT), *steps] if host == "server" else steps


def _summary(d: Draft) -> str:
    parts = [d.plan.phrase]
    if d.faults:
        parts.append("the router " + " and ".join(f.phrase() for f in d.faults))
    pinned = [f"{k.rsplit('.', 1)[1]}={v} on the {h}" for h in HOSTS
              for k, v in sorted(d.pins[h].items())]
    if pinned:
        parts.append(", ".join(pinned))
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:]


def _value(arg: Any) -> str:
    if isinstance(arg, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in arg.items()) + "}"
    if isinstance(arg, str) and (":" in arg or " " in arg or arg in TEXTS):
        return json.dumps(arg)  # a JSON string is a YAML double-quoted scalar
    return str(arg)


def _step_yaml(step: Step) -> str:
    call, arg = step
    return call if arg is None else f"{call}: {_value(arg)}"


def _steps_yaml(host: str, steps: list[Step]) -> list[str]:
    flow = f"  {host}: [{', '.join(map(_step_yaml, steps))}]"
    if len(flow) <= 92:
        return [flow]
    return [f"  {host}:", *(f"    - {_step_yaml(s)}" for s in steps)]


def _fault_yaml(f: Fault) -> list[str]:
    lines = [f"  - {f.action}: {f.segment}"]
    if f.nth is not None:
        lines.append(f"    nth: {f.nth if isinstance(f.nth, int) else list(f.nth)}")
    if f.sender:
        lines.append(f"    from: {f.sender}")
    if f.by:
        lines.append(f"    by: {f.by}")
    return lines


def _host_fault_yaml(fault: tuple[str, str, Dur]) -> list[str]:
    action, host, at = fault
    return [f"  - {action}: {host}", f"    at: {at}"]


# --- writing files ---------------------------------------------------------------------------

def has_linear_timeouts() -> bool:
    """Whether the running kernel has tcp_syn_linear_timeouts (Linux 6.5+); the CLI's
    default, never read inside generate()."""
    return os.path.isfile(LINEAR_SYSCTL)


def write_scenarios(seed: int, count: int, out: Path, kind: str = "any", fast: bool = False,
                    linear_timeouts: bool = False) -> list[Path]:
    """gen-<seed>.yaml for seeds seed .. seed+count-1, each loaded back by the loader
    first: a file it rejects is a generator bug, raised, never written."""
    from tcplab.errors import ScenarioError
    from tcplab.format.load import load_text

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for s in range(seed, seed + count):
        path = out / f"gen-{s}.yaml"
        text = generate(s, kind, fast, linear_timeouts)
        try:
            load_text(text, str(path))
        except ScenarioError as e:
            raise RuntimeError(f"generator bug, seed {s}: the loader rejects it: {e}") from e
        path.write_text(text)
        written.append(path)
    return written
