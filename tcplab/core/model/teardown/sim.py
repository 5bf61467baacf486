"""The teardown simulator: both ends, their apps' steps and the network between."""

from __future__ import annotations

import heapq
import itertools
import math

from tcplab.core.faults import DELAY, DUPLICATE, Fault, silencing
from tcplab.core.model.kernel import LAST_HOP, TRANSIT, Kernel
from tcplab.core.model.prediction import C_ADDR, C_PORT, PredictedSegment, S_ADDR, X, Y
from tcplab.core.model.teardown.data import DataPath
from tcplab.core.model.teardown.host import Host
from tcplab.core.model.teardown.keepalive import Keepalive
from tcplab.core.model.teardown.numbering import Numbering
from tcplab.core.model.teardown.paws import Paws
from tcplab.core.model.teardown.params import (
    AfterArrival,
    MAX_EVENTS,
    MSS,
    NEED_RESET,
    RACE_NOISE,
    RACING_CALLS,
    SAME_SEGMENT,
    TCP_INIT_CWND,
    TeardownParams,
    Unsupported,
)
from tcplab.core.model.teardown.prediction import Observed, PredictedState, Race, TeardownPrediction
from tcplab.core.model.teardown.races import Races
from tcplab.core.model.teardown.receive import Receive
from tcplab.core.model.teardown.sack import Sack
from tcplab.core.model.teardown.timers import Timers
from tcplab.core.rules import decide
from tcplab.core.scenario import Step
from tcplab.core.segments import ACK, Classifier, FIN, RST, SYN, Segment


