"""What every lab child process shares: enter its namespace, set sysctls, and speak
JSON lines to the runner (stdin: commands, stdout: events).

Children are separate processes because setns() changes the calling thread's
namespace and /proc/sys/net follows the namespace of whoever opens it: a child that
entered the namespace first can touch only that namespace, never the root one.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

_out_lock = threading.Lock()


CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/var/run/netns"  # where `ip netns add` (tcplab/lab/mkns.py) names them


def enter_netns(name: str) -> None:
    """setns(2) into the named namespace, which must exist (never created here). What
    pyroute2's netns.setns(name, flags=0) does, without importing pyroute2: that took
    0.3 s of every child's start, three children per run (os.setns is Python 3.12's)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(os.path.join(NETNS_RUN_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def sysctl_path(name: str) -> str:
    return "/proc/sys/" + name.replace(".", "/")


def read_sysctl(name: str) -> str | None:
    try:
        with open(sysctl_path(name)) as f:
            return " ".join(f.read().split())
    except OSError:
        return None


def write_sysctls(sysctls: dict[str, str]) -> None:
    for name, value in sysctls.items():
        try:
            with open(sysctl_path(name), "w") as f:
                f.write(str(value))
        except OSError as e:
            raise SystemExit(f"sysctl {name}={value}: {e.strerror}") from None


def emit(kind: str, **fields) -> None:
    fields.setdefault("mono", time.monotonic())
    line = json.dumps({"kind": kind, **fields})
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def emit_line(line: str) -> None:
    """A line another process already encoded (the app agent relays its application)."""
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def read_config() -> dict:
    return json.loads(sys.stdin.readline())


# The lab's own processes must not be what a run measures. The router hook is a
# userspace hop for every segment, and the apps' calls are timed by the app: on a
# loaded machine (a catalogue side by side on two cores) a normal-priority hook waited
# for the CPU long enough to stretch the handshake RTT from 0.4 ms to 32 ms, and so the
# kernel's RTO from 0.204 s to 0.232 s. A higher priority keeps both out of the way;
# they sleep nearly all the time, so they take nothing from anyone.
HOOK_NICE, APP_NICE = -10, -5


def raise_priority(nice: int) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError:  # not root or not allowed: the run still works, with more jitter
        pass
