"""The generator's vocabulary: durations written exactly (`Dur`), the tables the draws
pick from (leads, ties, sizes, delays, sysctls and their values), a scenario's plan as
data (`Plan`, `Fault`, steps), and the small helpers that phrase a draw in words.
Pure and stdlib-only: the CLI imports KINDS from here for its option's choices.

Durations are whole microseconds (`Dur`), written exactly: an exact tie in a file is
two identical strings, a near tie 300us apart is `300us` apart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
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
TIES = {
    "exact": (Dur(0),),
    "near": tuple(Dur(d) for d in (300, 500, 1 * MS, 2 * MS, 5 * MS)),
    "gap": tuple(Dur(d) for d in (100 * MS, 250 * MS, 500 * MS, 500 * MS, 1 * S)),
}
SIZES = (1, 100, 536, 1448, 3000)  # all within the initial window: no ACK clocking
TEXTS = ("hello", "ping", "bye")
REQUESTS = ("GET / HTTP/1.0", "GET /index.html HTTP/1.0", "HEAD / HTTP/1.0")
THINKS = tuple(Dur(d) for d in (0, 1 * MS, 100 * MS, 500 * MS))
HOST_FAULT_ATS = tuple(Dur(d) for d in (300 * MS, 500 * MS, 1 * S))
RCVTIMEOS = tuple(Dur(d) for d in (200 * MS, 500 * MS, 1 * S, 2 * S))
DELAYS = tuple(
    Dur(d) for d in (1 * MS, 3 * MS, 10 * MS, 50 * MS, 200 * MS, 500 * MS, 1 * S, 1500 * MS, 2 * S)
)
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


def pick(rng: random.Random, values):
    return values[rng.randrange(len(values))]


def weighted(rng: random.Random, pairs):
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
        which = (
            "every"
            if self.nth is None
            else f"the {ordinal(self.nth)}"
            if isinstance(self.nth, int)
            else "occurrences " + " and ".join(f"#{n}" for n in self.nth) + " of"
        )
        what = f"{which} {self.segment}" + (f" from the {self.sender}" if self.sender else "")
        if self.action == "delay":
            return f"delays {what} by {self.by}"
        if self.action == "duplicate":
            return f"duplicates {what}" + (f" ({self.by} later)" if self.by else "")
        return f"drops {what}"


_SUFFIXES = {1: "st", 2: "nd", 3: "rd"}


def ordinal(n: int) -> str:
    return f"{n}{_SUFFIXES.get(n, 'th')}"


def other_host(host: str) -> str:
    return "server" if host == "client" else "client"


def opening(host: str) -> list[Step]:
    return [CONNECT] if host == "client" else [ACCEPT]


def who_sends(
    data: tuple[str, ...] = (), rst: tuple[str, ...] = (), closes: bool = True, **more: tuple[str, ...]
) -> dict[str, frozenset[str]]:
    """Which host sends which segment name in a schedule. Teardown names come from both
    sides unless a shape knows better: in a tie either side may close first."""
    sends = {"syn": frozenset({"client"}), "syn-ack": frozenset({"server"}), "ack": frozenset({"client"})}
    if closes:
        sends |= {name: frozenset(HOSTS) for name in ("fin", "fin-ack", "peer-fin", "last-ack")}
    if data:
        sends["data"] = frozenset(data)
        sends["data-ack"] = frozenset(other_host(h) for h in data)
    if rst:
        sends["rst"] = frozenset(rst)
    return sends | {name.replace("_", "-"): frozenset(hosts) for name, hosts in more.items()}


def draw_payload(rng: random.Random) -> int | str:
    return pick(rng, TEXTS) if rng.random() < 0.3 else pick(rng, SIZES)


def size_words(payload: int | str) -> str:
    n = payload if isinstance(payload, int) else len(payload.encode())
    return f"{n} byte{'s' if n != 1 else ''}" + (f" ({payload!r})" if isinstance(payload, str) else "")


def draw_tie(rng: random.Random, allowed: tuple[str, ...]) -> tuple[str, Dur]:
    tie = pick(rng, allowed)
    return tie, (Dur(0) if tie == "reactive" else pick(rng, TIES[tie]))


def when_words(tie: str, off: Dur, whom: str) -> str:
    return {
        "reactive": f"as soon as its recv() returns (it reacts to the {whom})",
        "exact": f"at the same nominal moment as the {whom} (an exact tie)",
        "near": f"{off} after the {whom} (a near tie)",
        "gap": f"{off} after the {whom}",
    }[tie]


# How an app ends its side of the connection: (steps, words, sends an RST, weight).
CLOSINGS = (
    ([CLOSE], "closes", False, 6),
    ([("shutdown", "rdwr")], "shuts down both directions (shutdown: rdwr) and keeps the socket", False, 1),
    ([("shutdown", "rd"), CLOSE], "shuts down reading, then closes", False, 1),
    ([("linger", 0), CLOSE], "closes with SO_LINGER 0 (an RST, no FIN)", True, 1),
)


def draw_closing(rng: random.Random) -> tuple[list[Step], str, bool]:
    steps, words, rst, _w = rng.choices(CLOSINGS, [c[3] for c in CLOSINGS])[0]
    return list(steps), words, rst
