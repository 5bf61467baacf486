"""A host's own data on the wire: Nagle, the retransmission timer it arms, and what a
tail loss probe or an RTO re-sends while data (or data and the FIN behind it) is
unacknowledged. One lost or held data segment, or the lost ACK of data, is followed
here; what needs SACK recovery (a hole at the receiver, a partial ACK after a
retransmission) is declined with the reason."""

from __future__ import annotations

import math

from tcplab.core.model.kernel import LAST_HOP
from tcplab.core.model.teardown.host import Host
from tcplab.core.model.teardown.params import MSS, TCP_INIT_CWND, Unsupported, rtt_estimate
from tcplab.core.model.teardown.simbase import SimBase
from tcplab.core.segments import ACK, FIN, PSH


# How much later than the app's call the kernel may put a segment on the wire (a slow
# machine's large write: 37 ms on 6.1, 110 ms on 6.12 under TCG) for the router's stamp to be taken as
# that segment's.
KERNEL_LAG_MAX = 0.5


class DataPath(SimBase):
    """Mixed into sim.Sim: sending data and retransmitting it."""

    def nagle_holds(self, h: Host) -> bool:
        """tcp_nagle_check() with Nagle on (the lab never sets TCP_NODELAY): a sub-MSS
        segment waits while an earlier sub-MSS segment is unacknowledged
        (tcp_minshall_check(): snd_sml after snd_una). Seen on 6.18, gen-6241 and
        gen-4286: the client's second 1-byte send waited 50 ms for the server's FIN,
        which acknowledged the first (its own ACK was dropped)."""
        return h.sml > h.una

    def send_new_data(self, t: float, h: Host, size: int, cause: str = "app") -> None:
        """One new data segment (tcp_write_xmit()): into the retransmission queue, and
        the timer armed for it (tcp_event_new_data_sent(), tcp_schedule_loss_probe();
        a loss probe's own new segment arms the RTO instead: data_probe())."""
        if h.rto_count:
            raise Unsupported(
                f"new data from the {h.name} while it recovers from an RTO "
                "(the loss state's congestion window)"
            )
        if h.timer_kind == "reo" and h.flight:
            raise Unsupported(
                f"new data from the {h.name} while RACK's reordering timer waits "
                "(a loss probe takes its place)"
            )
        if h.recovery and h.flight:
            raise Unsupported(
                f"new data from the {h.name} in RACK's recovery (proportional rate reduction paces it)"
            )
        if len(h.flight) >= TCP_INIT_CWND:
            raise Unsupported(f"more than the initial window of the {h.name}'s data unacknowledged")
        held = bool(h.flight)
        self.send(t, h, ACK | PSH, cause, h.slack, length=size)
        if held:
            self.cwnd_one(t, h, "more data")
        sent = self.kernel_sent(t, h)
        h.flight.append([h.snd, size, sent])
        if size < MSS:
            h.sml = h.snd + size  # tcp_minshall_update()
        h.snd += size
        if cause == "app":
            self.arm_after_send(t, h, sent)

    def cwnd_one(self, t: float, h: Host, what: str) -> None:
        """tcp_init_transfer(): a host whose SYN or SYN-ACK was sent more than twice
        starts with a congestion window of one segment (RFC 5681; `total_retrans > 1`),
        so `what`, just sent with data in flight, waited for that data's ACK, and the
        window then grows (slow start): not modelled. Where the record shows it leave
        within the race bound of the app's call anyway (the ACK was there), nothing
        was held; else it is not judged (gen-9144 on 6.18: two SYNs lost, the client's
        FIN held 2 ms until the server's FIN acknowledged its data)."""
        if self.obs is None or self.obs.handshake_retrans.get(h.name, 0) <= 1:
            return
        seen = self.obs.sent.get((h.name, *self.last_wire))
        if seen is not None and seen - LAST_HOP - t <= self.obs.race:
            return
        # said when the simulation ends (Sim.run()), so that what else it cannot
        # follow (a late handshake segment: UnsupportedLate) is still found first
        self.not_modelled = self.not_modelled or (
            f"{what} from the {h.name} with data in flight on a congestion window of one "
            "(its handshake segment was sent more than twice: tcp_init_transfer())"
        )

    def kernel_sent(self, t: float, h: Host) -> float:
        """When the kernel sent the segment just sent: with a record, when the router
        took it in (less the last hop), if that is later than the app's call. A slow
        machine sends a large write over tens of milliseconds (6.1 under TCG,
        broken-pipe: 10 segments 24-37 ms after send()), and the timers of each
        segment run from its own transmission (tcp_event_new_data_sent(), skb_mstamp)."""
        seen = None if self.obs is None else self.obs.sent.get((h.name, *self.last_wire))
        if seen is None or not 0 < seen - LAST_HOP - t < KERNEL_LAG_MAX:
            return t  # (further off: not the same segment, whatever its number)
        return seen - LAST_HOP

    def arm_after_send(self, t: float, h: Host, sent: float | None = None) -> None:
        """tcp_event_new_data_sent() restarts the RTO from the head's transmission
        (tcp_rearm_rto(): what is left of icsk_rto since the oldest unacknowledged
        segment left, tcp_rto_delta_us()), then tcp_write_xmit() ends with
        tcp_schedule_loss_probe(sk, false): a probe after 2 srtt + rto_min (one
        segment out) or + TCP_TIMEOUT_MIN (more), no later than that RTO."""
        sent = t if sent is None else sent
        left = self.rto_left(sent, h)
        if h.p.tlp:
            self.arm(t, h, "tlp", self.probe_wait(h, cap=left), sent)
        else:
            self.arm(t, h, "rto", left, sent)

    def rto_left(self, t: float, h: Host) -> float:
        """tcp_rto_delta_us(): icsk_rto less the time since the head of the
        retransmission queue was (re)transmitted, in whole jiffies (at least one)."""
        head = h.flight[0][2] if h.flight else t
        left = h.rto - (t - head)
        return max(math.ceil(left * self.k.hz - 1e-9), 1) / self.k.hz

    def release_nagle(self, t: float, h: Host) -> None:
        """An ACK past snd_sml lets the held segment go (tcp_ack() ->
        tcp_data_snd_check() -> tcp_push_pending_frames())."""
        if h.nagle and not self.nagle_holds(h) and not h.fin_sent and h.state != "CLOSE":
            size, h.nagle = h.nagle, 0
            self.send_new_data(t, h, size)

    def data_acked(self, t: float, h: Host, ack: int) -> None:
        """An ACK that advances snd_una over the host's data (tcp_clean_rtx_queue())."""
        newly = [s for s in h.flight if s[0] + s[1] <= ack]
        if h.fin_sent and newly and not h.rto_count and not any(s[0] in h.resent for s in newly):
            self.rtt_sample(h, t - newly[0][2])
        before = len(h.flight)
        h.flight = [s for s in h.flight if s[0] + s[1] > ack]
        h.sacked = {seq for seq in h.sacked if seq >= ack}
        if before and h.flight and h.data_rtx:
            # after a probe or an RTO the rest is the loss state's or RACK's
            # (tcp_process_loss(), tcp_xmit_retransmit_queue())
            raise Unsupported(
                f"a partial ACK of the {h.name}'s data after its retransmission (SACK/RACK recovery)"
            )
        if before and not h.flight:
            h.data_rtx = h.recovery = False  # snd_una past high_seq: the loss state ends
            if not h.fin_sent:
                # nothing left in flight: tcp_rearm_rto() stops the timer; a valid RTT
                # sample resets the backoff (tcp_ack_update_rtt()) and retrans_stamp
                # goes with the recovery that ended
                h.timer_gen += 1
                h.timer_kind = ""
                h.rto_count, h.first_rto = 0, None
        elif h.flight and not h.fin_sent and h.p.tlp and not h.recovery:
            # tcp_set_xmit_timer(): tcp_schedule_loss_probe(sk, true), at most a full RTO
            self.arm(t, h, "tlp", self.probe_wait(h))
        if h.nagle:
            # tcp_data_snd_check() runs after the segment's data and FIN were taken
            # (tcp_rcv_state_process()), so the released data carries their ACK
            # (gen-1031 on 6.18: the client's held byte went out acknowledging the FIN
            # that acknowledged what held it, with no ACK of its own before it)
            self.at(t, 2, "release", h.name)

    def rtt_sample(self, h: Host, m: float) -> None:
        """An ACK after the host's FIN left that acknowledges data of its never sent
        twice: tcp_clean_rtx_queue() times it from the oldest such segment's send
        (first_ackt; Karn: none re-sent), tcp_ack_update_rtt() feeds it to
        tcp_rtt_estimator() and tcp_set_rto() sets a new icsk_rto, which the timer the
        same ACK re-arms (tcp_rearm_rto()) and every later backoff start from. The
        samples before the FIN are the record's (observe.rtt_samples()); this one the
        simulation's own, as the ACK reaches the host in it (gen-16111 on 6.18: the
        server's reply, 0.1 s after the client's request and FIN, acknowledged the
        request, the FIN having been lost: the client's RTO went from 204 to 213 ms and
        its FIN's RTOs doubled from there). Only before an RTO expiry: after one, the
        head was re-sent and the sample would be the timestamps' (not modelled)."""
        h.samples.append(max(m, 0.0))
        h.rtt, h.rto = rtt_estimate(self.k, h.p, h.samples)

    def data_probe(self, t: float, h: Host) -> None:
        """tcp_send_loss_probe() with data and no FIN out: new data first, the segment
        Nagle holds (tcp_send_head(): sent by tcp_write_xmit() with TCP_NAGLE_OFF and
        push_one 2, which schedules no further probe); without any, the last segment of
        the retransmission queue again (skb_rb_last(), cut to one MSS). Either way
        tlp_high_seq is set (what an ACK of part of it does is not followed: data_rtx),
        then the RTO restarted from now: "Reset s.t. tcp_rearm_rto will restart timer
        from now" (icsk_pending cleared first, so a full icsk_rto). Seen on 6.18,
        gen-21224: the client's second 100 bytes, held by Nagle behind the first (its
        ACK delayed 1 s), left 3 ms after send() as the probe, not the first again."""
        h.data_rtx = True
        if h.nagle:
            size, h.nagle = h.nagle, 0
            self.send_new_data(t, h, size, cause="probe")
        else:
            seq, size, _ = h.flight[-1]
            h.resent.add(seq)
            self.send(t, h, ACK | PSH, "probe", h.slack, length=size, seq=seq)
            h.flight[-1][2] = t
        self.arm(t, h, "rto", h.rto)

    def rto_segment(self, t: float, h: Host) -> None:
        """tcp_retransmit_timer() -> tcp_retransmit_skb() of the head of the
        retransmission queue (one MSS of it). With only the FIN behind it,
        tcp_retrans_try_collapse() merges the FIN's empty skb into it (the head has
        room: at most an MSS of data; sysctl_tcp_retrans_collapse 1): data and FIN in
        one segment (seen on 6.18, gen-4286: the client's 1 byte and its FIN as one
        `peer-fin` at each RTO, after a probe that carried the FIN alone). The data
        segments after the head merge into it the same way while the whole fits one
        MSS and none was SACKed (tcp_can_collapse()): gen-6009 on 6.18, 100 bytes and
        536 held by Nagle then sent by the probe, both lost, re-sent at the RTO as one
        636-byte segment; gen-21224 alike with 100 and 100."""
        while len(h.flight) > 1 and h.flight[1][0] not in h.sacked and h.flight[0][1] + h.flight[1][1] <= MSS:
            h.flight[0][1] += h.flight.pop(1)[1]
        seq, size, _ = h.flight[0]
        h.data_rtx = True
        h.resent.add(seq)
        if len(h.flight) > 1 and h.fin_sent:
            raise Unsupported(
                f"an RTO with {len(h.flight)} of the {h.name}'s data "
                "segments and its FIN unacknowledged (the loss state "
                "re-sends the rest after the head's ACK)"
            )
        # a SACKed FIN is not merged (tcp_can_collapse(): TCPCB_SACKED_ACKED)
        flags = ACK | PSH | (FIN if h.fin_sent and not h.fin_sacked else 0)
        self.send(t, h, flags, "timer", h.slack, length=size, seq=seq)
        h.flight[0][2] = t
