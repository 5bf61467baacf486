"""Where a queued segment's time goes inside the hook's callback, stage by stage.

    python -m bench.hook_profile [-n 20000]

No root, no kernel: a synthetic bulk transfer (a handshake, then data from the client
with an ACK from the server every second segment, as delayed ACKs make it) is fed to
the hook's callback through a stand-in for netfilterqueue's Packet, with the hook's
stdout sent to a pipe that a thread drains (as the runner's reader does). Each stage
is timed on its own over the whole stream, then the callback as a whole:

  stamp     arrival(): the kernel's receive stamp, converted to CLOCK_MONOTONIC
  parse     IPv4/TCP bytes -> Segment (core/packet.py)
  classify  Segment -> name, nth, sender (core/segments.py)
  decide    the first matching fault (core/rules.py), one fault armed (delay fin)
  callback  Hook.on_packet as the queue calls it, verdict and record included
  verdict+record  what the callback spends beyond the stages above
  callback+flush  the callback plus the batched messages' encoding and writing,
            which the main loop does after the verdicts

and, on the runner's side, what reading one segment's message costs (decode and
Record.add_segment), which shares the same two cores during a run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import tempfile
import threading
import time

from tcplab.core.packet import parse_ipv4_tcp
from tcplab.core.record import Record
from tcplab.core.rules import decide
from tcplab.core.faults import Fault
from tcplab.core.segments import ACK, FIN, PSH, SYN, Classifier
from tcplab.lab.hook import plain
from tcplab.lab.hook.log import SegmentLog
from tcplab.lab.hook.outbox import Outbox

CLIENT, SERVER = "198.18.0.2", "198.19.0.2"
MSS = 1448


def packet(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    flags: int,
    seq: int,
    ack: int,
    payload: int = 0,
    ident: int = 0,
) -> bytes:
    """An IPv4/TCP packet with timestamps (32-byte TCP header, as Linux sends them)."""
    tcp = (
        struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 8 << 4, flags, 502, 0, 0)
        + b"\x01\x01\x08\x0a"
        + bytes(8)
    )
    total = 20 + len(tcp) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        total,
        ident & 0xFFFF,
        0x4000,
        63,
        6,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return ip + tcp + bytes(payload)


def bulk(n: int) -> list[bytes]:
    """A handshake, then n segments of data and their ACKs, then the FINs."""
    cs, ss = 1000, 5000
    out = [
        packet(CLIENT, SERVER, 40000, 8080, SYN, cs, 0),
        packet(SERVER, CLIENT, 8080, 40000, SYN | ACK, ss, cs + 1),
        packet(CLIENT, SERVER, 40000, 8080, ACK, cs + 1, ss + 1),
    ]
    seq = cs + 1
    for i in range(n):
        out.append(packet(CLIENT, SERVER, 40000, 8080, ACK | PSH, seq, ss + 1, MSS, i))
        seq += MSS
        if i % 2:
            out.append(packet(SERVER, CLIENT, 8080, 40000, ACK, ss + 1, seq))
    out.append(packet(CLIENT, SERVER, 40000, 8080, FIN | ACK, seq, ss + 1))
    return out


class FakePacket:
    """What the callback uses of netfilterqueue.Packet."""

    hook = 2  # NF_INET_FORWARD

    def __init__(self, payload: bytes):
        self.payload, self.stamp = payload, time.time()

    def get_payload(self) -> bytes:
        return self.payload

    def get_payload_len(self) -> int:
        return len(self.payload)

    def get_timestamp(self) -> float:
        return self.stamp

    def accept(self) -> None:
        pass

    def drop(self) -> None:
        pass

    def retain(self) -> None:
        pass


def _drained_stdout():
    """stdout replaced by a pipe a thread reads, as the runner reads the hook; returns
    a function that puts the real stdout back and the lines read."""
    r, w = os.pipe()
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(os.fdopen(r, "rb")), daemon=True)
    reader.start()
    saved = sys.stdout
    sys.stdout = os.fdopen(w, "w")

    def restore() -> list[bytes]:
        sys.stdout.close()
        sys.stdout = saved
        reader.join()
        return lines

    return restore


def _per(seconds: float, n: int) -> float:
    return round(seconds / n * 1e6, 2)


def profile(n: int) -> dict:
    stream = bulk(n)
    pkts = [FakePacket(p) for p in stream]
    faults = (Fault("delay", "fin", None, None, by=0.001),)
    out: dict[str, float] = {}

    t = time.perf_counter()
    for p in pkts:
        plain.arrival(p)
    out["stamp"] = _per(time.perf_counter() - t, len(pkts))

    t = time.perf_counter()
    segs = [parse_ipv4_tcp(p) for p in stream]
    out["parse"] = _per(time.perf_counter() - t, len(pkts))

    classifier = Classifier({CLIENT})
    t = time.perf_counter()
    seen = [classifier.classify(s) for s in segs]
    out["classify"] = _per(time.perf_counter() - t, len(pkts))

    t = time.perf_counter()
    for c in seen:
        decide(faults, c)
    out["decide"] = _per(time.perf_counter() - t, len(pkts))

    restore = _drained_stdout()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            log = SegmentLog(Outbox(sys.stdout.fileno(), blocking=True), os.path.join(tmp, "segments.raw"))
            hook = plain.Hook(list(faults), [CLIENT], log)
            t = time.perf_counter()
            for p in pkts:
                hook.on_packet(p)
            out["callback"] = _per(time.perf_counter() - t, len(pkts))
            log.close()  # what the main loop does after each pass over the queue
            out["callback+flush"] = _per(time.perf_counter() - t, len(pkts))
    finally:
        lines = restore()
    out["verdict+record"] = round(
        out["callback"] - out["stamp"] - out["parse"] - out["classify"] - out["decide"], 2
    )
    out["message_bytes"] = round(sum(map(len, lines)) / len(pkts), 1)
    out["runner_read"] = _runner_read(lines, len(pkts))
    return {"segments": len(pkts), "us_per_segment": out}


def _runner_read(lines: list[bytes], n: int) -> float:
    """The runner's side: decode each message and add its segments to a Record."""
    rec = Record(t0=time.monotonic())
    t = time.perf_counter()
    for line in lines:
        msg = json.loads(line)
        if msg["kind"] == "segment":  # the hook before issue 15: one message each
            rec.add_segment(msg)
        elif msg["kind"] == "segments":
            rec.add_segments(msg)
    return _per(time.perf_counter() - t, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20000, help="data segments (default 20000)")
    args = ap.parse_args()
    print(json.dumps(profile(args.n), indent=1))


if __name__ == "__main__":
    main()
