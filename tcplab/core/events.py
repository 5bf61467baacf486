"""The Record: one timeline of past-tense events on one clock.

Times are seconds since scenario start (`t`), taken from CLOCK_MONOTONIC in every
process of the lab (tracefs runs with trace_clock=mono), so they compare directly.
The JSON shape of each event is a contract (result JSON, `events` list).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from tcplab.core.segments import flag_string, flags_of

DELIVERED, DROPPED, DELAYED = "delivered", "dropped", "delayed"


@dataclass(frozen=True)
class SegmentSeen:
    """A segment reached the router (t) and met its fate; t_out is when it left
    the router (None if dropped). A delayed segment has fate 'delayed' and t_out."""

    t: float
    name: str
    nth: int
    sender: str
    flags: int
    seq: int
    ack: int
    length: int
    fate: str
    retransmission: bool
    conn: int
    t_out: float | None = None
    src: str = ""
    dst: str = ""
    sport: int = 0
    dport: int = 0
    fault: str | None = None  # which fault rule decided the fate, e.g. "drop syn nth=all"
    held_late: float | None = None  # a delayed segment: released this much after it was due
    raw: str = ""  # the IPv4 packet as the router saw it (hex, first 256 bytes), for pcaps
    wire_len: int = 0  # the packet's full length
    # Made by the router, not sent by `sender` (a duplicate's copy, a forged RST, a stale
    # SYN): it carries the sender's addresses, and counts as no send of the sender's.
    injected: bool = False
    raw_out: str = ""  # the packet as it left the router, when a fault rewrote it (strip-mss)
    # The dice's roll in [0, 1) when a random fault (a probability) matched the segment:
    # the fault acted (and `fault` names it) when the roll was below its probability.
    # None: no dice were rolled for it, its fate is the scenario's certain one.
    roll: float | None = None

    @property
    def left(self) -> float:
        """When it left the router; one that never did (dropped), when it came."""
        return self.t_out if self.t_out is not None else self.t

    # The router's own segments (injected): how many bytes it sent. `raw` keeps the first
    # 256 only, so without this a whole copy of a long segment looks like one cut short
    # (observe.truncated()); None in records made before it was kept (session 10).
    sent_len: int | None = None
    kind: str = field(default="segment", init=False)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["from"] = d.pop("sender")
        d["len"] = d.pop("length")
        d["flags"] = flag_string(self.flags)
        if self.roll is None:  # most segments: no dice, no key
            del d["roll"]
        if self.sent_len is None:  # the senders' own segments
            del d["sent_len"]
        return d


@dataclass(frozen=True)
class StateChanged:
    """A socket on `host` moved from one TCP state to another. Kernel names without
    the TCP_ prefix: SYN_SENT, ESTABLISHED, TIME_WAIT. `source` is 'tracepoint' or
    'inet_diag' (polling sees request sockets and timewait sockets the tracepoint misses)."""

    t: float
    host: str
    old: str
    new: str
    source: str
    laddr: str = ""
    lport: int = 0
    raddr: str = ""
    rport: int = 0
    # inet_diag only: when the dump before the one that saw the change began. The change
    # happened in (after, t]; the width of that bracket is how late the poller was.
    after: float | None = None
    kind: str = field(default="state", init=False)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["from"] = d.pop("old")
        d["to"] = d.pop("new")
        if d["after"] is None:
            del d["after"]
        return d


@dataclass(frozen=True)
class AppCalled:
    """An application step on `host` started at t, ended at t_end with result 'ok' or
    an errno name (ETIMEDOUT). t_end is None when it never returned before the run ended."""

    t: float
    host: str
    call: str
    arg: Any
    result: str | None
    t_end: float | None
    detail: str = ""
    iteration: int | None = None  # which iteration of a `repeat` (from 1), if any
    lport: int | None = None  # the socket's ports after the call, to tell iterations apart
    rport: int | None = None
    counters: dict[str, int] | None = None  # `netstat`: the namespace's TcpExt counters
    kind: str = field(default="app", init=False)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class KernelNoted:
    """A tracepoint that says why: tcp_retransmit_skb, tcp_retransmit_synack,
    tcp_send_reset, tcp_receive_reset."""

    t: float
    host: str
    event: str
    detail: str
    kind: str = field(default="kernel", init=False)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FaultActed:
    """A time-window fault acted (tcplab/core/faults.py): a link went down or up, a host
    went silent or came back, an application was killed, a host's sockets destroyed;
    or an application process ended (action 'app-exit')."""

    t: float
    host: str
    action: str  # link-down | crash | reboot | kill | forge | app-exit
    what: str
    fault: str = ""
    kind: str = field(default="fault", init=False)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


Event = SegmentSeen | StateChanged | AppCalled | KernelNoted | FaultActed


def sort_events(events: list[Event]) -> list[Event]:
    return sorted(events, key=lambda e: e.t)


def event_from_json(d: dict) -> Event | None:
    """The inverse of to_json, for re-rendering a saved run (`tcplab show`)."""
    d = dict(d)
    kind = d.pop("kind", None)
    if kind == "segment":
        d["sender"], d["length"] = d.pop("from"), d.pop("len")
        d["flags"] = flags_of(d.pop("flags", ""))
        return SegmentSeen(**_known(SegmentSeen, d))
    if kind == "state":
        d["old"], d["new"] = d.pop("from"), d.pop("to")
        return StateChanged(**_known(StateChanged, d))
    if kind == "app":
        return AppCalled(**_known(AppCalled, d))
    if kind == "kernel":
        return KernelNoted(**_known(KernelNoted, d))
    if kind == "fault":
        return FaultActed(**_known(FaultActed, d))
    return None


def _known(cls, d: dict) -> dict:
    names = {f.name for f in fields(cls) if f.init}
    return {k: v for k, v in d.items() if k in names}
