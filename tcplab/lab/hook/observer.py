"""The router's passive observer: every TCP segment the router receives, with the
kernel's receive stamp, without holding any of them (issue 15).

Why AF_PACKET: a packet socket gets a copy of each received frame in the receive
path itself (the ptype_all taps of __netif_receive_skb_core), before IP and
netfilter see it, stamped with the same skb->tstamp NFQUEUE hands the hook; it is in
Python's standard library; a classic BPF filter keeps only IPv4 TCP and only the first
RAW_MAX bytes of each; and a reader that falls behind loses copies (counted by the
kernel, PACKET_STATISTICS: the run is then an error), never delays the traffic.
nflog would copy each packet through netlink from a netfilter rule like NFQUEUE, with
a library the lab does not have; an eBPF program needs a toolchain the lab does not
have either.

It is a process of its own, started by the hook in the router namespace with the
packet socket the hook opened before binding its queue (a fresh interpreter, not a
fork: a forked copy of the hook shares its pages copy-on-write, and the hook then paid
for the copies at its first segments, 5-20 ms), at a low priority: under bulk traffic it lags (the socket's buffer holds what it has not read)
and catches up when the CPU is free, instead of taking the CPU from the traffic it
watches. It names and counts every segment in the order the router received them (a
Classifier of its own), and records those the queue does not have (selection.py):
delivered, when they arrived (the kernel forwards them in the same softirq, no hop of
ours). The hook records the queued ones. Its rows go through a pipe to the hook, which
relays them to the runner whole; its segments' bytes go to a raw file of its own.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time

from tcplab.core.packet import parse_ipv4_tcp
from tcplab.core.segments import Classifier
from tcplab.lab.hook.log import SegmentLog
from tcplab.lab.hook.outbox import Outbox
from tcplab.lab.hook.ring import RETIRE_MS, Ring, add_ring
from tcplab.lab.hook.selection import queued
from tcplab.lab.hook.stamps import to_monotonic
from tcplab.lab.rawstore import RAW_MAX

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4  # linux/if_packet.h: our own sending, not a received frame
SO_TIMESTAMPNS, SO_ATTACH_FILTER, SO_RCVBUFFORCE = 35, 26, 33
SOL_PACKET, PACKET_STATISTICS = 263, 6
RCVBUF = 64 << 20  # a burst the observer has not read yet waits here, not in the path
OBSERVER_NICE = 10  # below the traffic: it may lag, it must not slow what it watches
FINISH_WAIT = 2.0  # seconds the last ring block may take to be handed over at the end
FIRST_ID = 1 << 31  # its segments' ids, apart from the hook's
_TIMESPEC = struct.Struct("qq")


def _tcp_filter() -> bytes:
    """Classic BPF on a SOCK_DGRAM packet socket (offsets from the IP header):
    accept IPv4 TCP, RAW_MAX bytes of it; anything else, nothing."""
    prog = [
        (0x30, 0, 0, 9),  # ldb [9]        protocol
        (0x15, 0, 1, 6),  # jeq #6 ? next : drop
        (0x06, 0, 0, RAW_MAX),  # ret #RAW_MAX
        (0x06, 0, 0, 0),
    ]  # ret #0
    return b"".join(struct.pack("HBBI", *op) for op in prog)


def packet_socket(prog: bytes, rcvbuf: int) -> socket.socket:
    """A SOCK_DGRAM packet socket of received IPv4 frames in the router's namespace,
    filtered by the classic BPF `prog`, each stamped at receipt (skb->tstamp, the
    stamp NFQUEUE hands the hook) and queued up to `rcvbuf` bytes. Blocking is the
    caller's to set. The observer's and the hook's watch (watch.py)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    code = ctypes.create_string_buffer(prog)
    sock.setsockopt(
        socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HL", len(code.raw) // 8, ctypes.addressof(code))
    )
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
    return sock


def received_at(anc) -> tuple[int, int] | None:
    """(seconds, nanoseconds) of CLOCK_REALTIME from a recvmsg()'s SO_TIMESTAMPNS."""
    return next(
        (
            _TIMESPEC.unpack(d[:16])
            for lvl, typ, d in anc
            if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS
        ),
        None,
    )


def kernel_drops(sock: socket.socket) -> int:
    """The frames the kernel dropped for this socket (PACKET_STATISTICS tp_drops)."""
    try:
        return struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))[1]
    except OSError:
        return 0


def open_socket(ring: bool = True) -> socket.socket:
    """In the router's namespace, before the hook binds its queue: nothing the
    queue sees can be missed. `ring`: with its TPACKET_V3 ring (ring.py); without,
    read with recvmsg() (bench/tap_cost.py compares the two)."""
    sock = packet_socket(_tcp_filter(), RCVBUF)
    if ring:
        add_ring(sock)  # or, without one, the observer reads the socket's queue (RCVBUF)
    sock.setblocking(False)
    return sock


