"""A hole in the sequence space: the receiver's out-of-order queue and SACK, and the
sender's RACK loss detection that re-sends what fell into the hole.

Receiver (net/ipv4/tcp_input.c): a segment beyond rcv_nxt is queued out of order
(tcp_data_queue_ofo()) - a FIN too, which tcp_fin() only sees once the hole is filled
(tcp_ofo_queue()) - and answered at once by an ACK carrying SACK blocks
(__tcp_ack_snd_check(): "We have out of order data"). The segment that fills the hole
drains the queue; the ACK that follows covers everything, the FIN included
(ICSK_ACK_NOW: "RFC5681. 4.2. SHOULD send immediate ACK, when gap in queue is filled").

Sender (net/ipv4/tcp_recovery.c): a SACK of a segment sent after the hole's marks the
hole lost once it has gone unacknowledged for the SACKed segment's RTT plus a
reordering window (tcp_rack_detect_loss()): at once when it was sent more than the
window earlier, else when the reordering timer fires (tcp_rack_mark_lost(),
usecs_to_jiffies(remaining + TCP_TIMEOUT_MIN_US), commit 1c2709cfff1d in 6.7 and the
stable trees). The window is min_rtt/4 (tcp_rack_reo_wnd(), at most srtt, 0 once three
segments are SACKed), and min_rtt is the kernel's own, which the router sees only
from outside (its RTT samples lack the hosts' own legs): the two cannot be told apart
from the record when the segments left less than the window apart, so the
retransmission is then predicted anywhere from the SACK's arrival to the timer's
latest. Either way the lost segment is re-sent at once on detection (tcp_enter_recovery()
-> tcp_xmit_retransmit_queue()) and the RTO restarted from it (tcp_rearm_rto()); no
loss probe follows while in Recovery (tcp_schedule_loss_probe())."""

from __future__ import annotations

import math

from tcplab.core.model.teardown.host import Host
from tcplab.core.model.teardown.simbase import SimBase
from tcplab.core.model.teardown.params import TCP_TIMEOUT_MIN_US, Unsupported
from tcplab.core.segments import ACK, PSH

TCP_REORDERING = 3  # sysctl_tcp_reordering's default: tp->reordering at the start


