"""The bench's traffic, run inside one of the lab's namespaces.

    python -m bench.peer NETNS JOB ARGS...    (prints one JSON line, then exits)

  sink PORT N                listen; accept N connections, each read to EOF; per
                             connection: bytes, seconds from accept to EOF
  bulk ADDR PORT BYTES       connect, send BYTES, close
  connects ADDR PORT N GAP   N connect()s, GAP seconds apart; each one's time (the
                             handshake's round trip as the client sees it)
  flood OWN DST PORT RATE S  RATE raw SYNs a second for S seconds from unused
                             addresses of OWN's subnet (tcplab.lab.sockets)
  sysctls JSON               write these sysctls (the router's ip_forward)

Entering the namespace is tcplab.lab.child's (setns, never creating one).
"""

from __future__ import annotations

import json
import socket
import sys
import time

from tcplab.lab import child, sockets

CHUNK = 1 << 16


def sink(port: int, n: int) -> dict:
    with socket.create_server(("", port), backlog=128) as srv:
        print(json.dumps({"listening": port}), flush=True)
        out = []
        for _ in range(n):
            conn, _addr = srv.accept()
            with conn:
                started, total = time.monotonic(), 0
                while data := conn.recv(1 << 20):
                    total += len(data)
                out.append({"bytes": total, "seconds": time.monotonic() - started})
        return {"connections": out}


def bulk(addr: str, port: int, nbytes: int) -> dict:
    block = bytes(CHUNK)
    with socket.create_connection((addr, port)) as s:
        left = nbytes
        while left > 0:
            left -= s.send(block[: min(CHUNK, left)])
    return {"sent": nbytes}


def connects(addr: str, port: int, n: int, gap: float) -> dict:
    times = []
    for _ in range(n):
        s = socket.socket()
        started = time.monotonic()
        s.connect((addr, port))
        times.append(time.monotonic() - started)
        s.close()
        time.sleep(gap)
    return {"connect_seconds": times}


def flood(own: str, dst: str, port: int, rate: float, seconds: float) -> dict:
    count = int(rate * seconds)
    started = time.monotonic()
    sockets.syn_flood(own, dst, port, count, rate=rate)
    return {"syns": count, "seconds": time.monotonic() - started}


def sysctls(values: str) -> dict:
    child.write_sysctls(json.loads(values))
    return {}


JOBS = {
    "sysctls": (sysctls, (str,)),
    "sink": (sink, (int, int)),
    "bulk": (bulk, (str, int, int)),
    "connects": (connects, (str, int, int, float)),
    "flood": (flood, (str, str, int, float, float)),
}


def main() -> None:
    netns, job, *args = sys.argv[1:]
    child.enter_netns(netns)
    fn, types = JOBS[job]
    print(json.dumps(fn(*(t(a) for t, a in zip(types, args)))), flush=True)


if __name__ == "__main__":
    main()
