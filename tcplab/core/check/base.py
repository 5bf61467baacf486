"""What every check shares: the Check itself, abstentions, how events are described
in a check's evidence, the verdict over checks, and the model windows' slop."""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass
from typing import Any

from tcplab.core.events import AppCalled, SegmentSeen
from tcplab.core.legs import inbound_worst
from tcplab.core.record import Record
from tcplab.core.segments import ACK, FIN, flag_string


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    expected: Any
    actual: Any
    tolerance: float | None = None
    evidence: str = ""
    line: int = 0
    one_sided: bool = False  # the model's windows: the kernel may be late, never early
    # False: the lab could not judge this (not modelled, or the run too loaded to
    # order its events): shown as "not judged: why", never a pass and never a fail.
    judged: bool = True
    # The lab's own allowance in this check's window (Slop.at): shown with it.
    slop: float | None = None
    # An abstention that makes the run an error (the hook too slow to judge timing):
    # a run whose timing the lab distorted has no verdict, whatever else passed.
    error: bool = False
    # How early a one-sided window lets the kernel be, where it is not MODEL_SLOP (a
    # retransmission chain whose RTO may be shorter than the model's: teardown._chain)
    early: float | None = None

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "passed": self.passed,
            "expected": self.expected,
            "actual": self.actual,
            "tolerance": self.tolerance,
            "window": "late" if self.one_sided else "both",
            "evidence": self.evidence,
            "line": self.line,
            "judged": self.judged,
            **({"slop": round(self.slop, 4)} if self.slop is not None else {}),
            **({"error": True} if self.error else {}),
            **({"early": self.early} if self.early is not None else {}),
        }


def not_judged(what: str, why: str, evidence: str = "") -> Check:
    """An abstention: `what` the model leaves unjudged, and why."""
    return Check(f"model: not judged: {what}", True, "", why, evidence=evidence, judged=False)


def describe_segment(s: SegmentSeen) -> str:
    arrow = f"{s.src}:{s.sport} > {s.dst}:{s.dport}"
    text = (
        f"t={s.t:.3f}s {s.name} #{s.nth} {arrow} [{flag_string(s.flags)}] "
        f"seq={s.seq} ack={s.ack} len={s.length} {s.fate}"
    )
    return text + (" (retransmission)" if s.retransmission else "")


def segment_at(
    name: str, nominal: float, lo: float, hi: float, got: float, s: SegmentSeen, slop: float
) -> Check:
    """A model timing of one segment: the kernel may be late (up to hi), never earlier
    than lo; the tolerance shown is how late it may be, with the lab's slop in it, and
    how early where that is not the usual MODEL_SLOP."""
    early = round(nominal - lo, 4)
    return Check(
        name,
        lo <= got <= hi,
        round(nominal, 4),
        got,
        round(hi - nominal, 4),
        describe_segment(s),
        one_sided=True,
        slop=slop,
        early=early if abs(early - MODEL_SLOP) > 1e-4 else None,
    )


def describe_call(c: AppCalled) -> str:
    end = f"{c.t_end:.3f}s" if c.t_end is not None else "never"
    which = f" #{c.iteration}" if c.iteration is not None else ""
    which += f" port {c.lport}" if c.lport else ""
    return f"{c.host} {c.call}(){which} t={c.t:.3f}s..{end} -> {c.result or 'still blocked'}"


def verdict(checks: list[Check]) -> str:
    """pass, fail, or error when nothing could be judged (no checks, or every one an
    abstention) or a check says the run cannot be judged at all (Check.error)."""
    judged = [c for c in checks if c.judged]
    if not judged or any(c.error for c in checks):
        return "error"
    return "pass" if all(c.passed for c in judged) else "fail"


MODEL_SLOP = 0.010  # scheduling noise on top of the modelled timer lateness
# The most slop a model window may carry. Beyond it the window would also admit the
# 40 ms a delayed ACK may wait (TCP_DELACK_MIN), the smallest timing difference the
# model tells apart (a delayed ACK from an immediate one, a FIN's probe from its RTO at
# a LAN RTT): the check could no longer fail where it should, so the run is an error.
SLOP_CAP = 0.040


