"""Checks on how long states last, how many sockets share one, and when a call
returns relative to the segments (expect keys `lasts`, `sockets`, `returns_after`;
docs/scenario-format.md). Pure, like core/check/, which calls `check_host`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcplab.core.check.base import SLOP_CAP, Check, describe_call, describe_segment
from tcplab.core.events import StateChanged
from tcplab.core.model.kernel import TCP_TIMEWAIT_LEN, Kernel
from tcplab.core.record import HANDOVER_FROM, Record
from tcplab.core.scenario import HostExpect, Lasting, Tolerance
from tcplab.core.segments import FIN


# A call cannot return before the segment that releases it reached the host; the
# router's t_out is stamped a little after the kernel forwarded it, and one-sided
# windows allow 10 ms of such noise everywhere (check.MODEL_SLOP, the renderers).
EARLY_SLOP = 0.010
# How late a poll may see a change when the run did not save when the dump before it
# began (Stay.bracket); the model's windows (check/teardown.py) use it too.
DIAG_SLOP = 0.05


@dataclass(frozen=True)
class Stay:
    """One stay of a socket in a state: from `start` to `end` (None: still in it when
    observation stopped), with the state events that prove both ends."""

    state: str
    start: float
    end: float | None
    enter: StateChanged
    leave: StateChanged | None
    enter_why: str = ""  # what timed the start, when not `enter` itself (_exact)
    leave_why: str = ""

    def bracket(self) -> tuple[float, str] | None:
        """When inet_diag saw the end with the time the dump before it began: the
        earliest the stay can have ended (as a length) and the evidence to add."""
        e = self.leave
        if e is None or e.after is None or self.end != e.t:
            return None
        return (
            round(e.after - self.start, 6),
            f"; inet_diag saw the end between t={e.after:.3f}s and t={e.t:.3f}s",
        )

    def describe(self) -> str:
        text = _event(self.enter, self.start, self.enter_why)
        if self.leave is None:
            return text + " .. still in it when the run ended"
        assert self.end is not None  # stays() sets both ends of a stay or neither
        return text + f" .. {_event(self.leave, self.end, self.leave_why)}"


def _event(e: StateChanged, t: float, why: str) -> str:
    exact = f" ({why})" if why and t != e.t else ""
    return f"t={t:.3f}s {e.old}->{e.new} ({e.source}){exact}"


def stays(record: Record, host: str) -> list[Stay]:
    """The stays of the host's first connection socket, in order (record.state_sequence)."""
    seq, proof = record.state_sequence(host)
    exact = [_exact(record, e) for e in proof]
    return [
        Stay(
            state,
            exact[i][0],
            exact[i + 1][0] if i + 1 < len(proof) else None,
            proof[i],
            proof[i + 1] if i + 1 < len(proof) else None,
            exact[i][1],
            exact[i + 1][1] if i + 1 < len(proof) else "",
        )
        for i, state in enumerate(seq)
    ]


def _exact(record: Record, e: StateChanged) -> tuple[float, str]:
    """When a state really began, and what says so where that is not the event's own
    time. inet_diag sees a socket become a TIME_WAIT minisocket up to one poll late; the
    tracepoint's FIN_WAIT2|CLOSING->CLOSE at the handover (tcp_time_wait()) is the exact
    moment, so a change into TIME_WAIT takes that time when there is one.

    Unless the peer's FIN came after the handover: an orphaned socket (closed by its
    app) whose FIN is ACKed is handed over at once as a minisocket in substate
    FIN_WAIT2 (tcp_rcv_state_process(), tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)), and
    enters TIME_WAIT, its timer re-armed to TCP_TIMEWAIT_LEN, only when the peer's FIN
    arrives (tcp_timewait_state_process(), inet_twsk_reschedule()): then that FIN's
    release by the router is the start (the 6.1 guest's time-wait: handed over at
    0.196 s, the server's FIN at 0.402 s; timed from the handover, its 60 s timer
    looked 0.2 s later than the wheel allows). The first FIN counts: a retransmission
    re-arms the timer, but TIME_WAIT began before it."""
    if e.source != "inet_diag" or e.new != "TIME_WAIT":
        return e.t, ""
    key = (e.laddr, e.lport, e.raddr, e.rport)
    handovers = [
        x.t
        for x in record.tracepoint_states
        if x.host == e.host
        and (x.laddr, x.lport, x.raddr, x.rport) == key
        and x.new == "CLOSE"
        and x.old in HANDOVER_FROM
        and x.t <= e.t
    ]
    if not handovers:
        return e.t, ""
    handover = max(handovers)
    fins = [
        s.t_out
        for s in record.segments
        if s.flags & FIN
        and s.t_out is not None
        and (s.dst, s.dport, s.src, s.sport) == key
        and s.t_out <= e.t
    ]
    first = min(fins, default=None)
    if first is not None and first > handover:
        return first, "the peer's FIN, after the FIN_WAIT2 handover"
    return handover, "tracepoint handover"


