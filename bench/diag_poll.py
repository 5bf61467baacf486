"""What one inet_diag dump costs, the old way and the new, and what a poller costs.

    sudo PYTHONPATH=. python bench/diag_poll.py [-n 2000] [--seconds 3] [--no-own-hash]

Creates the network namespace tlb-<pid> (removed at the end), and in a child process
that has entered it opens five TCP sockets on lo (a listener, two connections seen
from both ends), then times N dumps of all IPv4 TCP sockets with time.process_time():

  old        pyroute2's DiagSocket.get_sock_stats() (what tcplab.lab.diag used to do)
  new        tcplab.lab.diag.dump_tcp(): a plain NETLINK_SOCK_DIAG socket, the request
             encoded by pyroute2, the replies read with struct
  p2-decode  the same socket and request, replies decoded by pyroute2's inet_diag_msg
             (why dump_tcp does not: shows what the pyroute2 classes alone cost)
  bare       the same request, replies received and not read: the kernel's share and
             two system calls, the floor for any dump from Python

then runs a DiagPoller for a few seconds at several intervals and prints what the
process spends, next to what the same thread spends waking up with no dump.

The kernel walks every bucket of the namespace's TCP hash on each dump, and a namespace
created from the initial one shares its hash (net.ipv4.tcp_child_ehash_entries = 0), so
everything is measured again in tlb-<pid>-own, created from inside tlb-<pid> with
tcp_child_ehash_entries = 1024 set there: a namespace with a hash of its own. The root
namespace is not changed. A script, not a test: nothing is asserted but that the dumps
agree.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import threading
import time
import traceback

from pyroute2 import DiagSocket, IPRoute, netns
from pyroute2.netlink import NLMSG_DONE, NLMSG_ERROR
from pyroute2.netlink.diag import inet_diag_msg

from tcplab.lab import diag

INTERVALS = (0.002, 0.005, 0.008, 0.010)


def old_dump(ds: DiagSocket) -> list:
    msgs = ds.get_sock_stats(family=socket.AF_INET, protocol=socket.IPPROTO_TCP, states=diag.REQUEST_STATES)
    return [
        (
            m["idiag_src"],
            m["idiag_sport"],
            m["idiag_dst"],
            m["idiag_dport"],
            diag.STATES.get(m["idiag_state"], str(m["idiag_state"])),
        )
        for m in msgs
    ]


def pyroute2_decode_dump(sock: socket.socket) -> list:
    """dump_tcp's socket and request, with every reply decoded by inet_diag_msg."""
    sock.send(diag._request(1))
    out = []
    while True:
        data = sock.recv(65536)
        offset = 0
        while offset < len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            if kind == NLMSG_DONE:
                return out
            if kind == NLMSG_ERROR:
                raise OSError("inet_diag error")
            msg = inet_diag_msg(data, offset=offset)
            msg.decode()
            offset += (length + 3) & ~3
            out.append(
                (
                    msg["idiag_src"],
                    msg["idiag_sport"],
                    msg["idiag_dst"],
                    msg["idiag_dport"],
                    diag.STATES.get(msg["idiag_state"], str(msg["idiag_state"])),
                )
            )


def bare_dump(sock: socket.socket) -> list:
    """The same request and the replies received but not read: the kernel's share plus
    the two system calls' Python overhead, the floor for any dump from Python."""
    sock.send(diag._REQUEST)
    buf = bytearray(65536)
    while True:
        n = sock.recv_into(buf)
        offset = 0
        while offset < n:
            length, kind = struct.unpack_from("=IH", buf, offset)
            if kind == NLMSG_DONE:
                return []
            offset += (length + 3) & ~3


def timed(label: str, dump, n: int) -> tuple[float, list]:
    for _ in range(50):  # warm up (imports, caches, the kernel's side)
        result = dump()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        dump()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"  {label:10s} {cpu / n * 1e6:8.1f} us CPU/dump  {wall / n * 1e6:8.1f} us wall/dump")
    return cpu / n, result


def poller_share(interval: float, seconds: float) -> tuple[float, int]:
    """Share of one CPU this process spends while a DiagPoller runs, and its polls."""
    polls = 0
    real_dump = diag.dump_tcp

    def counting(sock):
        nonlocal polls
        polls += 1
        return real_dump(sock)

    diag.dump_tcp = counting
    try:
        with diag.DiagPoller(lambda change: None, interval=interval):
            wall, cpu = time.perf_counter(), time.process_time()
            time.sleep(seconds)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        diag.dump_tcp = real_dump
    return cpu / wall, polls


