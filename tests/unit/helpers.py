"""Constructed segments for the pure core's tests: a client and a server that speak
in sequence numbers, with no kernel."""

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


__all__ = ["ACK", "FIN", "RST", "SYN", "C", "S", "X", "Y", "c2s", "s2c", "handshake", "client_close_4way"]
