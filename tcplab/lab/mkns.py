"""Create the lab's named network namespaces, each with a TCP hash table of its own.

    python -m tcplab.lab.mkns NAME [NAME ...]

A namespace created from the root one shares the root's established-socket hash
(`tcp_child_ehash_entries` = 0 there: 262,144 buckets here), and every inet_diag dump
walks all of it: ~0.25 ms of kernel time per dump. A namespace gets a small hash of
its own when the namespace it is created *from* has `tcp_child_ehash_entries` set, so
this process first unshares into a throw-away namespace, sets the sysctl there (never
in the root namespace), and creates each lab namespace from it. The throw-away
namespace disappears when this process exits. Measured in bench/diag_poll.py: a dump
drops from ~250 us to ~30 us of CPU.

It is a process of its own because unshare() moves the calling process, and the
runner must stay where it is.
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWNET = 0x40000000
EHASH_ENTRIES = 1024  # plenty for a lab host; the kernel rounds to a power of two
SYSCTL = "/proc/sys/net/ipv4/tcp_child_ehash_entries"  # Linux >= 6.1


def main(names: list[str]) -> None:
    from pyroute2.netns import _create  # the creation step of netns.create, in-process

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise SystemExit(f"unshare: {os.strerror(ctypes.get_errno())}")
    if os.path.exists(SYSCTL):
        with open(SYSCTL, "w") as f:
            f.write(str(EHASH_ENTRIES))
    parent = os.open("/proc/self/ns/net", os.O_RDONLY)
    for name in names:
        # Back to the throw-away namespace each time: a namespace inherits the
        # setting of the one it is created from, not of the root.
        if libc.setns(parent, CLONE_NEWNET) != 0:
            raise SystemExit(f"setns: {os.strerror(ctypes.get_errno())}")
        _create(name)
    os.close(parent)


if __name__ == "__main__":
    main(sys.argv[1:])
