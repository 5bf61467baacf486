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
    """How long after its time the hook carried out one of its own timed faults while
    more than one segment waited in its queue behind it, with the proof; (0, "")
    without such a wait. The hook took nothing off its queue while it acted, and let
    what waited go in a burst once done: the router's kernel met those segments then,
    back to back, in an order and with gaps the record does not show (the 6.1 TCG
    guest, network-down: the link set down 1.78 s late, three of the client's data
    segments waiting behind it, and the ICMPs the router's rate limit let through for
    them were not those the model counts). One segment waiting is modelled: it meets
    the router's kernel when the act was done (check/established.py _link_down_at,
    gen-10219). Each fault's time, then its end, is paired in order with its events."""
    worst, proof = 0.0, ""
    for f in host_faults:
        if f.action not in HOOK_ACTS:
            continue
        due = [f.at] + ([f.until] if f.until is not None else [])
        acted = sorted(e.t for e in record.faults if e.action == f.action and e.host == f.host)
        for when, t in zip(due, acted):
            waited = [s for s in record.segments if when < s.t < t and not s.injected]
            if len(waited) > 1 and t - when > worst:
                worst = t - when
                proof = (
                    f"{f.describe()}: done at t={t:.3f}s, {worst * 1000:.0f} ms after t={when:g}s, "
                    f"with {len(waited)} segments waiting behind it from t={waited[0].t:.3f}s"
                )
    return worst, proof
