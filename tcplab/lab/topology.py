"""client -- router -- server: the lab's network as data (plan) and as namespaces (build).

Every interface is created inside a namespace of ours (veth add in the client or
server namespace with its peer placed straight into the router's), so the root
namespace never sees one. Deleting the three namespaces removes every interface,
route, rule and sysctl the run made: cleanup is complete by construction.

Each run owns a slot 0..255 (an atomic mkdir under /run/tcplab/slots, with the owner's
pid) that gives it unique namespace names, addresses and an NFQUEUE number, so runs
go side by side and `tcplab clean` can tell a dead run's leftovers from a live run.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tcplab.errors import LabError
from tcplab.lab import mkns

STATE_DIR = Path(os.environ.get("TCPLAB_STATE_DIR", "/run/tcplab"))
PREFIX = "tl-"
SLOTS = 256


@dataclass(frozen=True)
class Plan:
    run_id: str
    slot: int
    client_ns: str
    router_ns: str
    server_ns: str
    client_addr: str
    router_client_addr: str
    server_addr: str
    router_server_addr: str
    queue: int
    prefixlen: int = 24

    @property
    def namespaces(self) -> tuple[str, str, str]:
        return (self.client_ns, self.router_ns, self.server_ns)

    @property
    def addr_to_host(self) -> dict[str, str]:
        return {
            self.client_addr: "client",
            self.server_addr: "server",
            self.router_client_addr: "router",
            self.router_server_addr: "router",
        }


def plan(slot: int, run_id: str) -> Plan:
    """198.18.0.0/15 is reserved for network benchmark tests (RFC 2544): client side
    198.18.<slot>.0/24, server side 198.19.<slot>.0/24."""
    base = f"{PREFIX}{run_id}"
    return Plan(
        run_id=run_id,
        slot=slot,
        client_ns=f"{base}-c",
        router_ns=f"{base}-r",
        server_ns=f"{base}-s",
        client_addr=f"198.18.{slot}.2",
        router_client_addr=f"198.18.{slot}.1",
        server_addr=f"198.19.{slot}.2",
        router_server_addr=f"198.19.{slot}.1",
        queue=slot,
    )


def claim_slot() -> Plan:
    """Take a free slot; a slot whose owner process is gone is taken over."""
    slots = STATE_DIR / "slots"
    slots.mkdir(parents=True, exist_ok=True)
    start = secrets.randbelow(SLOTS)
    for i in range(SLOTS):
        slot = (start + i) % SLOTS
        d = slots / str(slot)
        try:
            d.mkdir()
        except FileExistsError:
            continue
        p = plan(slot, f"{secrets.token_hex(2)}{slot:02x}")
        (d / "owner.json").write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "start": _proc_start(os.getpid()),
                    "run_id": p.run_id,
                    "namespaces": list(p.namespaces),
                    "created": time.time(),
                }
            )
        )
        return p
    raise LabError(f"all {SLOTS} lab slots are in use", fix="tcplab clean")


def raw_path(p: Plan) -> Path:
    """Where the hook keeps the segments' bytes (tcplab/lab/rawstore.py): in the slot's
    directory, so it goes when the slot is released, or with `tcplab clean`."""
    return STATE_DIR / "slots" / str(p.slot) / "segments.raw"


def release_slot(p: Plan) -> None:
    shutil.rmtree(STATE_DIR / "slots" / str(p.slot), ignore_errors=True)


def _proc_start(pid: int) -> str | None:
    """Process start time, so a recycled pid is not taken for the owner."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner_alive(owner: dict) -> bool:
    pid = owner.get("pid")
    return bool(pid) and _proc_start(pid) is not None and _proc_start(pid) == owner.get("start")


# pyroute2's NetNS opens its netlink socket in a forked copy of this process and ends
# the copy with SIGTERM. The copy inherited the CLI's SIGINT/SIGTERM handler, which
# after a first Ctrl-C raises KeyboardInterrupt: instead of exiting, the copy ran the
# runner's own code on (teardown, the CLI, a pool thread's next job) and the runner
# waited for it forever (docs/robustness.md). So the helper ignores both signals: it
# exits by itself in milliseconds, and pyroute2 SIGKILLs one that does not answer.
_opening = threading.local()


def _quiet_netns_helper() -> None:
    if getattr(_opening, "netns", False):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


os.register_at_fork(after_in_child=_quiet_netns_helper)


@contextmanager
def _netns(name: str):
    from pyroute2 import NetNS

    _opening.netns = True
    try:
        ns = NetNS(name, flags=0)
    finally:
        _opening.netns = False
    with ns:
        yield ns


def build(p: Plan) -> None:
    create_namespaces(p.namespaces)
    # gso_max_segs=1: the hosts hand their veth one wire-sized segment at a time, as
    # to a NIC without TSO. The router then forwards, and its observer records, the
    # segments a real link would carry; the hook's queue used to cut the hosts'
    # 64 KB GSO packets up itself, and segments it no longer queues must look alike.
    with _netns(p.client_ns) as ns:
        ns.link(
            "add",
            ifname="eth0",
            kind="veth",
            gso_max_segs=1,
            peer={"ifname": "to-client", "net_ns_fd": p.router_ns, "gso_max_segs": 1},
        )
    with _netns(p.server_ns) as ns:
        ns.link(
            "add",
            ifname="eth0",
            kind="veth",
            gso_max_segs=1,
            peer={"ifname": "to-server", "net_ns_fd": p.router_ns, "gso_max_segs": 1},
        )
    _configure(p.client_ns, {"eth0": p.client_addr}, gateway=p.router_client_addr, prefixlen=p.prefixlen)
    _configure(p.server_ns, {"eth0": p.server_addr}, gateway=p.router_server_addr, prefixlen=p.prefixlen)
    _configure(
        p.router_ns,
        {"to-client": p.router_client_addr, "to-server": p.router_server_addr},
        gateway=None,
        prefixlen=p.prefixlen,
    )


def create_namespaces(names: tuple[str, ...]) -> None:
    """Each with a small TCP hash of its own (see tcplab/lab/mkns.py for why)."""
    proc = subprocess.run(mkns.command(names), capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"cannot create network namespaces: {proc.stderr.strip()[-300:]}")


def _configure(ns_name: str, addrs: dict[str, str], gateway: str | None, prefixlen: int) -> None:
    with _netns(ns_name) as ns:
        ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        for ifname, addr in addrs.items():
            idx = ns.link_lookup(ifname=ifname)[0]
            ns.addr("add", index=idx, address=addr, prefixlen=prefixlen)
            ns.link("set", index=idx, state="up")
        if gateway:
            ns.route("add", dst="0.0.0.0/0", gateway=gateway)


def destroy(p: Plan) -> list[str]:
    """Remove the run's namespaces; returns the ones that could not be removed."""
    from pyroute2 import netns

    failed = []
    existing = set(netns.listnetns())
    for name in p.namespaces:
        if name in existing:
            try:
                netns.remove(name)
            except OSError:
                failed.append(name)
    return failed


def lab_namespaces() -> list[str]:
    from pyroute2 import netns

    return sorted(n for n in netns.listnetns() if n.startswith(PREFIX))
