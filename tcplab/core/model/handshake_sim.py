"""One way the handshake can unfold: both ends' timers and segments, event by event, with
the router's faults applied as the hook applies them. The rules it plays, with their
kernel functions, are in handshake.py's docstring; `predict_handshake` there runs this
simulator in each order a tie or a timer-wheel race allows."""

from __future__ import annotations

import copy
import heapq
import itertools
from typing import Literal

from tcplab.core.faults import DELAY, DUPLICATE, Fault
from tcplab.core.model.handshake_arrivals import ArrivalRaces
from tcplab.core.model.handshake_router import RouterCopies
from tcplab.core.model.handshake_params import (
    RATE_STAMP_NOISE,
    RST_IN_REQUEST_WINDOW,
    SYNACK_WINDOW,
    HostParams,
    Request,
    syn_gives_up,
    syn_wait,
)
from tcplab.core.model.kernel import TCP_TIMEOUT_INIT, TRANSIT, Kernel
from tcplab.core.model.teardown.params import surely_older
from tcplab.core.model.prediction import (
    C_ADDR,
    C_PORT,
    S_ADDR,
    STALE_HOLD,
    X,
    Y,
    Y_OLD,
    PredictedChange,
    PredictedSegment,
    Prediction,
    surely_seen,
)
from tcplab.core.rules import Verdict, decide
from tcplab.core.segments import ACK, Classifier, RST, SYN, Segment


# The real SYN the router holds (forge: stale-syn): sender, flags, length, slack, seq,
# ack, when it was sent
_Held = tuple[str, int, int, float, int, int, float]