def observed_until(record: Record) -> float:
    """When observation stopped; for a run saved before t_stop was kept, the last
    moment anything was seen (a call's return, a segment's release included)."""
    if record.t_stop is not None:
        return record.t_stop
    return max(
        (
            x
            for e in record.events()
            for x in (e.t, getattr(e, "t_end", None), getattr(e, "t_out", None))
            if x is not None
        ),
        default=0.0,
    )


def most_sockets(record: Record, host: str, state: str) -> tuple[int, float | None]:
    """The most sockets of `host` in `state` at one moment, and the first moment it
    was reached. Each socket (4-tuple, listeners included) is in the state it last
    changed to, in the merged record of tracepoint and inet_diag."""
    now: dict[tuple, str] = {}
    best, when = 0, None
    for e in record.states():
        if e.host != host:
            continue
        now[(e.laddr, e.lport, e.raddr, e.rport)] = e.new
        count = sum(1 for s in now.values() if s == state)
        if count > best:
            best, when = count, e.t
    return best, when


def check_host(
    host: str, exp: HostExpect, record: Record, tol: Tolerance, kernel: Kernel | None = None
) -> list:
    checks = []
    for state, want in exp.sockets.items():
        checks.append(_sockets(host, state, want, record, exp.lines.get("sockets", 0)))
    if exp.lasts:
        mine = stays(record, host)
        for state, lasting in exp.lasts.items():
            checks.append(_lasts(host, state, lasting, mine, record, tol, kernel))
    for call, segment in exp.returns_after.items():
        checks.append(_returns_after(host, call, segment, record, tol, exp.lines.get("returns_after", 0)))
    return checks


def _sockets(host: str, state: str, want: int, record: Record, line: int):

    got, when = most_sockets(record, host, state)
    proof = (
        f"{got} at once at t={when:.3f}s (tracepoint and inet_diag, per 4-tuple)"
        if when is not None
        else f"no {host} socket was ever in {state}"
    )
    return Check(f"{host} sockets in {state} at once", got == want, want, got, evidence=proof, line=line)


# States one kernel timer ends when they last `seconds` > 0, up to the bound: the
# timewait timer (inet_twsk_schedule(), TCP_TIMEWAIT_LEN; a TIME_WAIT expected longer
# is one whose timer retransmitted FINs restarted, a chain the tolerance judges: seen
# in last-ack-lost, 75.36 s for 73.06 s), and an orphan's FIN_WAIT2,
# which tcp_close() and tcp_rcv_state_process() hand to a timewait minisocket
# (tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)) or to the keepalive timer for tmo, one timer
# either way while tmo <= TCP_TIMEWAIT_LEN (above it, two: tmo - 60 s, then the rest).
ONE_TIMER = {"TIME_WAIT": TCP_TIMEWAIT_LEN, "FIN_WAIT2": TCP_TIMEWAIT_LEN}


def _lasts(
    host: str,
    state: str,
    want: Lasting,
    mine: list[Stay],
    record: Record,
    tol: Tolerance,
    kernel: Kernel | None = None,
):

    name = f"{host} {state} lasts"
    stay = next((s for s in mine if s.state == state), None)
    expected = (
        want.seconds
        if want.seconds is not None
        else f"at least {want.at_least:g} s"
        if want.at_least is not None
        else "until the run ended"
    )
    if stay is None:
        seen = " -> ".join(s.state for s in mine) or "no states"
        return Check(name, False, expected, f"never in {state} ({seen})", line=want.line)
    length = round((stay.end if stay.end is not None else observed_until(record)) - stay.start, 6)
    actual = length if stay.end is not None else f"{length:g} s so far, still in it when the run ended"
    if want.forever:
        return Check(name, stay.end is None, expected, actual, evidence=stay.describe(), line=want.line)
    if want.at_least is not None:
        return Check(
            name, length >= want.at_least, expected, actual, evidence=stay.describe(), line=want.line
        )
    assert want.seconds is not None  # a Lasting is one of forever, at_least, seconds (format/expect.py)
    if 0 < want.seconds <= ONE_TIMER.get(state, 0.0):
        return _one_timer(name, want, stay, length, actual, kernel or Kernel((0, 0)))
    allowed = tol.allowed(want.seconds)
    passed = stay.end is not None and abs(length - want.seconds) <= allowed
    return Check(name, passed, want.seconds, actual, allowed, stay.describe(), want.line)


