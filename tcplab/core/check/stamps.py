"""How far behind the kernel the router's stamps ran: the record's times are the
router's, and a hook that could not take segments off its queue for a while (a
set_link() that blocked it 0.65 s in a TCG-emulated 6.1 guest, gen-5016 of the
generated slice) stamps them when it gets to them. The kernel's own moment of every
retransmission is on the record too (the tcp_retransmit_skb tracepoint, fired in
__tcp_retransmit_skb() for RTO, loss-probe and fast retransmissions alike), so each
retransmission the router saw can be set beside the kernel's."""

from __future__ import annotations

from tcplab.core.check.base import describe_segment
from tcplab.core.record import Record

# The tracepoint and the router's stamp are one clock; a segment the router stamped
# this much before its tracepoint means the pairing is not the right one.
CAUSALITY = 0.001


def stamps_behind(record: Record) -> tuple[float, str]:
    """The worst lag, in this run, from a host's kernel retransmitting a segment to the
    router's stamp of it, with the proof; (0, "") when the record cannot tell.

    Per host and connection, the tracepoint's retransmissions (err=0: sent) and the
    host's retransmitted segments at the router are paired in time order, which gives
    the smallest worst lag of any pairing that keeps each segment after its
    retransmission (so never more than the truth). Where the counts differ (a
    retransmission the router never saw) or the order breaks causality, nothing is
    concluded."""
    worst, proof = 0.0, ""
    events: dict[tuple, list[float]] = {}
    for k in record.kernel:
        if k.event != "tcp_retransmit_skb" or ("err=" in k.detail and "err=0" not in k.detail):
            continue
        ends = k.detail.split()[:3]  # "A:p -> B:q ..."
        if len(ends) == 3 and ends[1] == "->":
            events.setdefault((k.host, ends[0], ends[2]), []).append(k.t)
    segments: dict[tuple, list] = {}
    for s in record.segments:
        if s.retransmission and not s.injected and s.name not in ("syn-ack",):
            key = (s.sender, f"{s.src}:{s.sport}", f"{s.dst}:{s.dport}")
            segments.setdefault(key, []).append(s)
    for key, sent in events.items():
        seen = sorted(segments.get(key, ()), key=lambda s: s.t)
        if len(seen) != len(sent):
            continue
        pairs = list(zip(sorted(sent), seen))
        if any(s.t < t - CAUSALITY for t, s in pairs):
            continue
        for t, s in pairs:
            if s.t - t > worst:
                worst = s.t - t
                proof = (
                    f"{describe_segment(s)} reached the router {worst * 1000:.0f} ms after "
                    f"the {key[0]}'s kernel retransmitted it (tcp_retransmit_skb at t={t:.3f}s)"
                )
    return worst, proof


# The hook's own timed actions (lab/hook/faults.py FaultHook.act): a link set down or
# up, a host made silent or brought back. Each is logged once done.
HOOK_ACTS = ("link-down", "crash", "reboot")


def hook_acted_late(host_faults, record: Record) -> tuple[float, str]:
    """How long after its time the hook carried out the latest-done of its own timed
    faults, with the proof; (0, "") without one. While it acted it took nothing off its
    queue: every segment queued meanwhile met the router's kernel that much later than
    its stamp says (the 6.1 TCG guest, network-down: the link set down 1.78 s late,
    three of the client's data segments waiting behind it, and the ICMPs their drops drew
    all came at once, against the router's rate limit as the model counts it). Paired
    in order: each fault's time, then its end, with that fault's events."""
    worst, proof = 0.0, ""
    for f in host_faults:
        if f.action not in HOOK_ACTS:
            continue
        due = [f.at] + ([f.until] if f.until is not None else [])
        acted = sorted(e.t for e in record.faults if e.action == f.action and e.host == f.host)
        for when, t in zip(due, acted):
            if t - when > worst:
                worst = t - when
                proof = f"{f.describe()}: done at t={t:.3f}s, {worst * 1000:.0f} ms after t={when:g}s"
    return worst, proof
