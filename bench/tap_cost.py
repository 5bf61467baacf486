"""What watching costs the path: bulk throughput through a bare lab, with a packet
socket in the router that nobody reads, with one read and thrown away by a minimal
loop (a recv per frame, or a block at a time from a TPACKET_V3 ring), and with
tcplab's hook and observer armed (delay fin by 1ms).

    sudo .venv/bin/python -m bench.tap_cost      (about 30 s; one line a setting)

The first step is the kernel's share of the observer's AF_PACKET tap (a clone, the
BPF filter and a queue per packet, in the forwarding softirq), the second adds a
reader's system call and wake-up per packet, the third the observer's Python
(parse, classify, a row, the bytes) and the relay through the hook. Each figure is
the median of three 16 MiB transfers, MB/s, on the same path in the same run.
"""

from __future__ import annotations

import select
import socket
import statistics
import subprocess
import sys

from bench import figures
from bench import lab as blab
from tcplab.lab import child
from tcplab.lab.hook import observer
from tcplab.lab.hook.ring import Ring


def tap(how: str, netns: str) -> None:
    """In the router namespace: the observer's socket, unread, drained a frame at a
    time (recv), or drained a block at a time from its ring (the observer's way)."""
    child.enter_netns(netns)
    sock = observer.open_socket(ring=how != "drain")
    print("ready", flush=True)
    if how == "unread":
        sys.stdin.read()
        return
    if how == "ring":
        frames = Ring(sock)
        while sys.stdin not in select.select([sock, sys.stdin], [], [])[0]:
            while frames.frames():
                pass
        return
    while sys.stdin not in select.select([sock, sys.stdin], [], [])[0]:
        try:
            while True:
                sock.recv(256, socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass


def main() -> None:
    if len(sys.argv) == 3:
        tap(*sys.argv[1:])
        return
    nbytes = 16 << 20
    with blab.lab() as plan:
        rows = [("unhooked", figures._transfers(plan, nbytes))]
        for how in ("unread", "drain", "ring"):
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.tap_cost", how, plan.router_ns],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            proc.stdout.readline()
            rows.append((f"tap {how}", figures._transfers(plan, nbytes)))
            proc.stdin.close()
            proc.wait()
        with blab.hooked(plan, figures.ARMED):
            rows.append(("hook + observer", figures._transfers(plan, nbytes)))
    anchor = statistics.median(rows[0][1])
    for name, rates in rows:
        median = statistics.median(rates)
        print(
            f"{name:16} {median:7.1f} MB/s  ratio {median / anchor:.2f}  "
            f"({', '.join(f'{r:.1f}' for r in rates)})"
        )


if __name__ == "__main__":
    main()
