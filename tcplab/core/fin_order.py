"""One FIN order for the whole record. The router names segments with two
classifiers (issue 15): the hook's, fed the queued SYNs and FINs in queue order, names
the FINs (`fin` for the first, `peer-fin` for the other side's); the observer's, fed
everything in the order its packet socket got it, names the pure ACKs, `fin-ack` for
an ACK of the first FIN and `last-ack` for one of the other side's. Two FINs that
reach the router on its two links at one moment can come out of the two in different
orders (gen-12055 on 6.18: both stamped 1.003047 s; the hook named the client's FIN
`fin`, the observer had the server's first and named the client's ACK of it
`fin-ack`). The hook's order is the one its faults acted on, so the ACKs are named
by it: an ACK of the FIN named `fin` is `fin-ack`, of `peer-fin` is `last-ack`,
numbered again in the record's order. Pure."""

from __future__ import annotations

import dataclasses

from tcplab.core.events import SegmentSeen
from tcplab.core.segments import FIN

FIN_ACKS = ("fin-ack", "last-ack")


def agree_on_fin_order(segments: list[SegmentSeen]) -> list[SegmentSeen]:
    """`segments` in the router's order, with each ACK named for the FIN its ack
    covers as the FINs are named; unchanged where they already agree."""
    first: dict[int, str] = {}  # conn -> sender of the segment named `fin`
    for s in segments:
        if s.flags & FIN and s.name == "fin":
            first.setdefault(s.conn, s.sender)
    out, renamed = [], set()
    for s in segments:
        sender_of_fin = first.get(s.conn)
        if s.name in FIN_ACKS and sender_of_fin is not None:
            # fin-ack answers the first FIN, so comes from the other side; last-ack
            # answers the second, so from the side whose FIN came first
            name = "fin-ack" if s.sender != sender_of_fin else "last-ack"
            if name != s.name:
                s = dataclasses.replace(s, name=name)
                renamed.add(s.conn)
        out.append(s)
    if not renamed:
        return out
    counts: dict[tuple, int] = {}
    for i, s in enumerate(out):
        if s.conn in renamed and s.name in FIN_ACKS:
            key = (s.conn, s.sender, s.name)
            counts[key] = counts.get(key, 0) + 1
            if s.nth != counts[key]:
                out[i] = dataclasses.replace(s, nth=counts[key])
    return out