class Observer:
    def __init__(self, sock: socket.socket, client_addrs, kinds, log: SegmentLog):
        self.sock, self.kinds, self.log = sock, kinds, log
        self.classifier = Classifier(set(client_addrs))
        try:
            self.ring: Ring | None = Ring(sock)
        except OSError:  # no ring on this socket (add_ring() failed): recvmsg()
            self.ring = None

    def read(self, limit: int = 256) -> int:
        """Record what the socket holds (at most `limit` frames; from the ring,
        whole blocks), in the order received; returns how many frames it took."""
        if self.ring is not None:
            frames = self.ring.frames(max(1, limit // 256))
            for sec, nsec, pkttype, data in frames:
                if pkttype != PACKET_OUTGOING:
                    self.observed(to_monotonic(sec + nsec / 1e9), data)
            return len(frames)
        for n in range(limit):
            try:
                data, anc, _flags, addr = self.sock.recvmsg(RAW_MAX, 64)
            except BlockingIOError:
                return n
            if addr[2] != PACKET_OUTGOING:
                stamp = received_at(anc)
                self.observed(to_monotonic(stamp[0] + stamp[1] / 1e9) if stamp else time.monotonic(), data)
        return limit

    def observed(self, mono: float, packet: bytes) -> None:
        """parse -> classify -> record, unless the queue has it (the hook records it)."""
        seg = parse_ipv4_tcp(packet)
        if seg is None:
            return
        seen = self.classifier.classify(seg)  # every segment: the names depend on all
        if not queued(self.kinds, seg.flags):
            self.log.segment(
                self.log.next_id(),
                mono,
                seen,
                "delivered",
                mono,
                None,
                packet,
                int.from_bytes(packet[2:4], "big"),
            )

    def finish(self, log: SegmentLog) -> int:
        """Read what is left after the traffic. The ring's last block is handed over
        RETIRE_MS after its first frame by a timer that can run late (a jiffies timer:
        8 ms and more at HZ=250, far more in a TCG guest), so this waits while the block
        the kernel is filling holds frames, up to FINISH_WAIT. What it still holds then
        is returned, to be counted with the kernel's drops: never lost silently."""
        deadline = time.monotonic() + FINISH_WAIT
        while True:
            while self.read():
                log.flush()
            left = self.ring.unretired() if self.ring is not None else 0
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(RETIRE_MS / 1000)

    def drops(self) -> int:
        return kernel_drops(self.sock)


class ObserverProcess:
    """The observer, started; its messages come on its stdout, and the hook relays
    them (relay()) except its last one, its drops (`drops`). Closing its stdin stops
    it, so it also ends when the hook dies."""

    def __init__(self, sock: socket.socket, client_addrs, kinds, raw_path: str | None):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tcplab.lab.hook.observer"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=(sock.fileno(),),
        )
        self.proc.stdin.write(
            json.dumps(
                {
                    "fd": sock.fileno(),
                    "client_addrs": list(client_addrs),
                    "kinds": None if kinds is None else list(kinds),
                    "raw_path": raw_path,
                }
            ).encode()
            + b"\n"
        )
        self.proc.stdin.flush()
        sock.close()  # the observer's now
        self.fd, self._partial = self.proc.stdout.fileno(), b""
        self.drops: int | None = None  # None until it has said (a dead one never does)

    def fileno(self) -> int:
        return self.fd

    def relay(self, out) -> bool:
        """Whole lines to `out` (the runner); False once the observer has closed."""
        data = os.read(self.fd, 1 << 16)
        if not data:
            return False
        done, _sep, self._partial = (self._partial + data).rpartition(b"\n")
        for line in done.decode().splitlines():
            if line.startswith('{"kind": "observer"'):
                self.drops = json.loads(line)["drops"]
            else:
                out(line)
        return True

    def stop(self, out, nice: int) -> dict:
        """Let it finish what its socket holds, relay the rest, and reap it. The
        traffic is over: it may take the hook's priority to catch up."""
        try:
            os.setpriority(os.PRIO_PROCESS, self.proc.pid, nice)
        except OSError:
            pass
        self.proc.stdin.close()
        while self.relay(out):
            pass
        self.proc.wait()
        return {"observer_drops": self.drops if self.drops is not None else "unknown"}


def main() -> None:
    """The observer process's life: read until its stdin closes, then the rest, then
    its drops as its last message."""
    os.setpriority(os.PRIO_PROCESS, 0, OBSERVER_NICE)
    ctl = sys.stdin.buffer
    config = json.loads(ctl.readline())
    sock = socket.socket(fileno=config["fd"])
    kinds = None if config["kinds"] is None else tuple(config["kinds"])
    raw_path = config["raw_path"]
    # blocking: a slow hook only makes the observer lag, and it may
    log = SegmentLog(
        Outbox(sys.stdout.fileno(), blocking=True), raw_path and raw_path + ".observer", FIRST_ID
    )
    obs = Observer(sock, config["client_addrs"], kinds, log)
    while True:
        ready = select.select([sock, ctl], [], [], 0.5)[0]
        while obs.read():  # until the socket is empty
            log.flush()
        if ctl in ready:  # the hook stopped, after the traffic
            unread = obs.finish(log)
            break
    log.close()
    log.event("observer", drops=obs.drops() + unread)


if __name__ == "__main__":
    main()
