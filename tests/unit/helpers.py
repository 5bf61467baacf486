"""Constructed segments for the pure core's tests: a client and a server that speak
in sequence numbers, with no kernel."""

from tcplab.core.events import SegmentSeen
from tcplab.core.segments import ACK, FIN, RST, SYN, Segment

C, S = "198.18.7.2", "198.19.7.2"
CP, SP = 40000, 8080
X, Y = 1000, 5000  # client and server ISNs


def c2s(flags, seq, ack=0, length=0, sport=CP):
    return Segment(C, sport, S, SP, flags, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, length)


def s2c(flags, seq, ack=0, length=0, dport=CP):
    return Segment(S, SP, C, dport, flags, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, length)


def handshake():
    return [c2s(SYN, X), s2c(SYN | ACK, Y, X + 1), c2s(ACK, X + 1, Y + 1)]


def client_close_4way(x=X + 1, y=Y + 1):
    """Client closes first; four segments."""
    return [c2s(FIN | ACK, x, y), s2c(ACK, y, x + 1), s2c(FIN | ACK, y, x + 1), c2s(ACK, x + 1, y + 1)]


def seen(t, sender, name, flags, nth=1, fate="delivered", length=0, conn=1, **more) -> SegmentSeen:
    """A segment as the router recorded it: left at once when delivered (t_out)."""
    return SegmentSeen(
        t=t,
        name=name,
        nth=nth,
        sender=sender,
        flags=flags,
        seq=more.pop("seq", 1),
        ack=more.pop("ack", 1),
        length=length,
        fate=fate,
        retransmission=nth > 1,
        conn=conn,
        t_out=more.pop("t_out", t + 0.0001 if fate == "delivered" else None),
        **more,
    )


__all__ = [
    "ACK",
    "FIN",
    "RST",
    "SYN",
    "C",
    "S",
    "X",
    "Y",
    "c2s",
    "s2c",
    "handshake",
    "client_close_4way",
    "seen",
]
