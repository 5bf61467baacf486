"""`tcplab clean`: remove what a killed run left (mininet's `mn -c` habit).

A run owns a slot directory with its pid and process start time; a slot whose owner
is gone is dead, and so are lab namespaces no slot claims. Live runs are never
touched. Processes still inside a dead namespace are killed before it is removed.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from tcplab.errors import LabError
from tcplab.lab import topology

NETNS_DIR = Path("/run/netns")


def _slots() -> list[tuple[Path, dict]]:
    out = []
    base = topology.STATE_DIR / "slots"
    if not base.is_dir():
        return out
    for d in sorted(base.iterdir()):
        try:
            owner = json.loads((d / "owner.json").read_text())
        except (OSError, ValueError):
            owner = {}
        out.append((d, owner))
    return out


def _pids_in(ns_name: str) -> list[int]:
    """Processes whose network namespace is the named one (compared by inode)."""
    try:
        target = os.stat(NETNS_DIR / ns_name).st_ino
    except OSError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino == target:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def _remove_namespace(name: str) -> str:
    from pyroute2 import netns

    for pid in _pids_in(name):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    netns.remove(name)
    return f"removed namespace {name}"


def clean_dead_runs() -> list[str]:
    from tcplab.lab.tracefs import leftover_instances, remove_instance

    said = []
    live_ns: set[str] = set()
    live_ids: set[str] = set()
    for d, owner in _slots():
        if owner and topology.owner_alive(owner):
            live_ns.update(owner.get("namespaces", []))
            live_ids.add(owner.get("run_id", ""))
            continue
        if not owner and (d / "owner.json").exists() is False:
            # mkdir happened but owner.json not yet written: a run being born right now
            # looks like this for microseconds; leave a young empty slot alone.
            import time

            if time.time() - d.stat().st_mtime < 10:
                continue
        for name in owner.get("namespaces", []):
            if name in topology.lab_namespaces():
                said.append(_remove_namespace(name))
        d_name = d.name
        for f in d.iterdir():
            f.unlink()
        d.rmdir()
        said.append(f"released slot {d_name} (run {owner.get('run_id', '?')})")
    for name in topology.lab_namespaces():
        if name not in live_ns:
            said.append(_remove_namespace(name))
    for inst in leftover_instances("tcplab-"):
        if inst.removeprefix("tcplab-") not in live_ids:
            try:
                remove_instance(inst)
                said.append(f"removed tracefs instance {inst}")
            except LabError:
                # Still open by a reader: a live run this machine's /run cannot see
                # (another mount namespace or chroot). Busy means alive; leave it.
                said.append(f"left tracefs instance {inst}: in use by a live run")
    return said or ["nothing to clean"]
