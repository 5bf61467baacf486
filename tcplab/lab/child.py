"""What every lab child process shares: enter its namespace, set sysctls, and speak
JSON lines to the runner (stdin: commands, stdout: events).

Children are separate processes because setns() changes the calling thread's
namespace and /proc/sys/net follows the namespace of whoever opens it: a child that
entered the namespace first can touch only that namespace, never the root one.
"""

from __future__ import annotations

import json
import sys
import threading
import time

_out_lock = threading.Lock()


def enter_netns(name: str) -> None:
    from pyroute2 import netns

    # flags=0: never create a namespace by accident (pyroute2's default is O_CREAT).
    netns.setns(name, flags=0)


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


def read_config() -> dict:
    return json.loads(sys.stdin.readline())
