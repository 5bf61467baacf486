"""Keepalive inside the teardown: the socket's keepalive timer while the connection
lives, and what closing does to it (net/ipv4/tcp_timer.c, tcp.c, tcp_input.c).

- On: the `keepalive` step is SO_KEEPALIVE, then TCP_KEEPIDLE/INTVL/CNT for the values
  it names (lab/sockets.py). tcp_set_keepalive() arms the timer keepalive_time_when()
  from now; TCP_KEEPIDLE (tcp_sock_set_keepidle()) re-arms it for what is left of the
  idle time since the last segment received (keepalive_time_elapsed(): the later of
  icsk_ack.lrcvtime, data, and rcv_tstamp, any ACK tcp_ack() took), or at once.
- tcp_keepalive_timer(): nothing in CLOSE (the full socket gone: a timewait socket
  has no keepalive); for an orphan in FIN_WAIT2 the timer is the FIN_WAIT2 timeout
  (tcp_fin_time(), modelled apart: no probes). With data or a FIN in flight, or data
  unsent (packets_out, the write queue: FIN_WAIT1, CLOSING, LAST_ACK until the FIN is
  ACKed), it re-arms for a whole idle time. Else, idle since the last segment received
  for the idle time: the expiry that finds `count` probes unanswered sends an RST
  (tcp_send_active_reset()) and aborts (tcp_write_err(): ETIMEDOUT, recv() woken);
  otherwise a probe (tcp_write_wakeup() -> tcp_xmit_probe_skb(): a bare ACK with seq
  snd_una - 1), icsk_probes_out + 1, and the next expiry an interval later. Not idle
  long enough: re-armed for what is left.
- An ACK the socket takes (tcp_ack(): not older than snd_una) sets rcv_tstamp and
  icsk_probes_out = 0; data sets lrcvtime. A probe is out of the peer's window: it is
  answered by tcp_validate_incoming()'s duplicate ACK, at most one per
  tcp_invalid_ratelimit (the model's out_of_window()), and does not count as heard.

With a record, the chain goes on from each probe as the router saw it (the kernel
re-arms the timer when it runs), so each probe is judged from the one before, within
that expiry's timer-wheel lateness.
"""

from __future__ import annotations


from tcplab.core.faults import silencing
from tcplab.core.model.kernel import LAST_HOP
from tcplab.core.model.teardown.host import Host, KeepaliveTimer
from tcplab.core.model.teardown.simbase import SimBase
from tcplab.core.model.teardown.params import AFTER_NEXT, TeardownParams, Unsupported
from tcplab.core.model.teardown.prediction import Race
from tcplab.core.segments import ACK, RST

ANCHOR_EARLY = 0.010  # a recorded probe this much before the model's is still this one
ANCHOR_LATE = 0.050  # ... and this much after its latest (the check's slop cap, and more)


