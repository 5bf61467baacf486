"""The races the teardown simulator notes: an app call and a segment reaching its host
closer than the stamps can order, a timer and the ACK that may beat it in its bucket,
which of two FINs the router saw first, and a segment on another CPU while the one
before it closed the full socket. predict.py simulates each one's other order (a shift
of the call, held or moved before; the segment lost); here they are found, and a call
held for the segment it raced is let go."""

from __future__ import annotations

from tcplab.core.model.prediction import X, Y
from tcplab.core.model.teardown.host import Host
from tcplab.core.model.teardown.params import SEND_RACED, TIMER_RACED, AfterArrival
from tcplab.core.model.teardown.prediction import Race
from tcplab.core.model.teardown.simbase import SimBase
from tcplab.core.segments import ACK, FIN, RST

# the names the order of the two FINs at the router decides (segments.py _name)
ORDER_NAMED = ("fin", "peer-fin", "fin-ack", "last-ack")


class Races(SimBase):
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

    def lost_in_handover(self, t: float, h: Host, args: tuple) -> bool:
        """A segment processed on one CPU while another closes the full socket it was
        looked up to: tcp_v4_rcv() found the full socket before the other CPU unhashed
        it, waited for its lock in bh_lock_sock_nested(), and then
        tcp_rcv_state_process() found TCP_CLOSE and discarded the segment (drop reason
        TCP_CLOSE), neither answered nor seen by what replaced the socket (the kernel's
        own comment at the orphan's tcp_time_wait(sk, TCP_FIN_WAIT2, tmo): "We still
        can lose it now, if it spins in bh_lock_sock()"). gen-18088 on 6.18: the
        client's ACK of the server's FIN and its own FIN left the router 4 us apart;
        the orphaned server went to its FIN_WAIT2 minisocket and the FIN went
        unanswered until its retransmission 0.21 s later. With two or more CPUs
        (Kernel.cpus), for a segment reaching the host within the race bound after the
        one that closed the full socket, both are simulated: taken by what replaced it
        (main), and lost (`handover_lost`)."""
        gone = h.closed_by_segment
        if self.obs is None or self.k.cpus < 2 or gone is None or t - gone > self.obs.race:
            return False
        self.pred.handover_choice = (h.name, self.describe_arrival(args), t - gone)
        return self.handover_lost

    def note_race(self, t: float, h: Host, i: int, call: str) -> None:
        """An app call that a segment reached the same host within the race bound of,
        before its stamp: the stamps cannot say which came first (Observed.race). Each
        such segment is a race of its own (the call may have reached the kernel
        before any of them); those arriving after the stamp, Receive.arrive() notes."""
        if (h.name, i) in self.shifts:
            return
        assert self.obs is not None  # step() asks only with a record
        # A pure ACK matters to a close() too: after an abort it draws an RST
        # (gen-4284: linger 0, the data's ACK and the close() 0.2 ms apart).
        acks_too = call in ("close", "shutdown")
        for at, what, counts in self.arrived[h.name]:
            if t - at <= self.obs.race and at > h.woke_at and (counts or acks_too):
                self.races.append(Race(h.name, i, call, t, at, what, matters=counts))
                if call == "recv":  # only the first that has something for it (RACING_CALLS)
                    return
        due = h.timer_due
        if (
            call == "send"
            and h.timer_kind in ("tlp", "rto")
            and h.flight
            and not h.fin_sent
            and t < due <= t + 1 / self.k.hz + self.obs.race
            and self.first_on_the_wire(h, due, t) != "send"
        ):
            # The model fires a timer at the last moment its whole jiffies allow (arm());
            # the kernel counts them from the tick before the send that armed it
            # (expires = jiffies + n), so it fires up to a tick sooner, maybe before this
            # send() (the other side of next_send(): gen-21224's send() came 3.5 ms
            # before the probe's moment, which can go either way)
            self.races.append(Race(h.name, i, call, t, due, TIMER_RACED))

    def first_on_the_wire(self, h: Host, due: float, call: float) -> str | None:
        """Which came first by the record, the host's send() stamped at `call` or its
        retransmission timer due at `due` (which may fire up to a tick sooner): the
        first data segment the router saw from the host from then on carries the next
        new sequence number (the send's data, or the loss probe's with it: "send") or
        an earlier one (the probe's or the RTO's re-send: "timer"). None where the run
        has none there, or one beyond what the model has sent (it went elsewhere
        before): both orders are simulated. gen-3213 on 6.18: the 1 byte sent 3.5 ms
        before the probe's moment went out at once, beyond the hole RACK then filled."""
        assert self.obs is not None  # races are noted only with a record
        since = min(call, due - 1 / self.k.hz) - self.obs.race
        seen = sorted(
            (t, key)
            for key, t in self.obs.sent.items()
            if key[:2] == (h.name, "data") and t >= since and key in self.obs.contents
        )
        if not seen:
            return None
        new = (h.snd - (X if h.name == "client" else Y)) % 2**32
        seq = self.obs.contents[seen[0][1]][0]
        return "send" if seq == new else "timer" if (new - seq) % 2**32 < 2**31 else None

    def undefer_at(self, t: float, h: Host, shift: AfterArrival) -> float:
        """When a call held for what it raced goes all the same: the race bound after
        its stamp, or, held for its host's timer, right after that timer's moment."""
        assert self.obs is not None  # a shift is a race a record showed
        if shift.what == TIMER_RACED:
            return h.timer_due + 2e-6
        return t + self.obs.race

    def note_fin_order(self, t: float, h: Host) -> None:
        """Both FINs on their way within the race bound: which one the router names
        `fin` is the order they reach it (segments.py _name), not the kernels' doing,
        and a fault that picks FINs (or their ACKs) by name hits the one that came
        first. The later close() is simulated before the other's FIN too (gen-8051 on
        6.18: both close() calls at one nominal moment, `drop: fin from: client`; the
        server's FIN reached the router first, so the client's was `peer-fin` and went
        through, and both hosts went through CLOSING). Without such a fault the names
        alone differ, and the check reads them as the router named them
        (check/teardown.py _as_the_router_named)."""
        other, i = self.peer(h), h.closing_step
        if (
            self.obs is None
            or i is None
            or (h.name, i) in self.shifts
            or other.fin_sends != 1
            or other.fin_at is None
            or t - other.fin_at > self.obs.race
            or not any(f.segment in ORDER_NAMED for f in self.faults)
        ):
            return
        self.races.append(
            Race(h.name, i, h.steps[i].call, t, other.fin_at, f"the {other.name}'s FIN at the router")
        )

    def undefer(self, t: float, h: Host, i: int) -> None:
        """A call held for the segment it raced (AfterArrival), which has not come by
        the end of the race bound: the kernel acted on the call by then all the same."""
        if h.deferred is not None and h.deferred[0] == i:
            self.release_deferred(t, h)

    def release_deferred(self, t: float, h: Host) -> None:
        assert h.deferred is not None  # its callers found a call deferred
        i = h.deferred[0]
        h.released[i] = t
        h.deferred = None
        self.schedule_step(t, h)

    def note_timer_race(self, t: float, h: Host, step: int, wait: float) -> None:
        """A retransmission timer fires anywhere in [due, due + Kernel.slack(wait)]
        (its timer-wheel bucket): an ACK arriving within that window may come first and
        cancel it (seen on 6.18, gen-2025: the ACK of data and FIN 4.2 ms after the send,
        the probe due at 4 ms, no probe sent)."""
        assert self.obs is not None  # fin_timer() asks only with a record
        window = self.k.slack(wait) + self.obs.race
        near = [
            qt
            for qt, _p, _n, what, args in self.q
            if what == "arrive" and args[0] == h.name and args[1] & ACK and t < qt <= t + window
        ]
        if near:
            self.races.append(
                Race(
                    h.name, step, "timer", t, min(near), "the ACK of its " + ("FIN" if h.fin_sent else "data")
                )
            )
            return
        # The app's send() stamped within that window may have reached the kernel first:
        # its new data then goes out (or waits for Nagle) before the expiry, which, a
        # loss probe, sends what Nagle holds (tcp_send_loss_probe(): tcp_send_head()
        # first), and a send re-arms the timer (tcp_schedule_loss_probe()). gen-21224 on
        # 6.18: send() 3.5 ms before the probe's nominal moment; a few ms later, and its
        # stamp is inside the bucket.
        call = self.next_send(h, t, window)
        if call is not None and not h.fin_sent and h.flight and self.first_on_the_wire(h, t, call) != "timer":
            self.races.append(Race(h.name, step, "timer", t, call, SEND_RACED))

    def next_send(self, h: Host, t: float, window: float) -> float | None:
        """When the host's app made its next call, if that is a send() within
        (t, t + window] by the record's stamps."""
        i = h.next_step
        if i >= len(h.steps) or h.steps[i].call != "send":
            return None
        due = self.due(h, i)
        return due if due is not None and t < due <= t + window else None
