"""PAWS at a TIME_WAIT socket, decided from the timestamps the record holds.

tcp_timewait_state_process() rejects a segment by tcp_paws_reject(), which is
tcp_paws_check(rx_opt, 0): rejected when its TSval is below tw_ts_recent,
`(s32)(ts_recent - tsval) > 0` (no TCP_PAWS_WINDOW here; the full socket's
tcp_paws_discard() allows one tick). The send times the model has cannot order two
segments sent within a millisecond (tcp_clock_ms() ticks once a millisecond), but
the record keeps every segment's bytes: the TSval of the segment that arrives, and,
in every segment the TIME_WAIT host sent, its TSecr, which is the host's ts_recent at
that moment (tcp_established_options(), tcp_v4_timewait_ack(): TSecr = ts_recent).

So each host's ts_recent is known as a range [lo, hi] of the peer's TSvals:
- pinned (lo = hi) by the TSecr of each segment the host sent that the record holds;
- then moved by what it accepts: in TIME_WAIT an in-window bare ACK sets tw_ts_recent
  to its TSval, as the orphan's FIN_WAIT2 minisocket does with the FIN
  (tcp_timewait_state_process()); a full socket stores a TSval no older than ts_recent
  when the segment starts at or before rcv_wup, the rcv_nxt its last segment sent
  announced (tcp_ack() -> tcp_replace_ts_recent()) - known exactly from that segment's
  ack in the record; where it is not, only `hi` moves.
A segment reaching TIME_WAIT with a TSval below lo is rejected (an ACK, rate-limited,
and the timer restarted), one at hi or above passes; in between the kernel's
ts_recent is not known and the model says so (its reason gives both TSvals).
"""

from __future__ import annotations

import math

from tcplab.core.craft import ts_option
from tcplab.core.model.prediction import X, Y
from tcplab.core.model.teardown.numbering import isns
from tcplab.core.model.teardown.params import SAME_SEGMENT
from tcplab.core.model.teardown.simbase import SimBase
from tcplab.core.segments import ACK, FIN, RST


def stamps(record, conn: int, origin: float) -> dict:
    """(sender, name, nth) -> (when the router took it in, TSval, TSecr, its ack
    relative to the peer's ISN), for the run's own segments with timestamps. TSvals
    and TSecrs are unwrapped around the first one seen of each clock."""
    isn = isns(record, conn)
    base: dict[str, int] = {}

    def unwrap(clock: str, v: int) -> int:
        b = base.setdefault(clock, v)
        return b + ((v - b + 2**31) % 2**32) - 2**31

    out = {}
    for s in record.segments:
        if s.conn != conn or s.injected or s.t is None:
            continue
        ts = ts_option(s.raw)
        peer = "server" if s.sender == "client" else "client"
        if ts is None or peer not in isn:
            continue
        out[(s.sender, s.name, s.nth)] = (
            s.t - origin,
            unwrap(s.sender, ts[0]),
            unwrap(peer, ts[1]) if ts[1] else None,
            (s.ack - isn[peer]) % 2**32,
        )
    return out


class Paws(SimBase):
    """Mixed into sim.Sim: each host's ts_recent as a range of the peer's TSvals."""

    def stamp_of(self, sender: str, name: str, nth: int, t: float, slack: float):
        """The record's stamps of the segment the model sends now, if the run's segment
        of that name and number is this one (sent when the model sends it)."""
        if self.obs is None:
            return None
        got = self.obs.stamps.get((sender, name, nth))
        if got is None or abs(got[0] - t) > slack + self.obs.race + SAME_SEGMENT:
            return None
        return got

    def ts_sent(self, h, name: str, nth: int, t: float, slack: float, flags: int, ack: int) -> int | None:
        """The host sends a segment: its TSecr pins the host's ts_recent, its ack is
        the rcv_wup it announced. Returns its TSval, for the peer's PAWS."""
        got = self.stamp_of(h.name, name, nth, t, slack)
        base = Y if h.name == "client" else X
        r = h.ts_recent_range
        if got is None or flags & RST or not flags & ACK or ack - base != got[3]:
            # not the run's segment of that name and number (it acknowledges something
            # else), or no timestamps: nothing known from it, and the rcv_wup it
            # announced is the kernel's, not known here
            if flags & ACK and not flags & RST:
                r[2] = None
            return None
        _t, tsval, tsecr, _rel_ack = got
        if tsecr is not None:
            r[0] = r[1] = tsecr
        r[2] = ack
        return tsval

    def ts_accepted(self, h, tsval: int | None, seq: int, length: int, flags: int, time_wait: bool) -> None:
        """A segment that passed PAWS was taken: what it does to ts_recent."""
        r = h.ts_recent_range
        if tsval is None:
            r[1] = math.inf
            return
        end = seq + length + (1 if flags & FIN else 0)
        if time_wait or (h.state == "FIN_WAIT2" and h.orphaned and flags & FIN):
            if time_wait and not (seq == h.rcv and not length and not flags & FIN):
                return  # out of the window: nothing stored
            r[0] = r[1] = tsval  # tw_ts_recent = the TSval, no questions asked
            return
        if flags & ACK and r[2] is not None and seq <= r[2] <= end:
            r[0] = max(r[0], tsval)  # tcp_replace_ts_recent(): stored if not older
        elif r[2] is not None and seq > r[2]:
            return  # beyond rcv_wup: not stored (tcp_ack(), !after(seq, rcv_wup))
        r[1] = max(r[1], tsval)

    def paws_rejects(self, h, tsval: int | None) -> bool | None:
        """tcp_paws_reject() at a TIME_WAIT socket: True, False, or None when the
        record does not tell."""
        lo, hi, _wup = h.ts_recent_range
        if tsval is None:
            return None
        if tsval < lo:
            return True
        if tsval >= hi:
            return False
        return None

    def paws_unknown(self, h, tsval: int | None) -> str:
        lo, hi, _wup = h.ts_recent_range
        if tsval is None:
            return (
                f"a segment reaching the {h.name}'s {h.state} within a timestamp tick "
                "of the newest, its TSval not in the record (PAWS may pass it or not)"
            )
        return (
            f"a segment reaching the {h.name}'s {h.state} with TSval {tsval} while its "
            f"ts_recent lies in [{lo}, {hi}] (PAWS may pass it or not)"
        )