class Keepalive(SimBase):
    """Mixed into sim.Sim: each host's keepalive timer."""

    def heard_at(self, h: Host) -> float:
        if h.heard is None:
            h.heard = self.handshake_heard(h)
        return h.heard

    def handshake_heard(self, h: Host) -> float:
        """The last segment the host took in the handshake, with a record (t = 0
        before a run): the client's first SYN-ACK, the server's ACK completing it (or
        whatever of the client's completed it: tcp_check_req())."""
        if self.obs is None:
            return 0.0
        got = [
            t
            for (sender, name, _n), t in self.obs.arrivals.items()
            if (h.name == "client" and sender == "server" and name == "syn-ack")
            or (h.name == "server" and sender == "client" and name != "syn")
        ]
        return min(got) + LAST_HOP if got else 0.0

    def keepalive_on(self, t: float, h: Host, arg) -> None:
        """The keepalive step: SO_KEEPALIVE, then the TCP_KEEP* options it names."""
        if h.state == "CLOSE" or h.keepalive is not None:
            return  # tcp_set_keepalive(): nothing in CLOSE, nothing if already on
        p: TeardownParams = h.p
        arg = arg if isinstance(arg, dict) else {}
        timer = KeepaliveTimer(
            float(p.keepalive_time if arg.get("idle") is None else arg["idle"]),
            float(p.keepalive_intvl if arg.get("interval") is None else arg["interval"]),
            int(p.keepalive_probes if arg.get("count") is None else arg["count"]),
        )
        h.keepalive = timer
        if arg.get("idle") is None:  # tcp_set_keepalive(): keepalive_time_when() from now
            self.ka_arm(t, h, timer.idle, 0.0)
        else:  # tcp_sock_set_keepidle(): what is left since the last segment received
            self.ka_arm(t, h, max(0.0, self.heard_at(h) + timer.idle - t), 0.0)

    def ka_arm(self, t: float, h: Host, wait: float, carried: float) -> None:
        """inet_csk_reset_keepalive_timer(); `carried`: how much later than t it may
        really be now (an expiry not re-anchored on a probe of the record)."""
        timer = h.keepalive
        assert timer is not None
        timer.gen += 1
        self.at(t + wait, 2, "ka_timer", h.name, timer.gen, t, wait, carried)

    def keepalive_heard(self, t: float, h: Host, flags: int, ack: int, length: int) -> None:
        """A segment the socket took: tcp_ack() (rcv_tstamp, icsk_probes_out = 0) for
        an ACK not older than snd_una, tcp_event_data_recv() (lrcvtime) for data."""
        if flags & RST:
            return
        if (flags & ACK and ack >= h.una) or length:
            h.heard = t
            timer = h.keepalive
            if timer is not None and flags & ACK and ack >= h.una:
                timer.probes_out = 0
                self.ka_release(t, h)

    def keepalive_timer(self, t: float, h: Host, gen: int, armed: float, wait: float, carried: float) -> None:
        timer = h.keepalive
        if timer is None or gen != timer.gen:
            return
        if h.state in ("CLOSE", "TIME_WAIT") or (h.state == "FIN_WAIT2" and h.orphaned):
            return  # no full socket, or its timer is the FIN_WAIT2 timeout's
        # how late this expiry may be: its own wheel lateness, and what it carries
        late = carried + self.k.slack(wait)
        if (h.fin_sent and not h.fin_acked) or h.flight or h.unsent or h.nagle:
            self.ka_arm(t, h, timer.idle, late)  # "alive without keepalive"
            return
        elapsed = t - self.heard_at(h)
        if elapsed < timer.idle - 1e-9:
            # keepalive_time_when() - elapsed: due at the last segment heard + idle; an
            # expiry late enough may already find it idle (then it probes at once)
            left = timer.idle - elapsed
            latest = max(t + left + self.k.slack(left), t + late)
            self.ka_arm(t, h, left, latest - (t + left))
            return
        if self.ka_held(t, h, timer, late, (gen, armed, wait, carried)):
            return
        if timer.probes_out >= timer.count:
            self.abort(t, h, "timer")  # tcp_send_active_reset(), tcp_write_err()
            return
        if silencing(self.host_faults, self.peer(h).name, h.name, t) is not None or any(
            f.action == "link-down" and f.in_force(t) for f in self.host_faults
        ):
            raise Unsupported(f"{h.name} keepalive probes into a silent peer (the established model's)")
        timer.probes_out += 1
        timer.sent += 1
        self.send(t, h, ACK, "timer", late, seq=h.una - 1)
        fired = self.probe_seen(h, timer.sent, t, late)
        if fired is None:
            self.ka_arm(t, h, timer.interval, late)
        else:  # the kernel re-armed the timer when it really ran
            self.ka_arm(fired, h, timer.interval, 0.0)

    def ka_held(self, t: float, h: Host, timer: KeepaliveTimer, late: float, args: tuple) -> bool:
        """The expiry fires anywhere in its timer-wheel bucket: an ACK arriving within it
        may come first, reset icsk_probes_out and the idle time, and so make the expiry
        re-arm instead of probing or aborting (gen-7227 on 6.18: the answer to a probe
        held 1 s came 4 ms after the expiry was due, and no RST followed). Both orders
        are simulated: a race, whose other order (AFTER_NEXT) holds the expiry until
        just after the next ACK the host takes, at the latest to the bucket's end. The
        ACK may still be on its way to the peer's kernel then (the answer to a probe):
        any arrival at either host within the bucket makes the race."""
        if self.obs is None:
            return False
        key = (h.name, -1000 - timer.sent)  # this expiry, as a race's step
        window = late + self.obs.race
        near = [
            qt
            for qt, _p, _n, what, a in self.q
            if what == "arrive" and not a[1] & RST and t < qt <= t + window
        ]
        if not near:
            return False
        if self.shifts.get(key) == AFTER_NEXT and key not in self.ka_released:
            self.ka_released.add(key)
            timer.held = args
            self.at(t + window, 2, "ka_timer_latest", h.name, args[0])
            return True
        if key not in self.shifts and not any(r.host == h.name and r.step == key[1] for r in self.races):
            self.races.append(Race(h.name, key[1], "timer", t, min(near), "the ACK of its keepalive probe"))
        return False

    def ka_release(self, t: float, h: Host, gen: int | None = None) -> None:
        """The held expiry runs now: right after an ACK the host took, or at the end of
        its bucket (`gen`: the timer it was, if it is still the same)."""
        timer = h.keepalive
        if timer is None or timer.held is None or (gen is not None and gen != timer.held[0]):
            return
        args, timer.held = timer.held, None
        self.at(t + 1e-6, 2, "ka_timer", h.name, *args)

    def probe_seen(self, h: Host, nth: int, t: float, late: float) -> float | None:
        """When the router took in the run's probe #nth, if it is this one."""
        if self.obs is None:
            return None
        seen = self.obs.sent.get((h.name, "keepalive", nth))
        if seen is None or not t - ANCHOR_EARLY <= seen <= t + late + ANCHOR_LATE:
            return None
        return seen