@dataclass(frozen=True)
class Slop:
    """The model windows' allowance for the lab itself. The hook is a userspace hop:
    under load a segment can wait milliseconds in its queue (or a held one be released
    late), and an answer's time includes its question's wait. So a window widens by
    MODEL_SLOP plus twice the slowest forwarding on the way to the moment judged: of
    the segments the router handled before it (t_out - t, or for a held segment how
    late its release came), not of the whole run, whose slowest moment may come after."""

    times: tuple[float, ...] = ()  # when each forwarding began, in order
    worst_by: tuple[float, ...] = ()  # the slowest forwarding up to and including it
    # The machine's own path, router to host and back (PATH_NORM less): how long the
    # first handshake's answers took to come back once the question left the router.
    path: float = 0.0

    @classmethod
    def of(cls, record: Record) -> Slop:
        waits = sorted(
            [(s.t, s.t_out - s.t) for s in record.segments if s.fate == "delivered" and s.t_out is not None]
            + [(s.t, s.held_late) for s in record.segments if s.held_late is not None]
        )
        worst, out = 0.0, []
        for _t, w in waits:
            worst = max(worst, w)
            out.append(worst)
        return cls(tuple(t for t, _w in waits), tuple(out), path_turnaround(record))

    def at(self, t: float) -> float:
        """The slop for a moment judged at t: segments the router took in before t."""
        i = bisect.bisect_left(self.times, t - 1e-9)
        return MODEL_SLOP + 2 * (self.worst_by[i - 1] if i else 0.0) + 2 * self.path

    @property
    def worst(self) -> float:
        """The whole run's: for what is due around the end of observation."""
        return MODEL_SLOP + 2 * (self.worst_by[-1] if self.worst_by else 0.0) + 2 * self.path


# A turnaround this machine's path takes anyway (veth, the other host's stack and back:
# ~0.1-0.4 ms here, inside MODEL_SLOP); only the excess widens a window.
PATH_NORM = 0.001


def path_turnaround(record: Record) -> float:
    """How slow the machine's own path is, beyond PATH_NORM: on the first connection,
    from the router releasing the first SYN to it receiving the SYN-ACK, and from the
    SYN-ACK's release to the ACK (each an immediate answer: tcp_v4_conn_request(), then
    tcp_rcv_synsent_state_process()'s ACK). ~0.2 ms here; 5-25 ms in a TCG VM, where
    the emulated stacks and veths are that slow. An answer judged anywhere in the run
    carries it twice (out and back), like the hook's waits; Slop's cap still bounds it."""
    first = [s for s in record.segments if not s.injected and s.fate == "delivered"]
    turns = []
    for question, answer in (("syn", "syn-ack"), ("syn-ack", "ack")):
        q = next((s for s in first if s.name == question and s.nth == 1), None)
        if q is None or q.t_out is None:
            continue
        a = next(
            (
                s
                for s in record.segments
                if s.name == answer and s.nth == 1 and s.conn == q.conn and not s.injected and s.t >= q.t_out
            ),
            None,
        )
        if a is not None:
            turns.append(a.t - q.t_out)
    return max(0.0, max(turns, default=0.0) - PATH_NORM)


def outbound_leg(record: Record) -> tuple[float, str]:
    """How long, beyond PATH_NORM, this machine took at worst to get a host's segment
    to the router, measured where the kernel's own moment is known (~0.1 ms here;
    0.4-106 ms in a TCG VM, the 6.12 catalogue). With the proof.
    - A connect: CLOSE->SYN_SENT (tcp_v4_connect(), before it picks the port and
      tcp_connect() sends the SYN) to the first SYN at the router. Parallel connects
      are paired in order, which gives the smallest worst gap of any pairing (so never
      more than the truth).
    - A retransmission: the last of its timers that ran before it (timer_expire_entry:
      tcp_write_timer(), or reqsk_timer_handler() for a SYN-ACK), if within SLOP_CAP
      and nothing reached the sender in between (else an ACK may have sent it: a fast
      retransmit). The timer sends it in its softirq; eight SYNs due together left
      0.3-14 ms after their timers ran on 6.1 under TCG."""
    worst, proof = 0.0, ""
    for host in ("client", "server"):
        entered = sorted(
            e.t
            for e in record.states()
            if e.host == host and e.source == "tracepoint" and e.old == "CLOSE" and e.new == "SYN_SENT"
        )
        first = sorted(
            s.t
            for s in record.segments
            if s.sender == host and s.name == "syn" and s.nth == 1 and not s.injected and not s.retransmission
        )
        if len(entered) != len(first):
            continue  # a connect the router never saw: no safe pairing
        for began, reached in zip(entered, first):
            if reached - began > worst:
                worst = reached - began
                proof = (
                    f"the {host}'s SYN reached the router {worst * 1000:.1f} ms after "
                    f"its kernel set SYN_SENT (t={began:.3f}s)"
                )
    fired: dict[str, list[float]] = {}
    for x in record.timer_fired or record.timer_late or ():
        fired.setdefault(x[-1], []).append(x[0])
    got: dict[str, list[float]] = {}  # what reached each host, when
    for s in record.segments:
        if s.fate == "delivered" and s.t_out is not None:
            got.setdefault("server" if s.sender == "client" else "client", []).append(s.t_out)
    for s in record.segments:
        if not s.retransmission or s.injected:
            continue
        ran = sorted(fired.get("reqsk_timer_handler" if s.name == "syn-ack" else "tcp_write_timer", ()))
        i = bisect.bisect_right(ran, s.t)
        if not i or not worst < s.t - ran[i - 1] <= SLOP_CAP:
            continue
        if any(ran[i - 1] <= t <= s.t for t in got.get(s.sender, ())):
            continue  # an ACK came in between: a fast retransmit's, not the timer's
        worst = s.t - ran[i - 1]
        proof = (
            f"{describe_segment(s)} reached the router {worst * 1000:.1f} ms after "
            f"its timer ran (t={ran[i - 1]:.3f}s)"
        )
    return max(0.0, worst - PATH_NORM), proof


