"""The router's NFQUEUE hook: a child process in the router namespace.

    python -m tcplab.lab.hook      (config as one JSON line on stdin)

It installs `-j NFQUEUE --queue-bypass` in a chain of its own at the top of FORWARD,
binds the queue, says `ready`, and then for every forwarded TCP segment: parse ->
classify -> decide -> apply. Delayed segments are retained and released from the
main loop; the callback never sleeps. With --queue-bypass, traffic flows unhooked if
this process dies, and the runner then calls the run an error (it never black-holes).
"""

from __future__ import annotations

import heapq
import itertools
import os
import select
import subprocess
import sys
import time

from tcplab.core.packet import parse_ipv4_tcp
from tcplab.core.faults import DELAY, DROP, Fault
from tcplab.core.rules import decide
from tcplab.core.segments import Classifier
from tcplab.lab import child

CHAIN = "TCPLAB"
RAW_MAX = 256  # bytes of each packet kept for the pcap: all headers, a little payload


def install_rules(queue: int) -> str:
    """Put our chain first in FORWARD. Returns the iptables flavour that worked:
    the nft-backed one needs nft_compat + xt_NFQUEUE, the legacy one ip_tables."""
    errors = []
    for binary in ("iptables", "iptables-nft", "iptables-legacy"):
        cmds = [[binary, "-w", "-N", CHAIN],
                [binary, "-w", "-A", CHAIN, "-p", "tcp", "-j", "NFQUEUE",
                 "--queue-num", str(queue), "--queue-bypass"],
                [binary, "-w", "-I", "FORWARD", "1", "-j", CHAIN]]
        try:
            for cmd in cmds:
                subprocess.run(cmd, check=True, capture_output=True, text=True)
            return binary
        except FileNotFoundError:
            errors.append(f"{binary}: not installed")
        except subprocess.CalledProcessError as e:
            errors.append(f"{binary}: {e.stderr.strip() or e.returncode}")
            subprocess.run([binary, "-w", "-F", CHAIN], capture_output=True)
            subprocess.run([binary, "-w", "-X", CHAIN], capture_output=True)
    raise SystemExit("cannot install the NFQUEUE rule: " + "; ".join(errors))


def queue_stats(queue: int) -> dict:
    """Counters from /proc/net/netfilter/nfnetlink_queue (per namespace): packets the
    kernel dropped because the queue or the socket overflowed."""
    try:
        with open("/proc/net/netfilter/nfnetlink_queue") as f:
            for line in f:
                cols = line.split()
                if cols and int(cols[0]) == queue:
                    return {"queue_total": int(cols[2]), "queue_dropped": int(cols[5]),
                            "user_dropped": int(cols[6]), "id_sequence": int(cols[7])}
    except (OSError, ValueError, IndexError):
        pass
    return {}


SO_TIMESTAMP = 29  # asm-generic/socket.h; not exported by Python's socket module


def enable_kernel_timestamps():
    """skb->tstamp is filled on receive only while some socket asks for timestamps;
    this one asks for as long as the hook lives, so NFQUEUE hands us the time the
    router's kernel received each segment, not the later time our callback ran."""
    import socket

    keeper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    keeper.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
    return keeper


def arrival(pkt) -> float:
    """The kernel's receive time on CLOCK_MONOTONIC (the stamp is CLOCK_REALTIME);
    the callback's own time when the kernel gave none."""
    now = time.monotonic()
    stamp = pkt.get_timestamp()
    if not stamp:
        return now
    kernel = stamp - (time.time() - now)
    return kernel if 0 <= now - kernel < 1.0 else now


class Hook:
    def __init__(self, faults: list[Fault], client_addrs: list[str]):
        self.faults = tuple(faults)
        self.classifier = Classifier(set(client_addrs))
        self.held: list[tuple[float, int, object]] = []  # (release at, id, packet)
        self._ids = itertools.count(1)

    def on_packet(self, pkt) -> None:
        now = arrival(pkt)
        packet = pkt.get_payload()
        seg = parse_ipv4_tcp(packet)
        if seg is None:
            pkt.accept()
            return
        self.on_classified(pkt, self.classifier.classify(seg), now, packet)

    def on_classified(self, pkt, seen, now: float, packet: bytes) -> None:
        """decide -> apply; the hook with host faults (hook_faults.py) decides more."""
        self.apply(pkt, seen, decide(self.faults, seen), now, packet)

    def apply(self, pkt, seen, verdict, now: float, packet: bytes = b"", **extra) -> None:
        ident = next(self._ids)
        fate, mono_out = "delivered", now
        if verdict.action == DROP:
            pkt.drop()
            fate, mono_out = "dropped", None
        elif verdict.action == DELAY:
            pkt.retain()
            mono_out = now + verdict.delay
            heapq.heappush(self.held, (mono_out, ident, pkt))  # released by main loop
            fate = "delayed"
        else:
            mono_out = time.monotonic()  # the verdict: later than `now` by the hook's own wait
            pkt.accept()
        s = seen.segment
        child.emit("segment", mono=now, id=ident, name=seen.name, nth=seen.nth,
                   sender=seen.sender, flags=s.flags, seq=s.seq, ack=s.ack, length=s.length,
                   fate=fate, retransmission=seen.retransmission, conn=seen.conn,
                   mono_out=mono_out, src=s.src, dst=s.dst, sport=s.sport, dport=s.dport,
                   fault=verdict.fault.describe() if verdict.fault else None,
                   raw=packet[:RAW_MAX].hex(), wire_len=len(packet), **extra)

    def release_due(self, now: float) -> None:
        while self.held and self.held[0][0] <= now:
            _, ident, pkt = heapq.heappop(self.held)
            child.emit("released", id=ident)  # stamped before the verdict, like apply()
            pkt.accept()

    def release_all(self) -> None:
        self.release_due(float("inf"))

    def next_timeout(self, now: float, idle: float = 0.5) -> float:
        return max(0.0, min(idle, self.held[0][0] - now)) if self.held else idle


def main() -> None:
    config = child.read_config()
    child.enter_netns(config["netns"])
    child.write_sysctls(config.get("sysctls", {}))
    from netfilterqueue import NetfilterQueue

    faults = [Fault(**{**f, "nth": tuple(f["nth"]) if f["nth"] is not None else None})
              for f in config["faults"]]
    from tcplab.lab import hook_faults  # link-down, crash, duplicate, forge, ...

    hook = hook_faults.make_hook(config, faults) or Hook(faults, config["client_addrs"])
    child.raise_priority(child.HOOK_NICE)  # after the imports: those are set-up, not forwarding
    keeper = enable_kernel_timestamps()  # noqa: F841 (kept open on purpose)
    nfq = NetfilterQueue()
    nfq.bind(config["queue"], hook.on_packet)
    flavour = install_rules(config["queue"])
    hook_faults.install(hook, flavour, config["queue"])
    child.emit("ready", iptables=flavour, pid=os.getpid())
    fd = nfq.get_fd()
    stdin = sys.stdin.fileno()
    try:
        while True:
            ready, _, _ = select.select([fd, stdin], [], [], hook.next_timeout(time.monotonic()))
            if fd in ready:
                nfq.run(block=False)
            hook.release_due(time.monotonic())
            if stdin in ready:
                line = os.read(stdin, 4096)
                if not line or b"stop" in line:
                    break
                for command in line.decode(errors="replace").splitlines():
                    getattr(hook, "command", lambda _line: None)(command)  # go T0
    finally:
        hook.release_all()
        child.emit("stats", **queue_stats(config["queue"]))
        nfq.unbind()


if __name__ == "__main__":
    main()
