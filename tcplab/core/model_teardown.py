"""What this kernel does when a connection closes: the Linux teardown timers as pure code.

Rules from ../shared/docs/LINUX-TCP.md rows 4-8a, checked on 6.18 by the scenarios in
scenarios/teardown (numbers in docs/kernel-notes.md, rules in docs/kernel-model.md):

- RTO (tcp_rtt_estimator, __tcp_set_rto): after one RTT sample m, srtt = m and
  rttvar = max(2m, tcp_rto_min), so the RTO is m + max(2m, rto_min), rounded up to
  jiffies: 0.204 s on a LAN at HZ=250.
- A FIN that is not acknowledged (FIN_WAIT1, CLOSING, LAST_ACK): one tail loss probe
  after min(2 srtt + rto_min, RTO) = RTO (tcp_schedule_loss_probe, when
  tcp_early_retrans is 3 or 4), then RTO retransmissions, the wait doubling each time
  and capped at rto_max: offsets R, 2R, 4R, 8R, ... from the first FIN.
- Giving up (tcp_write_timeout, retransmits_timed_out): at an RTO expiry, once the time
  since the first RTO retransmission (retrans_stamp; the probe does not set it) reaches
  tcp_model_timeout(boundary, TCP_RTO_MIN = 200 ms, whatever tcp_rto_min_us says):
  (2^(b+1) - 1) * 0.2 s up to b = log2(rto_max / 0.2 s), rto_max for each one beyond.
  b = tcp_orphan_retries for an orphan (close()d; 0 means 8 while the RTO is below
  rto_max), tcp_retries2 when the application still holds the socket. The socket is
  destroyed silently: no RST.
- FIN_WAIT2 after close(): tcp_fin_time() = max(tcp_fin_timeout, 3.5 RTO), kept by a
  timewait minisocket in substate FIN_WAIT2; then it is gone and a late FIN gets an RST.
  After shutdown(SHUT_WR) the socket is not orphaned and FIN_WAIT2 has no timer.
- A FIN that arrives with the ACK of ours in one segment: the ACK moves FIN_WAIT1 to
  FIN_WAIT2, then the FIN moves it on to TIME_WAIT at once (tcp_rcv_state_process, then
  tcp_fin): FIN_WAIT2 lasts no time at all.
- A FIN in FIN_WAIT1 without the ACK of ours: CLOSING, and an ACK at once (tcp_fin).
- TIME_WAIT lasts TCP_TIMEWAIT_LEN (60 s, a constant); every retransmitted FIN restarts
  it and is ACKed, not rate-limited (tcp_timewait_state_process; tcp_oow_rate_limited
  skips segments that occupy sequence space).
- The passive side ACKs a first FIN with a delayed ACK (up to TCP_DELACK_MIN, 40 ms);
  when the application close()s as its recv() returns EOF, the FIN carries that ACK
  (a three-way close). Every retransmitted FIN is ACKed at once.

`predict_teardown` simulates both ends from the moment the connection exists (t = 0)
through the apps' steps, with the scenario's faults applied by the same Classifier and
rule matching as the router's hook.
"""

from __future__ import annotations

import copy
import dataclasses
import heapq
import itertools
import math
from dataclasses import dataclass, field

from tcplab.core.model import (C_ADDR, C_PORT, S_ADDR, TCP_RTO_MAX, TRANSIT, X, Y, Kernel,
                               PredictedSegment, _int)
from tcplab.core.rules import decide
from tcplab.core.scenario import Step
from tcplab.core.faults import DELAY, DROP, DUPLICATE, Fault, silencing
from tcplab.core.segments import ACK, FIN, PSH, RST, SYN, Classifier, Segment

TCP_RTO_MIN = 0.2  # the base of the time-based limit (retransmits_timed_out)
TCP_TIMEWAIT_LEN = 60.0
TCP_DELACK_MIN = 0.04  # HZ/25
TCP_DELACK_MAX = 0.2  # HZ/5


def delack_max(rtt: float) -> float:
    """The longest a delayed ACK waits (tcp_send_delayed_ack(): ato is at most
    max(TCP_DELACK_MIN, srtt) and TCP_DELACK_MAX), after one RTT sample."""
    return min(TCP_DELACK_MAX, max(TCP_DELACK_MIN, rtt))
TEARDOWN_NAMES = ("fin", "fin-ack", "peer-fin", "last-ack", "rst")
# From the router's verdict to the receiving socket. The hook takes t_out just before
# it accepts the packet; on this 6.18 machine the receiver's tracepoint followed 55 us
# later (a client FIN, ESTABLISHED->CLOSE_WAIT), and a recv() the segment woke stamped
# its return 77 us later. What is left of the hop is inside the race bound.
LAST_HOP = 0.00005
# A data segment's tail loss probe can come this soon: tcp_schedule_loss_probe()'s
# timeout is 2 srtt (+ 2 jiffies with one segment out), at least 10 ms (TCP_TIMEOUT_MIN
# in 6.x is 2 jiffies; the 10 ms floor is tcp_schedule_loss_probe()'s own). A data
# segment or its ACK held longer than half of it may be retransmitted before it lands.
DATA_PROBE_MIN = 0.005
TLP_TIMEOUT_MIN = 0.002  # tcp_schedule_loss_probe() with more than the FIN out
PAWS_TICK = 0.001  # the TSval clock's tick (ms): tcp_paws_check() allows one
RCV_WND = 65535  # the receive window early in a connection, as tcp_in_window() sees it
# The calls whose effect depends on whether a segment came before them.
RACING_CALLS = ("close", "shutdown", "send", "recv")
MSS = 1448  # a 1500-byte MTU less the IP and TCP headers and the timestamp option
TCP_INIT_CWND = 10  # segments sent before the first ACK comes back (RFC 6928)
# tcp_need_reset(): the states in which an abort (SO_LINGER 0, unread data, a socket
# destroyed) tells the peer with an RST.
NEED_RESET = ("ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT1", "FIN_WAIT2", "SYN_RECV")


class Unsupported(Exception):
    """The apps do something the teardown model does not cover (repeats, dropped data,
    segments while a link is down, ...)."""


class UnsupportedLate(Unsupported):
    """A late handshake segment the teardown model cannot follow: what it draws is in
    the handshake's segment names too, so those counts are not judged either."""


@dataclass(frozen=True)
class TeardownParams:
    """The sysctls a host's teardown depends on, as the kernel would use them."""

    orphan_retries: int = 0
    retries2: int = 15
    fin_timeout: float = 60.0
    rto_min: float = 0.2
    rto_max: float = TCP_RTO_MAX
    tlp: bool = True  # tcp_early_retrans 3 or 4
    timewait: bool = True  # tcp_max_tw_buckets > 0: inet_twsk_alloc() can succeed
    invalid_ratelimit: float = 0.5  # tcp_invalid_ratelimit: out-of-window ACKs

    @classmethod
    def from_sysctls(cls, kernel: Kernel, s: dict[str, str]) -> TeardownParams:
        return cls(
            orphan_retries=_int(s, "net.ipv4.tcp_orphan_retries", 0),
            retries2=_int(s, "net.ipv4.tcp_retries2", 15),
            fin_timeout=float(_int(s, "net.ipv4.tcp_fin_timeout", 60)),
            rto_min=_int(s, "net.ipv4.tcp_rto_min_us", 200000) / 1e6,
            rto_max=(_int(s, "net.ipv4.tcp_rto_max_ms", 120000) / 1000.0
                     if kernel.rto_max_sysctl else TCP_RTO_MAX),
            tlp=_int(s, "net.ipv4.tcp_early_retrans", 3) in (3, 4),
            timewait=_int(s, "net.ipv4.tcp_max_tw_buckets", 1) > 0,
            invalid_ratelimit=_int(s, "net.ipv4.tcp_invalid_ratelimit", 500) / 1000.0)


def rto_after_handshake(kernel: Kernel, p: TeardownParams, rtt: float) -> float:
    """The RTO after one RTT sample (tcp_rtt_estimator, __tcp_set_rto), in jiffies."""
    rto = rtt + max(2 * rtt, p.rto_min)
    return min(math.ceil(rto * kernel.hz - 1e-9) / kernel.hz, p.rto_max)


def model_timeout(boundary: int, rto_max: float) -> float:
    """tcp_model_timeout() with rto_base TCP_RTO_MIN: the time-based retry limit."""
    thresh = int(math.log2(rto_max / TCP_RTO_MIN)) if rto_max >= TCP_RTO_MIN else 0
    if boundary <= thresh:
        return ((2 << boundary) - 1) * TCP_RTO_MIN
    return ((2 << thresh) - 1) * TCP_RTO_MIN + (boundary - thresh) * rto_max