def _one_timer(name: str, want: Lasting, stay: Stay, length: float, actual, kernel: Kernel) -> Check:
    """A stay one kernel timer ends is judged as that timer: it cannot end before it is
    due, and ends at most the timer wheel's granularity for its delay (Kernel.slack,
    kernel/time/timer.c) later, not a relative tolerance (12.5 % of 60 s would admit
    7.5 s either way). The end seen by inet_diag polling happened in (after, t]: the
    window is met if that bracket meets it; a bracket wider than the window's slack (or
    SLOP_CAP, if larger) would more than double it: a starved poller cannot tell, and
    the run is an error."""
    assert want.seconds is not None  # _lasts() passes a Lasting of `seconds` only
    slack = kernel.slack(want.seconds)
    evidence = (
        f"{stay.describe()}; one kernel timer of {want.seconds:g} s: fires "
        f"{want.seconds:g} s .. +{slack * 1000:.0f} ms (timer wheel, HZ={kernel.hz})"
    )
    if stay.end is None:
        return Check(name, False, want.seconds, actual, slack, evidence, want.line, one_sided=True)
    leave, bracket = stay.leave, stay.bracket()
    earliest = length
    if bracket is not None:
        earliest, seen = bracket
        evidence += seen
        poll, cap = length - earliest, max(SLOP_CAP, slack)
        if poll > cap:  # the window would more than double: it could hardly fail
            return Check(
                name,
                False,
                want.seconds,
                f"not judged: the inet_diag poller was "
                f"too slow to time the end ({poll * 1000:.0f} ms between dumps, "
                f"over the {cap * 1000:.0f} ms cap; seen {length:g} s)",
                slack,
                evidence,
                want.line,
                one_sided=True,
                judged=False,
                error=True,
            )
    elif leave is not None and leave.source == "inet_diag":
        slack += DIAG_SLOP  # a run saved before the bracket was recorded
        evidence += f"; + {DIAG_SLOP * 1000:.0f} ms for an inet_diag poll (no bracket saved)"
    passed = length >= want.seconds - EARLY_SLOP and earliest <= want.seconds + slack
    return Check(name, passed, want.seconds, actual, round(slack, 4), evidence, want.line, one_sided=True)


def _returns_after(host: str, call: str, segment: str, record: Record, tol: Tolerance, line: int):
    """The call returns once `segment` from the peer reached this host: not before it
    left the router, and within the tolerance of the time it took to arrive."""

    name = f"{host} {call}() returns after {segment}"
    made = [c for c in record.apps if c.host == host and c.call == call]
    peer = "server" if host == "client" else "client"
    arrived = [s for s in record.sent_by(peer, segment) if s.t_out is not None]
    c = made[0] if made else None
    if c is None or c.t_end is None:
        return Check(
            name,
            False,
            f"returns after {segment}",
            "never called" if c is None else "still blocked when the run ended",
            evidence=describe_call(c) if c is not None else "",
            line=line,
        )
    if not arrived:
        return Check(
            name,
            False,
            f"returns after {segment}",
            f"returned at t={c.t_end:.3f}s, but no {segment} reached the {host}",
            evidence=describe_call(c),
            line=line,
        )
    s = arrived[0]
    assert s.t_out is not None  # `arrived` holds only segments that left the router
    wait = max(s.t_out, c.t) - c.t
    allowed = tol.allowed(wait)
    took = round(c.t_end - c.t, 6)
    passed = wait - EARLY_SLOP <= took <= wait + allowed
    return Check(
        name,
        passed,
        round(wait, 6),
        took,
        allowed,
        f"{describe_segment(s)}, out at t={s.t_out:.3f}s; {describe_call(c)}",
        line,
        one_sided=True,
    )
