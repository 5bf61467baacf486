"""Rewriting and making IPv4/TCP packets as bytes, for the faults that change or make
up segments (strip-mss, forge, stale-syn). Pure: bytes in, bytes out; checksums
recomputed (RFC 791 header checksum, RFC 9293 3.1 TCP checksum over the pseudo-header).
"""

from __future__ import annotations

import socket
import struct

from tcplab.core.segments import ACK, RST

TCPOPT_EOL, TCPOPT_NOP, TCPOPT_MSS = 0, 1, 2  # RFC 9293 3.2
TCPOPT_TIMESTAMP = 8  # RFC 7323 3
DEFAULT_MSS = 536  # RFC 9293 3.7.1 (RFC 1122 4.2.2.6): what a sender may assume without it


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _split(packet: bytes) -> tuple[bytearray, bytearray, bytes]:
    ihl = (packet[0] & 0x0F) * 4
    total = struct.unpack_from("!H", packet, 2)[0]
    doff = (packet[ihl + 12] >> 4) * 4
    return (bytearray(packet[:ihl]), bytearray(packet[ihl : ihl + doff]), bytes(packet[ihl + doff : total]))


def _join(ip: bytearray, tcp: bytearray, payload: bytes) -> bytes:
    """Lengths and both checksums made right again."""
    struct.pack_into("!H", ip, 2, len(ip) + len(tcp) + len(payload))
    struct.pack_into("!H", ip, 10, 0)
    struct.pack_into("!H", ip, 10, checksum(bytes(ip)))
    struct.pack_into("!H", tcp, 16, 0)
    pseudo = bytes(ip[12:20]) + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp) + len(payload))
    struct.pack_into("!H", tcp, 16, checksum(pseudo + bytes(tcp) + payload))
    return bytes(ip + tcp) + payload


def options(packet: bytes) -> list[tuple[int, bytes]]:
    """The TCP options as (kind, data), in order."""
    _ip, tcp, _payload = _split(packet)
    out, i = [], 20
    while i < len(tcp):
        kind = tcp[i]
        if kind == TCPOPT_EOL:
            break
        if kind == TCPOPT_NOP:
            out.append((kind, b""))
            i += 1
            continue
        if i + 1 >= len(tcp) or tcp[i + 1] < 2:
            break  # malformed: stop, as the kernel's tcp_parse_options() does
        out.append((kind, bytes(tcp[i + 2 : i + tcp[i + 1]])))
        i += tcp[i + 1]
    return out


def ts_option(raw: str) -> tuple[int, int] | None:
    """(TSval, TSecr) of a packet's timestamp option (RFC 7323), from the hex the
    record keeps; None without one."""
    if not raw:
        return None
    try:
        found = options(bytes.fromhex(raw))
    except (ValueError, IndexError, struct.error):
        return None
    return next(
        (
            struct.unpack("!II", data[:8])
            for kind, data in found
            if kind == TCPOPT_TIMESTAMP and len(data) == 8
        ),
        None,
    )


def tsval_of(raw: str) -> int | None:
    """The TSval of a packet's timestamp option; None without one."""
    ts = ts_option(raw)
    return None if ts is None else ts[0]


def mss_of(packet: bytes) -> int | None:
    for kind, data in options(packet):
        if kind == TCPOPT_MSS and len(data) == 2:
            return struct.unpack("!H", data)[0]
    return None


def strip_mss(packet: bytes) -> bytes:
    """The packet with its MSS option overwritten by NOPs (length unchanged, so nothing
    else moves): the receiver then assumes the default MSS."""
    ip, tcp, payload = _split(packet)
    i = 20
    while i < len(tcp):
        kind = tcp[i]
        if kind == TCPOPT_EOL:
            break
        if kind == TCPOPT_NOP:
            i += 1
            continue
        if i + 1 >= len(tcp) or tcp[i + 1] < 2:
            break
        if kind == TCPOPT_MSS:
            tcp[i : i + tcp[i + 1]] = bytes([TCPOPT_NOP]) * tcp[i + 1]
        i += tcp[i + 1]
    return _join(ip, tcp, payload)


def with_seq(packet: bytes, seq: int) -> bytes:
    """The same packet with another sequence number (a stale copy of a SYN)."""
    ip, tcp, payload = _split(packet)
    struct.pack_into("!I", tcp, 4, seq & 0xFFFFFFFF)
    return _join(ip, tcp, payload)


def rst(
    src: str, sport: int, dst: str, dport: int, seq: int, ack: int | None = None, ident: int = 0
) -> bytes:
    """A bare RST (with ACK when `ack` is given). To be accepted at once it must carry
    exactly the receiver's RCV.NXT (RFC 5961 3.2; otherwise a challenge ACK)."""
    ip = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            40,
            ident & 0xFFFF,
            0x4000,
            64,
            socket.IPPROTO_TCP,
            0,
            socket.inet_aton(src),
            socket.inet_aton(dst),
        )
    )
    flags = RST | (ACK if ack is not None else 0)
    tcp = bytearray(
        struct.pack(
            "!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, (ack or 0) & 0xFFFFFFFF, 5 << 4, flags, 0, 0, 0
        )
    )
    return _join(ip, tcp, b"")
