"""Helpers for the app agent's less ordinary steps: socket options, a SYN flood from
spoofed addresses, and the namespace's TCP counters. IO, but no lab plumbing: the App
class (tcplab/lab/app.py) calls them.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import time

from tcplab.core.craft import checksum  # RFC 1071, as the router's forged segments use

Option = tuple[int, int, object]  # (level, optname, value) for setsockopt()


def linger(seconds: int) -> list[Option]:
    # struct linger {int l_onoff; int l_linger;}: on with 0 s makes close() abort the
    # connection with an RST (tcp_close(): "sk->sk_lingertime == 0" -> tcp_disconnect).
    return [(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, seconds))]


def keepalive(arg) -> list[Option]:
    """`on` (True): SO_KEEPALIVE with the namespace's tcp_keepalive_* sysctls; a
    mapping also sets TCP_KEEPIDLE / TCP_KEEPINTVL / TCP_KEEPCNT (whole seconds)."""
    opts: list[Option] = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    if isinstance(arg, dict):
        for key, opt in (
            ("idle", socket.TCP_KEEPIDLE),
            ("interval", socket.TCP_KEEPINTVL),
            ("count", socket.TCP_KEEPCNT),
        ):
            if arg.get(key) is not None:
                opts.append((socket.IPPROTO_TCP, opt, int(arg[key])))
    return opts


def syncnt(count: int) -> list[Option]:
    return [(socket.IPPROTO_TCP, socket.TCP_SYNCNT, count)]


def rcvtimeo(seconds: float) -> list[Option]:
    # struct timeval; a blocking recv() then fails with EAGAIN after that long.
    sec = int(seconds)
    return [
        (socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", sec, int(round((seconds - sec) * 1e6))))
    ]


def apply(sock: socket.socket, options: list[Option]) -> None:
    for level, opt, value in options:
        sock.setsockopt(level, opt, value)


# --- the SYN flood (H11) ------------------------------------------------------------------


def syn_packet(src: str, dst: str, sport: int, dport: int, seq: int) -> bytes:
    """An IPv4 packet holding a SYN with an MSS option, as a connect() would send."""
    options = struct.pack("!BBH", 2, 4, 1460)  # MSS 1460
    tcp = (
        struct.pack("!HHIIBBHHH", sport, dport, seq, 0, (20 + len(options)) // 4 << 4, 0x02, 64240, 0, 0)
        + options
    )
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(tcp),
        0,
        0x4000,
        64,
        6,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def spoofed_sources(own: str, prefixlen: int = 24) -> list[str]:
    """Addresses inside our own lab subnet that no host has: the router is .1 and the
    client .2, so .10 and up answer nothing (the router's ARP for them fails, and it
    has no route anywhere else: the flood's SYN-ACKs die in the lab)."""
    net = ipaddress.ip_network(f"{own}/{prefixlen}", strict=False)
    return [str(a) for a in net.hosts() if int(a) - int(net.network_address) >= 10]


def client_side(own: str, prefixlen: int, router: str) -> list[str]:
    """Every address of the client's subnet but the router's: what the hook counts as
    sent by the client (the flood's spoofed sources included)."""
    net = ipaddress.ip_network(f"{own}/{prefixlen}", strict=False)
    return [str(a) for a in net.hosts() if str(a) != router]


def syn_flood(
    own: str, dst: str, dport: int, count: int, gap: float = 0.001, rate: float | None = None
) -> str:
    """`count` SYNs to dst:dport from spoofed addresses of our subnet, one every `gap`
    seconds (the router's NFQUEUE hook sees each one; an unpaced burst could overflow
    its queue, which would make the run an error). With `rate` (SYNs a second) they
    are paced against the clock instead: a sleep per SYN cannot go much faster than
    1,000 a second, and the bench floods at 10,000."""
    sources = spoofed_sources(own)
    started = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        for i in range(count):
            src = sources[i % len(sources)]
            sport = 1024 + (i * 7919) % 60000
            seq = int.from_bytes(os.urandom(4), "big")
            raw.sendto(syn_packet(src, dst, sport, dport, seq), (dst, 0))
            if rate is None:
                time.sleep(gap)
            elif (wait := started + (i + 1) / rate - time.monotonic()) > 0:
                time.sleep(wait)
    return f"{count} SYNs to {dst}:{dport} from {sources[0]}..{sources[-1]}"


# --- the namespace's TCP counters -----------------------------------------------------------


def tcp_counters(path: str = "/proc/net/netstat") -> dict[str, int]:
    """TcpExt counters of the caller's network namespace (/proc/net is the reader's
    namespace), non-zero ones only: SyncookiesSent, ListenOverflows, ..."""
    with open(path) as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            pairs = zip(names.split()[1:], values.split()[1:])
            return {k: int(v) for k, v in pairs if int(v)}
    return {}