class HandshakeSim(ArrivalRaces, RouterCopies):
    """One way the handshake can unfold. `packets_first` breaks ties between a timer
    and a segment arriving at the same nominal moment: a client SYN timer and a server
    request timer started together both expire at 1 s, in the same timer-wheel bucket,
    and which one the kernel runs first decides how many SYN-ACKs go out (seen both
    ways on 6.18: 3 SYN-ACKs in most runs of delay-synack, 2 in one of twenty)."""

    def __init__(
        self,
        kernel: Kernel,
        client: HostParams,
        server: HostParams,
        faults: tuple[Fault, ...],
        listens: bool,
        port: int,
        packets_first: bool = False,
    ):
        self.transit = 0.0 if packets_first else TRANSIT
        self.packets_first = packets_first
        # Two hosts' timers due at the same nominal moment (a SYN timer and a request
        # timer, both 1 s) fire each within its own timer-wheel bucket, up to
        # Kernel.slack apart, far more than a segment's transit: the server's may fire
        # and its SYN-ACK arrive before the client's fires (seen on 6.18: no second SYN).
        self.server_timer_first = False
        self.req_fires = 0  # request timer expiries so far (a race names one by index)
        self.last_fire: tuple[int, float, float] | None = None  # (index, when, window)
        self.held_timer: int | None = None  # a held expiry's gen, until a segment comes
        # expiries that come after their race: ("req", index) or ("syn", index)
        self.defer: frozenset[tuple[str, int]] = frozenset()
        self.syn_fires, self.syn_fire = 0, (-1, 0.0, -1.0)  # the SYN timer's, likewise
        self.syn_held: tuple[int, int, float] | None = None
        self.void = False  # a held SYN timer no SYN-ACK came to: not an outcome at all
        # Client segments reaching the server, counted: ("late", k) in `defer` holds the
        # k-th until the next one has been taken (arrived_late())
        self.server_arrivals = 0
        self.last_arrival: tuple[int, float, float] | None = None  # (index, when, slack)
        self.late_held: tuple[int, tuple] | None = None  # (index, its "arrive" args)
        # the request timer's due time; a client segment held until it ran (timer_may_come_first)
        self.req_due: float | None = None
        self.timer_held: tuple | None = None
        self.first_at: float | None = None  # when the client's first data or FIN leaves
        self.data_held_at: float | None = None  # ... if the router held or dropped it then
        self.k, self.cp, self.sp = kernel, client, server
        self.faults, self.listens, self.port = faults, listens, port
        self.clf = Classifier({C_ADDR})
        self.q: list = []
        self.seq = itertools.count()
        self.pred = Prediction(kernel)
        self.client_state = "CLOSE"
        self.syn_retrans, self.syn_slack = 0, 0.0
        self.client_oow = (-1e9, 0.0)  # the client's last out-of-window ACK: when, how late
        self.syn_gen = 0  # the SYN timer's arming: an unacceptable ACK re-arms it
        self.req: Request | None = None  # the server's request
        self.server_child = False
        self.server_oow_at = -1e9  # the server's full socket's last challenge ACK
        self.data_after_connect: float | None = None
        self.first_segment = (ACK, 1)  # its flags and length: data, or the client's FIN
        self.then: tuple[tuple[float, int, int], ...] = ()  # the ones after it (inputs.py)
        # a duplicate's copy: when it left the router, how long after its original, and
        # whether before the sender's next segment (inputs.copies_sent()); which of the
        # first two places it (copy_clock: "router" or "original")
        self.copies: dict[tuple[str, str, int], tuple[float, float, bool]] = {}
        self.copy_clock = "router"
        # a client copy due before the client's next segment: (its original's
        # arrival, its "arrive" args), until it arrives (ahead_first())
        self.ahead_copy: tuple[float, tuple] | None = None
        # When the client's socket is gone or a timewait minisocket (the teardown model
        # says): from then on what reaches it is the teardown model's to answer.
        self.client_gone_at: float | None = None
        self.gone_window = 0.0  # how much later the client's data may really have left
        self.stale_syn = False  # forge: stale-syn
        # the real SYN while the router holds it (False once released)
        self.held: _Held | Literal[False] | None = None
        self.track_states = False  # fill pred.states (the openings modelled state by state)

    def at(self, t: float, what: str, *args) -> None:
        first = (what == "arrive") == self.packets_first  # who wins a tie
        if self.server_timer_first and what == "req_timer":
            first = True
        heapq.heappush(self.q, (round(t, 9), 0 if first else 1, next(self.seq), what, args))

    def req_timer_at(self, t: float, wait: float, gen: int) -> None:
        """The request timer, due after `wait` (req_timer() explores a SYN arriving
        within its bucket first: seen on 6.18, gen-2072, a SYN 12 ms after the timer's
        nominal expiry, and the request lived on)."""
        self.at(t + wait, "req_timer", gen)
        self.req_due = t + wait

    def change(self, host: str, t: float, state: str, maybe: str = "") -> None:
        if self.track_states:
            self.pred.states.setdefault(host, []).append(PredictedChange(t, state, maybe=maybe))

    def wire(self, sender: str, flags: int, seq: int, ack: int, length: int = 0) -> Segment:
        src, dst = (C_ADDR, S_ADDR) if sender == "client" else (S_ADDR, C_ADDR)
        sport, dport = (C_PORT, self.port) if sender == "client" else (self.port, C_PORT)
        return Segment(src, sport, dst, dport, flags, seq, ack, length)

    def send(
        self,
        t: float,
        sender: str,
        flags: int,
        seq: int,
        ack: int,
        cause: str,
        slack: float,
        length: int = 0,
        listed: bool = True,
    ) -> None:
        seen = self.clf.classify(self.wire(sender, flags, seq, ack, length))
        verdict = decide(self.faults, seen)
        hold = (
            self.stale_syn
            and self.held is None
            and seen.sender == "client"
            and seen.name == "syn"
            and seen.nth == 1
        )
        if hold:  # FaultHook.decide(): the stale-syn hold comes before any other fault
            verdict = Verdict(DELAY, STALE_HOLD)
        fate = verdict.fate
        if listed:
            self.pred.segments.append(PredictedSegment(t, sender, seen.name, seen.nth, fate, cause, slack))
        if hold:
            self.forge_stale_syn(t, seq, slack)
            self.held = (sender, flags, length, slack, seq, ack, t)
            self.at(t + STALE_HOLD, "release")
        elif fate != "dropped":
            held = verdict.delay if verdict.action == DELAY else 0.0
            args = (sender, flags, length, slack, seq, ack, t)  # t: its TSval, as a send time
            self.at(t + self.transit + held, "arrive", *args)
            if verdict.action == DUPLICATE:
                self.send_copy(t, sender, seen, verdict.delay, held, args)
            if self.held and sender == "client" and flags & RST:
                self.at(t, "release")  # FaultHook.release_stale(): the client refused

    # client ---------------------------------------------------------------------------
    def connect(self, t: float) -> None:
        self.client_state, self.t_connect = "SYN_SENT", t
        self.change("client", t, "SYN_SENT")
        self.send(t, "client", SYN, X, 0, "first", 0.0)
        self.at(t + syn_wait(self.cp, 1), "syn_timer", 1, self.syn_gen, syn_wait(self.cp, 1))

    def syn_timer(self, t: float, k: int, gen: int, wait: float, deferred=False) -> None:
        if self.client_state != "SYN_SENT" or gen != self.syn_gen:
            return
        if not deferred:
            # tcp_retransmit_timer() fires anywhere in its bucket: a SYN-ACK reaching
            # the client within it may come first (tcp_rcv_synsent_state_process()
            # then clears the timer: gen-7039 on 6.18, no second SYN); both explored
            idx, self.syn_fires = self.syn_fires, self.syn_fires + 1
            self.syn_fire = (idx, t, self.k.slack(wait))
            if ("syn", idx) in self.defer:
                self.syn_held = (k, gen, wait)
                self.at(t + self.syn_fire[2], "syn_timer_latest", k, gen, wait)
                return
        self.syn_slack += self.k.slack(wait)
        if syn_gives_up(self.cp, self.syn_retrans, t - self.t_connect):
            self.client_state = "CLOSE"
            self.change("client", t, "CLOSE")
            self.pred.calls[("client", "connect")] = ("ETIMEDOUT", self.t_connect, t)
            return
        self.syn_retrans += 1
        self.send(t, "client", SYN, X, 0, "timer", self.syn_slack)
        wait = syn_wait(self.cp, k + 1)
        self.at(t + wait, "syn_timer", k + 1, gen, wait)

    def client_gets(self, t: float, flags: int, slack: float, ack: int) -> None:
        if self.syn_held is not None:  # the held expiry runs right after this
            self.at(t + 1e-6, "syn_timer", *self.syn_held, True)
            self.syn_held = None
        idx, fired, window = self.syn_fire
        if (
            self.client_state == "SYN_SENT"
            and flags & SYN
            and ack == X + 1
            and fired <= t <= fired + window
            and ("syn", idx) not in self.pred.races
        ):
            self.pred.races.append(("syn", idx))
        if self.client_gone_at is not None and t >= self.client_gone_at and self.client_state != "SYN_SENT":
            # the teardown model's from here (the client sent data or a FIN, or left
            # ESTABLISHED); but a SYN-ACK within gone_window of that moment may have
            # come before the data really left, and its ACK is then named `ack`.
            # Not while this model's client is still in SYN_SENT: no data leaves before
            # the connection exists (tcp_sendmsg_locked() waits in
            # sk_stream_wait_connect()), so a hand-over that falls before the SYN-ACK's
            # arrival here is this model's clock a few µs off the stamps (gen-11293 on
            # 6.18: send() stamped 50 µs after connect() returned, 1 µs before the
            # modelled SYN-ACK; the SYN-ACK was ignored and connect() timed out)
            if (
                t <= self.client_gone_at + self.gone_window
                and self.client_state == "ESTABLISHED"
                and flags & SYN
                and flags & ACK
            ):
                fewer, more = self.pred.uncertain.get(("client", "ack"), (0, 0))
                self.pred.uncertain[("client", "ack")] = (fewer, more + 1)
            return
        if self.client_state == "SYN_SENT" and flags & ACK and ack != X + 1:
            # tcp_rcv_synsent_state_process(): it acknowledges nothing we sent (an answer
            # to an old SYN): reset_and_undo, an RST with seq = its ack
            # (tcp_v4_send_reset(); none to an RST), and while no SYN has been
            # retransmitted the SYN timer is re-armed to TCP_TIMEOUT_MIN.
            if not flags & RST:
                self.send(t, "client", RST, ack, 0, "answer", slack)
            if self.syn_retrans == 0:
                self.syn_gen += 1
                self.syn_slack = slack
                self.at(t + self.k.timeout_min, "syn_timer", 1, self.syn_gen, self.k.timeout_min)
        elif flags & RST and self.client_state == "SYN_SENT":
            self.client_state = "CLOSE"
            self.change("client", t, "CLOSE")
            self.pred.calls[("client", "connect")] = ("ECONNREFUSED", self.t_connect, t)
        elif flags & SYN and flags & ACK:
            if self.client_state == "SYN_SENT":
                self.client_state = "ESTABLISHED"
                self.change("client", t, "ESTABLISHED")
                self.pred.calls[("client", "connect")] = ("ok", self.t_connect, t)
                self.send(t, "client", ACK, X + 1, Y + 1, "answer", slack)
                if self.data_after_connect is not None:
                    self.first_at = t + self.data_after_connect
                    self.at(self.first_at, "client_data", slack)
                    self.data_after_connect = None  # the first segment after connect()
            elif self.client_state == "ESTABLISHED":
                if self.first_at is not None and t < self.first_at <= t + slack:
                    # a SYN-ACK as late as its timer may be comes after the client's
                    # data or FIN: the answer is then the full socket's, named after
                    # them (tcp_validate_incoming()'s challenge ACK in FIN_WAIT1,
                    # gen-7107 on 6.18), the teardown model's to count
                    fewer, more = self.pred.uncertain.get(("client", "ack"), (0, 0))
                    self.pred.uncertain[("client", "ack")] = (fewer + 1, more)
                self.client_oow = self.oow_answer(
                    t, slack, "client", self.client_oow, self.cp.invalid_ratelimit, X + 1, Y + 1
                )

    def oow_answer(
        self, t: float, slack: float, host: str, last: tuple[float, float], limit: float, seq: int, ack: int
    ) -> tuple[float, float]:
        """tcp_oow_rate_limited(): an ACK leaves if `limit` has passed since the last
        one (`last`: when, and how late it may have been). Where the gap lies within the
        two events' lateness (and a jiffy, the limiter's unit) of the limit, the kernel
        may decide either way (gen-6041 on 6.18: a SYN-ACK held 1.5 s came 0.475 s after
        the last ACK, whose SYN timer had fired 28 ms late, and drew none): the answer
        is uncertain (Prediction.uncertain). Returns the new `last`."""
        gap, sent = t - last[0], t - last[0] >= limit
        noise = 1 / self.k.hz + RATE_STAMP_NOISE
        if gap - last[1] - noise < limit <= gap + slack + noise:
            name = copy.deepcopy(self.clf).classify(self.wire(host, ACK, seq, ack)).name
            fewer, more = self.pred.uncertain.get((host, name), (0, 0))
            self.pred.uncertain[(host, name)] = (fewer + sent, more + (not sent))
        if not sent:
            return last
        self.send(t, host, ACK, seq, ack, "answer", slack)
        return (t, slack)

    # server ---------------------------------------------------------------------------
    def server_gets(
        self, t: float, flags: int, length: int, slack: float, seq: int, ack: int = 0, sent: float = 0.0
    ) -> None:
        if self.held_timer is not None:  # the held expiry runs right after this
            self.at(t + 1e-6, "req_timer", self.held_timer, True)
            self.held_timer = None
        elif self.last_fire is not None:
            idx, fired, window = self.last_fire
            if fired <= t <= fired + window and ("req", idx) not in self.pred.races:
                self.pred.races.append(("req", idx))
        req = self.req
        if flags & RST:
            # tcp_check_req(): an RST at the request's rcv_nxt drops it, unanswered
            # (embryonic_reset, inet_csk_reqsk_queue_drop()); others are out of window.
            if req is not None and seq == req["isn"] + 1:
                self.req = None
                self.change("server", t, "CLOSE", req["maybe"])
                self.pred.request_drops.append((t, slack))
            elif req is not None and 0 < (seq - req["isn"] - 1) % (1 << 32) < SYNACK_WINDOW:
                # In the window, not at rcv_nxt. tcp_check_req() as read drops the
                # request (embryonic_reset); 6.18 answered one with an ACK at rcv_nxt
                # and kept it until the closed client's RST to that ACK (gen-15153).
                # Which rule the kernel runs is not known here: no verdict.
                self.pred.unjudged.append(("everything", RST_IN_REQUEST_WINDOW))
        elif flags & SYN and not flags & ACK:
            if not self.listens:
                self.send(t, "server", RST | ACK, 0, seq + 1, "answer", slack)
            elif req is None and not self.server_child:
                maybe = "" if seq == X else "the old SYN's request"
                self.req = {
                    "isn": seq,
                    "snt": Y if seq == X else Y_OLD,
                    "num_timeout": 0,
                    "gen": 0,
                    "last_oow": -1e9,
                    "sent": sent,
                    "slack": slack,
                    "maybe": maybe,
                }
                self.change("server", t, "SYN_RECV", maybe)
                self.send(t, "server", SYN | ACK, self.req["snt"], seq + 1, "answer", slack)
                self.req_timer_at(t, TCP_TIMEOUT_INIT, 0)
            elif req is not None and seq == req["isn"] and surely_older(sent, req["sent"]):
                # tcp_check_req(): older than the SYN the request keeps the TSval of
                # (ts_recent), PAWS rejects it (tcp_paws_reject()): no SYN-ACK, no
                # re-armed timer, an ACK at most one per tcp_invalid_ratelimit
                # (gen-20197 on 6.18: SYN #1 held 1.5 s came after SYN #2 had made
                # the request and drew a bare ACK; the request timer ran on)
                if t - req["last_oow"] >= self.sp.invalid_ratelimit:
                    req["last_oow"] = t
                    self.send(t, "server", ACK, req["snt"] + 1, req["isn"] + 1, "answer", slack)
            elif req is not None and seq == req["isn"]:
                # tcp_check_req(): a retransmitted SYN for a live request is answered
                # and the timer re-armed only when tcp_oow_rate_limited() lets the
                # SYN-ACK go (gen-21271 on 6.18: the router's copy of SYN #2, 0.3 s
                # after it, drew nothing and the request timer fired 1 s after SYN #2)
                if t - req["last_oow"] >= self.sp.invalid_ratelimit:
                    req["last_oow"] = t
                    self.send(t, "server", SYN | ACK, req["snt"], seq + 1, "answer", slack)
                    req["gen"] += 1
                    # re-armed from the SYN's arrival: as late as that SYN may come
                    req["slack"] = max(req["slack"], slack)
                    self.req_timer_at(t, TCP_TIMEOUT_INIT * 2 ** req["num_timeout"], req["gen"])
            elif req is not None and t - req["last_oow"] >= self.sp.invalid_ratelimit:
                # tcp_check_req(): another ISN is out of the request's window: an ACK
                # (at most one per tcp_invalid_ratelimit), and the SYN is dropped.
                req["last_oow"] = t
                self.send(t, "server", ACK, req["snt"] + 1, req["isn"] + 1, "answer", slack)
            elif req is None and self.server_child and t - self.server_oow_at >= self.sp.invalid_ratelimit:
                # the SYN again (the router's copy) after the handshake completed: the
                # full socket's tcp_validate_incoming(), RFC 5961 4.2, a challenge ACK
                # at most one per tcp_invalid_ratelimit (tcp_oow_rate_limited(): a SYN
                # is rate-limited although it occupies sequence space)
                self.server_oow_at = t
                self.send(t, "server", ACK, Y + 1, X + 1, "answer", slack)
        elif flags & ACK and req is not None:
            self.req, self.server_child = None, True  # the ACK or data completes it
            self.pred.server_connected = True
            self.change("server", t, "ESTABLISHED")
        elif flags & ACK and not self.server_child:
            # No request any more (an RST or the SYN-ACK timer dropped it) and no child:
            # the segment finds the listener, whose tcp_rcv_state_process() returns 1
            # for an ACK in LISTEN (tcp_v4_cookie_check() hands it back unless a cookie
            # validates), or no socket at all; either way tcp_v4_send_reset(): an RST,
            # seq = the segment's ack, no ACK bit (gen-14297 on 6.18: the handshake
            # ACK, held 2 s, reached the listener 1.9 s after the client's RST).
            self.send(t, "server", RST, ack, 0, "answer", slack)

    def req_timer(self, t: float, gen: int, deferred: bool = False) -> None:
        req = self.req
        if req is None or gen != req["gen"]:
            return
        wait = TCP_TIMEOUT_INIT * 2 ** req["num_timeout"]
        if not deferred:
            # It fires anywhere in its timer-wheel bucket: a client segment arriving
            # within that window may come first (a race, noted by server_gets(); the
            # other order is simulated too, holding this expiry until that arrival).
            idx, self.req_fires = self.req_fires, self.req_fires + 1
            window = self.k.slack(wait)
            self.last_fire = (idx, t, window)
            if ("req", idx) in self.defer:
                self.held_timer = gen
                self.at(t + window, "req_timer_latest", gen)
                return
        req["slack"] += self.k.slack(wait)
        if req["num_timeout"] >= self.sp.synack_retries:
            self.req = None
            self.change("server", t, "CLOSE", req["maybe"])
            self.pred.calls[("server", "request")] = ("dropped", 0.0, t)
            self.pred.request_drops.append((t, req["slack"]))
            self.release_after_timer(t)
            return
        req["num_timeout"] += 1
        self.send(t, "server", SYN | ACK, req["snt"], req["isn"] + 1, "timer", req["slack"])
        self.req_timer_at(t, TCP_TIMEOUT_INIT * 2 ** req["num_timeout"], gen)
        self.release_after_timer(t)

    def run(self, until: float) -> Prediction:
        self.at(0.0, "connect")
        while self.q:
            t, _, _, what, args = heapq.heappop(self.q)
            if t > until:
                break
            if what == "connect":
                self.connect(t)
            elif what == "syn_timer":
                self.syn_timer(t, *args)
            elif what == "req_timer":
                self.req_timer(t, *args)
            elif what == "syn_timer_latest" and self.syn_held == args:
                self.void = True  # it is held for a SYN-ACK only: main's outcome did this
                break
            elif what == "req_timer_latest":  # nothing came within the bucket after all
                if self.held_timer == args[0]:
                    self.held_timer = None
                    self.req_timer(t, args[0], True)
            elif what == "release":
                self.release(t)
            elif what == "arrive_copy":
                self.copy_arrives(t, args)
            elif what == "arrive":
                sender, flags, length, slack, seq, ack, sent = args
                if sender == "client":
                    self.ahead_first(t)
                    if self.req is not None and self.timer_may_come_first(t, args):
                        continue
                    if self.arrived_late(t, args):
                        continue
                    self.server_gets(t, flags, length, slack, seq, ack, sent)
                    if self.late_held is not None:  # the one held for this: right after it
                        self.at(t + 1e-6, "arrive_held", *self.late_held[1])
                        self.late_held = None
                else:
                    self.client_gets(t, flags, slack, ack)
            elif what == "arrive_held":
                self.server_gets(t, *args[1:])
            elif what == "timer_held_latest" and self.timer_held is not None:
                self.void = True  # the request timer did not run within the slack after all
                break
            elif what == "late_latest" and self.late_held is not None and self.late_held[0] == args[0]:
                self.void = True  # nothing came after it within its lateness: main's outcome
                break
            elif what == "client_data":
                if self.client_state == "ESTABLISHED":
                    flags, length = self.first_segment
                    # an RST (close() with SO_LINGER 0, a give-up) is the teardown's or
                    # the established model's to count; here it only reaches the server
                    self.send(
                        t,
                        "client",
                        flags,
                        X + 1,
                        Y + 1,
                        "first",
                        args[0],
                        length=length,
                        listed=not flags & RST,
                    )
                    sent = self.pred.segments[-1] if not flags & RST else None
                    if sent is not None and sent.fate != "delivered" and self.req is not None:
                        self.data_held_at = t
                    seq = X + 1 + length
                    for dt, flags, length in self.then:
                        self.at(t + dt, "client_then", flags, length, seq, args[0])
                        seq += length
            elif what == "client_then":
                flags, length, seq, slack = args
                if self.client_state == "ESTABLISHED":
                    self.send(t, "client", flags, seq, Y + 1, "first", slack, length=length)
        if self.data_held_at is not None:
            self.data_path_may_complete(self.data_held_at)
        self.pred.horizon = until
        self.pred.states = {h: surely_seen(c, until) for h, c in self.pred.states.items()}
        return self.pred
