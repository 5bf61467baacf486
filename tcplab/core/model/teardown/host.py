"""One end of the simulated connection: its state, timers and sequence space."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tcplab.core.model.prediction import X, Y
from tcplab.core.model.teardown.params import TeardownParams
from tcplab.core.scenario import Step


@dataclass
class KeepaliveTimer:
    """SO_KEEPALIVE's timer of one socket (keepalive.py)."""

    idle: float
    interval: float
    count: int
    gen: int = 0
    probes_out: int = 0
    sent: int = 0  # probes sent so far (the router's keepalive #n)
    held: tuple | None = None  # an expiry held for the next ACK (ka_held())


class Host:
    def __init__(self, name: str, p: TeardownParams, rto: float, steps: list[Step], rtt: float = 0.001):
        self.name, self.p, self.rto, self.steps, self.rtt = name, p, rto, steps, rtt
        # the RTT samples rto and rtt (srtt) come from: the record's up to the FIN, or
        # the handshake's alone; DataPath.rtt_sample() adds those after it
        self.samples: list[float] = [rtt]
        self.woke_at = -1.0  # when a blocked call last returned: what came before caused it
        self.drain_until = -1.0  # data arriving until then was read by the call that returned
        self.recv_left = 0  # bytes the recv() waiting now still reads before it returns
        self.recv_upto = False  # ... and reads no more than that (recv: N)
        self.returned_at: float | None = None  # the waiting call's return, as the app stamped it
        self.timer_kind, self.timer_wait = "", 0.0  # the FIN timer armed now
        self.timer_due = math.inf  # ... and its nominal moment
        self.fires = 0  # how many times the FIN timer has fired
        self.last_fire: tuple[int, float, float] | None = None  # (its race step, when, window)
        self.held_fin: tuple | None = None  # an expiry held for the next ACK (gen, kind, wait)
        self.held_for_send = False  # ... or for the app's next send() (AFTER_SEND)
        self.timer_released: set = set()  # expiries already held once
        # a step held until the segment it raced arrives (AfterArrival): (step, that
        # segment's kind, how many of that kind are still to come)
        self.deferred: tuple[int, str, int] | None = None
        self.released: dict[int, float] = {}  # such steps, and when they then ran
        self.state = "ESTABLISHED"
        self.next_step = 0
        self.closing_step: int | None = None  # the close()/shutdown() step running now
        self.waiting = False  # in recv() (for data, the peer's FIN or an RST) or send()
        self.waiting_recv = False  # ... and it is a recv(): arriving data is read
        self.step_gen = 0  # the pending "step" event that counts (the others are stale)
        self.recv_gen = 0  # the SO_RCVTIMEO timer of the recv() waiting now
        self.rcvtimeo: float | None = None
        self.linger0 = False  # SO_LINGER {on, 0}: close() aborts with an RST
        self.gone = False  # the application was killed (or its host rebooted)
        self.orphaned = False
        self.fin_sent = self.fin_acked = self.got_fin = False
        self.ack_pending = False
        self.timer_gen = 0  # the FIN's retransmission timer
        self.tw_gen = 0  # the timewait (or FIN_WAIT2) timer
        self.rto_count = 0
        self.first_rto: float | None = None
        self.slack = 0.0  # timer lateness along this host's FIN chain
        self.first_rto_slack = 0.0  # what of it had built up by the first RTO expiry
        # Sequence space: snd is where this host's FIN goes (after all its data), rcv
        # what it expects next from the peer (its rcv_nxt); unread, bytes not yet read.
        self.snd = X + 1 if name == "client" else Y + 1
        self.rcv = Y + 1 if name == "client" else X + 1
        self.unread = 0
        self.una = self.snd  # the peer has acknowledged everything before this (snd_una)
        # keepalive.py: SO_KEEPALIVE's timer once the app set it, and when the socket
        # last took a segment (None: not yet asked, the handshake's then)
        self.keepalive: KeepaliveTimer | None = None
        self.heard: float | None = None
        # paws.py: ts_recent as a range of the peer's TSvals, and the rcv_wup of the
        # record's last segment of this host's that announced it
        self.ts_recent_range: list = [-math.inf, math.inf, None]
        self.rcv_wup = self.rcv  # rcv_nxt when this host last sent (announced its window)
        self.ts_recent = -1.0  # the newest TSval (send time) seen from the peer
        self.tw_oow_at = -1e9  # the timewait socket's last rate-limited ACK
        self.oow_at = -1e9  # the full socket's last rate-limited (challenge) ACK
        # the last ACK that moved rcv_wup: when, and rcv_wup before it (backlog_ack())
        self.wup_at: float | None = None
        # when a segment closed the full socket (races.py lost_in_handover())
        self.closed_by_segment: float | None = None
        self.wup_before = 0
        self.unsent = 0  # bytes beyond the initial window, waiting for ACKs
        # data sent and not yet acknowledged, oldest first: [seq, length, last sent]
        self.flight: list[list] = []
        self.sml = self.snd  # snd_sml: the end of the last sub-MSS segment sent
        self.nagle = 0  # bytes of a sub-MSS segment Nagle holds back (tcp_nagle_check)
        self.data_rtx = False  # data in flight was re-sent (a probe or an RTO)
        # A hole (core/model/teardown/sack.py). As receiver: segments queued beyond
        # rcv_nxt, (seq, end, with a FIN). As sender: the seqs of data in flight the
        # peer SACKed, whether it SACKed the FIN, when the FIN was last sent, the latest
        # send time among what was SACKed (rack.mstamp), whether RACK re-sent data
        # (and the loss state that followed: no probes), and what each segment was called on the
        # wire at its first sending ((seq, FIN alone) -> (name, nth)).
        self.ofo: list[tuple[int, int, bool]] = []
        self.sacked: set[int] = set()
        self.fin_sacked = False
        self.fin_at: float | None = None
        self.fin_sends = 0
        self.resent: set[int] = set()  # seqs of data re-sent (probe, RTO, RACK)
        self.rack_at: tuple[float, int] = (-1.0, 0)
        self.rack_done = self.recovery = False
        self.wire: dict[tuple[int, bool], tuple[str, int]] = {}