class Sack(SimBase):
    """Mixed into sim.Sim: the out-of-order queue (receiver) and RACK (sender)."""

    # receiver -------------------------------------------------------------------------
    @staticmethod
    def sack_blocks(h: Host) -> tuple[tuple[int, int], ...]:
        """What h's ACKs SACK now (tcp_sack_new_ofo_skb()): its out-of-order queue,
        merged into ranges; a FIN occupies one sequence number."""
        out: list[list[int]] = []
        for seq, end, _fin in sorted(h.ofo):
            if out and seq <= out[-1][1]:
                out[-1][1] = max(out[-1][1], end)
            else:
                out.append([seq, end])
        return tuple((a, b) for a, b in out)

    def out_of_order(self, t: float, h: Host, seq: int, length: int, fin: bool, slack: float) -> None:
        """Data or a FIN beyond rcv_nxt, in a state that takes data: queued
        (tcp_data_queue_ofo()) and answered at once by a duplicate ACK with its SACK."""
        if h.state not in ("ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2"):
            raise Unsupported(f"data reaching the {h.name} beyond a hole in {h.state}")
        if self.peer(h).unsent:
            raise Unsupported("bulk data beyond the initial window")
        entry = (seq, seq + length + (1 if fin else 0), fin)
        if entry not in h.ofo:
            h.ofo.append(entry)
        self.send(t, h, ACK, "answer", slack)

    def at_sack_edge(self, h: Host, seq: int) -> bool:
        """tcp_validate_incoming(), RFC 5961 3.2 "extended": an RST at the right edge
        of the highest SACK block resets too (gen-3003 on 6.18: the client's abort
        after 1448 + 1448 + 104 bytes, the middle one dropped, reset the server)."""
        blocks = self.sack_blocks(h)
        return bool(blocks) and seq == max(b for _a, b in blocks)

    def challenge_ack(self, t: float, h: Host, slack: float) -> None:
        """An RST in the window elsewhere (beyond a hole): tcp_send_challenge_ack(), at
        most one per tcp_invalid_ratelimit (__tcp_oow_rate_limited(), the socket's
        last_oow_ack_time; the global tcp_challenge_ack_limit is off from 6.0,
        commit 79e3602caa6f); the RST itself is dropped. The ACK says rcv_nxt, and a
        peer that is gone answers it with an RST there, which resets (gen-6080)."""
        if t - h.oow_at >= h.p.invalid_ratelimit:
            h.oow_at = t
            self.send(t, h, ACK, "answer", slack)

    def drain(self, h: Host) -> tuple[int, bool]:
        """tcp_ofo_queue(): what the queue holds from rcv_nxt on joins the stream;
        the bytes it adds, and whether the FIN came with them."""
        added, fin = 0, False
        for seq, end, has_fin in sorted(h.ofo):
            if seq > h.rcv:
                break
            data_end = end - (1 if has_fin else 0)
            added += max(0, data_end - h.rcv)
            h.rcv = max(h.rcv, data_end)
            fin = fin or has_fin
        h.ofo = [e for e in h.ofo if e[0] > h.rcv]
        return added, fin

    def fin_from_queue(self, t: float, h: Host, slack: float) -> None:
        """tcp_fin() for a FIN that waited in the out-of-order queue: the state changes
        as for any FIN, and one ACK of everything leaves at once (in FIN_WAIT1 and
        FIN_WAIT2 tcp_fin() sends it; in ESTABLISHED the filled hole's ICSK_ACK_NOW,
        so not a delayed one)."""
        h.got_fin = True
        h.rcv += 1
        if h.state == "ESTABLISHED":
            self.set_state(t, h, "CLOSE_WAIT", slack, "segment")
            self.send(t, h, ACK, "answer", slack)
            self.wake(t, h)
        elif h.state == "FIN_WAIT1":
            self.set_state(t, h, "CLOSING", slack, "segment")
            self.send(t, h, ACK, "answer", slack)
        else:  # FIN_WAIT2
            self.send(t, h, ACK, "answer", slack)
            self.time_wait(t, h, slack)

    # sender ---------------------------------------------------------------------------
    def sacked(self, t: float, h: Host, blocks: tuple[tuple[int, int], ...]) -> None:
        """An ACK with SACK blocks reaching h (tcp_sacktag_write_queue(), then
        tcp_rack_advance() and tcp_rack_mark_lost() from tcp_fastretrans_alert())."""
        newly = []
        for seq, size, sent in h.flight:
            if seq not in h.sacked and any(a <= seq and seq + size <= b for a, b in blocks):
                if seq in h.resent:
                    raise Unsupported(AMBIGUOUS_SACK.format(h.name, "data"))
                h.sacked.add(seq)
                newly.append((self.sent_at(h, (seq, False), sent), seq + size))
        if (
            h.fin_sent
            and not h.fin_sacked
            and h.fin_at is not None
            and any(a <= h.snd < b for a, b in blocks)
        ):
            if h.fin_sends > 1:
                raise Unsupported(AMBIGUOUS_SACK.format(h.name, "FIN"))
            h.fin_sacked = True
            newly.append((self.sent_at(h, (h.snd, True), h.fin_at), h.snd + 1))
        if not newly:
            return
        # rack.mstamp and rack.end_seq: the latest sent of what was (S)ACKed, the
        # sequence breaking a tie (tcp_skb_sent_after(): one burst, one stamp)
        h.rack_at = max(h.rack_at, *newly)
        lost = [
            (seq, size, sent)
            for seq, size, sent in h.flight
            if seq not in h.sacked and (self.sent_at(h, (seq, False), sent), seq + size) < h.rack_at
        ]
        # re-sent after what was SACKed left: not lost again (skb_mstamp is the last
        # transmission's)
        lost = [e for e in lost if not (e[0] in h.resent and (e[2], e[0] + e[1]) >= h.rack_at)]
        if not lost:
            return
        if h.rack_done or any(e[0] in h.resent for e in lost):
            raise Unsupported(
                f"RACK recovery of the {h.name}'s data after a "
                "retransmission (the reordering window then grows)"
            )
        if len(lost) > 1:
            raise Unsupported(
                f"{len(lost)} of the {h.name}'s data segments in holes "
                "at once (PRR paces their retransmission)"
            )
        self.rack_retransmit(t, h, lost[0], h.rack_at)

    def sent_at(self, h: Host, key: tuple[int, bool], model_t: float) -> float:
        """When h's kernel sent the segment first: with a record, when the router took
        it in (the apps' stamps are before the syscall, the kernel's skb stamp after
        it: the router's view keeps the gap between two segments within tens of
        microseconds); else the model's time."""
        wire = h.wire.get(key)
        if self.obs is None or wire is None or (not key[1] and key[0] in h.resent):
            return model_t
        return self.obs.sent.get((h.name, *wire), model_t)

    def rack_retransmit(
        self, t: float, h: Host, lost: tuple[int, int, float], rack_at: tuple[float, int]
    ) -> None:
        """The hole is lost at once when it left more than the reordering window before
        what was SACKed, else when the reordering timer fires. Where the record cannot
        tell which (rack_wait picks the branch; Sim runs both), at once here covers a
        later SACK's doing too: the window reaches to the timer's latest."""
        gap = rack_at[0] - self.sent_at(h, (lost[0], False), lost[2])
        reo_hi = self.min_rtt_bound(h) / 4 + REO_MARGIN
        if len(h.sacked) + h.fin_sacked >= TCP_REORDERING:
            reo_hi = 0.0  # tcp_rack_reo_wnd(): dupthresh met, no reordering allowed
        if gap > reo_hi:
            self.rack_resend(t, h, lost, 0.0)
            return
        jiffy = 1 / self.k.hz
        j_lo = math.ceil(TCP_TIMEOUT_MIN_US / jiffy - 1e-9)
        j_hi = math.ceil((reo_hi - gap + TCP_TIMEOUT_MIN_US) / jiffy - 1e-9)
        self.pred.rack_choice = True
        if not self.rack_wait:
            self.rack_resend(t, h, lost, j_hi * jiffy + self.k.slack(j_hi * jiffy))
            return
        if j_lo != j_hi:
            raise Unsupported(f"RACK's reordering timer for the {h.name}'s data: {j_lo} or {j_hi} jiffies")
        # tcp_rack_mark_lost(): inet_csk_reset_xmit_timer(ICSK_TIME_REO_TIMEOUT), in
        # place of the loss probe; an ACK of the hole before it fires stops it
        self.arm(t, h, "reo", j_lo * jiffy)

    def reo_expired(self, t: float, h: Host, wait: float) -> None:
        """tcp_rack_reo_timeout(): the hole, still unacknowledged, is lost now."""
        lost = [e for e in h.flight if e[0] not in h.sacked and e[0] not in h.resent]
        if lost:
            self.rack_resend(t, h, lost[0], self.k.slack(wait))
        else:
            self.arm(t, h, "rto", h.rto)

    def rack_resend(self, t: float, h: Host, lost, late: float) -> None:
        seq, size, _sent = lost
        h.rack_done = h.recovery = h.data_rtx = True
        # tcp_retransmit_skb(): the first retransmission sets retrans_stamp, from which
        # tcp_write_timeout() counts the give-up (the loss probe does not; RACK's does:
        # gen-3021 on 6.18, tcp_retries2 = 3, no RTO 3.0 s after RACK's resend)
        h.first_rto = t if h.first_rto is None else h.first_rto
        h.slack += late
        self.send(t, h, ACK | PSH, "rack", late, length=size, seq=seq)
        for e in h.flight:
            if e[0] == seq:
                e[2] = t
        h.resent.add(seq)
        # tcp_xmit_retransmit_queue() (or tcp_rack_reo_timeout()) re-arms a full RTO
        # from the head's retransmission
        self.arm(t, h, "rto", h.rto)

    def min_rtt_bound(self, h: Host) -> float:
        """An upper bound of the kernel's min_rtt (tcp_min_rtt(), a minimum over its RTT
        samples): its first sample, the handshake's, as the router saw it with the
        hosts' own legs added (handshake_rtt()). The later samples the router sees
        lack those legs, so they may be below the kernel's (rtt_samples())."""
        samples = self.obs.rtt_samples.get(h.name) if self.obs is not None else None
        return max(samples[0], h.rtt) if samples else h.rtt


# tcp_rack_advance(): a SACK of a segment sent more than once may be of the original or
# of a copy, and RACK takes it only if its RTT from the last copy is at least min_rtt,
# which the router cannot measure closely enough (gen-7197 on 6.18: a probe's SACK
# 0.3 ms after it did not mark the hole lost; the RTO re-sent it 200 ms later).
AMBIGUOUS_SACK = "a SACK of the {}'s {} sent more than once (RACK takes it only past min_rtt)"


# How far the router's view of the kernel's min_rtt/4 may be below it: the hosts' own
# legs beyond what own_legs() measured (tens of microseconds here).
REO_MARGIN = 0.0002