def waiting_share(interval: float, seconds: float) -> float:
    """The same thread and Event.wait(interval) loop with no dump: the wake-ups' cost."""
    stopping = threading.Event()

    def run():
        while not stopping.is_set():
            stopping.wait(interval)

    thread = threading.Thread(target=run)
    wall, cpu = time.perf_counter(), time.process_time()
    thread.start()
    time.sleep(seconds)
    stopping.set()
    thread.join()
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


def open_sockets() -> list[socket.socket]:
    """lo up, a listener and two connections seen from both ends: five sockets."""
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    return [listener, *clients, *(listener.accept()[0] for _ in clients)]


def measure(name: str, n: int, seconds: float) -> None:
    """Everything above, in the namespace this process is in."""
    buckets = open("/proc/sys/net/ipv4/tcp_ehash_entries").read().strip()
    owned = "its own" if int(buckets) > 0 else "the initial namespace's shared"
    opened = open_sockets()
    print(
        f"{n} dumps of {len(opened)} IPv4 TCP sockets in namespace {name} "
        f"({owned} TCP hash, {abs(int(buckets))} buckets):"
    )
    ds = DiagSocket()
    ds.bind()
    sock, raw = diag.open_diag_socket(), diag.open_diag_socket()
    old, old_result = timed("old", lambda: old_dump(ds), n)
    new, new_result = timed("new", lambda: diag.dump_tcp(sock), n)
    p2, p2_result = timed("p2-decode", lambda: pyroute2_decode_dump(raw), n)
    bare, _ = timed("bare", lambda: bare_dump(raw), n)
    ds.close()
    assert sorted(old_result) == sorted(new_result) == sorted(p2_result), (old_result, new_result, p2_result)
    assert len(new_result) == len(opened), new_result
    print(
        f"  old/new = {old / new:.1f}x   p2-decode/new = {p2 / new:.2f}x   "
        f"new - bare = {(new - bare) * 1e6:.1f} us"
    )
    print(f"  dumps alone at a 5 ms interval: old {old / 0.005:.1%}, new {new / 0.005:.1%} of a CPU")
    print(f"  DiagPoller, {seconds:g} s at each interval (this process's CPU):")
    for interval in INTERVALS:
        share, polls = poller_share(interval, seconds)
        idle = waiting_share(interval, seconds)
        print(
            f"    interval {interval * 1e3:4.1f} ms: {share:6.2%} of a CPU, "
            f"{polls / seconds:4.0f} polls/s, {share * seconds / polls * 1e6:5.0f} us/poll"
            f"   (the wait alone: {idle:5.2%})"
        )
    for s in (*opened, sock, raw):
        s.close()


def enter(name: str, root_ns: str) -> None:
    netns.setns(name, flags=0)
    if os.readlink("/proc/self/ns/net") == root_ns:
        raise SystemExit("setns did not move this process; refusing to go on")


def shared_hash(name: str, root_ns: str, n: int, seconds: float) -> None:
    enter(name, root_ns)
    measure(name, n, seconds)


def own_hash(parent: str, name: str, root_ns: str, n: int, seconds: float) -> None:
    """A namespace created from inside `parent` with net.ipv4.tcp_child_ehash_entries
    set there gets a TCP hash of its own (Linux >= 6.1), so the dump walks 1024 buckets
    instead of the shared table. The root namespace's sysctl is not touched."""
    enter(parent, root_ns)
    with open("/proc/sys/net/ipv4/tcp_child_ehash_entries", "w") as f:
        f.write("1024")
    netns.create(name)  # forks from this process, so the new namespace's parent is `parent`
    enter(name, root_ns)
    measure(name, n, seconds)


def in_child(target, *args) -> int:
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            target(*args)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="dumps per method")
    parser.add_argument("--seconds", type=float, default=3.0, help="per poller interval")
    parser.add_argument(
        "--no-own-hash",
        dest="own_hash",
        action="store_false",
        help="skip the second run in a namespace with its own TCP hash",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (a network namespace)", file=sys.stderr)
        return 2
    name = f"tlb-{os.getpid()}"
    own = f"{name}-own"
    root_ns = os.readlink("/proc/self/ns/net")
    try:
        netns.create(name)
        code = in_child(shared_hash, name, root_ns, args.n, args.seconds)
        if code == 0 and args.own_hash:
            print()
            code = in_child(own_hash, name, own, root_ns, args.n, args.seconds)
        return code
    finally:
        for ns in (own, name):
            if ns in netns.listnetns():
                netns.remove(ns)


if __name__ == "__main__":
    sys.exit(main())