def inbound_leg(record: Record) -> tuple[float, str]:
    """How long, beyond PATH_NORM, this machine took at worst from the router handing
    a host a segment to the host's kernel acting on it (legs.inbound_worst). ~0.05
    ms here; on 6.12 under TCG a client took 4.4 ms to act on the ACK of its FIN, and
    the peer's FIN, delivered meanwhile, was lost in the race tcp_rcv_state_process()
    owns to ("We still can lose it now") and resent an RTO later. With the proof."""
    worst, e, seg = inbound_worst(record, SLOP_CAP)
    if e is None or seg is None:
        return 0.0, ""
    proof = (
        f"the {e.host}'s kernel went {e.old}->{e.new} at t={e.t:.3f}s, {worst * 1000:.1f} "
        f"ms after the router delivered {describe_segment(seg)}"
    )
    return max(0.0, worst - PATH_NORM), proof


def fin_handover_race(record: Record) -> str:
    """A race the kernel owns to, which a slow machine opens: the peer's FIN delivered
    to a host after the ACK of the host's own FIN but before its kernel acted on that
    ACK (FIN_WAIT1->FIN_WAIT2 on the tracepoint). tcp_rcv_state_process() then turns
    the orphaned socket into a FIN_WAIT2 timewait sock (tcp_time_wait()) and a FIN
    caught on its way to the full socket is dropped: "We still can lose it now, if it
    spins in bh_lock_sock(), but it is really marginal case." The peer resends it an
    RTO later. Seen on 6.12 under TCG (time-wait-port-exhaustion: the client acted on
    the ACK 4.4 ms after the router delivered it, the FIN came 3.8 ms after the ACK).
    The proof, or "" when no overlap was followed by the FIN sent again."""
    for e in record.states():
        if e.source != "tracepoint" or (e.old, e.new) != ("FIN_WAIT1", "FIN_WAIT2"):
            continue
        mine = [
            (s.t_out, s)
            for s in record.segments
            if s.dport == e.lport
            and s.sport == e.rport
            and s.sender != e.host
            and s.fate == "delivered"
            and s.t_out is not None
            and s.t_out <= e.t
        ]
        acks = [out for out, s in mine if s.flags & ACK and not s.flags & FIN]
        fins = [s for out, s in mine if s.flags & FIN and acks and out >= acks[-1]]
        resent = fins and any(
            s.retransmission and s.flags & FIN and s.t > fins[0].t and s.conn == fins[0].conn
            for s in record.segments
        )
        if resent:  # an overlap whose FIN got through is no loss to explain
            return (
                f"race: {describe_segment(fins[0])} reached the {e.host} before its "
                f"kernel acted on the ACK of its FIN (FIN_WAIT1->FIN_WAIT2 at "
                f"t={e.t:.3f}s), where tcp_rcv_state_process() may lose a FIN"
            )
    return ""


def slow_legs(record: Record) -> tuple[float, str]:
    """The slower of the machine's two ways (outbound_leg, inbound_leg)."""
    return max(outbound_leg(record), inbound_leg(record), key=lambda x: x[0])


