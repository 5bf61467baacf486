"""TCP states by inet_diag polling, for what the tracepoint cannot see.

sock:inet_sock_set_state covers full sockets only: a listener's request sock (SYN_RECV)
and the timewait minisocket (TIME_WAIT, or its FIN_WAIT2 substate) never produce an
event. inet_diag dumps both, so each namespace is polled and the differences between
dumps become state changes. Polling also stands in for the tracepoint where tracefs is
missing. The dump runs in the network namespace of the process (thread) that opens the
socket.

A dump is one request on a plain NETLINK_SOCK_DIAG socket and a loop over the replies,
both with `struct`. The request is a fixed 72 bytes; pyroute2 encoded it until session 9,
but importing pyroute2 took 0.3 s of each app agent's start (two agents per run, on two
cores), and tests/unit/test_diag_tracker.py checks this encoding, and the netlink
constants below, against pyroute2's. The replies:
pyroute2's DiagSocket spends ~0.6-0.9 ms of CPU per dump, mostly in its asyncio
machinery, and even on a plain socket its `inet_diag_msg` class decodes a message in
~40 us (a dict per message, every header field and attribute): ~0.2 ms for five
sockets, where reading them with struct takes ~10 us. This module needs five fields of
a fixed-layout header (struct inet_diag_msg, include/uapi/linux/inet_diag.h) that has not
changed since it was introduced. bench/diag_poll.py measures all three;
tests/unit/test_diag_tracker.py checks the `struct` decoding against pyroute2's on
messages pyroute2 encodes.

`DiagTracker` is pure (now is passed in); `DiagPoller` is the thread around it.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any


from tcplab.errors import LabError

Sock = tuple[str, int, str, int, str]  # laddr, lport, raddr, rport, state name

# Kernel TCP state numbers (include/net/tcp_states.h), named as the Record names them.
# inet_diag reports a request sock as SYN_RECV (3) and a timewait minisocket by its
# substate, TIME_WAIT (6) or FIN_WAIT2 (5); NEW_SYN_RECV (12) is listed for safety.
STATES = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "SYN_RECV",
}

# Every state bit but TCP_BOUND_INACTIVE (13): that pseudo-state asks for sockets that
# are only bound (before connect() or listen()); they are in no TCP state, would show as
# CLOSE, and would turn every bind() into noise. The SYN_RECV bit makes the kernel dump
# request socks too (it adds NEW_SYN_RECV itself), and TIME_WAIT/FIN_WAIT2 include
# timewait minisockets.
REQUEST_STATES = 0xFFFFFFFF & ~(1 << 13)

# Seconds between dumps: a change is seen at most one interval, one dump and one wake-up
# (~9 ms in all) after it happened, and a poller costs ~2.5% of a CPU when its namespace
# has a TCP hash of its own (bench/diag_poll.py, 2-core VM; 5 ms costs ~3%, 10 ms ~2%).
# The dump's floor is the kernel's: it walks every bucket of the TCP hash, and a
# namespace sharing the initial namespace's (net.ipv4.tcp_child_ehash_entries = 0 where
# it was created; here 262144 buckets, ~0.25 ms hot, ~0.5 ms cold) makes a poller cost
# ~6.5% at this interval, against ~17% at 5 ms through pyroute2's DiagSocket.
DEFAULT_INTERVAL = 0.008

# struct nlmsghdr: length, type, flags, sequence number, port id (host byte order).
_NLMSGHDR = struct.Struct("=IHHII")
# The start of struct inet_diag_msg after the nlmsghdr: family, state, timer, retrans,
# then struct inet_diag_sockid: sport and dport (big-endian), src[4] and dst[4] (__be32,
# an IPv4 address in the first word). The rest (if, cookie, expires, queues, uid, inode)
# and the attributes that follow are not needed.
_INET_DIAG_MSG = struct.Struct("!BBxxHH4s12x4s")
_ERRNO = struct.Struct("=i")  # NLMSG_ERROR's payload starts with -errno, as may DONE's
_MIN_ERROR = _NLMSGHDR.size + _ERRNO.size
_MIN_DIAG_MSG = _NLMSGHDR.size + _INET_DIAG_MSG.size
_RECV_SIZE = 65536  # the kernel fills a dump skb up to 32 KiB


# include/uapi/linux/netlink.h, sock_diag.h
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
# struct inet_diag_req_v2 (include/uapi/linux/inet_diag.h): family, protocol, ext, pad,
# states, then struct inet_diag_sockid all zero (sport, dport, src[4], dst[4], if,
# cookie[2]): 4 + 4 + 48 bytes
_INET_DIAG_REQ_V2 = struct.Struct("=BBBxI48x")


def _request(seq: int) -> bytes:
    """The dump request: every IPv4 TCP socket in REQUEST_STATES."""
    body = _INET_DIAG_REQ_V2.pack(socket.AF_INET, socket.IPPROTO_TCP, 0, REQUEST_STATES)
    length = _NLMSGHDR.size + len(body)
    return _NLMSGHDR.pack(length, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


_REQUEST = bytearray(_request(0))  # a template: dump_tcp writes each dump's seq into it


def open_diag_socket() -> socket.socket:
    """A NETLINK_SOCK_DIAG socket in the network namespace of the calling thread."""
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)


_counter = itertools.count(1)  # one sequence for all sockets is enough


def _next_seq() -> int:
    return next(_counter) & 0xFFFFFFFF


def dump_tcp(sock: socket.socket) -> list[Sock]:
    """All IPv4 TCP sockets of the namespace `sock` (from open_diag_socket) belongs to,
    in every state but bound-only. Raises OSError if the kernel refuses the dump."""
    seq = _next_seq()
    request = bytearray(_REQUEST)
    _NLMSGHDR.pack_into(request, 0, len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
    sock.send(request)
    buf = bytearray(_RECV_SIZE)
    unpack_hdr, unpack_msg = _NLMSGHDR.unpack_from, _INET_DIAG_MSG.unpack_from
    ntoa = socket.inet_ntoa
    sockets: list[Sock] = []
    while True:
        # MSG_TRUNC: the kernel returns the datagram's real length, so a too-small
        # buffer shows instead of silently losing messages.
        n = sock.recv_into(buf, 0, socket.MSG_TRUNC)
        if n > _RECV_SIZE:
            raise OSError(errno.EMSGSIZE, f"inet_diag reply of {n} bytes was truncated")
        offset = 0
        while offset + _NLMSGHDR.size <= n:
            length, kind, _flags, msg_seq, _pid = unpack_hdr(buf, offset)
            if length < _NLMSGHDR.size or offset + length > n:
                raise OSError(errno.EBADMSG, f"bad netlink message length {length}")
            body = offset + _NLMSGHDR.size
            offset += (length + 3) & ~3
            if msg_seq != seq:  # left over from a dump an exception abandoned
                continue
            if kind == NLMSG_DONE or kind == NLMSG_ERROR:
                code = _ERRNO.unpack_from(buf, body)[0] if length >= _MIN_ERROR else 0
                if code < 0:
                    raise OSError(-code, f"inet_diag: {os.strerror(-code)}")
                if kind == NLMSG_DONE:
                    return sockets
                continue  # an ACK (error 0); the dump goes on
            if kind != SOCK_DIAG_BY_FAMILY:
                continue
            if length < _MIN_DIAG_MSG:
                raise OSError(errno.EBADMSG, f"short inet_diag_msg ({length} bytes)")
            _family, state, sport, dport, src, dst = unpack_msg(buf, body)
            sockets.append((ntoa(src), sport, ntoa(dst), dport, STATES.get(state, str(state))))


class DiagTracker:
    """Turns successive dumps into state changes. A socket is known by its 4-tuple, so a
    request sock and the child that replaces it, or a full socket and the timewait
    minisocket that replaces it, read as one socket changing state."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int, str, int], str] = {}

    def update(self, now: float, sockets: Iterable[Sock], after: float | None = None) -> list[dict[str, Any]]:
        """The changes since the last dump, stamped `now` (this dump's end) and
        `after` (when the dump before it began: no change can be older)."""
        current = {(la, lp, ra, rp): state for la, lp, ra, rp, state in sockets}
        known = self._known
        if current == known:  # the usual poll: nothing moved
            return []
        changes = [
            self._change(now, after, key, known.get(key, "CLOSE"), state)
            for key, state in current.items()
            if known.get(key) != state
        ]
        changes += [
            self._change(now, after, key, state, "CLOSE")
            for key, state in known.items()
            if key not in current
        ]
        self._known = current
        return changes

    def known(self) -> list[tuple[str, int, str, int]]:
        return list(self._known)

    @staticmethod
    def _change(now: float, after: float | None, key: tuple[str, int, str, int], old: str, new: str) -> dict:
        laddr, lport, raddr, rport = key
        return {
            "mono": now,
            "after": after,
            "old": old,
            "new": new,
            "laddr": laddr,
            "lport": lport,
            "raddr": raddr,
            "rport": rport,
        }


