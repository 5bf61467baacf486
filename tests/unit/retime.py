"""Bending a record so that a host's kernel, not the router, sent a segment later: the
segment's router stamps and the kernel's own moment of it move together. The kernel's
moment of a retransmission is on the record (the tcp_retransmit_skb tracepoint), and
a stamp moved without it reads as the router stamping it late, which the judge takes
for the lab's slowness (core/check/stamps.py), not the kernel's."""

from __future__ import annotations


def tracepoint_of(run: dict, seg: dict) -> dict | None:
    """The tcp_retransmit_skb event of a retransmitted segment: its sender's, on its
    4-tuple, the latest at or before the router's stamp of it (None: not one)."""
    if not seg.get("retransmission"):
        return None
    ends = f"{seg['src']}:{seg['sport']} -> {seg['dst']}:{seg['dport']}"
    sent = [
        e
        for e in run["events"]
        if e.get("kind") == "kernel"
        and e.get("event") == "tcp_retransmit_skb"
        and e.get("host") == seg["from"]
        and e.get("detail", "").startswith(ends)
        and e["t"] <= seg["t"] + 0.001
    ]
    return max(sent, key=lambda e: e["t"]) if sent else None


def moved(run: dict, segs: list[dict], by: float) -> dict:
    """The run with these segments (events of `run`, by identity) sent `by` later by
    their kernel: stamps, release and tracepoint."""
    marks = {id(s) for s in segs} | {id(k) for k in map(lambda s: tracepoint_of(run, s), segs) if k}

    def later(e):
        if id(e) not in marks:
            return e
        out = {**e, "t": e["t"] + by}
        if e.get("t_out") is not None:
            out["t_out"] = e["t_out"] + by
        if e.get("t_end") is not None:
            out["t_end"] = e["t_end"] + by
        return out

    return {**run, "events": [later(e) for e in run["events"]]}
