"""scripts/kernel-vm's processes and scratch space: everything it starts dies with it
(PR_SET_PDEATHSIG), and a later run sweeps what a SIGKILLed one left."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tcplab.vm.plan import CACHE, Failed

# ----------------------------------------------------------------- processes

_children: set[subprocess.Popen] = set()


def die_with_parent() -> None:
    # PR_SET_PDEATHSIG = 1: a child still running when this process dies (even by
    # SIGKILL) is killed too.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def die_with_parent_niced() -> None:
    die_with_parent()
    os.nice(10)  # the image builds (dpkg, gcc, mkfs) yield to the host's own work


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
    _children.discard(proc)


def spawn(argv: list[str], niced: bool = False, **kw) -> subprocess.Popen:
    proc = subprocess.Popen(
        argv, start_new_session=True, preexec_fn=die_with_parent_niced if niced else die_with_parent, **kw
    )
    _children.add(proc)
    return proc


def sh(argv: list[str], *, quiet: bool = False, **kw) -> None:
    """Runs argv to its end (killed with this tool on any exit); fails on non-zero."""
    if quiet:
        kw.setdefault("stdout", subprocess.DEVNULL)
    proc = spawn(argv, niced=True, **kw)
    try:
        rc = proc.wait()
    finally:
        kill(proc)
    if rc != 0:
        raise Failed(f"{' '.join(map(str, argv[:4]))}... exited {rc}")


def forget(proc: subprocess.Popen) -> None:
    """A child that ended and was waited for elsewhere: no longer this tool's to kill."""
    _children.discard(proc)


def kill_children() -> None:
    for proc in list(_children):
        kill(proc)


def on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def say(msg: str) -> None:
    print(f"kernel-vm: {msg}", file=sys.stderr, flush=True)


def scratch(kind: str) -> Path:
    """A temporary directory under the cache, named with this process's pid, so a later
    run can sweep what a SIGKILLed one left (sweep_leftovers)."""
    tmp = CACHE / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{kind}-{os.getpid()}-", dir=tmp))


def remove(path: Path) -> None:
    if path.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def sweep_leftovers() -> None:
    tmp = CACHE / "tmp"
    if not tmp.is_dir():
        return
    for d in tmp.iterdir():
        try:
            pid = int(d.name.rsplit("-", 2)[-2])  # <kind>-<pid>-<random, no dash>
        except (IndexError, ValueError):
            continue
        if not Path(f"/proc/{pid}").exists():
            remove(d)
