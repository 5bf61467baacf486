"""How long a host's kernel took, in one run, to act on a segment the router handed
it: the way from the router to a host's TCP. The judge widens timings by it
(check/base.py inbound_leg); the teardown model's app/segment race bound includes it
(model/teardown/observe.py): a segment the router let go before an app's call may
still reach the kernel after it, by up to this much."""

from __future__ import annotations

from tcplab.core.events import SegmentSeen, StateChanged
from tcplab.core.record import Record
from tcplab.core.segments import ACK, FIN, SYN

# What makes a state change (tcp_rcv_state_process(), tcp_rcv_synsent_state_process(),
# tcp_fin()): the flags a segment reaching the host must carry for it. A change with
# none of these just before it was the host's own doing (a call, a timer).
CAUSED_BY = {
    ("SYN_SENT", "ESTABLISHED"): SYN | ACK,
    ("SYN_RECV", "ESTABLISHED"): ACK,
    ("FIN_WAIT1", "FIN_WAIT2"): ACK,
    ("ESTABLISHED", "CLOSE_WAIT"): FIN,
    ("FIN_WAIT1", "CLOSING"): FIN,
    ("LAST_ACK", "CLOSE"): ACK,
}


def inbound_worst(record: Record, cap: float) -> tuple[float, StateChanged | None, SegmentSeen | None]:
    """The longest, up to `cap`, from the router delivering a segment to the state
    change it makes on the receiving host (the tracepoint's; from the last such segment
    delivered on that connection before it: never more than the truth), with that
    change and segment. Longer is no way of the machine's (the other ways are fast): a
    segment the socket's owner kept in its backlog, or a kernel slow to act."""
    worst: float = 0.0
    change: StateChanged | None = None
    seg: SegmentSeen | None = None
    inbound: dict[tuple, list[tuple[float, SegmentSeen]]] = {}
    for s in record.segments:
        if s.fate == "delivered" and s.t_out is not None:
            inbound.setdefault((s.dport, s.sport), []).append((s.t_out, s))
    for e in record.states():
        need = CAUSED_BY.get((e.old, e.new))
        if e.source != "tracepoint" or need is None:
            continue
        got = [
            (out, s)
            for out, s in inbound.get((e.lport, e.rport), ())
            if s.flags & need == need and out <= e.t and s.sender != e.host
        ]
        last = max(got, key=lambda x: x[0], default=None)  # by time, whatever the list's order
        if last is not None and worst < e.t - last[0] <= cap:
            worst, change, seg = e.t - last[0], e, last[1]
    return worst, change, seg
