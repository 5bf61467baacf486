"""What this kernel should do: the Linux handshake timers as pure code.

Rules from ../shared/docs/LINUX-TCP.md rows 1-3 and 8b, checked on 6.18 by the
scenarios in scenarios/handshake (docs/kernel-notes.md has the numbers):

- SYN (tcp_connect, tcp_retransmit_timer, tcp_write_timeout): the first timeout is
  TCP_TIMEOUT_INIT (1 s). The first L+1 waits stay at 1 s (L = tcp_syn_linear_timeouts,
  from 6.5), then each doubles, capped at rto_max (tcp_rto_max_ms from 6.15, else
  120 s). At each expiry the connection is aborted when N+L retransmissions were made
  (N = tcp_syn_retries) or when the time since the first SYN reached the model
  timeout of tcp_model_timeout(): (2^(N+1) - 1) s while N <= log2(rto_max/1 s), else
  (2^(t+1) - 1) s + (N - t) * rto_max with t = log2(rto_max/1 s).
- SYN-ACK (reqsk_timer_handler): retransmitted at 1, 3, 7, ... s while num_timeout <
  tcp_synack_retries; the request is dropped silently at the next expiry. A SYN
  retransmission reaching the request draws an immediate SYN-ACK (at most one per
  tcp_invalid_ratelimit) and re-arms the timer to now + 2^num_timeout s.
- An ESTABLISHED client answers each SYN-ACK with an ACK (out-of-window answers at
  most one per tcp_invalid_ratelimit); the server's request becomes a full socket on
  the first segment that acknowledges its SYN (the ACK, or data).
- No listener: RST+ACK at once; connect() fails with ECONNREFUSED.
- An old SYN (forge: stale-syn, claim H14; the router's part as tcplab/lab/hook/faults.py
  plays it): the server answers it like any SYN; the client in SYN_SENT finds the
  SYN-ACK acknowledging nothing it sent (tcp_rcv_synsent_state_process(),
  reset_and_undo) and answers with an RST, seq = that ack, re-arming its SYN timer to
  TCP_TIMEOUT_MIN (2 jiffies) while no SYN was retransmitted; the RST at the request's
  rcv_nxt drops the request unanswered (tcp_check_req(), embryonic_reset); a SYN of
  another ISN reaching a live request is out of its window and draws a bare ACK (at
  most one per tcp_invalid_ratelimit). Each host's states are predicted too.
- A simultaneous open (the server connect()s too, claim H13): core/model/open.py.

Timer lateness is modelled, not hidden in a tolerance: the kernel's timer wheel puts
a timer of delay d into the level whose granularity is 8^n jiffies and rounds its
expiry up to that granularity (kernel/time/timer.c), so a timer fires in
[d, d + granularity(d) + 1 jiffy).

`predict_handshake` simulates both ends with the scenario's faults (HandshakeSim, in
handshake_sim.py), using the same Classifier and rule matching as the router's hook, so
it names and counts segments exactly as the Record does.
"""

from __future__ import annotations

from tcplab.core.faults import Fault
from tcplab.core.model.handshake_params import HostParams
from tcplab.core.model.handshake_sim import HandshakeSim
from tcplab.core.model.kernel import Kernel
from tcplab.core.model.prediction import Prediction, shape
from tcplab.core.segments import ACK


def predict_handshake(
    kernel: Kernel,
    client: HostParams,
    server: HostParams,
    faults: tuple[Fault, ...],
    listens: bool,
    port: int = 8080,
    data_after_connect: float | None = None,
    first_segment: tuple[int, int] = (ACK, 1),
    then: tuple[tuple[float, int, int], ...] = (),
    copies: tuple[tuple[str, str, int, float, float, bool], ...] = (),
    client_gone_at: float | None = None,
    gone_window: float = 0.0,
    until: float = 600.0,
    stale_syn: bool = False,
) -> Prediction:
    """Segments, connect() result and the server request's fate for one connection
    attempt at t=0, with the scenario's faults applied as the router would. If the
    client sends data `data_after_connect` seconds after connect() returns, that first
    data segment is modelled too (it can complete the handshake: claim H7); with
    `first_segment` (flags, length) it may be another segment, e.g. the client's FIN.

    `stale_syn`: the router's forge stale-syn sends an old SYN ahead of the client's
    first; the hosts' states are predicted too. (A simultaneous open is open.py's.)

    Where a timer and an arriving segment tie, both orders are simulated; when they
    lead to different outcomes, the other one is in `alternatives`."""

    def new_sim(packets_first: bool, copy_clock: str) -> HandshakeSim:
        sim = HandshakeSim(kernel, client, server, faults, listens, port, packets_first)
        sim.data_after_connect, sim.first_segment = data_after_connect, first_segment
        sim.then = then
        sim.copies = {(s, n, k): (at, since, ahead) for s, n, k, at, since, ahead in copies}
        sim.copy_clock = copy_clock
        sim.client_gone_at = sim.pred.client_gone_at = client_gone_at
        sim.gone_window = gone_window
        sim.stale_syn = sim.track_states = stale_syn
        return sim

    outcomes: list[Prediction] = []
    # a duplicate's copy, placed by the router's clock and by its original's
    # (inputs.copies_sent()): the model's clock is off the record's by the original's
    # lateness, and the copy's place among the model's events lies between the two
    for copy_clock in ("router", "original") if copies else ("router",):
        first = len(outcomes)
        for packets_first, server_first in ((False, False), (True, False), (True, True)):
            sim = new_sim(packets_first, copy_clock)
            sim.server_timer_first = server_first
            outcomes.append(sim.run(until))
        # Request timer expiries that a client segment raced within their bucket (the
        # timer-first outcome above): each subset of up to MAX_RACES of them the other
        # way. A deferred expiry changes the ones after it, so the races of each
        # outcome are explored in turn (breadth first, up to MAX_RACES deferred,
        # MAX_OUTCOMES runs).
        todo = [frozenset({r}) for r in outcomes[first].races]
        tried: set[frozenset[tuple[str, int]]] = set()
        while todo and len(tried) < MAX_OUTCOMES:
            defer = todo.pop(0)
            if defer in tried or len(defer) > MAX_RACES:
                continue
            tried.add(defer)
            sim = new_sim(False, copy_clock)
            sim.defer = defer
            outcome = sim.run(until)
            if not sim.void:
                outcomes.append(outcome)
                todo += [defer | {r} for r in outcome.races if r not in defer]
    main, others = outcomes[0], outcomes[1:]
    shapes = {_timed_shape(main)}
    for other in others:
        if _timed_shape(other) not in shapes:
            shapes.add(_timed_shape(other))
            main.alternatives.append(other)
    if main.alternatives:
        main.notes.append(
            "timers and segments are due at the same moment; the kernel "
            "may run them in either order, and the outcomes differ"
        )
    return main


MAX_RACES = 3
MAX_OUTCOMES = 32


def _timed_shape(p: Prediction) -> tuple:
    return shape(p), tuple(round(s.t, 3) for s in p.segments)
