"""The handshake simulator's arrivals whose order or effect its nominal times cannot
settle: a segment a late timer sent may reach the server after one due just behind it,
and the client's first data held while the request still waits may be completed by the
data path's retransmissions, which are not simulated here (handshake_sim.py uses it)."""

from __future__ import annotations

from collections.abc import Callable

from tcplab.core.model.prediction import Prediction


class ArrivalRaces:
    # HandshakeSim sets these
    pred: Prediction
    defer: frozenset[tuple[str, int]]
    server_arrivals: int
    last_arrival: tuple[int, float, float] | None
    late_held: tuple[int, tuple] | None
    req_due: float | None
    timer_held: tuple | None
    at: Callable[..., None]

    def arrived_late(self, t: float, args: tuple) -> bool:
        """A client segment reaching the server. One sent by a timer may leave up to its
        lateness (`slack`: the timer-wheel buckets of the expiries behind it,
        Kernel.slack) after its nominal moment, so another client segment arriving
        within that much after it may have come first (gen-8020 on 6.18: a SYN
        retransmitted 13 ms late and held 1.5 s reached the server 11 ms after the ACK
        held 1 s, whose nominal arrival was 0.4 ms after the SYN's, so the request had
        become a full socket and answered with a challenge ACK, not a SYN-ACK). Such a
        pair is a race, ("late", k); with it in `defer`, the k-th is held until the next
        one has been taken. Returns whether this one is held."""
        idx, slack = self.server_arrivals, args[3]
        self.server_arrivals += 1
        if self.last_arrival is not None:
            prev, when, late = self.last_arrival
            if when < t <= when + late and ("late", prev) not in self.pred.races:
                self.pred.races.append(("late", prev))
        self.last_arrival = (idx, t, slack)
        if ("late", idx) in self.defer and self.late_held is None:
            self.late_held = (idx, args)
            self.at(t + slack, "late_latest", idx)
            return True
        return False

    def data_path_may_complete(self, at: float) -> None:
        """The client's first data (or FIN) was held or dropped by the router while the
        server's request still waited for the handshake's ACK. Its retransmissions (the
        tail loss probe ~2 RTT later, the RTO) are the data path's, not simulated here,
        and any of them that reaches the request completes it (tcp_check_req() takes
        an ACK with data), so the request timer's SYN-ACKs after `at`, and the ACKs
        answering them, may never come (gen-9235 on 6.18: the first data held 1.5 s,
        its probe 0.2 s later completed the request; no second SYN-ACK)."""
        for sender, name in (("server", "syn-ack"), ("client", "ack")):
            later = sum(1 for p in self.pred.of(sender, name) if p.t > at and not p.injected)
            if later:
                fewer, more = self.pred.uncertain.get((sender, name), (0, 0))
                self.pred.uncertain[(sender, name)] = (fewer + later, more)

    def timer_may_come_first(self, t: float, args: tuple) -> bool:
        """A client segment sent by a late timer (its `slack`: the buckets of the
        client's expiries so far) reaching the server's request, whose own timer is due
        within that slack after it: the segment may have left so late that the request
        timer fired first (gen-19291 on 6.18: a copy of the first SYN re-armed the
        request timer 1 ms after the SYN timer's start, and both fired at 1.032 s, the
        request timer first: its SYN-ACK, then the answer to SYN #2, where the model's
        SYN #2 came first, re-armed the timer and drew one). A race, ("timer", k) for
        the k-th client segment to arrive; with it in `defer`, that segment is held
        until the request timer has run (release_after_timer())."""
        due, slack, idx = self.req_due, args[3], self.server_arrivals
        if due is None or not t < due <= t + slack:
            return False
        if ("timer", idx) not in self.pred.races:
            self.pred.races.append(("timer", idx))
        if ("timer", idx) in self.defer and self.timer_held is None:
            self.timer_held = args
            self.server_arrivals += 1
            self.at(t + slack, "timer_held_latest", idx)
            return True
        return False

    def release_after_timer(self, t: float) -> None:
        """The request timer ran: a segment held for it (timer_may_come_first()) now."""
        if self.timer_held is not None:
            self.at(t + 1e-6, "arrive_held", *self.timer_held)
            self.timer_held = None
