"""What several lab test modules need: the lab's processes, and running a command
inside one of the lab's namespaces (with setns(), as the lab's own children enter
them; `ip netns exec` also remounts /sys, which fails inside a chroot)."""

import os
import subprocess
import sys
from pathlib import Path

_ENTER = ("import os, sys; from tcplab.lab.child import enter_netns; "
          "enter_netns(sys.argv[1]); os.execvp(sys.argv[2], sys.argv[2:])")


def ns_argv(ns: str, *argv: str) -> list[str]:
    return [sys.executable, "-c", _ENTER, ns, *argv]


def ns_output(ns: str, *argv: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run(ns_argv(ns, *argv), capture_output=True, text=True,
                          env=env).stdout


def lab_processes() -> list[str]:
    """Processes running one of tcplab's lab modules (hook, app agents)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "tcplab.lab." in cmd:
            found.append(f"{pid}: {cmd.strip()}")
    return found