class Sim(Timers, Receive, DataPath, Paws, Keepalive, Sack, Races, Numbering):
    def __init__(
        self,
        kernel: Kernel,
        params: dict[str, TeardownParams],
        rto: dict[str, float],
        steps: dict[str, list[Step]],
        faults: tuple[Fault, ...],
        port: int,
        first_closer: str | None,
        host_faults: tuple = (),
        observed: Observed | None = None,
        shifts: dict[tuple[str, int], float | str | AfterArrival] | None = None,
        rtt: dict[str, float] | None = None,
        delack_late: bool = False,
        rack_wait: bool = False,
        backlog_quiet: bool = False,
        giveup_early: bool = False,
        handover_lost: bool = False,
    ):
        self.k, self.faults, self.port = kernel, faults, port
        self.obs, self.shifts = observed, shifts or {}
        self.delack_late, self.rack_wait, self.giveup_early = delack_late, rack_wait, giveup_early
        # Receive.backlog_ack(): the old ACK taken silently; Races.lost_in_handover()
        self.backlog_quiet, self.handover_lost = backlog_quiet, handover_lost
        self.not_modelled: str | None = None  # raised as Unsupported once the run is over
        self.ka_released: set = set()  # keepalive expiries already held once (keepalive.py)
        self.copies: dict[tuple[str, str], list[tuple[float, bool]]] = {}  # duplicates' copies not yet sent
        self.last_sent: list[int] = []
        self.races: list[Race] = []
        # every arrival: (when, what, whether it changes what an app call does)
        self.arrived: dict[str, list[tuple[float, str, bool]]] = {"client": [], "server": []}
        # every racing call made: (when, step, call, snd_nxt before it)
        self.calls_done: dict[str, list[tuple[float, int, str, int]]] = {"client": [], "server": []}
        self.host_faults = host_faults
        self.hosts = {
            h: Host(h, params[h], rto[h], steps[h], (rtt or {}).get(h, 0.001)) for h in ("client", "server")
        }
        for name, h in self.hosts.items():
            if observed is not None and observed.rtt_samples.get(name):
                h.samples = list(observed.rtt_samples[name])  # predict.py's rto, rtt came from them
        self.first_closer = first_closer
        self.clf = Classifier({C_ADDR})
        self._prime()
        self.q: list = []
        self.order = itertools.count()
        self.pred = TeardownPrediction(states={h: [] for h in self.hosts}, rto=dict(rto))

    def _prime(self) -> None:
        """The handshake, so the classifier names the teardown as the hook will."""
        for src, flags, seq, ack in (
            (C_ADDR, SYN, X, 0),
            (S_ADDR, SYN | ACK, Y, X + 1),
            (C_ADDR, ACK, X + 1, Y + 1),
        ):
            dst = S_ADDR if src == C_ADDR else C_ADDR
            sport, dport = (C_PORT, self.port) if src == C_ADDR else (self.port, C_PORT)
            self.clf.classify(Segment(src, sport, dst, dport, flags, seq, ack, 0))

    def at(self, t: float, prio: int, what: str, *args) -> int:
        n = next(self.order)
        heapq.heappush(self.q, (round(t, 9), prio, n, what, args))
        return n

    def peer(self, h: Host) -> Host:
        return self.hosts["server" if h.name == "client" else "client"]

    def set_state(self, t: float, h: Host, state: str, slack: float, cause: str) -> None:
        if h.state != state:
            h.state = state
            self.pred.states[h.name].append(PredictedState(t, state, slack, cause))

    def segment(self, h: Host, flags: int, seq: int, ack: int, length: int = 0) -> Segment:
        """What `h` sends, addressed as the hook sees it."""
        if h.name == "client":
            return Segment(C_ADDR, C_PORT, S_ADDR, self.port, flags, seq, ack, length)
        return Segment(S_ADDR, self.port, C_ADDR, C_PORT, flags, seq, ack, length)

    def send(
        self,
        t: float,
        h: Host,
        flags: int,
        cause: str,
        slack: float,
        length: int = 0,
        seq: int | None = None,
        ack: int | None = None,
    ) -> str:
        other = self.peer(h)
        if seq is None:
            seq = h.snd + (1 if h.fin_sent and not flags & FIN else 0)
        ack = h.rcv if ack is None else ack
        seen = self.as_the_run_numbers(
            self.clf.classify(self.segment(h, flags, seq, ack, length)), flags, seq, ack, t
        )
        verdict = decide(self.faults, seen)
        fate = verdict.fate
        if silencing(self.host_faults, h.name, other.name, t) is not None:
            fate = "dropped"  # a crashed or rebooting host: the hook drops it
            if length and not flags & RST:
                # data into the silence: its chain is core/model/established.py's
                raise Unsupported(f"{h.name} data to or from a silent host")
        elif any(f.action == "link-down" and f.in_force(t) for f in self.host_faults):
            # What the router answers then (ICMP) is core/model/established.py's.
            raise Unsupported("a segment while a link is down")
        if flags & ACK:
            self.subsume_delack(t, h)
            if h.rcv != h.rcv_wup:  # receive.backlog_ack(): where rcv_wup was, and when it moved
                h.wup_before, h.wup_at = h.rcv_wup, t
            h.rcv_wup = h.rcv
        # A data segment or the ACK of data dropped or held: the sender's tail loss
        # probe or RTO re-sends it (core/model/teardown/data.py), simulated on.
        if fate != "delivered" and seen.name in ("data", "data-ack"):
            self.same_segment(t, h, seen.name, seen.nth, slack)
        self.pred.segments.append(PredictedSegment(t, h.name, seen.name, seen.nth, fate, cause, slack))
        tsval = self.ts_sent(h, seen.name, seen.nth, t, slack, flags, ack)  # paws.py
        self.last_wire = (seen.name, seen.nth)
        if flags & FIN:
            if seen.name == "peer-fin" and cause == "first":
                self.note_fin_order(t, h)
            h.fin_at, h.fin_sends = t, h.fin_sends + 1
        if (length or flags & FIN) and not flags & RST:  # its name at its first sending
            h.wire.setdefault((seq, not length), (seen.name, seen.nth))
        if fate != "dropped":
            held = verdict.delay if verdict.action == DELAY else 0.0
            at = self.arrival(t + TRANSIT + held, *self.router_key(seen, flags, seq, ack))
            # A segment that overtakes data held by the router lands beyond a hole:
            # the peer queues and SACKs it (core/model/teardown/sack.py).
            sack = self.sack_blocks(h) if flags & ACK else ()
            self.last_sent = [
                self.at(at, 1, "arrive", other.name, flags, seq, ack, slack, length, t, tsval, False, sack)
            ]
            if verdict.action == DUPLICATE:  # the router's copy, `by` after the original
                copy, cut = self.copy_arrival(h.name, seen.name, at + verdict.delay)
                self.last_sent.append(
                    self.at(
                        copy, 1, "arrive", other.name, flags, seq, ack, slack, length, t, tsval, cut, sack
                    )
                )
        return fate

    def same_segment(self, t: float, h: Host, name: str, nth: int, slack: float) -> None:
        """A fault hit this segment by its name and number: with a record, the run's
        segment of that name and number must be this one (sent when the model sends
        it). The handshake model's answers are not simulated here (a challenge ACK to
        a copy of the SYN is a `data-ack` too: gen-4156 on 6.18, where the run's
        data-ack #2 was the model's #1), so a fault may have hit another segment."""
        if self.obs is None:
            return
        seen = self.obs.sent.get((h.name, name, nth))
        if seen is None or abs(seen - t) > slack + self.obs.race + SAME_SEGMENT:
            raise Unsupported(
                f"the run's {h.name} {name} #{nth}, which a fault hit, is "
                "not the one the model sends (counted apart: an answer "
                "of the handshake's?)"
            )

    def copy_arrival(self, sender: str, name: str, nominal: float) -> tuple[float, bool]:
        """A duplicate's copy: with a record, when the router really sent it (its raw
        socket send follows the hook's own timing, not the original's t_out + by), and
        whether the router sent it cut short (observe.truncated())."""
        if self.obs is None:
            return nominal, False
        copies = self.copies.setdefault((sender, name), list(self.obs.copies.get((sender, name), ())))
        if not copies:
            return nominal, False
        at, cut = copies.pop(0)
        return at + LAST_HOP, cut

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

    def answer_rst(self, t: float, h: Host, ack: int, slack: float) -> None:
        """tcp_v4_send_reset() for a segment with ACK: seq = that segment's ack."""
        self.send(t, h, RST, "answer", slack, seq=ack, ack=0)

    def abort(self, t: float, h: Host, cause: str) -> None:
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
    def schedule_step(self, t: float, h: Host) -> None:
        h.step_gen += 1
        self.at(t, 0, "step", h.name, h.step_gen)

    def due(self, h: Host, i: int) -> float | None:
        """With a record: when the app made its call of step i (None: it never did)."""
        if i in h.released:
            return h.released[i]
        shift = self.shifts.get((h.name, i))
        if isinstance(shift, float):  # moved before the arrival it raced
            return shift
        assert self.obs is not None  # step() asks only with a record
        seen = self.obs.steps[h.name]
        if i >= len(seen):
            return None
        stamps = seen[i]
        return -1.0 if stamps is None else stamps[0]

    def step(self, t: float, h: Host, gen: int | None = None) -> None:
        if gen is not None and gen != h.step_gen:
            return
        while h.next_step < len(h.steps) and not h.gone:
            i = h.next_step
            if self.obs is not None:
                due = self.due(h, i)
                if due is None:  # the app never made this call (killed, or still blocked)
                    h.next_step = len(h.steps)
                    return
                if due > t + 1e-9:
                    self.schedule_step(due, h)
                    return
                shift = self.shifts.get((h.name, i))
                if isinstance(shift, AfterArrival) and i not in h.released:
                    # the other order: from its stamp (now), after the segment it raced
                    h.deferred = (i, shift.what, shift.nth)
                    self.at(self.undefer_at(t, h, shift), 0, "undefer", h.name, i)
                    return
            s = h.steps[i]
            h.next_step += 1
            h.waiting = h.waiting_recv = False
            if s.call in RACING_CALLS and self.obs is not None:
                self.note_race(t, h, i, s.call)
                self.calls_done[h.name].append((t, i, s.call, h.snd + h.fin_sent))
            if s.call == "sleep":
                if self.obs is None:  # with a record the next call's stamp says when
                    self.schedule_step(t + s.arg, h)
                    return
            elif s.call == "recv":
                # recv: N reads on until N bytes or EOF; a bare recv returns what is there
                want = s.arg if isinstance(s.arg, int) else 1
                got = min(h.unread, want) if isinstance(s.arg, int) else h.unread
                h.unread, h.recv_left = h.unread - got, max(0, want - got)
                h.recv_upto = isinstance(s.arg, int)
                if h.recv_left > 0 and not h.got_fin and h.state != "CLOSE":
                    h.waiting = h.waiting_recv = True
                    h.recv_gen += 1
                    if h.rcvtimeo is not None:  # SO_RCVTIMEO: EAGAIN when it runs out
                        self.at(t + h.rcvtimeo, 0, "recv_timeout", h.name, h.recv_gen)
                    self.observed_return(h, i)
                    return
            elif s.call == "send":
                self.send_data(t, h, len(s.arg.encode()) if isinstance(s.arg, str) else s.arg)
                if h.held_fin is not None and h.held_for_send:  # the expiry it raced, after it
                    self.release_held_timer(t, h)
                if h.unsent:  # blocked for the send buffer until ACKs (or an RST) come
                    h.waiting = True
                    self.observed_return(h, i)
                    return
            elif s.call == "close":
                h.closing_step = i
                self.close(t, h, orphan=True)
                h.closing_step = None
            elif s.call == "shutdown":
                if s.arg in ("wr", "rdwr"):
                    h.closing_step = i
                    self.close(t, h, orphan=False)
                    h.closing_step = None
            elif s.call == "linger":
                h.linger0 = s.arg == 0
            elif s.call == "rcvtimeo":
                h.rcvtimeo = s.arg
            elif s.call == "keepalive":  # keepalive.py
                self.keepalive_on(t, h, s.arg)
            elif s.call != "netstat":  # reading counters sends nothing
                raise Unsupported(f"{h.name} {s.call}")

    def observed_return(self, h: Host, i: int) -> None:
        """A blocking call's return is the app's to report: where the record has the
        call returning and the model has nothing that wakes it, the app goes on at that
        moment all the same (what woke it is judged by the segment checks), within the
        stamps' race bound: a segment that close to the return stamp may be what woke
        it (gen-13011 on 6.18: recv() returned 46 us after the router let the request
        go, which the model delivers a last hop, LAST_HOP, after that)."""
        if self.obs is None or (h.name, i) in self.shifts:
            return
        seen = self.obs.steps[h.name]
        stamps = seen[i] if i < len(seen) else None  # (start, end) of the call
        if stamps is not None and stamps[1] is not None:
            self.at(stamps[1] + self.obs.race, 4, "recv_timeout", h.name, h.recv_gen)
            h.returned_at = stamps[1]

    def wake(self, t: float, h: Host) -> None:
        """Data, the peer's FIN or an RST ends a recv() that waits."""
        if h.waiting and not h.gone:
            if h.waiting_recv:
                # The call reads what is there when the app gets to run, not only what
                # woke it: data arriving until the app's return is read too. With a
                # record that is the return's stamp, taken after the call returned:
                # data arriving later was certainly not read (gen-6228: data #2 landed
                # 0.2 ms after recv() returned with data #1, and close() sent an RST
                # for it). Without one, RACE_NOISE after the wake-up.
                h.drain_until = max(t, h.returned_at) if h.returned_at is not None else t + RACE_NOISE
            h.waiting = h.waiting_recv = False
            h.returned_at = None
            h.recv_gen += 1
            h.woke_at = t
            self.schedule_step(t, h)

    def recv_timeout(self, t: float, h: Host, gen: int) -> None:
        if h.waiting and gen == h.recv_gen:
            # (with a record: the app saw its call return before the model saw what woke
            # it; the segment's t_out and the app's stamp are within the race bound of
            # each other, and wake() lets the call read what arrives that soon)
            self.wake(t, h)

    def send_data(self, t: float, h: Host, n: int) -> None:
        """send(): nothing on the wire once this side sent its FIN or the socket is
        gone (EPIPE); else the bytes in MSS-sized segments, as many as the initial
        window allows before an ACK comes back."""
        if h.fin_sent or h.state == "CLOSE" or n <= 0:
            return
        if h.nagle:  # tcp_sendmsg() appends to the tail skb Nagle holds
            if h.nagle + n >= MSS:
                raise Unsupported(f"the {h.name}'s data Nagle holds grows to an MSS")
            h.nagle += n
            return
        segments = math.ceil(n / MSS)
        for i in range(min(segments, TCP_INIT_CWND)):
            size = min(MSS, n - i * MSS)
            if size < MSS and self.nagle_holds(h):
                h.nagle = size  # held until an ACK passes snd_sml (release_nagle())
                break
            self.send_new_data(t, h, size)
        h.unsent = max(0, n - TCP_INIT_CWND * MSS)

    def host_fault(self, t: float, h: Host, action: str) -> None:
        """kill: the application dies and its kernel closes the socket as close() would.
        reboot: the same, then the socket is destroyed (SOCK_DESTROY -> tcp_abort) while
        the host is silent, so its FIN and RST go nowhere; afterwards nothing owns the
        connection."""
        h.gone, h.waiting = True, False
        self.close(t, h, orphan=True)  # the application dies first (appproc.py)
        if action == "reboot":
            self.abort(t, h, "fault")

    def close(self, t: float, h: Host, orphan: bool) -> None:
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
        if h.state in ("ESTABLISHED", "CLOSE_WAIT") and h.nagle:
            # tcp_send_fin() sets FIN on the unsent skb Nagle holds: one segment
            raise Unsupported(f"the {h.name}'s FIN on the data Nagle held (not modelled)")
        if h.state in ("ESTABLISHED", "CLOSE_WAIT") and h.timer_kind == "reo":
            # tcp_write_xmit() would schedule a loss probe in the reordering timer's
            # place, and the FIN be merged into the resent data
            # (tcp_retrans_try_collapse()): not modelled
            raise Unsupported(f"the {h.name}'s FIN while RACK's reordering timer waits to re-send its data")
        if h.state in ("ESTABLISHED", "CLOSE_WAIT"):
            self.set_state(t, h, "FIN_WAIT1" if h.state == "ESTABLISHED" else "LAST_ACK", h.slack, "app")
            h.fin_sent, h.ack_pending = True, False  # the FIN carries any pending ACK
            self.send(t, h, FIN | ACK, "first", h.slack)
            if h.flight:
                self.cwnd_one(t, h, "a FIN")
            # tcp_send_fin() -> tcp_write_xmit(): the RTO restarted from the oldest
            # unacknowledged segment's transmission, then the probe (arm_after_send())
            left = self.rto_left(t, h) if h.flight else h.rto
            if h.recovery and h.flight:
                # tcp_schedule_loss_probe(): no probe outside CA_Open/CWR, and
                # tcp_event_new_data_sent() leaves the running RTO alone
                pass
            elif h.p.tlp:
                self.arm(t, h, "tlp", self.probe_wait(h, cap=left))
            else:
                self.arm(t, h, "rto", left)
        elif h.state == "FIN_WAIT2" and orphan:
            self.fin_wait2_timer(t, h, h.slack)

    def run(self, until: float) -> TeardownPrediction:
        for name in ("client", "server"):
            # Both apps start their steps as the connection exists; where both close at
            # the same nominal moment, `first_closer` (what the run showed) goes first.
            # (With a record, each step waits for the moment the app made its call.)
            self.schedule_step(0.0 if name == (self.first_closer or "client") else 1e-6, self.hosts[name])
        for t_out, receiver, flags, sent in self.obs.late if self.obs else ():
            seq, ack = (Y, X + 1) if receiver == "client" else ((X, 0) if flags & SYN else (X + 1, Y + 1))
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
                self.take(t, h, args)
            elif what == "late":
                self.late(t, h, *args[1:])
            elif what == "fin_timer":
                self.fin_timer(t, h, *args[1:])
            elif what == "fin_timer_latest":  # no ACK came within the bucket after all
                if h.held_fin is not None and h.held_fin[0] == args[1]:
                    gen_, kind_, wait_ = h.held_fin
                    h.held_fin = None
                    self.fin_timer(t, h, gen_, kind_, wait_)
            elif what == "release":
                self.release_nagle(t, h)
            elif what == "undefer":
                self.undefer(t, h, *args[1:])
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
            elif what == "ka_timer":
                self.keepalive_timer(t, h, *args[1:])
            elif what == "ka_timer_latest":
                self.ka_release(t, h, *args[1:])
        if self.not_modelled:
            raise Unsupported(self.not_modelled)
        self.pred.horizon = until
        self.pred.races, self.pred.delack_late = self.races, self.delack_late
        self.pred.rack_wait, self.pred.giveup_early = self.rack_wait, self.giveup_early
        self.pred.handover_lost = self.handover_lost
        return self.pred