def retry_limit(p: TeardownParams, orphaned: bool, rto_now: float) -> float:
    """How long after the first RTO retransmission an unanswered FIN is given up."""
    if not orphaned:
        return model_timeout(p.retries2, p.rto_max)
    retries = p.orphan_retries
    if retries == 0 and rto_now < p.rto_max:  # tcp_orphan_retries(): "alive"
        retries = 8
    return model_timeout(retries, p.rto_max)


def rtt_estimate(kernel: Kernel, p: TeardownParams, samples: list[float]
                 ) -> tuple[float, float]:
    """srtt and the RTO after these RTT samples, as tcp_rtt_estimator() and
    __tcp_set_rto() compute them (srtt: 7/8 old + 1/8 new; rttvar starts at
    max(2m, rto_min) and, each round trip, falls back a quarter of the way to the
    round's largest mdev, which starts at rto_min), the RTO in whole jiffies. Every
    sample counts as its own round trip: the lab's exchanges are a few segments."""
    srtt = mdev = rttvar = mdev_max = None
    for m in samples:
        if srtt is None:  # no previous measure: rto = 3 rtt, at least rtt + rto_min
            srtt, mdev = m, 2 * m
            rttvar = mdev_max = max(mdev, p.rto_min)
            continue
        err = m - srtt
        srtt += err / 8
        if err < 0:  # a smaller RTT moves mdev an eighth as much
            e = -err - mdev / 4
            e = e / 8 if e > 0 else e
        else:
            e = err - mdev / 4
        mdev += e
        if mdev > mdev_max:
            mdev_max = mdev
            rttvar = max(rttvar, mdev_max)
        if mdev_max < rttvar:  # the round trip ends (snd_una past rtt_seq)
            rttvar -= (rttvar - mdev_max) / 4
        mdev_max = p.rto_min
    rto = min(math.ceil((srtt + rttvar) * kernel.hz - 1e-9) / kernel.hz, p.rto_max)
    return srtt, rto


def fin_schedule(p: TeardownParams, rto: float, orphaned: bool) -> tuple[list[float], float]:
    """Offsets of the retransmissions of a FIN that is never acknowledged (the probe
    first), and when the socket is destroyed, from the first FIN."""
    offsets, t, first_rto = [], 0.0, None
    if p.tlp:
        t += rto
        offsets.append(t)
    k = 0
    while True:
        t += min(rto * 2 ** k, p.rto_max)
        backed_off = min(rto * 2 ** k, p.rto_max)
        if first_rto is not None and t - first_rto >= retry_limit(p, orphaned, backed_off) - 1e-9:
            return offsets, t
        first_rto = t if first_rto is None else first_rto
        offsets.append(t)
        k += 1


def fin_time(p: TeardownParams, rto: float) -> float:
    """tcp_fin_time(): how long an orphan stays in FIN_WAIT2."""
    return max(p.fin_timeout, 3.5 * rto)


# -- the simulator ----------------------------------------------------------------------

@dataclass
class PredictedState:
    t: float
    state: str
    slack: float  # how much later than t the kernel may get there
    cause: str  # "segment", "app", "timer"


