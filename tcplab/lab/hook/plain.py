"""The plain hook: drop and delay. For every queued TCP segment: parse -> classify ->
decide -> apply, then record. Delayed segments are retained and released from the
main loop (tcplab/lab/hook/__main__.py); the callback never sleeps.

The verdict comes before the record: what the runner is told about a segment (a row,
its bytes) is written after the kernel has it back, and sent in batches
(tcplab/lab/hook/log.py), so a segment's time in the router is parse, classify and
decide, a few microseconds of Python (bench/hook_profile.py measures each stage)."""

from __future__ import annotations

import array
import heapq
import time

from tcplab.core.packet import parse_ipv4_tcp
from tcplab.core.faults import DELAY, DROP, Fault
from tcplab.core.rules import decide
from tcplab.core.segments import Classifier
from tcplab.core.step import DELIVER, decision_text, holds
from tcplab.lab.hook.log import SegmentLog
from tcplab.lab.hook.stamps import to_monotonic


SO_TIMESTAMP = 29  # asm-generic/socket.h; not exported by Python's socket module


def enable_kernel_timestamps():
    """skb->tstamp is filled on receive only while some socket asks for timestamps;
    this one asks for as long as the hook lives, so NFQUEUE hands us the time the
    router's kernel received each segment, not the later time our callback ran."""
    import socket

    keeper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    keeper.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
    return keeper


def arrival(pkt, stamp: float | None = None) -> float:
    """The kernel's receive time on CLOCK_MONOTONIC (the stamp is CLOCK_REALTIME);
    the callback's own time when the kernel gave none."""
    now = time.monotonic()
    if stamp is None:
        stamp = pkt.get_timestamp()
    if not stamp:
        return now
    kernel = to_monotonic(stamp)
    return kernel if 0 <= now - kernel < 1.0 else now


class Hook:
    def __init__(
        self,
        faults: list[Fault],
        client_addrs: list[str],
        log: SegmentLog | None = None,
        step: str | None = None,
    ):
        self.faults = tuple(faults)
        # Step mode (core/step.py): segments held until the presenter decides, by id,
        # with when each came (mono) and what the scenario's fault would have done.
        self.step = step
        self.presenter: dict[int, tuple[object, float]] = {}
        self.classifier = Classifier(set(client_addrs))
        self.log = log or SegmentLog()
        self.held: list[tuple[float, int, object]] = []  # (release at, id, packet)
        self.waits = array.array("d")  # each accepted segment's time in the queue and here
        self.watch = None  # the SYNs and FINs the classifier needs and no fault holds (watch.py)

    def on_packet(self, pkt) -> None:
        stamp = pkt.get_timestamp()
        now = arrival(pkt, stamp)
        packet = pkt.get_payload()
        seg = parse_ipv4_tcp(packet)
        if seg is None:
            pkt.accept()
            return
        if self.watch is not None:  # what came before it, first (a timeval: whole us)
            self.watch.feed(self.classifier, round(stamp * 1e6) if stamp else None)
        self.on_classified(pkt, self.classifier.classify(seg), now, packet)

    def on_classified(self, pkt, seen, now: float, packet: bytes) -> None:
        """decide -> apply; the hook with host faults (faults.py) decides more."""
        self.apply(pkt, seen, decide(self.faults, seen), now, packet)

    def apply(self, pkt, seen, verdict, now: float, packet: bytes = b"", sent: bytes | None = None) -> int:
        """The verdict, then the record. `sent`: the packet as it left, when a fault
        rewrote it. Returns the segment's id in the record."""
        ident = self.log.next_id()
        if holds(self.step, verdict.action, isinstance(verdict.fault, Fault)):
            pkt.retain()  # as a delay whose end the presenter chooses
            self.presenter[ident] = (pkt, now)
            scenario = verdict.fault.describe() if verdict.fault else "no fault"
            self.log.segment(
                ident,
                now,
                seen,
                "held",
                None,
                f"held for the presenter (the scenario: {scenario})",
                packet,
                wire_length(packet),
                sent=sent,
                roll=verdict.roll,
            )
            return ident
        if verdict.action == DROP:
            pkt.drop()
            fate, mono_out = "dropped", None
        elif verdict.action == DELAY:
            pkt.retain()
            mono_out = now + verdict.delay
            heapq.heappush(self.held, (mono_out, ident, pkt))  # released by main loop
            fate = "delayed"
        else:
            # just before the verdict: the kernel may forward the segment, and its
            # answer come back and be stamped, before accept() returns (an ACK stamped
            # 4-43 us before a t_out taken after it, in CI)
            fate, mono_out = "delivered", time.monotonic()
            pkt.accept()
            self.waits.append(mono_out - now)
        self.log.segment(
            ident,
            now,
            seen,
            fate,
            mono_out,
            verdict.fault.describe() if verdict.fault else None,
            packet,
            wire_length(packet),
            sent=sent,
            roll=verdict.roll,
        )
        return ident

    def release_due(self, now: float) -> None:
        while self.held and self.held[0][0] <= now:
            _, ident, pkt = heapq.heappop(self.held)
            self.log.event("released", id=ident, mono=time.monotonic())  # before the verdict
            pkt.accept()

    def release_all(self) -> None:
        self.release_due(float("inf"))
        for ident in list(self.presenter):  # the run is over: the kernel gets it back
            self.decide_held(ident, DELIVER, at_end=True)

    def decide_held(self, ident: int, action: str, at_end: bool = False) -> None:
        """The presenter's decision on a held segment (`deliver ID` / `drop ID`): told
        before the verdict, as a delay's release is."""
        if ident not in self.presenter:
            return  # decided already, or never held (the runner's stale key)
        pkt, came = self.presenter.pop(ident)
        mono = time.monotonic()
        fate = "dropped" if action == DROP else "delayed"
        self.log.event(
            "decided", id=ident, fate=fate, mono=mono, fault=decision_text(action, mono - came, at_end)
        )
        if action == DROP:
            pkt.drop()
        else:
            pkt.accept()

    def next_timeout(self, now: float, idle: float = 0.5) -> float:
        return max(0.0, min(idle, self.held[0][0] - now)) if self.held else idle

    def residency(self) -> dict:
        """Quantiles of the accepted segments' waits in microseconds, for the stats
        the runner and the bench read."""
        waits = sorted(self.waits)
        if not waits:
            return {"queued": 0}
        at = lambda q: round(waits[min(len(waits) - 1, int(q * len(waits)))] * 1e6, 1)  # noqa: E731
        return {
            "queued": len(waits),
            "p50_us": at(0.5),
            "p99_us": at(0.99),
            "max_us": round(waits[-1] * 1e6, 1),
        }

    def command(self, line: str) -> None:
        """The runner's `deliver ID` / `drop ID` (step mode); `go T0` is the fault
        hook's (it keeps time)."""
        words = line.split()
        if len(words) == 2 and words[0] in (DELIVER, DROP) and words[1].isdigit():
            self.decide_held(int(words[1]), words[0])


def wire_length(packet: bytes) -> int:
    """The packet's length from its IPv4 header: the queue copies only its first
    bytes (__main__.COPY_RANGE), so the copy's own length says less."""
    return int.from_bytes(packet[2:4], "big") if len(packet) >= 4 else len(packet)
