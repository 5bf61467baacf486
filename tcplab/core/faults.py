"""Every kind of fault a scenario can ask for, as data, in one place: faults decided
segment by segment (drop, delay, duplicate, strip-mss: `Fault`, matched by
core/rules.py), what happens to a host at a time (link-down, crash, reboot, kill:
`HostFault`) and segments the router makes up (forge: `Forge`). Pure: the hook and
the app agents ask these tables what is in force at time t, where t is seconds since
the apps started (the server's `go`, the Record's t = 0).

Everything that decides *when* a host fault acts lives here; the shell applies it:
the hook drops a crashed host's segments and sets a link down, an app agent kills
its application or destroys its sockets.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import NamedTuple

from tcplab.core.segments import Classified

# What a segment fault does to the segments it matches. DUPLICATE: delivered, and a
# copy follows after the fault's `by`; STRIP_MSS: delivered without its MSS option
# (the option's bytes become NOPs).
DROP, DELAY, DUPLICATE, STRIP_MSS = "drop", "delay", "duplicate", "strip-mss"
SEGMENT_ACTIONS = (DROP, DELAY, DUPLICATE, STRIP_MSS)
# The fate each action gives the segment it matched, as the record and the models name
# it; the others deliver it (a duplicate's copy and a stripped option are extras).
FATES = {DROP: "dropped", DELAY: "delayed"}
# The actions that may be random: acting on a segment with a probability (and for a
# delay, holding it by + jitter): the dice below.
RANDOM_ACTIONS = (DROP, DELAY, DUPLICATE)


@dataclass(frozen=True)
class Fault:
    """drop or delay the segments called `segment` (canonical vocabulary name).
    nth None means all occurrences; sender None means either side."""

    action: str  # one of SEGMENT_ACTIONS (duplicate: `by` is the copy's lag)
    segment: str
    nth: tuple[int, ...] | None = None
    sender: str | None = None
    by: float = 0.0
    line: int = 0
    probability: float = 1.0  # the chance it acts on a segment it matches (the dice)
    jitter: float = 0.0  # delay: the hold is uniform in [by - jitter, by + jitter]
    seed: int | None = None  # the scenario's `seed`, when the fault is random

    @property
    def random(self) -> bool:
        """Does the dice decide anything: whether it acts, or how long it holds."""
        return self.probability < 1.0 or self.jitter > 0.0

    def describe(self) -> str:
        nth = "all" if self.nth is None else ",".join(map(str, self.nth))
        text = f"{self.action} {self.segment} nth={nth}"
        if self.sender:
            text += f" from={self.sender}"
        if self.action == DELAY:
            text += f" by={self.by:g}s"
        if self.jitter:
            text += f" jitter={self.jitter:g}s"
        if self.probability < 1.0:
            text += f" probability={self.probability * 100:g}%"
        if self.random:
            text += f" seed={self.seed}"
        return text

    def dice(self, index: int, seen: Classified) -> Dice:
        """What the dice say for this segment (one this fault matches by name, side and
        occurrence); `index` is the fault's place in the scenario's list."""
        roll = uniform(self.seed, index, "fate", seen)
        hold = self.by
        if self.jitter:
            hold += self.jitter * (2 * uniform(self.seed, index, "jitter", seen) - 1)
        return Dice(roll, roll < self.probability, max(0.0, hold))


class Dice(NamedTuple):
    roll: float  # in [0, 1)
    hit: bool  # roll < the fault's probability: the fault acts
    delay: float  # delay: how long it holds the segment; duplicate: the copy's lag


def identity(seen: Classified) -> str:
    """Which segment this is, in words that do not depend on timing: its connection,
    sender, name, where it sits relative to the ISNs and how many times it was sent
    there before (core/segments.py `_offset`). A retransmission is thus the same segment
    sent again, whatever else was sent in between, so retransmissions that interleave
    differently in two runs do not shift the dice of anything else. Where an ISN is
    unknown, the occurrence number stands in."""
    where = f"@{seen.offset}#{seen.copy}" if seen.offset is not None else f"nth{seen.nth}"
    return f"{seen.conn}/{seen.sender}/{seen.name}/{where}"


def uniform(seed: int | None, index: int, what: str, seen: Classified) -> float:
    """A number in [0, 1), a pure function of (seed, fault index, what is rolled for,
    the segment's identity): a hash, not a random stream consumed in arrival order, so
    the same seed gives the same fates to the same segments in every run."""
    key = f"tcplab/{seed}/{index}/{what}/{identity(seen)}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2.0**64


# action -> (the hosts it may name, does it take `until`, is `until` required, what it does)
HOST_FAULTS: dict[str, tuple[tuple[str, ...], bool, bool, str]] = {
    "link-down": (
        ("client", "server"),
        True,
        False,
        "the router's link toward the host is set down (and up again at until); "
        "the router answers what it cannot forward with ICMP unreachable",
    ),
    "crash": (
        ("client", "server"),
        False,
        False,
        "the host goes silent: the router drops everything to and from it",
    ),
    "reboot": (
        ("client", "server"),
        True,
        True,
        "silent as a crash until `until`; its sockets vanish without a FIN, so "
        "afterwards the host answers with RST",
    ),
    "kill": (
        ("client", "server"),
        False,
        False,
        "kill -9 of the host's application; the kernel closes its sockets (FIN)",
    ),
}
# Who carries a host fault out: the router's hook, or the host's own app agent.
BY_HOOK = frozenset({"link-down", "crash", "reboot"})
BY_AGENT = frozenset({"reboot", "kill"})

FORGES = ("rst", "stale-syn")


@dataclass(frozen=True)
class HostFault:
    action: str  # a key of HOST_FAULTS
    host: str  # "client" | "server"
    at: float  # seconds since the apps started
    until: float | None = None  # link-down, reboot: when it ends (None: never)
    line: int = 0

    def describe(self) -> str:
        text = f"{self.action} {self.host} at={self.at:g}s"
        return text + (f" until={self.until:g}s" if self.until is not None else "")

    def in_force(self, t: float | None) -> bool:
        return t is not None and self.at <= t and (self.until is None or t < self.until)


@dataclass(frozen=True)
class Forge:
    """A segment the router makes up. rst: an RST toward `to` carrying the sequence
    number `to` expects next, at a time or right after a named segment was forwarded.
    stale-syn: ahead of the client's first SYN, a SYN of the same 4-tuple with an old
    ISN, the real one held until the client has refused the answer (RFC 9293 3.5,
    "half-open connection discovery" / old duplicate SYN)."""

    kind: str  # "rst" | "stale-syn"
    to: str | None = None  # rst: "client" | "server"
    at: float | None = None  # rst: seconds since the apps started ...
    after: str | None = None  # ... or after this segment name was forwarded
    nth: tuple[int, ...] | None = None  # after: which occurrences (None: every one)
    sender: str | None = None  # after: only from that side
    line: int = 0

    def describe(self) -> str:
        if self.kind != "rst":
            return f"forge {self.kind}"
        text = f"forge rst to={self.to}"
        if self.at is not None:
            return text + f" at={self.at:g}s"
        nth = "all" if self.nth is None else ",".join(map(str, self.nth))
        return text + f" after={self.after} nth={nth}" + (f" from={self.sender}" if self.sender else "")


def silencing(faults, src_host: str | None, dst_host: str | None, t: float | None):
    """The crash or reboot that silences a segment between these hosts at t, if any:
    a silent host neither sends nor receives anything."""
    for f in faults:
        if f.action in ("crash", "reboot") and f.host in (src_host, dst_host) and f.in_force(t):
            return f
    return None


def rst_after(forges, name: str, nth: int, sender: str):
    """The forge rst rules a forwarded segment triggers."""
    return [
        f
        for f in forges
        if f.kind == "rst"
        and f.after == name
        and (f.sender is None or f.sender == sender)
        and (f.nth is None or nth in f.nth)
    ]


def expected_seq(highest_end: dict[str, int], to: str) -> int | None:
    """The sequence number `to` expects next: the end of the highest sequence space the
    other side has sent so far (what `to`'s rcv_nxt is once everything arrived)."""
    return highest_end.get("server" if to == "client" else "client")


def schedule(faults, forges) -> list[tuple[float, str, object]]:
    """The moments the hook must act on its own (not on a segment): (t, what, fault),
    in time order; what is 'down', 'up', or 'forge'."""
    out: list[tuple[float, str, object]] = []
    for f in faults:
        if f.action == "link-down":
            out.append((f.at, "down", f))
            if f.until is not None:
                out.append((f.until, "up", f))
    out += [(f.at, "forge", f) for f in forges if f.kind == "rst" and f.at is not None]
    return sorted(out, key=lambda x: (x[0], x[1]))
