"""A bare lab for the bench: the three namespaces of a run, with the router
forwarding, with or without the hook; torn down in `finally` as a run is.

The same topology.build() a run uses, so the unhooked path is the anchor: the hooked
figures are measured on exactly this path with tcplab's hook process added.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import time
from contextlib import contextmanager
from types import SimpleNamespace

from tcplab.core.record import Record
from tcplab.core.faults import Fault
from tcplab.lab import fault_config, topology
from tcplab.lab.procs import Child
from tcplab.lab.sockets import client_side

FORWARDING = {"net.ipv4.ip_forward": "1"}


@contextmanager
def lab():
    plan = topology.claim_slot()
    try:
        topology.build(plan)
        peer(plan.router_ns, "sysctls", json.dumps(FORWARDING))
        yield plan
    finally:
        left = topology.destroy(plan)
        topology.release_slot(plan)
        if left:
            print(f"could not remove {', '.join(left)}", file=sys.stderr)


def peer(netns: str, job: str, *args) -> dict:
    """Run a bench.peer job in a namespace and wait for its answer."""
    return json.loads(start(netns, job, *args).communicate()[0].splitlines()[-1])


def start(netns: str, job: str, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.peer", netns, job, *map(str, args)], stdout=subprocess.PIPE, text=True
    )


def listening(proc: subprocess.Popen) -> None:
    """A sink says so once its socket listens."""
    json.loads(proc.stdout.readline())


class Hooked:
    """tcplab's hook process in the router namespace, its messages read into a Record
    by a reader thread as the runner reads them (tcplab/lab/procs.py)."""

    def __init__(self, plan, faults: list[Fault]):
        sc = SimpleNamespace(faults=tuple(faults), host_faults=(), forges=())
        self.inbox: queue.Queue = queue.Queue()
        self.record = Record(t0=time.monotonic())
        self.stats: dict = {}
        self.child = Child(
            "router",
            "tcplab.lab.hook",
            {
                "netns": plan.router_ns,
                "queue": plan.queue,
                "sysctls": FORWARDING,
                "client_addrs": client_side(plan.client_addr, plan.prefixlen, plan.router_client_addr),
                "raw_path": str(topology.STATE_DIR / "slots" / str(plan.slot) / "segments.raw"),
                **fault_config.for_hook(sc, plan),
            },
            self.inbox,
        )
        while self._take(self.inbox.get(timeout=15)) != "ready":
            pass

    def _take(self, item) -> str:
        _who, msg = item
        kind = msg["kind"]
        if kind == "segments":
            self.record.add_segments(msg)
        elif kind == "segment":  # the hook before issue 15, one message each: so the
            self.record.add_segment(msg)  # bench measures an older checkout too
        elif kind == "released":
            self.record.release(msg)
        elif kind == "stats":
            self.stats = msg
        elif kind == "exited":
            raise RuntimeError(f"the hook exited: {self.child.why_dead()}")
        return kind

    def stop(self) -> Record:
        self.child.stop()
        while True:
            try:
                self._take(self.inbox.get_nowait())
            except (queue.Empty, RuntimeError):
                return self.record


@contextmanager
def hooked(plan, faults: list[Fault]):
    hook = Hooked(plan, faults)
    try:
        yield hook
    finally:
        hook.stop()