@dataclass(frozen=True)
class Observed:
    """What a run's record says the applications did and when the network delivered,
    on the model's clock (t = 0: the client's first SYN at the router). With it the
    model predicts the kernels' answers to the calls the apps really made, at the
    moments they made them (the apps' sleeps are Python's and their start follows the
    handshake, which faults move), instead of to the steps' nominal schedule.

    steps: per host, for each step the simulator runs, (start, end) of that call as the
      app stamped it, or None for a socket option set before the connection existed;
      a host's list stops where its app stopped (killed, or blocked at the end).
    arrivals: (sender, name, nth) -> when that segment left the router (t_out).
    race: two events at one host closer than this cannot be ordered from the stamps
      (the app stamps a call just before making it; see RACE_NOISE)."""

    steps: dict[str, list[tuple[float, float | None] | None]]
    arrivals: dict[tuple[str, str, int], float]
    race: float
    # Handshake segments that reached a host after its call returned (a delayed or
    # retransmitted SYN-ACK at the client, the handshake's ACK at the server), as
    # (t_out, receiver, flags, sent: its TSval, as a send time): the handshake model's
    # part while the connection is ESTABLISHED, the teardown's once it is not.
    late: tuple[tuple[float, str, int, float], ...] = ()
    # (sender, name) -> when the router sent each duplicate's copy, in order
    copies: dict[tuple[str, str], tuple[float, ...]] = field(default_factory=dict)
    # host -> the RTT samples its kernel took before its first FIN (rtt_samples())
    rtt_samples: dict[str, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Race:
    """An app call and a segment arriving at the same host within the race bound."""

    host: str
    step: int  # index into that host's simulated steps
    call: str
    call_t: float
    arrival_t: float
    what: str  # the arriving segment, e.g. "the client's fin"


@dataclass
class TeardownPrediction:
    segments: list[PredictedSegment] = field(default_factory=list)
    states: dict[str, list[PredictedState]] = field(default_factory=dict)
    rto: dict[str, float] = field(default_factory=dict)
    horizon: float = 0.0
    # Segments the kernel may or may not send: a delayed ACK racing the app's close()
    # right after recv() returned EOF (seen both ways on 6.18 under load).
    maybe: list[PredictedSegment] = field(default_factory=list)
    # Why the model cannot judge this teardown (a step or segment it does not cover);
    # empty when it can.
    unsupported: str = ""
    unsupported_late: bool = False  # ... because of a late handshake segment
    unmodelled_late: bool = False  # an order not modelled for that reason
    # Calls and segments that raced (Observed.race), and the other orders' outcomes
    # (each with `orders` saying which way each race went there).
    races: list[Race] = field(default_factory=list)
    orders: tuple[bool, ...] = ()  # per race: True when the call came after the arrival
    race_bound: float = 0.0  # Observed.race of the run
    # A delayed ACK of the peer's FIN was sent: this prediction has it leave at once,
    # an alternative as late as the kernel may hold it (delayed_ack()).
    delack_choice: bool = False
    delack_late: bool = False  # this prediction is the one where it waited
    unmodelled_orders: list[str] = field(default_factory=list)  # why, for each
    alternatives: list[TeardownPrediction] = field(default_factory=list)

    def of(self, sender: str, name: str) -> list[PredictedSegment]:
        return [s for s in self.segments if s.sender == sender and s.name == name]

    def to_json(self) -> dict:
        if self.unsupported:
            return {"not_judged": self.unsupported}
        return {"rto": {h: round(r, 4) for h, r in self.rto.items()},
                "segments": [{"t": round(s.t, 4), "from": s.sender, "name": s.name,
                              "nth": s.nth, "fate": s.fate, "cause": s.cause,
                              "late_by_up_to": round(s.slack, 4)} for s in self.segments],
                "may_also_send": [{"from": s.sender, "name": s.name, "fate": s.fate}
                                  for s in self.maybe],
                "states": {h: [{"t": round(s.t, 4), "state": s.state, "cause": s.cause,
                                "late_by_up_to": round(s.slack, 4)} for s in v]
                           for h, v in self.states.items()}}


class _Host:
    def __init__(self, name: str, p: TeardownParams, rto: float, steps: list[Step],
                 rtt: float = 0.001):
        self.name, self.p, self.rto, self.steps, self.rtt = name, p, rto, steps, rtt
        self.woke_at = -1.0  # when a blocked call last returned: what came before caused it
        self.drain_until = -1.0  # data arriving until then was read by the call that returned
        self.recv_left = 0  # bytes the recv() waiting now still reads before it returns
        self.returned_at: float | None = None  # the waiting call's return, as the app stamped it
        self.timer_kind, self.timer_wait = "", 0.0  # the FIN timer armed now
        self.fires = 0  # how many times the FIN timer has fired
        self.last_fire: tuple[int, float, float] | None = None  # (its race step, when, window)
        self.held_fin: tuple | None = None  # an expiry held for the next ACK (gen, kind, wait)
        self.timer_released: set = set()  # expiries already held once
        self.deferred: int | None = None  # a step held until the next arrival (AFTER_NEXT)
        self.released: dict[int, float] = {}  # such steps, and when they then ran
        self.state = "ESTABLISHED"
        self.next_step = 0
        self.waiting = False  # in recv() (for data, the peer's FIN or an RST) or send()
        self.waiting_recv = False  # ... and it is a recv(): arriving data is read
        self.step_gen = 0  # the pending "step" event that counts (the others are stale)
        self.recv_gen = 0  # the SO_RCVTIMEO timer of the recv() waiting now
        self.rcvtimeo: float | None = None
        self.linger0 = False  # SO_LINGER {on, 0}: close() aborts with an RST
        self.gone = False  # the application was killed (or its host rebooted)
        self.orphaned = False
        self.fin_sent = self.fin_acked = self.got_fin = False
        self.ack_pending = False
        self.timer_gen = 0  # the FIN's retransmission timer
        self.tw_gen = 0  # the timewait (or FIN_WAIT2) timer
        self.rto_count = 0
        self.first_rto: float | None = None
        self.slack = 0.0  # timer lateness along this host's FIN chain
        # Sequence space: snd is where this host's FIN goes (after all its data), rcv
        # what it expects next from the peer (its rcv_nxt); unread, bytes not yet read.
        self.snd = X + 1 if name == "client" else Y + 1
        self.rcv = Y + 1 if name == "client" else X + 1
        self.unread = 0
        self.una = self.snd  # the peer has acknowledged everything before this (snd_una)
        self.rcv_wup = self.rcv  # rcv_nxt when this host last sent (announced its window)
        self.ts_recent = -1.0  # the newest TSval (send time) seen from the peer
        self.tw_oow_at = -1e9  # the timewait socket's last rate-limited ACK
        self.oow_at = -1e9  # the full socket's last rate-limited (challenge) ACK
        self.unsent = 0  # bytes beyond the initial window, waiting for ACKs


class _Sim:
    def __init__(self, kernel: Kernel, params: dict[str, TeardownParams],
                 rto: dict[str, float], steps: dict[str, list[Step]],
                 faults: tuple[Fault, ...], port: int, first_closer: str | None,
                 host_faults: tuple = (), observed: Observed | None = None,
                 shifts: dict[tuple[str, int], float] | None = None,
                 rtt: dict[str, float] | None = None, delack_late: bool = False):
        self.k, self.faults, self.port = kernel, faults, port
        self.obs, self.shifts = observed, shifts or {}
        self.delack_late = delack_late
        self.copies: dict[tuple[str, str], list[float]] = {}  # duplicates' copies not yet sent
        self.last_sent: list[int] = []
        self.races: list[Race] = []
        # every arrival: (when, what, whether it changes what an app call does)
        self.arrived: dict[str, list[tuple[float, str, bool]]] = {"client": [], "server": []}
        self.calls_done: dict[str, list[tuple[float, int, str]]] = {"client": [], "server": []}
        self.host_faults = host_faults
        self.hosts = {h: _Host(h, params[h], rto[h], steps[h], (rtt or {}).get(h, 0.001))
                      for h in ("client", "server")}
        self.first_closer = first_closer
        self.clf = Classifier({C_ADDR})
        self._prime()
        self.q: list = []
        self.order = itertools.count()
        self.pred = TeardownPrediction(states={h: [] for h in self.hosts}, rto=dict(rto))

    def _prime(self) -> None:
        """The handshake, so the classifier names the teardown as the hook will."""
        for src, flags, seq, ack in ((C_ADDR, SYN, X, 0), (S_ADDR, SYN | ACK, Y, X + 1),
                                     (C_ADDR, ACK, X + 1, Y + 1)):
            dst = S_ADDR if src == C_ADDR else C_ADDR
            sport, dport = (C_PORT, self.port) if src == C_ADDR else (self.port, C_PORT)
            self.clf.classify(Segment(src, sport, dst, dport, flags, seq, ack, 0))

    def at(self, t: float, prio: int, what: str, *args) -> int:
        n = next(self.order)
        heapq.heappush(self.q, (round(t, 9), prio, n, what, args))
        return n

    def peer(self, h: _Host) -> _Host:
        return self.hosts["server" if h.name == "client" else "client"]

    def set_state(self, t: float, h: _Host, state: str, slack: float, cause: str) -> None:
        if h.state != state:
            h.state = state
            self.pred.states[h.name].append(PredictedState(t, state, slack, cause))

    def segment(self, h: _Host, flags: int, seq: int, ack: int, length: int = 0) -> Segment:
        """What `h` sends, addressed as the hook sees it."""
        if h.name == "client":
            return Segment(C_ADDR, C_PORT, S_ADDR, self.port, flags, seq, ack, length)
        return Segment(S_ADDR, self.port, C_ADDR, C_PORT, flags, seq, ack, length)

    def send(self, t: float, h: _Host, flags: int, cause: str, slack: float,
             length: int = 0, seq: int | None = None, ack: int | None = None) -> str:
        other = self.peer(h)
        if seq is None:
            seq = h.snd + (1 if h.fin_sent and not flags & FIN else 0)
        ack = h.rcv if ack is None else ack
        seen = self.clf.classify(self.segment(h, flags, seq, ack, length))
        verdict = decide(self.faults, seen)
        fate = {DROP: "dropped", DELAY: "delayed"}.get(verdict.action, "delivered")
        if silencing(self.host_faults, h.name, other.name, t) is not None:
            fate = "dropped"  # a crashed or rebooting host: the hook drops it
        elif any(f.action == "link-down" and f.in_force(t) for f in self.host_faults):
            # What the router answers then (ICMP) is core/model_established.py's.
            raise Unsupported("a segment while a link is down")
        if flags & ACK:
            self.subsume_delack(t, h)
            h.rcv_wup = h.rcv
        if seen.name in ("data", "data-ack") and (fate == "dropped" or (
                fate == "delayed" and verdict.delay >= DATA_PROBE_MIN)):
            # the data's sender retransmits it (tail loss probe, RTO): the established
            # model's mechanism, not simulated here
            whose = "" if seen.name == "data" else f"the ACK of the {other.name}'s "
            raise Unsupported(f"{whose or h.name + ' '}data {fate}")
        self.pred.segments.append(PredictedSegment(t, h.name, seen.name, seen.nth, fate,
                                                   cause, slack))
        if fate != "dropped":
            held = verdict.delay if verdict.action == DELAY else 0.0
            at = self.arrival(t + TRANSIT + held, h.name, seen.name, seen.nth)
            self.last_sent = [self.at(at, 1, "arrive", other.name, flags, seq, ack, slack,
                                      length, t)]
            if verdict.action == DUPLICATE:  # the router's copy, `by` after the original
                copy = self.copy_arrival(h.name, seen.name, at + verdict.delay)
                self.last_sent.append(self.at(copy, 1, "arrive", other.name,
                                              flags, seq, ack, slack, length, t))
        return fate

    def copy_arrival(self, sender: str, name: str, nominal: float) -> float:
        """A duplicate's copy: with a record, when the router really sent it (its raw
        socket send follows the hook's own timing, not the original's t_out + by)."""
        if self.obs is None:
            return nominal
        copies = self.copies.setdefault((sender, name), list(self.obs.copies.get(
            (sender, name), ())))
        return copies.pop(0) + LAST_HOP if copies else nominal

    def arrival(self, nominal: float, sender: str, name: str, nth: int) -> float:
        """When a segment reaches its receiver: with a record, when the router really let
        it go (its forwarding and any delay are the lab's doing, not the kernel's) plus
        the last hop; else the nominal transit."""
        if self.obs is None:
            return nominal
        out = self.obs.arrivals.get((sender, name, nth))
        if out is None:
            return nominal
        return max(out + LAST_HOP, nominal - TRANSIT + 1e-6)

    def answer_rst(self, t: float, h: _Host, ack: int, slack: float) -> None:
        """tcp_v4_send_reset() for a segment with ACK: seq = that segment's ack."""
        self.send(t, h, RST, "answer", slack, seq=ack, ack=0)

    def abort(self, t: float, h: _Host, cause: str) -> None:
        """tcp_disconnect() / tcp_abort(): CLOSE at once, and an RST where
        tcp_need_reset() says the peer must hear of it."""
        if h.state == "CLOSE":
            return
        self.subsume_delack(t, h)  # tcp_disconnect() drops a delayed ACK still waiting
        if h.state in NEED_RESET:  # tcp_send_active_reset(): seq = snd_nxt
            self.send(t, h, RST | ACK, "app", h.slack)
        h.timer_gen += 1
        h.tw_gen += 1
        self.set_state(t, h, "CLOSE", h.slack, cause)
        self.wake(t, h)

    # the applications -------------------------------------------------------------
    def schedule_step(self, t: float, h: _Host) -> None:
        h.step_gen += 1
        self.at(t, 0, "step", h.name, h.step_gen)

    def due(self, h: _Host, i: int) -> float | None:
        """With a record: when the app made its call of step i (None: it never did)."""
        if i in h.released:
            return h.released[i]
        if (h.name, i) in self.shifts:
            return self.shifts[(h.name, i)]
        seen = self.obs.steps[h.name]
        if i >= len(seen):
            return None
        return -1.0 if seen[i] is None else seen[i][0]

    def step(self, t: float, h: _Host, gen: int | None = None) -> None:
        if gen is not None and gen != h.step_gen:
            return
        while h.next_step < len(h.steps) and not h.gone:
            i = h.next_step
            if self.obs is not None:
                if self.shifts.get((h.name, i)) == AFTER_NEXT and i not in h.released:
                    h.deferred = i  # the other order: after the segment it raced
                    return
                due = self.due(h, i)
                if due is None:  # the app never made this call (killed, or still blocked)
                    h.next_step = len(h.steps)
                    return
                if due > t + 1e-9:
                    self.schedule_step(due, h)
                    return
            s = h.steps[i]
            h.next_step += 1
            h.waiting = h.waiting_recv = False
            if s.call in RACING_CALLS and self.obs is not None:
                self.note_race(t, h, i, s.call)
                self.calls_done[h.name].append((t, i, s.call))
            if s.call == "sleep":
                if self.obs is None:  # with a record the next call's stamp says when
                    self.schedule_step(t + s.arg, h)
                    return
            elif s.call == "recv":
                # recv: N reads on until N bytes or EOF; a bare recv returns what is there
                want = s.arg if isinstance(s.arg, int) else 1
                got = min(h.unread, want) if isinstance(s.arg, int) else h.unread
                h.unread, h.recv_left = h.unread - got, max(0, want - got)
                if h.recv_left > 0 and not h.got_fin and h.state != "CLOSE":
                    h.waiting = h.waiting_recv = True
                    h.recv_gen += 1
                    if h.rcvtimeo is not None:  # SO_RCVTIMEO: EAGAIN when it runs out
                        self.at(t + h.rcvtimeo, 0, "recv_timeout", h.name, h.recv_gen)
                    self.observed_return(h, i)
                    return
            elif s.call == "send":
                self.send_data(t, h, len(s.arg.encode()) if isinstance(s.arg, str) else s.arg)
                if h.unsent:  # blocked for the send buffer until ACKs (or an RST) come
                    h.waiting = True
                    self.observed_return(h, i)
                    return
            elif s.call == "close":
                self.close(t, h, orphan=True)
            elif s.call == "shutdown":
                if s.arg in ("wr", "rdwr"):
                    self.close(t, h, orphan=False)
            elif s.call == "linger":
                h.linger0 = s.arg == 0
            elif s.call == "rcvtimeo":
                h.rcvtimeo = s.arg
            elif s.call == "keepalive":
                # Its probes come only after an idle time (at least 1 s): a connection
                # that closes sooner never sends one. With a record, probes that did go
                # out leave the teardown unjudged (observe()); before a run, the
                # established model predicts them.
                pass
            elif s.call != "netstat":  # reading counters sends nothing
                raise Unsupported(f"{h.name} {s.call}")

    def observed_return(self, h: _Host, i: int) -> None:
        """A blocking call's return is the app's to report: where the record has the
        call returning and the model has nothing that wakes it, the app goes on at that
        moment all the same (what woke it is judged by the segment checks)."""
        if self.obs is None or (h.name, i) in self.shifts:
            return
        seen = self.obs.steps[h.name]
        if i < len(seen) and seen[i] is not None and seen[i][1] is not None:
            self.at(seen[i][1], 4, "recv_timeout", h.name, h.recv_gen)
            h.returned_at = seen[i][1]

    def note_race(self, t: float, h: _Host, i: int, call: str) -> None:
        """An app call that a segment reached the same host within the race bound of:
        the stamps cannot say which came first (Observed.race)."""
        if (h.name, i) in self.shifts:
            return
        # A pure ACK matters to a close() too: after an abort it draws an RST
        # (gen-4284: linger 0, the data's ACK and the close() 0.2 ms apart).
        acks_too = call in ("close", "shutdown")
        near = [(at, what) for at, what, counts in self.arrived[h.name]
                if abs(at - t) <= self.obs.race and at > h.woke_at and (counts or acks_too)]
        near += [(qt, self.describe_arrival(args)) for qt, _p, _n, what, args in self.q
                 if what == "arrive" and args[0] == h.name and abs(qt - t) <= self.obs.race
                 and (self.matters(args[1], args[5]) or acks_too)]
        if near:
            at, what = min(near, key=lambda a: abs(a[0] - t))
            self.races.append(Race(h.name, i, call, t, at, what))

    def note_timer_race(self, t: float, h: _Host, step: int, wait: float) -> None:
        """A retransmission timer fires anywhere in [due, due + Kernel.slack(wait)]
        (its timer-wheel bucket): an ACK arriving within that window may come first and
        cancel it (seen on 6.18, gen-2025: the ACK of data and FIN 4.2 ms after the send,
        the probe due at 4 ms, no probe sent)."""
        window = self.k.slack(wait) + self.obs.race
        near = [qt for qt, _p, _n, what, args in self.q
                if what == "arrive" and args[0] == h.name and args[1] & ACK
                and t < qt <= t + window]
        if near:
            self.races.append(Race(h.name, step, "timer", t, min(near),
                                   "the ACK of its FIN"))

    @staticmethod
    def matters(flags: int, length: int) -> bool:
        """What changes what an app call does: data (read, or lost at close()), a FIN
        (CLOSE_WAIT instead of FIN_WAIT1), an RST. A pure ACK does not."""
        return bool(flags & (FIN | RST)) or length > 0

    def describe_arrival(self, args) -> str:
        receiver, flags = args[0], args[1]
        sender = "client" if receiver == "server" else "server"
        length = args[5] if len(args) > 5 else 1
        kind = "fin" if flags & FIN else "rst" if flags & RST else "data" if length else "ack"
        return f"the {sender}'s {kind}"

    def wake(self, t: float, h: _Host) -> None:
        """Data, the peer's FIN or an RST ends a recv() that waits."""
        if h.waiting and not h.gone:
            if h.waiting_recv:
                # The call reads what is there when the app gets to run, not only what
                # woke it: data arriving until the app's return (as stamped, give or
                # take the race bound; without a record, RACE_NOISE) is read too.
                h.drain_until = max(t, h.returned_at if h.returned_at is not None else t) + \
                    (self.obs.race if self.obs is not None else RACE_NOISE)
            h.waiting = h.waiting_recv = False
            h.returned_at = None
            h.recv_gen += 1
            h.woke_at = t
            self.schedule_step(t, h)

    def recv_timeout(self, t: float, h: _Host, gen: int) -> None:
        if h.waiting and gen == h.recv_gen:
            # (with a record: the app saw its call return before the model saw what woke
            # it; the segment's t_out and the app's stamp are within the race bound of
            # each other, and wake() lets the call read what arrives that soon)
            self.wake(t, h)

    def send_data(self, t: float, h: _Host, n: int) -> None:
        """send(): nothing on the wire once this side sent its FIN or the socket is
        gone (EPIPE); else the bytes in MSS-sized segments, as many as the initial
        window allows before an ACK comes back."""
        if h.fin_sent or h.state == "CLOSE" or n <= 0:
            return
        segments = math.ceil(n / MSS)
        for i in range(min(segments, TCP_INIT_CWND)):
            size = min(MSS, n - i * MSS)
            fate = self.send(t, h, ACK | PSH, "app", h.slack, length=size)
            if fate == "dropped":  # its retransmission is core/model_established.py's
                raise Unsupported(f"{h.name} data dropped")
            h.snd += size
        h.unsent = max(0, n - TCP_INIT_CWND * MSS)

    def host_fault(self, t: float, h: _Host, action: str) -> None:
        """kill: the application dies and its kernel closes the socket as close() would.
        reboot: the same, then the socket is destroyed (SOCK_DESTROY -> tcp_abort) while
        the host is silent, so its FIN and RST go nowhere; afterwards nothing owns the
        connection."""
        h.gone, h.waiting = True, False
        self.close(t, h, orphan=True)  # the application dies first (appproc.py)
        if action == "reboot":
            self.abort(t, h, "fault")

    def close(self, t: float, h: _Host, orphan: bool) -> None:
        if h.state in ("TIME_WAIT", "CLOSE"):
            # the connection lives on in a timewait minisocket (tcp_time_wait() ended
            # the full socket with tcp_done()) or is gone: close() has nothing to do
            h.orphaned = h.orphaned or orphan
            return
        if orphan and (h.unread or h.linger0):
            # tcp_close(): unread data is lost, so the peer must know (RST); SO_LINGER
            # {on, 0} asks for the same (tcp_disconnect)
            self.abort(t, h, "app")
            return
        h.orphaned = h.orphaned or orphan
        if h.state == "CLOSE_WAIT" and h.ack_pending and not self.delack_late:
            self.maybe_ack(t, h)  # a close() at the very moment the FIN came
        if h.state in ("ESTABLISHED", "CLOSE_WAIT"):
            self.set_state(t, h, "FIN_WAIT1" if h.state == "ESTABLISHED" else "LAST_ACK",
                           h.slack, "app")
            h.fin_sent, h.ack_pending = True, False  # the FIN carries any pending ACK
            self.send(t, h, FIN | ACK, "first", h.slack)
            if h.p.tlp:
                self.arm(t, h, "tlp", self.probe_wait(h))
            else:
                self.arm(t, h, "rto", h.rto)
        elif h.state == "FIN_WAIT2" and orphan:
            self.fin_wait2_timer(t, h, h.slack)

    def subsume_delack(self, t: float, h: _Host) -> None:
        """Another segment carrying the same ACK (the FIN, an answer, data, an RST)
        leaves while the delayed ACK still waits: it takes its place
        (tcp_event_ack_sent() clears the delayed-ACK timer; tcp_disconnect() too)."""
        h.ack_pending = False

    def maybe_ack(self, t: float, h: _Host) -> None:
        """The delayed ACK of the peer's FIN may still leave before this FIN: named and
        judged as the hook would, without counting it (a copy of the classifier)."""
        seen = copy.deepcopy(self.clf).classify(self.segment(h, ACK, h.snd,
                                                             self.peer(h).snd + 1))
        fate = {DROP: "dropped", DELAY: "delayed"}.get(decide(self.faults, seen).action,
                                                       "delivered")
        self.pred.maybe.append(PredictedSegment(t, h.name, seen.name, seen.nth, fate,
                                                "answer", h.slack + delack_max(h.rtt)))

    # timers -------------------------------------------------------------------------
    def probe_wait(self, h: _Host) -> float:
        """tcp_schedule_loss_probe(): 2 srtt, plus tcp_rto_min when the FIN is the only
        segment out, else plus TCP_TIMEOUT_MIN (2 ms on 6.18: seen 5 ms after a FIN that
        followed unacknowledged data; 2 jiffies in older code, inside the check's
        window), in whole jiffies, and never after the RTO."""
        alone = h.una >= h.snd
        wait = 2 * h.rtt + (h.p.rto_min if alone else TLP_TIMEOUT_MIN)
        return min(math.ceil(wait * self.k.hz - 1e-9) / self.k.hz, h.rto)

    def arm(self, t: float, h: _Host, kind: str, wait: float) -> None:
        h.timer_gen += 1
        h.timer_kind, h.timer_wait = kind, wait
        self.at(t + wait, 2, "fin_timer", h.name, h.timer_gen, kind, wait)

    def fin_timer(self, t: float, h: _Host, gen: int, kind: str, wait: float) -> None:
        if gen != h.timer_gen or h.fin_acked or h.state == "CLOSE":
            return
        key = (h.name, -(h.fires + 1))  # this expiry, as a race's step
        if self.shifts.get(key) == AFTER_NEXT and h.held_fin is None and \
                key not in h.timer_released:
            # the other order: this expiry waits for the next ACK (as late as its
            # bucket allows), which may make it moot
            h.held_fin = (gen, kind, wait)
            h.timer_released.add(key)
            self.at(t + self.k.slack(wait) + self.obs.race, 2, "fin_timer_latest",
                    h.name, gen)
            return
        h.fires += 1
        if self.obs is not None and key not in self.shifts:
            self.note_timer_race(t, h, key[1], wait)
            h.last_fire = (key[1], t, self.k.slack(wait) + self.obs.race)
        h.slack += self.k.slack(wait)
        if kind == "tlp":
            self.send(t, h, FIN | ACK, "probe", h.slack)
            self.arm(t, h, "rto", h.rto)
            return
        backed_off = min(h.rto * 2 ** h.rto_count, h.p.rto_max)
        if h.first_rto is not None and \
                t - h.first_rto >= retry_limit(h.p, h.orphaned, backed_off) - 1e-9:
            self.set_state(t, h, "CLOSE", h.slack, "timer")  # tcp_write_err(): no RST
            return
        h.first_rto = t if h.first_rto is None else h.first_rto
        h.rto_count += 1
        self.send(t, h, FIN | ACK, "timer", h.slack)
        self.arm(t, h, "rto", min(h.rto * 2 ** h.rto_count, h.p.rto_max))

    def fin_wait2_timer(self, t: float, h: _Host, slack: float) -> None:
        tmo = fin_time(h.p, h.rto)
        if not h.p.timewait and tmo <= TCP_TIMEWAIT_LEN:
            # the FIN_WAIT2 minisocket (tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)) cannot
            # be had either: closed at once
            self.set_state(t, h, "CLOSE", slack, "segment")
            return
        h.tw_gen += 1
        self.at(t + tmo, 2, "tw_timer", h.name, h.tw_gen, slack + self.k.slack(tmo))

    def old_ack(self, t: float, h: _Host, sent: float | None, slack: float) -> None:
        """A pure ACK from before what the host has since acknowledged. Older by more
        than one timestamp tick (1 ms) than the newest segment seen, PAWS rejects it
        first (tcp_paws_discard()): silently on the kernels Kernel.paws_old_ack_silent
        names, not modelled before them; else it is out of the window."""
        if sent is not None and h.ts_recent - sent > PAWS_TICK and h.state != "TIME_WAIT":
            if self.k.paws_old_ack_silent:
                return
            raise Unsupported("an old ACK rejected by PAWS (answered or not by this "
                              "kernel version: not modelled)")
        self.out_of_window(t, h, slack)

    def out_of_window(self, t: float, h: _Host, slack: float) -> None:
        """A pure ACK from before what this host already acknowledged (an old one, or
        the router's copy of one): tcp_sequence() fails, and tcp_validate_incoming()
        answers with a duplicate ACK, at most one per tcp_invalid_ratelimit
        (tcp_oow_rate_limited()); a timewait socket the same way (seen on 6.18,
        gen-3123, gen-3278)."""
        if h.state == "TIME_WAIT":
            self.paws_in_time_wait(t, h, slack)
        elif t - h.oow_at >= h.p.invalid_ratelimit:
            h.oow_at = t
            self.send(t, h, ACK, "answer", slack)

    def paws_in_time_wait(self, t: float, h: _Host, slack: float) -> None:
        """tcp_timewait_state_process(): a PAWS-rejected segment (a delayed one, older
        than what came since) restarts the timewait timer and is answered by an ACK,
        at most one per tcp_invalid_ratelimit (tcp_timewait_check_oow_rate_limit())."""
        self.time_wait(t, h, slack, restart_only=True)
        if t - h.tw_oow_at >= h.p.invalid_ratelimit:
            h.tw_oow_at = t
            self.send(t, h, ACK, "answer", slack)

    def time_wait(self, t: float, h: _Host, slack: float, restart_only: bool = False) -> None:
        if not h.p.timewait:
            # tcp_time_wait(): inet_twsk_alloc() refuses (tcp_max_tw_buckets = 0,
            # TCPTimeWaitOverflow), and the socket is closed without one
            self.set_state(t, h, "CLOSE", slack, "segment")
            return
        if not restart_only:
            self.set_state(t, h, "TIME_WAIT", slack, "segment")
        h.tw_gen += 1
        self.at(t + TCP_TIMEWAIT_LEN, 2, "tw_timer", h.name, h.tw_gen,
                slack + self.k.slack(TCP_TIMEWAIT_LEN))

    def tw_timer(self, t: float, h: _Host, gen: int, slack: float) -> None:
        if gen == h.tw_gen and h.state in ("FIN_WAIT2", "TIME_WAIT"):
            self.set_state(t, h, "CLOSE", slack, "timer")

    # segments -----------------------------------------------------------------------
    def arrive(self, t: float, h: _Host, flags: int, seq: int, ack: int, slack: float,
               length: int = 0, sent: float | None = None) -> None:
        if h.deferred is not None:  # (any segment: a pure ACK matters to a close())
            h.released[h.deferred] = t + 1e-6  # the deferred call, right after this
            h.deferred = None
            self.schedule_step(t + 1e-6, h)
        if flags & ACK and h.held_fin is not None:  # the held expiry, right after this
            gen_, kind_, wait_ = h.held_fin
            h.held_fin = None
            self.at(t + 1e-6, 2, "fin_timer", h.name, gen_, kind_, wait_)
        if self.obs is not None and flags & ACK and h.last_fire is not None:
            # an ACK the peer sent only after the timer fired may still have come first:
            # the timer fires anywhere in its bucket (note_timer_race() sees those sent
            # before)
            step, fired, window = h.last_fire
            if fired < t <= fired + window and not any(
                    r.host == h.name and r.step == step for r in self.races):
                self.races.append(Race(h.name, step, "timer", fired, t, "the ACK of its FIN"))
        counts = self.matters(flags, length)
        what = self.describe_arrival((h.name, flags, 0, 0, 0, length))
        self.arrived[h.name].append((t, what, counts))
        if self.obs is not None:
            # a call the app stamped just before this arrival may have reached the
            # kernel after it: the stamp comes first, the act up to the bound later
            for call_t, i, call in self.calls_done[h.name]:
                if counts or call in ("close", "shutdown"):
                    if t - self.obs.race <= call_t <= t and (h.name, i) not in self.shifts:
                        self.races.append(Race(h.name, i, call, call_t, t, what))
        if h.state == "CLOSE":
            if not flags & RST:  # no socket any more: tcp_v4_send_reset(), NO_SOCKET
                self.answer_rst(t, h, ack, slack)
            return
        if sent is not None and not flags & RST:
            # Timestamps (on in every lab connection): the segment's TSval is its send
            # time. One older than the newest seen (ts_recent) is a PAWS reject.
            if sent < h.ts_recent and h.state == "TIME_WAIT":
                self.paws_in_time_wait(t, h, slack)
                return
            h.ts_recent = max(h.ts_recent, sent)
        if not flags & (FIN | RST | SYN) and not length and seq < h.rcv_wup:
            self.old_ack(t, h, sent, slack)
            return
        if h.state == "TIME_WAIT" and not flags & (FIN | RST) and not length:
            # an in-window bare ACK: the timewait timer starts again, nothing is sent
            # (tcp_timewait_state_process(), inet_twsk_reschedule())
            self.time_wait(t, h, slack, restart_only=True)
            return

        if flags & RST:
            if not self.rst_accepted(h, seq):
                return  # out of window, or not exact where exact is required: ignored
            self.set_state(t, h, "CLOSE", slack, "segment")
            h.timer_gen += 1
            h.tw_gen += 1
            self.wake(t, h)  # recv() fails: ECONNRESET (EPIPE in CLOSE_WAIT)
            return
        if flags & ACK and ack > h.una:
            h.una = ack
            if h.fin_sent and ack < h.snd + 1:
                # data acknowledged, the FIN not yet: tcp_set_xmit_timer() schedules the
                # loss probe again (now for the FIN alone: 2 srtt + rto_min, at most the
                # RTO) if it has not fired, else tcp_rearm_rto() restarts the RTO
                if h.timer_kind == "tlp":
                    self.arm(t, h, "tlp", self.probe_wait(h))
                elif h.timer_kind == "rto":
                    self.arm(t, h, "rto", h.timer_wait)
        if h.fin_sent and not h.fin_acked and ack >= h.snd + 1:
            h.fin_acked = True
            h.timer_gen += 1
            if h.state == "FIN_WAIT1":
                self.set_state(t, h, "FIN_WAIT2", slack, "segment")
                if h.orphaned and not flags & FIN and not length:
                    self.fin_wait2_timer(t, h, slack)
            elif h.state == "CLOSING":
                self.time_wait(t, h, slack)
            elif h.state == "LAST_ACK":
                self.set_state(t, h, "CLOSE", slack, "segment")
                return
        if length and self.data(t, h, seq, ack, length, slack):
            return
        if not flags & FIN:
            return
        if h.got_fin:  # a retransmitted FIN
            if h.state == "TIME_WAIT":
                self.time_wait(t, h, slack)  # restarts the 60 s
            self.subsume_delack(t, h)
            self.send(t, h, ACK, "answer", slack)
            return
        h.got_fin = True
        h.rcv = seq + length + 1
        if h.state == "ESTABLISHED":
            self.set_state(t, h, "CLOSE_WAIT", slack, "segment")
            h.ack_pending = True
            # tcp_fin() puts the socket in pingpong mode, so the ACK is a delayed one
            # (tcp_send_delayed_ack()): at the next jiffy when nothing was received
            # before (icsk_ack.ato still 0), else up to ato, at most max(TCP_DELACK_MIN,
            # srtt) (and TCP_DELACK_MAX). A close() within that time sends a FIN that
            # carries the ACK, and the ACK alone may or may not have left. The model
            # sends it at once (as seen when nothing had been received: 0.04-2.9 ms)
            # and, when close() comes within that time, makes it a maybe.
            self.at(t, 3, "delayed_ack", h.name, slack)
            self.wake(t, h)
        elif h.state == "FIN_WAIT1":
            self.set_state(t, h, "CLOSING", slack, "segment")
            self.send(t, h, ACK, "answer", slack)
        elif h.state == "FIN_WAIT2":
            self.send(t, h, ACK, "answer", slack)
            self.time_wait(t, h, slack)

    @staticmethod
    def rst_accepted(h: _Host, seq: int) -> bool:
        """Does an RST with this sequence number end the connection?
        - TIME_WAIT: only at rcv_nxt exactly (tcp_timewait_state_process(), "TIME_WAIT
          assassination" with tcp_rfc1337 = 0); anything else is ignored;
        - the FIN_WAIT2 minisocket of an orphan: anywhere in the window (the same
          function, its FIN_WAIT2 substate, "goto kill");
        - a full socket (tcp_validate_incoming(), RFC 5961 3.2): at rcv_nxt, or at
          rcv_nxt - 1 in CLOSE_WAIT, LAST_ACK and CLOSING (tcp_reset_check()). An RST
          elsewhere in the window draws a challenge ACK instead; the RSTs the model
          sends (answers quoting an old ACK, aborts at snd_nxt) never land there, so
          that case is not modelled."""
        if h.state == "TIME_WAIT":
            return seq == h.rcv
        if h.state == "FIN_WAIT2" and h.orphaned:
            return h.rcv <= seq < h.rcv + RCV_WND
        return seq == h.rcv or (seq == h.rcv - 1 and
                                h.state in ("CLOSE_WAIT", "LAST_ACK", "CLOSING"))

    def hand_over(self, h: _Host) -> float:
        """From when what reaches the host is this model's (gone_at(), on the
        prediction so far)."""
        at = gone_at(self.pred, h.name)
        return math.inf if at is None else at

    def late(self, t: float, h: _Host, flags: int, seq: int, ack: int,
             sent: float | None = None) -> None:
        """A handshake segment after the host's call returned (Observed.late): the
        handshake model answers it while the connection is ESTABLISHED (a SYN-ACK: an
        ACK, rate-limited; the ACK again: nothing); once the socket is gone, it gets
        an RST like anything else (tcp_v4_send_reset(), NO_SOCKET)."""
        if t < self.hand_over(h):
            # before the host sent data or a FIN, or left ESTABLISHED: the handshake
            # model's (it stops at the gone_at this model gives it)
            return
        if flags == ACK and h.state != "CLOSE":
            if seq < h.rcv_wup:  # the handshake's ACK again, from before what came since
                self.old_ack(t, h, sent, 0.0)
            return
        if h.state not in ("CLOSE", "TIME_WAIT"):
            # a full socket: a SYN is answered by an ACK
            # (tcp_validate_incoming(), RFC 5961 4.2 challenge ACK), at most one per
            # tcp_invalid_ratelimit (tcp_oow_rate_limited())
            if t - h.oow_at >= h.p.invalid_ratelimit:
                h.oow_at = t
                self.send(t, h, ACK, "answer", 0.0)
            return
        if h.state == "TIME_WAIT":
            raise UnsupportedLate(f"a handshake segment reaching the {h.name} in TIME_WAIT")
        if flags & SYN and not flags & ACK:
            raise UnsupportedLate(f"a SYN reaching the {h.name} after its connection closed "
                              "(a listener may take it)")
        self.answer_rst(t, h, ack, 0.0)

    def data(self, t: float, h: _Host, seq: int, ack: int, length: int,
             slack: float) -> bool:
        """A segment with payload; True when it ended the connection."""
        if seq + length <= h.rcv:
            # old data again (a duplicate): tcp_sequence() fails, tcp_send_dupack(); a
            # segment with data is never rate-limited (tcp_oow_rate_limited())
            self.send(t, h, ACK, "answer", slack)
            return False
        if h.orphaned and h.state in ("FIN_WAIT1", "FIN_WAIT2"):
            # close() shut the receiving side: new data aborts the connection
            # (tcp_rcv_state_process, TCPAbortOnData; a FIN_WAIT2 minisocket alike,
            # tcp_timewait_state_process -> TCP_TW_RST)
            self.answer_rst(t, h, ack, slack)
            # The sender's tail loss probe (2 srtt + 2 jiffies, ~10 ms on a LAN) races
            # the RSTs' way back through the router: when they come later (a loaded
            # hook, seen in a catalogue run), the probe is one more segment to a closed
            # socket, and one more RST.
            self.pred.maybe.append(PredictedSegment(t, h.name, "rst", 0, "delivered",
                                                    "answer", slack))
            h.timer_gen += 1
            h.tw_gen += 1
            self.set_state(t, h, "CLOSE", slack, "segment")
            return True
        if h.state not in ("ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2"):
            raise Unsupported(f"data reaching {h.name} in {h.state}")
        if self.peer(h).unsent:
            raise Unsupported("bulk data beyond the initial window")
        h.rcv = max(h.rcv, seq + length)
        # A recv() waiting reads what came (recv: N reads on until N or EOF; whatever
        # it has read is no longer unread when the app closes).
        self.send(t, h, ACK, "answer", slack)  # early in a connection: quick ACKs
        if h.waiting_recv:
            h.recv_left -= length
            if h.recv_left <= 0:
                self.wake(t, h)
        elif t > h.drain_until:
            h.unread += length
        return False

    def delayed_ack(self, t: float, h: _Host, slack: float) -> None:
        """The delayed ACK of the peer's FIN leaves at once (as seen when nothing had
        been received: 0.04-2.9 ms), or, in the alternative simulated beside it
        (`delack_late`), as late as delack_max(), unless a segment that carries the
        same ACK goes first."""
        if not h.ack_pending:
            return
        self.pred.delack_choice = True
        if self.delack_late:
            self.at(t + delack_max(h.rtt), 3, "delack_fire", h.name, slack)
            return
        self.delack_fire(t, h, slack)

    def delack_fire(self, t: float, h: _Host, slack: float) -> None:
        if h.ack_pending:
            h.ack_pending = False
            self.send(t, h, ACK, "answer", slack + delack_max(h.rtt))

    def run(self, until: float) -> TeardownPrediction:
        for name in ("client", "server"):
            # Both apps start their steps as the connection exists; where both close at
            # the same nominal moment, `first_closer` (what the run showed) goes first.
            # (With a record, each step waits for the moment the app made its call.)
            self.schedule_step(0.0 if name == (self.first_closer or "client") else 1e-6,
                               self.hosts[name])
        for t_out, receiver, flags, sent in (self.obs.late if self.obs else ()):
            seq, ack = (Y, X + 1) if receiver == "client" else (
                (X, 0) if flags & SYN else (X + 1, Y + 1))
            self.at(t_out + LAST_HOP, 1, "late", receiver, flags, seq, ack, sent)
        for f in self.host_faults:
            if f.action in ("kill", "reboot"):
                self.at(f.at, 0, "host_fault", f.host, f.action)
        while self.q:
            t, _prio, n, what, args = heapq.heappop(self.q)
            if t > until:
                break
            if n > MAX_EVENTS:  # a bug must not hang the judge: say so instead
                raise Unsupported(f"the teardown simulation did not settle ({n} events)")
            h = self.hosts[args[0]]
            if what == "step":
                if not h.gone:
                    self.step(t, h, *args[1:])
            elif what == "arrive":
                self.arrive(t, h, *args[1:])
            elif what == "late":
                self.late(t, h, *args[1:])
            elif what == "fin_timer":
                self.fin_timer(t, h, *args[1:])
            elif what == "fin_timer_latest":  # no ACK came within the bucket after all
                if h.held_fin is not None and h.held_fin[0] == args[1]:
                    gen_, kind_, wait_ = h.held_fin
                    h.held_fin = None
                    self.fin_timer(t, h, gen_, kind_, wait_)
            elif what == "tw_timer":
                self.tw_timer(t, h, *args[1:])
            elif what == "delayed_ack":
                self.delayed_ack(t, h, *args[1:])
            elif what == "delack_fire":
                self.delack_fire(t, h, *args[1:])
            elif what == "recv_timeout":
                self.recv_timeout(t, h, *args[1:])
            elif what == "host_fault":
                self.host_fault(t, h, *args[1:])
        self.pred.horizon = until
        self.pred.races, self.pred.delack_late = self.races, self.delack_late
        return self.pred


def predict_teardown(kernel: Kernel, params: dict[str, TeardownParams],
                     rtt: dict[str, float], steps: dict[str, list[Step]],
                     faults: tuple[Fault, ...], port: int = 8080,
                     first_closer: str | None = None,
                     until: float = 600.0, host_faults: tuple = (),
                     observed: Observed | None = None) -> TeardownPrediction:
    """Segments and states of the teardown, from the moment the connection exists
    (t = 0, taken as the apps' start: the handshake's millisecond is below what the
    timed faults resolve), given each host's steps after its connect() or accept().

    With `observed` (a run's record), each step happens when the app really made the
    call, and each segment reaches its peer when the router really let it go. Where a
    call and a segment reached a host closer than `observed.race`, the other order is
    simulated too (up to MAX_RACES races, every combination), and the outcomes that
    differ are in `alternatives`."""
    rto = {h: rto_after_handshake(kernel, params[h], rtt.get(h, 0.001)) for h in params}
    for h, samples in (observed.rtt_samples if observed is not None else {}).items():
        if samples:  # what the run's ACKs taught the kernel, not only the handshake
            rtt[h], rto[h] = rtt_estimate(kernel, params[h], samples)

    def sim(shifts=None, delack_late=False) -> TeardownPrediction:
        return _Sim(kernel, params, rto, steps, faults, port, first_closer, host_faults,
                    observed, shifts, rtt, delack_late).run(until)

    main = sim()
    if observed is None or not (main.races or main.delack_choice):
        return main
    races = _distinct(main.races)[:MAX_RACES]
    main.races, main.race_bound = races, observed.race
    main.orders = tuple(r.call_t > r.arrival_t for r in races)
    early = {(False,) * len(races): main}
    for flips in itertools.product((False, True), repeat=len(races)):
        if any(flips):
            shifts = {}
            for race, flip, after in zip(races, flips, main.orders):
                if flip:  # the call on the other side of the arrival: before it, or (as
                    # the arrival may move when the order changes) after the next one
                    shifts[(race.host, race.step)] = (race.arrival_t - 1e-6 if after else
                                                      AFTER_NEXT)
            early[flips] = _try(main, lambda: sim(shifts), flips)
        if early[flips] is not None and early[flips].delack_choice:
            _try(main, lambda: sim(shifts if any(flips) else None, True), flips)
    return main


def _try(main: TeardownPrediction, run, flips) -> TeardownPrediction | None:
    """One more order's outcome among main's alternatives (if it differs from all
    so far); an order the model cannot follow is noted instead."""
    try:
        other = run()
    except Unsupported as e:  # that order is not modelled: the run may have taken it
        main.unmodelled_orders.append(str(e))
        main.unmodelled_late |= isinstance(e, UnsupportedLate)
        return None
    other.orders = tuple(a != f for a, f in zip(main.orders, flips))
    if other is not main and _shape(other) not in {_shape(main)} | {
            _shape(a) for a in main.alternatives}:
        main.alternatives.append(other)
    return other


MAX_EVENTS = 200_000  # far beyond any teardown's few hundred events
MAX_RACES = 3  # 2^3 orders at most; more races than that in one teardown is too loaded
AFTER_NEXT = "after the next arrival"  # a shift: hold the call until a segment comes


def _distinct(races: list[Race]) -> list[Race]:
    out, keys = [], set()
    for r in races:
        if (r.host, r.step) not in keys:
            keys.add((r.host, r.step))
            out.append(r)
    return out


def _shape(p: TeardownPrediction) -> tuple:
    return (tuple((s.sender, s.name, s.fate) for s in p.segments),
            tuple((h, tuple(x.state for x in v)) for h, v in sorted(p.states.items())))


# -- from a scenario --------------------------------------------------------------------

SOCKET_OPTIONS = ("linger", "rcvtimeo")  # set before connect(), they still apply after


def steps_after_connection(steps: tuple[Step, ...], opener: str) -> list[Step] | None:
    """The steps after the connection exists (after connect or accept), with the socket
    options set before it, or None when there is no such step, or more than one
    connection."""
    calls = [s.call for s in steps]
    if calls.count(opener) != 1 or any(not isinstance(s.call, str) or s.call == "repeat"
                                       for s in steps):
        return None
    at = calls.index(opener)
    return [s for s in steps[:at] if s.call in SOCKET_OPTIONS] + list(steps[at + 1:])


def handshake_rtt(record) -> dict[str, float]:
    """Each side's first RTT sample, as the router saw the handshake: the client's from
    its SYN to the SYN-ACK's arrival, the server's from its SYN-ACK to the ACK's."""
    out = {}
    for host, ask, answer in (("client", "syn", "syn-ack"), ("server", "syn-ack", "ack")):
        other = "server" if host == "client" else "client"
        q, a = record.sent_by(host, ask), record.sent_by(other, answer)
        if not q:
            continue
        # what completed the handshake: the first of its answers to get through, or,
        # at the server, any ACK-bearing segment of the client's (data, a FIN) when the
        # ACK itself was held or lost (tcp_check_req() takes whichever comes first)
        done = [s.t_out for s in a if s.t_out is not None]
        if host == "server":
            done += [s.t_out for s in record.segments if s.conn == q[0].conn
                     and s.sender == other and s.flags & ACK and not s.flags & SYN
                     and not s.injected and s.t_out is not None and s.t > q[0].t]
        if done:
            out[host] = max(min(done) - q[-1].t, 0.0)
    return out


def first_closer(record) -> str | None:
    fins = [s for s in record.segments if s.name == "fin"]
    return fins[0].sender if fins else None


# What ends (or could end) a connection on its own: the teardown model's part.
ENDINGS = ("close", "shutdown")
HOST_FAULT_ENDINGS = ("kill", "reboot", "link-down")


def teardown_for(sc, kernel: Kernel, sysctls: dict[str, dict[str, str]],
                 record=None) -> TeardownPrediction | None:
    """The teardown prediction for a scenario whose apps close a connection, or whose
    host faults could end it (a killed app, a rebooted or cut-off host), or None when
    neither happens. When the apps do something the model does not cover, the
    prediction says so (`unsupported`) and judges nothing.

    With the run's record the model is driven by what the apps really did and when
    (Observed), on the handshake model's clock (t = 0: the client's first SYN)."""
    client = steps_after_connection(sc.apps["client"], "connect")
    server = steps_after_connection(sc.apps["server"], "accept")
    faults = getattr(sc, "host_faults", ())
    if client is None or server is None or not (
            any(s.call in ENDINGS for s in client + server)
            or any(f.action in HOST_FAULT_ENDINGS for f in faults)):
        return None
    port = next(s.arg[1] for s in sc.apps["client"] if s.call == "connect")
    params = {h: TeardownParams.from_sysctls(kernel, sysctls.get(h, {}))
              for h in ("client", "server")}
    rtt = handshake_rtt(record) if record is not None else {}
    try:
        observed = None
        if record is not None:
            observed, faults = observe(sc, record, faults)
        return predict_teardown(kernel, params, rtt, {"client": client, "server": server},
                                sc.faults, port,
                                first_closer(record) if record and not observed else None,
                                until=sc.timeout + (0 if observed is None else 1),
                                host_faults=faults, observed=observed)
    except Unsupported as e:
        return TeardownPrediction(unsupported=str(e),
                                  unsupported_late=isinstance(e, UnsupportedLate))


# The stamp an app takes just before a call and the kernel's act differ by the Python
# between them, and a segment's t_out at the router and its arrival by the last hop:
# 0.1-0.2 ms and 0.05 ms on this machine when idle (tie.yaml of the generated
# scenarios: close() stamped 0.303775 s, the tracepoint's ESTABLISHED->FIN_WAIT1
# 0.303918 s). One millisecond more than the run's own worst stamp-to-kernel lag is
# the bound within which an app call and an arriving segment cannot be ordered.
RACE_NOISE = 0.001
# Beyond this the apps ran so late after their stamps that ordering calls against
# segments is guesswork: a race then leaves the teardown unjudged.
RACE_CAP = 0.025


def observe(sc, record, host_faults: tuple) -> tuple[Observed | None, tuple]:
    """Observed from a record (None when the record has no connection to speak of),
    and the host faults on the model's clock."""
    syns = record.sent_by("client", "syn")
    if not syns:
        return None, host_faults
    origin, conn = syns[0].t, syns[0].conn
    probes = [s for s in record.segments if s.conn == conn and s.name == "keepalive"]
    if probes:  # tcp_keepalive_timer() acted: the established model's, not this one's
        raise Unsupported(f"{probes[0].sender} keepalive probes")
    steps = {}
    for host, opener in (("client", "connect"), ("server", "accept")):
        plan = sc.apps[host]
        calls = sorted((c for c in record.apps if c.host == host and c.iteration is None),
                       key=lambda c: c.t)
        if [c.call for c in calls] != [s.call for s in plan[:len(calls)]]:
            raise Unsupported(f"the {host}'s calls in the record do not follow its steps")
        at = [s.call for s in plan].index(opener)
        before = [None for s in plan[:at] if s.call in SOCKET_OPTIONS]
        steps[host] = before + [(c.t - origin, None if c.t_end is None else c.t_end - origin)
                                for c in calls[at + 1:]]
    arrivals = {(s.sender, s.name, s.nth): s.t_out - origin for s in record.segments
                if s.conn == conn and not s.injected and s.t_out is not None}
    late = []
    for sender, name, receiver, opener, flags in (
            ("server", "syn-ack", "client", "connect", SYN | ACK),
            ("client", "syn", "server", "accept", SYN),
            ("client", "ack", "server", "accept", ACK)):
        opened = [c.t_end for c in record.apps if c.host == receiver and c.call == opener
                  and c.iteration is None and c.result == "ok"]
        originals = [s for s in record.sent_by(sender, name)]
        late += [(s.t_out - origin, receiver, flags,
                  # a copy carries its original's timestamp (TSval)
                  (originals[0].t if s.injected and originals else s.t) - origin)
                 for s in record.segments
                 if s.sender == sender and s.name == name and s.conn == conn
                 and opened and s.t_out is not None and s.t_out > opened[0]]  # copies too
    lag = app_lag(record)
    race = RACE_NOISE + lag
    # Timed host faults count from the client's start (its first call), a little
    # before its first SYN; where the record says when one acted (the agent's or the
    # hook's own stamp), that moment is taken.
    start = min((c.t for c in record.apps if c.host == "client"), default=origin) - origin
    shifted = []
    for f in host_faults:
        acted = [e.t - origin for e in record.faults if e.action == f.action and e.host == f.host]
        at = round(acted[0] if acted else f.at + start, 9)  # as the event queue rounds
        shifted.append(dataclasses.replace(f, at=at, until=(
            None if f.until is None else f.until + at - f.at)))
    shifted = tuple(shifted)
    copies: dict[tuple[str, str], list[float]] = {}
    for s in record.segments:  # a duplicate's copies (not the router's forgeries)
        if s.injected and s.t_out is not None and (s.fault or "").startswith("duplicate"):
            copies.setdefault((s.sender, s.name), []).append(s.t_out - origin)
    return Observed(steps, arrivals, race, tuple(late),
                    {k: tuple(v) for k, v in copies.items()},
                    {h: rtt_samples(record, h, conn) for h in ("client", "server")}), shifted


def _after(a: int, b: int) -> bool:
    """Sequence number a is after b (mod 2^32, as the kernel's after())."""
    return 0 < (a - b) % 2**32 < 2**31


def rtt_samples(record, host: str, conn: int) -> list[float]:
    """The RTT samples the host's kernel took, as the router saw them: its first one
    from the handshake, then one per ACK from the peer that acknowledges new data of
    the host's (tcp_clean_rtx_queue(): from the oldest segment it acknowledges;
    retransmitted ones are not timed, Karn), up to the host's first FIN."""
    first = handshake_rtt(record).get(host)
    out = [first] if first is not None else []
    fin = next((s.t for s in record.segments if s.conn == conn and s.sender == host
                and s.flags & FIN), math.inf)
    sent = [s for s in record.segments if s.conn == conn and s.sender == host
            and s.length and not s.injected and s.t < fin]
    if any(s.retransmission for s in sent):
        return out  # Karn: the retransmitted range is not timed; keep the handshake's
    acks = [a for a in record.segments if a.conn == conn and a.sender != host
            and a.flags & ACK and not a.injected and a.t_out is not None and a.t_out < fin]
    una = None
    for a in sorted(acks, key=lambda a: a.t_out):
        newly = [s for s in sent if not _after(s.seq + s.length, a.ack)
                 and (una is None or _after(s.seq + s.length, una))]
        if newly:
            out.append(max(a.t_out - min(s.t for s in newly), 0.0))
            una = a.ack
    return out


def app_lag(record) -> float:
    """The worst lag, in this run, from an app's stamp of close() or shutdown() to the
    kernel's act on it (the tracepoint's state change on that host): how far the
    stamps may be off."""
    worst = 0.0
    changes = [e for e in record.states() if e.source == "tracepoint"]
    for c in record.apps:
        if c.call not in ENDINGS or c.t_end is None:
            continue
        acts = [e.t for e in changes if e.host == c.host and c.t - 1e-4 <= e.t <= c.t_end
                and e.old in ("ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT2")]
        if acts:
            worst = max(worst, acts[0] - c.t)
    return worst


def gone_at(pred: TeardownPrediction | None, host: str) -> float | None:
    """When the host first sends data or a FIN or leaves ESTABLISHED (_Sim.hand_over),
    if it does: from then on what a late handshake segment draws is this model's to
    say (and named as the teardown names it)."""
    if pred is None or pred.unsupported:
        return None
    times = [p.t for p in pred.segments if p.sender == host
             and p.name in ("data", "fin", "peer-fin")]
    times += [x.t for x in pred.states.get(host, [])]
    return min(times, default=None)


def teardown_hints(pred: TeardownPrediction | None, origin: float,
                   now: float) -> list[tuple[float, str]]:
    """What the teardown model expects next, for the live status line: segments and
    state changes (the model's t = 0 is about the client's first SYN)."""
    if pred is None:
        return []
    out = [(origin + p.t, f"{p.sender} {p.name} #{p.nth}") for p in pred.segments]
    out += [(origin + s.t, f"{host} {s.state}") for host, states in pred.states.items()
            for s in states]
    return [(t, what) for t, what in out if t > now]