class DiagPoller:
    """Polls inet_diag every `interval` seconds in a thread and passes each change to
    `callback`. "mono" is time.monotonic() when the dump returned: the change happened
    at most one interval plus one dump earlier."""

    def __init__(self, callback: Callable[[dict[str, Any]], None], interval: float = DEFAULT_INTERVAL):
        self.callback, self.interval = callback, interval
        self.error: BaseException | None = None
        self._tracker = DiagTracker()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def start(self) -> None:
        # Opened here, not in the thread, so a failure is raised to the caller; the
        # socket belongs to the namespace of the thread that opens it.
        try:
            self._socket = open_diag_socket()
            dump_tcp(self._socket)
        except Exception as e:
            if self._socket is not None:
                self._socket.close()
                self._socket = None
            raise LabError(
                f"inet_diag is not usable: {e}", "needs CONFIG_INET_DIAG and CONFIG_INET_TCP_DIAG"
            ) from e
        self._thread = threading.Thread(target=self._run, daemon=True, name="diag-poller")
        self._thread.start()

    def _run(self) -> None:
        try:
            began = None  # when the previous dump began
            while True:
                final = self._stopping.is_set()  # one last dump after stop() was asked
                now_began = time.monotonic()
                sockets = dump_tcp(self._socket)
                for change in self._tracker.update(time.monotonic(), sockets, began):
                    self.callback(change)
                began = now_began
                if final:
                    return
                self._stopping.wait(self.interval)
        except BaseException as e:  # reported by stop(); the thread must not die silently
            self.error = e

    def stop(self) -> None:
        """Stop polling (after one last dump) and close the socket. Idempotent. Raises
        LabError if the polling thread failed."""
        if self._thread is None:
            return
        self._stopping.set()
        self._thread.join()
        self._thread = None
        self._socket.close()
        self._socket = None
        if self.error is not None:
            raise LabError(f"inet_diag polling failed: {self.error}")

    def known(self) -> list[tuple[str, int, str, int]]:
        """The 4-tuples of the sockets the last dump showed."""
        return list(self._tracker.known())

    def __enter__(self) -> DiagPoller:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
