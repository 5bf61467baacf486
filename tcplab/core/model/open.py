"""The simultaneous open (claim H13) as pure code: nobody listens, both hosts connect()
to each other at t = 0, and their SYNs may cross (RFC 9293 3.5, figure 8).

core/model/handshake.py's `predict_handshake(server_connects=True)` comes here; the client-server
handshake (and the router's stale SYN, claim H14) stay in core/model/handshake.py. Both hosts are
full sockets, so each side follows the same rules (net/ipv4/tcp_input.c, tcp_timer.c):

- SYN_SENT gets a bare SYN (tcp_rcv_synsent_state_process(), "simultaneous connect
  with crossed SYNs"): SYN_RECV, and at once a SYN-ACK built from the SYN still in the
  retransmit queue (tcp_send_synack(): seq = the socket's own ISN). The SYN timer armed
  by connect() runs on.
- SYN_RECV gets the peer's SYN-ACK: from 6.11 (Kernel.synack_in_syn_recv)
  tcp_validate_incoming() lets it through, the ACK completes the handshake
  (ESTABLISHED) and the SYN in it, already received, draws an immediate ACK (a dup ACK).
  Before 6.11 it draws a challenge ACK (RFC 5961 4.2) and is dropped; each side is
  then completed by the other's challenge ACK, a bare ACK of its SYN.
- SYN_RECV gets a bare ACK of its SYN: ESTABLISHED, unanswered. connect() returns ok
  on ESTABLISHED.
- A SYN in SYN_RECV or ESTABLISHED otherwise: a challenge ACK, at most one per
  tcp_invalid_ratelimit (tcp_send_challenge_ack(), tcp_oow_rate_limited()).
- SYN_SENT gets an ACK of something it never sent: an RST with seq = that ack, and
  while no SYN was retransmitted the SYN timer is re-armed to TCP_TIMEOUT_MIN (as in
  core/model/handshake.py). An acceptable RST: ECONNREFUSED. A SYN-ACK of its SYN before the
  peer's SYN arrived (the SYNs did not cross): ESTABLISHED and an ACK.
- The retransmission timer (tcp_retransmit_timer(), tcp_write_timeout()) resends the
  head of the queue: a SYN in SYN_SENT, the SYN-ACK in SYN_RECV. The wait stays 1 s
  while in SYN_SENT and at most tcp_syn_linear_timeouts RTOs were made, and doubles
  otherwise (capped at rto_max); the socket gives up (ETIMEDOUT) once
  tcp_syn_retries retransmissions (plus the linear ones in SYN_SENT only) were made or
  the time since the first SYN reached tcp_model_timeout().

Every predicted segment carries the host whose connect() its chain of causes starts
from (`clock`): the check times it from that host's own first SYN, since the two
apps' connect() calls are a few hundred microseconds (more under load) apart.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

from tcplab.core.faults import DELAY, Fault
from tcplab.core.rules import decide

from tcplab.core.segments import ACK, RST, SYN, Classifier, Segment
from tcplab.core.model.prediction import shape
from tcplab.core.model.handshake_params import HostParams, syn_time_limit
from tcplab.core.model.kernel import Kernel, TCP_TIMEOUT_INIT, TRANSIT
from tcplab.core.model.prediction import (
    C_ADDR,
    C_PORT,
    PredictedChange,
    PredictedSegment,
    Prediction,
    S_ADDR,
    X,
    Y,
)


@dataclass
class _Host:
    name: str
    p: HostParams
    isn: int
    state: str = "CLOSE"
    rcv_nxt: int | None = None
    retrans: int = 0
    rto: float = TCP_TIMEOUT_INIT
    gen: int = 0  # the retransmission timer's arming
    slack: float = 0.0  # timer lateness accumulated along the timer chain
    clock: str = ""  # whose clock the timer chain runs on
    last_oow: float = -1e9  # tcp_oow_rate_limited()'s last_oow_ack_time
    t_connect: float = 0.0


class _Crossed:
    def __init__(
        self,
        kernel: Kernel,
        client: HostParams,
        server: HostParams,
        faults: tuple[Fault, ...],
        port: int,
        packets_first: bool,
        server_at: float | None = None,
        synack_ok: bool | None = None,
    ):
        self.k, self.faults, self.port = kernel, faults, port
        # SYN_RECV takes the peer's SYN-ACK (Kernel.synack_in_syn_recv), as given when
        # the kernel's own rule is not known for its stable level
        self.synack_ok = kernel.synack_in_syn_recv if synack_ok is None else synack_ok
        self.server_at = server_at
        self.transit = 0.0 if packets_first else TRANSIT
        self.packets_first = packets_first
        self.hosts = {"client": _Host("client", client, X), "server": _Host("server", server, Y)}
        self.clf = Classifier({C_ADDR})
        self.q: list = []
        self.n = itertools.count()
        self.pred = Prediction(kernel)

    def at(self, t: float, what: str, *args) -> None:
        first = (what == "arrive") == self.packets_first
        heapq.heappush(self.q, (round(t, 9), 0 if first else 1, next(self.n), what, args))

    def peer(self, h: _Host) -> _Host:
        return self.hosts["server" if h.name == "client" else "client"]

    def change(self, h: _Host, t: float, state: str, clock: str) -> None:
        h.state = state
        self.pred.states.setdefault(h.name, []).append(PredictedChange(t, state, clock))

    def send(
        self, t: float, h: _Host, flags: int, seq: int, ack: int, cause: str, slack: float, clock: str
    ) -> None:
        src, dst = (C_ADDR, S_ADDR) if h.name == "client" else (S_ADDR, C_ADDR)
        sport, dport = (C_PORT, self.port) if h.name == "client" else (self.port, C_PORT)
        seen = self.clf.classify(Segment(src, sport, dst, dport, flags, seq, ack, 0))
        verdict = decide(self.faults, seen)
        fate = verdict.fate
        self.pred.segments.append(PredictedSegment(t, h.name, seen.name, seen.nth, fate, cause, slack, clock))
        if fate != "dropped":
            held = verdict.delay if verdict.action == DELAY else 0.0
            self.at(t + self.transit + held, "arrive", self.peer(h).name, flags, seq, ack, slack, clock)

    def arm(self, h: _Host, t: float, wait: float, slack: float, clock: str) -> None:
        h.gen += 1
        h.slack, h.clock = slack, clock
        self.at(t + wait, "timer", h.name, h.gen, wait)

    def finish(self, h: _Host, t: float, result: str, clock: str) -> None:
        self.change(h, t, "ESTABLISHED" if result == "ok" else "CLOSE", clock)
        self.pred.calls[(h.name, "connect")] = (result, h.t_connect, t)

    # -- events ---------------------------------------------------------------------
    def connect(self, t: float, name: str) -> None:
        h = self.hosts[name]
        h.t_connect = t
        # With the server's start known (server_at), everything is on the client's clock.
        clock = name if self.server_at is None else "client"
        self.change(h, t, "SYN_SENT", clock)
        self.send(t, h, SYN, h.isn, 0, "first", 0.0, clock)
        self.arm(h, t, h.rto, 0.0, clock)

    def timer(self, t: float, name: str, gen: int, wait: float) -> None:
        h = self.hosts[name]
        if gen != h.gen or h.state not in ("SYN_SENT", "SYN_RECV"):
            return
        h.slack += self.k.slack(wait)
        linear = h.p.syn_linear_timeouts if h.state == "SYN_SENT" else 0
        if h.retrans >= h.p.syn_retries + linear or t - h.t_connect >= syn_time_limit(h.p) - 1e-9:
            self.finish(h, t, "ETIMEDOUT", h.clock)  # tcp_write_err()
            return
        h.retrans += 1
        if h.state == "SYN_SENT":
            self.send(t, h, SYN, h.isn, 0, "timer", h.slack, h.clock)
        else:
            assert h.rcv_nxt is not None  # set with SYN_RECV, by the peer's SYN
            self.send(t, h, SYN | ACK, h.isn, h.rcv_nxt, "timer", h.slack, h.clock)
        if h.state != "SYN_SENT" or h.retrans > h.p.syn_linear_timeouts:
            h.rto = min(h.rto * 2, h.p.rto_max)
        h.gen += 1
        self.at(t + h.rto, "timer", h.name, h.gen, h.rto)

    def challenge_ack(self, t: float, h: _Host, slack: float, clock: str) -> None:
        if t - h.last_oow >= h.p.invalid_ratelimit:
            h.last_oow = t
            assert h.rcv_nxt is not None  # SYN_RECV or ESTABLISHED: the peer's SYN came
            self.send(t, h, ACK, h.isn + 1, h.rcv_nxt, "answer", slack, clock)

    def arrive(self, t: float, name: str, flags: int, seq: int, ack: int, slack: float, clock: str) -> None:
        h = self.hosts[name]
        acceptable = ack == h.isn + 1
        if h.state == "SYN_SENT":
            if flags & ACK and not acceptable:  # reset_and_undo
                if not flags & RST:
                    self.send(t, h, RST, ack, 0, "answer", slack, clock)
                if h.retrans == 0:
                    self.arm(h, t, self.k.timeout_min, slack, clock)
            elif flags & ACK and flags & RST:
                self.finish(h, t, "ECONNREFUSED", clock)
            elif flags & ACK and flags & SYN:  # the SYNs did not cross
                h.rcv_nxt = seq + 1
                self.finish(h, t, "ok", clock)
                self.send(t, h, ACK, h.isn + 1, h.rcv_nxt, "answer", slack, clock)
            elif flags & SYN and not flags & (ACK | RST):  # they crossed
                h.rcv_nxt = seq + 1
                self.change(h, t, "SYN_RECV", clock)
                self.send(t, h, SYN | ACK, h.isn, h.rcv_nxt, "answer", slack, clock)
        elif h.state == "SYN_RECV":
            if flags & RST:
                self.pred.notes.append(f"an RST reached the {name} in SYN_RECV: not modelled")
            elif flags & SYN and flags & ACK and acceptable and seq + 1 == h.rcv_nxt:
                if self.synack_ok:
                    self.finish(h, t, "ok", clock)
                    self.send(t, h, ACK, h.isn + 1, h.rcv_nxt, "answer", slack, clock)
                else:
                    self.challenge_ack(t, h, slack, clock)
            elif flags & SYN:
                self.challenge_ack(t, h, slack, clock)
            elif flags & ACK and acceptable:
                self.finish(h, t, "ok", clock)
        elif h.state == "ESTABLISHED" and flags & SYN:
            self.challenge_ack(t, h, slack, clock)

    def run(self, until: float) -> Prediction:
        # Before the run the two calls count as t = 0, each on its own clock. Judging a
        # run, the server's first SYN is put where the record has it, relative to the
        # client's: which crossing completes a side first depends on that offset (the
        # client's connect() may end on the server's ACK, one chain earlier, when the
        # server's SYN left 15 ms sooner under load).
        self.at(self.server_at or 0.0, "connect", "server")
        self.at(0.0, "connect", "client")
        while self.q:
            t, _, _, what, args = heapq.heappop(self.q)
            if t > until:
                break
            getattr(self, what)(t, *args)
        self.pred.horizon = until
        return self.pred


def predict_simultaneous_open(
    kernel: Kernel,
    client: HostParams,
    server: HostParams,
    faults: tuple[Fault, ...],
    port: int,
    until: float = 600.0,
    server_at: float | None = None,
) -> Prediction:
    """Both hosts connect() to each other at t = 0 (each on its own clock), or the
    server `server_at` seconds after the client (on the client's clock: negative when
    it went first), with the scenario's faults applied as the router would. Ties
    between a timer and an arriving segment are simulated both ways, as in
    core/model/handshake.py."""
    main, other = (
        _Crossed(kernel, client, server, faults, port, first, server_at).run(until) for first in (False, True)
    )
    if shape(other) != shape(main):
        main.alternatives.append(other)
        main.notes.append(
            "a timer and a segment are due at the same moment; the kernel "
            "may run either first, and the outcomes differ"
        )
    if kernel.synack_in_syn_recv is None:  # both rules, each with both orders
        for first in (False, True):
            fixed = _Crossed(kernel, client, server, faults, port, first, server_at, synack_ok=True).run(
                until
            )
            if all((shape(fixed), fixed.calls) != (shape(a), a.calls) for a in [main, *main.alternatives]):
                main.alternatives.append(fixed)
        main.notes.append(
            f"whether {kernel.name()} (stable level {kernel.stable or 'unknown'})"
            " has the stable backport of 23e89e8ee7be (a SYN-ACK accepted in "
            "SYN_RECV) is not known here: either outcome is the kernel's"
        )
    return main
