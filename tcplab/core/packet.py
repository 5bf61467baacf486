"""Raw IPv4/TCP bytes -> Segment. Pure, and fast enough for the NFQUEUE callback
(struct, not scapy: the callback's latency is added to every forwarded segment)."""

from __future__ import annotations

import socket
import struct

from tcplab.core.segments import Segment

_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBB")


def parse_ipv4_tcp(packet: bytes) -> Segment | None:
    """None for anything that is not a well-formed IPv4 TCP segment."""
    if len(packet) < 20:
        return None
    ver_ihl, _tos, total, _id, _frag, _ttl, proto, _csum, src, dst = _IP.unpack_from(packet)
    ihl = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or proto != socket.IPPROTO_TCP or ihl < 20 or len(packet) < ihl + 20:
        return None
    sport, dport, seq, ack, off, flags = _TCP.unpack_from(packet, ihl)
    doff = (off >> 4) * 4
    # The header's total length, not the bytes we were given: the hook's queue copies
    # only the first bytes of each packet (tcplab/lab/hook/__main__.py).
    length = max(0, total - ihl - doff)
    return Segment(socket.inet_ntoa(src), sport, socket.inet_ntoa(dst), dport, flags, seq, ack, length)
