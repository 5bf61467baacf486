"""The teardown's timers: the FIN's loss probe and RTO, FIN_WAIT2, TIME_WAIT, the
delayed ACK, and the rate-limited answers to old or out-of-window segments."""

from __future__ import annotations

import copy
import math

from tcplab.core.model.prediction import PredictedSegment
from tcplab.core.model.teardown.host import Host
from tcplab.core.model.teardown.params import (
    AFTER_NEXT,
    AFTER_SEND,
    PAWS_TICK,
    TCP_TIMEWAIT_LEN,
    TLP_TIMEOUT_MIN,
    Unsupported,
    delack_max,
    fin_time,
    retry_limit,
    surely_older,
)
from tcplab.core.model.teardown.simbase import SimBase
from tcplab.core.rules import decide
from tcplab.core.segments import ACK, FIN


class Timers(SimBase):
    """Mixed into sim.Sim: the methods a timer or an old segment runs."""

    def subsume_delack(self, t: float, h: Host) -> None:
        """Another segment carrying the same ACK (the FIN, an answer, data, an RST)
        leaves while the delayed ACK still waits: it takes its place
        (tcp_event_ack_sent() clears the delayed-ACK timer; tcp_disconnect() too)."""
        h.ack_pending = False

    def maybe_ack(self, t: float, h: Host) -> None:
        """The delayed ACK of the peer's FIN may still leave before this FIN: named and
        judged as the hook would, without counting it (a copy of the classifier)."""
        seen = copy.deepcopy(self.clf).classify(self.segment(h, ACK, h.snd, self.peer(h).snd + 1))
        fate = decide(self.faults, seen).fate
        self.pred.maybe.append(
            PredictedSegment(t, h.name, seen.name, seen.nth, fate, "answer", h.slack + delack_max(h.rtt))
        )

    # timers -------------------------------------------------------------------------
    def probe_wait(self, h: Host, cap: float | None = None) -> float:
        """tcp_schedule_loss_probe(): 2 srtt, plus tcp_rto_min when one segment is out
        (packets_out == 1: the FIN, or one data segment), else plus TCP_TIMEOUT_MIN (2
        ms on 6.18: seen 5 ms after a FIN that followed unacknowledged data; 2 jiffies
        in older code, inside the check's window), in whole jiffies, and never after
        the RTO (a full one when an ACK advanced it, else what is left of it: `cap`)."""
        alone = len(h.flight) + (h.fin_sent and not h.fin_acked) <= 1
        wait = 2 * h.rtt + (h.p.rto_min if alone else TLP_TIMEOUT_MIN)
        return min(math.ceil(wait * self.k.hz - 1e-9) / self.k.hz, h.rto if cap is None else cap)

    def arm(self, t: float, h: Host, kind: str, wait: float, start: float | None = None) -> None:
        """The socket's one retransmission timer, `wait` from now (or from `start`,
        the kernel's own moment of the send that armed it: DataPath.kernel_sent())."""
        h.timer_gen += 1
        h.timer_kind, h.timer_wait = kind, wait
        h.timer_due = (t if start is None else start) + wait
        self.at((t if start is None else start) + wait, 2, "fin_timer", h.name, h.timer_gen, kind, wait)

    def release_held_timer(self, t: float, h: Host) -> None:
        """The expiry held for what it raced (AFTER_NEXT, AFTER_SEND), right after it."""
        assert h.held_fin is not None  # its callers found one held
        gen, kind, wait = h.held_fin
        h.held_fin = None
        self.at(t + 1e-6, 2, "fin_timer", h.name, gen, kind, wait)

    def fin_timer(self, t: float, h: Host, gen: int, kind: str, wait: float) -> None:
        if gen != h.timer_gen or h.fin_acked or h.state == "CLOSE" or not (h.fin_sent or h.flight):
            return
        key = (h.name, -(h.fires + 1))  # this expiry, as a race's step
        shift = self.shifts.get(key)
        if shift in (AFTER_NEXT, AFTER_SEND) and h.held_fin is None and key not in h.timer_released:
            # the other order: this expiry waits for the next ACK (or the app's send()
            # it raced), as late as its bucket allows; either may make it moot
            h.held_fin = (gen, kind, wait)
            h.held_for_send = shift == AFTER_SEND
            h.timer_released.add(key)
            assert self.obs is not None  # a shift is a race a record showed (predict.py)
            self.at(t + self.k.slack(wait) + self.obs.race, 2, "fin_timer_latest", h.name, gen)
            return
        h.fires += 1
        if self.obs is not None and key not in self.shifts:
            self.note_timer_race(t, h, key[1], wait)
            h.last_fire = (key[1], t, self.k.slack(wait) + self.obs.race)
        h.slack += self.k.slack(wait)
        if kind == "reo":
            self.reo_expired(t, h, wait)
            return
        if kind == "tlp":
            if not h.fin_sent:
                self.data_probe(t, h)
                return
            # tcp_send_loss_probe(): the last skb, the FIN's own (tcp_send_fin() gave it
            # a new skb, the data before it being sent already), then a full RTO
            self.send(t, h, FIN | ACK, "probe", h.slack)
            self.arm(t, h, "rto", h.rto)
            return
        if self.gives_up(t, h):
            # tcp_write_timeout() -> tcp_write_err(): no RST; a blocked call fails
            self.set_state(t, h, "CLOSE", h.slack, "timer")
            self.wake(t, h)
            return
        if h.first_rto is None:
            h.first_rto, h.first_rto_slack = t, h.slack
        h.rto_count += 1
        if h.flight:  # the head of the queue is data (with the FIN collapsed into it)
            self.rto_segment(t, h)
        else:
            self.send(t, h, FIN | ACK, "timer", h.slack)
        self.arm(t, h, "rto", min(h.rto * 2**h.rto_count, h.p.rto_max))

    def gives_up(self, t: float, h: Host) -> bool:
        """At an RTO expiry: has the time since the first RTO retransmission
        (retrans_stamp) reached the limit (retransmits_timed_out())? The kernel
        compares its own clock: every timer since that first expiry fired up to its
        wheel slack late, and each next wait ran from there, so the real time is the
        nominal one plus up to what slack built up since. A limit inside that span is
        a choice (giveup_choice): this prediction goes on, an alternative gives up
        (gen-12088 on 6.18: 30 R nominal = 6.12 s against a 6.2 s limit; the fifth
        RTO expiry came at 6.27 s and the server gave up)."""
        if h.first_rto is None:
            return False
        backed_off = min(h.rto * 2**h.rto_count, h.p.rto_max)
        limit, elapsed = retry_limit(h.p, h.orphaned, backed_off) - 1e-9, t - h.first_rto
        if elapsed >= limit:
            return True
        if elapsed + h.slack - h.first_rto_slack >= limit:
            self.pred.giveup_choice = True
            return self.giveup_early
        return False

    def fin_wait2_timer(self, t: float, h: Host, slack: float) -> None:
        tmo = fin_time(h.p, h.rto)
        if not h.p.timewait and tmo <= TCP_TIMEWAIT_LEN:
            # the FIN_WAIT2 minisocket (tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)) cannot
            # be had either: closed at once
            self.set_state(t, h, "CLOSE", slack, "segment")
            return
        h.tw_gen += 1
        self.at(t + tmo, 2, "tw_timer", h.name, h.tw_gen, slack + self.k.slack(tmo))

    def old_ack(self, t: float, h: Host, sent: float | None, slack: float) -> None:
        """A pure ACK from before what the host has since acknowledged. If PAWS rejects
        it first (tcp_paws_discard(), old_ack_paws()): silently on the kernels
        Kernel.paws_old_ack_silent names, not modelled before them; else it is out of
        the window."""
        rejected = self.old_ack_paws(h, sent) if sent is not None and h.state != "TIME_WAIT" else False
        if rejected is None:
            raise Unsupported(
                f"an old ACK reaching the {h.name} one to two timestamp ticks older than the "
                "newest it took (PAWS may reject it or not)"
            )
        if rejected:
            if self.k.paws_old_ack_silent:
                return
            raise Unsupported(
                "an old ACK rejected by PAWS (answered or not by this kernel version: not modelled)"
            )
        self.out_of_window(t, h, slack)

    def old_ack_paws(self, h: Host, sent: float) -> bool | None:
        """tcp_paws_discard() at a full socket: rejected when ts_recent - TSval >
        TCP_PAWS_WINDOW, one tick. From the record's TSvals where it has this ACK's
        (paws.py: ts_recent as a range); else from send times, whose TSvals tick once a
        millisecond (tcp_clock_ms()): d ms apart they are floor(d) or ceil(d) ticks
        apart, so rejected for certain from 2 ms on, passed up to 1 ms, and between
        that the tick's phase decides (gen-13026 on 6.18: 1.02 ms older, passed and
        answered; the model had rejected it). None: not known."""
        peer = self.peer(h).name
        stamps = self.obs.stamps if self.obs is not None else {}
        tsval = next((v[1] for k, v in stamps.items() if k[0] == peer and abs(v[0] - sent) < 1e-9), None)
        lo, hi, _wup = h.ts_recent_range
        if tsval is not None and tsval < lo - 1:
            return True
        if tsval is not None and tsval >= hi - 1:
            return False
        if surely_older(sent, h.ts_recent):
            return True
        if h.ts_recent - sent <= PAWS_TICK:
            return False
        return None

    def fin_wait2_minisocket(self, h: Host) -> bool:
        """An orphan in FIN_WAIT2 whose tcp_fin_time() is no longer than TIME_WAIT's
        60 s: tcp_rcv_state_process() handed it to a timewait minisocket in substate
        FIN_WAIT2 (tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)), which
        tcp_timewait_state_process() answers from then on."""
        return h.state == "FIN_WAIT2" and h.orphaned and fin_time(h.p, h.rto) <= TCP_TIMEWAIT_LEN

    def out_of_window(self, t: float, h: Host, slack: float) -> None:
        """A pure ACK from before what this host already acknowledged (an old one, or
        the router's copy of one): tcp_sequence() fails, and tcp_validate_incoming()
        answers with a duplicate ACK, at most one per tcp_invalid_ratelimit
        (tcp_oow_rate_limited()); a timewait socket the same way (seen on 6.18,
        gen-3123, gen-3278)."""
        if h.state == "TIME_WAIT":
            self.paws_in_time_wait(t, h, slack)
        elif self.fin_wait2_minisocket(h):
            # the orphan's FIN_WAIT2 minisocket (tcp_time_wait()): its own rate limit,
            # tw_last_oow_ack_time, which starts at 0 (tcp_timewait_check_oow_rate_limit())
            if t - h.tw_oow_at >= h.p.invalid_ratelimit:
                h.tw_oow_at = t
                self.send(t, h, ACK, "answer", slack)
        elif t - h.oow_at >= h.p.invalid_ratelimit:
            h.oow_at = t
            self.send(t, h, ACK, "answer", slack)

    def paws_in_time_wait(self, t: float, h: Host, slack: float, occupies: bool = False) -> None:
        """tcp_timewait_state_process(): a PAWS-rejected segment (a delayed one, older
        than what came since) restarts the timewait timer and is answered by an ACK,
        at most one per tcp_invalid_ratelimit (tcp_timewait_check_oow_rate_limit()) -
        unless it occupies sequence space (a FIN, data) without a SYN:
        tcp_oow_rate_limited() lets those through, as they are not part of an ACK loop
        (gen-4022 on 6.18: two old copies of the server's FIN held 2 s reached the
        client's TIME_WAIT 0.41 s apart, and both were ACKed)."""
        self.time_wait(t, h, slack, restart_only=True)
        if occupies:
            self.send(t, h, ACK, "answer", slack)
        elif t - h.tw_oow_at >= h.p.invalid_ratelimit:
            h.tw_oow_at = t
            self.send(t, h, ACK, "answer", slack)

    def time_wait(self, t: float, h: Host, slack: float, restart_only: bool = False) -> None:
        if not h.p.timewait:
            # tcp_time_wait(): inet_twsk_alloc() refuses (tcp_max_tw_buckets = 0,
            # TCPTimeWaitOverflow), and the socket is closed without one
            self.set_state(t, h, "CLOSE", slack, "segment")
            return
        if not restart_only:
            self.set_state(t, h, "TIME_WAIT", slack, "segment")
        h.tw_gen += 1
        self.at(t + TCP_TIMEWAIT_LEN, 2, "tw_timer", h.name, h.tw_gen, slack + self.k.slack(TCP_TIMEWAIT_LEN))

    def tw_timer(self, t: float, h: Host, gen: int, slack: float) -> None:
        if gen == h.tw_gen and h.state in ("FIN_WAIT2", "TIME_WAIT"):
            self.set_state(t, h, "CLOSE", slack, "timer")

    # segments -----------------------------------------------------------------------