def missed_by(check: Check) -> float | None:
    """How far past its window's late edge a judged timing check's value fell (None
    when it did not fall past it)."""
    if not check.judged or check.passed or check.tolerance is None:
        return None
    if not isinstance(check.actual, (int, float)) or not isinstance(check.expected, (int, float)):
        return None
    miss = check.actual - (check.expected + check.tolerance)
    return miss if miss > 0 else None


@dataclass(frozen=True)
class Lateness:
    """How late this machine ran what was due. Best, from the kernel itself: how far
    past the timer wheel's clock its TCP timers ran (timer:timer_expire_entry, now -
    baseclk, less the one tick Kernel.slack already counts), the worst of the run.
    Without that trace: how much the apps' `sleep`s overshot their lengths (stamped
    at both ends by the same agent), the median — one sleep's spike on a loaded host is
    not every timer's, while an emulated VM is late on every sleep."""

    late: float = 0.0
    worst: float = 0.0
    proof: str = "no app slept"
    drift: float = 0.0  # how much slower the kernel's tick ran than the lab's clock

    @classmethod
    def of(cls, record: Record, hz: int = 250) -> Lateness:
        found = cls._of(record, hz)
        drift = tick_drift(record.jiffies, hz)
        if drift:
            found = dataclasses.replace(
                found,
                drift=drift,
                proof=found.proof
                + (
                    f"; the kernel's tick ran {drift * 100:.2f} % slow against the lab's clock "
                    f"(/proc/timer_list at the start and end)"
                ),
            )
        return found

    @classmethod
    def _of(cls, record: Record, hz: int) -> Lateness:
        if record.timer_late is not None:
            return cls._timers(record.timer_late, hz)
        overshoots = sorted(
            (max(0.0, c.t_end - c.t - float(c.arg)), i)
            for i, c in enumerate(record.apps)
            if c.call == "sleep" and c.t_end is not None and isinstance(c.arg, (int, float))
        )
        if not overshoots:
            return cls()
        n = len(overshoots)
        median = overshoots[n // 2][0] if n % 2 else (overshoots[n // 2 - 1][0] + overshoots[n // 2][0]) / 2
        worst, i = overshoots[-1]
        return cls(
            round(median, 6),
            round(worst, 6),
            f"the apps' {n} sleeps overshot by {median * 1000:.1f} ms (median), "
            f"up to {worst * 1000:.1f} ms: {describe_call(record.apps[i])}",
        )

    @classmethod
    def _timers(cls, late: list, hz: int) -> Lateness:
        if not late:
            return cls(0.0, 0.0, "every TCP timer ran within a tick of its expiry")
        t, jiffies, fn = max(late, key=lambda x: x[1])
        worst = round((jiffies - 1) / hz, 6)
        return cls(
            worst,
            worst,
            f"{len(late)} TCP timer(s) ran late; the worst, {fn} at "
            f"t={t:.3f}s, {jiffies} jiffies past the wheel's clock "
            f"(timer_expire_entry)",
        )


def tick_drift(readings: list, hz: int) -> float:
    """From (monotonic s, jiffies) at the start and end of observation: how much longer
    than its jiffies say a kernel timer takes on the lab's clock, less two ticks of
    reading noise; 0 for less than 5 s apart (too short to tell) or no drift."""
    if len(readings) < 2:
        return 0.0
    (m0, j0), (m1, j1) = readings[0], readings[-1]
    ticks = (j1 - j0) / hz
    if m1 - m0 < 5.0 or ticks <= 0:
        return 0.0
    return round(max(0.0, (m1 - m0 - 2 / hz) / ticks - 1.0), 6)


def too_slow(check: Check) -> Check:
    """A timing check whose slop went past SLOP_CAP: not judged, and the run an error."""
    return dataclasses.replace(
        check,
        passed=False,
        judged=False,
        error=True,
        actual=f"not judged: the hook was too slow to judge timing ({(check.slop or 0.0) * 1000:.1f} "
        f"ms of slop on this moment's path, over the {SLOP_CAP * 1000:.0f} ms cap; "
        f"seen {check.actual})",
    )


def machine_too_slow(check: Check, why: str) -> Check:
    """A timing check the machine's own lateness could have decided: not judged, and
    the run an error (`why` says how slow, and what proves it)."""
    return dataclasses.replace(
        check, passed=False, judged=False, error=True, actual=f"not judged: {why}; seen {check.actual}"
    )


def window(nominal: float, slack: float, slop: float) -> tuple[float, float]:
    return nominal - MODEL_SLOP, nominal + slack + slop
