"""Create the lab's named network namespaces, each with a TCP hash table of its own.

A namespace created from the root one shares the root's established-socket hash
(`tcp_child_ehash_entries` = 0 there: 262,144 buckets here), and every inet_diag dump
walks all of it: ~0.25 ms of kernel time per dump. A namespace gets a small hash of
its own when the namespace it is created *from* has `tcp_child_ehash_entries` set
(tcp_set_hashinfo() reads the creator's), so the namespaces are made from a throw-away
one: util-linux's `unshare --net` starts a shell in it, the shell sets the sysctl there
(never in the root namespace: /proc/sys/net follows the opener's namespace), and
iproute2's `ip netns add` (run once per name, each a process that starts in the
throw-away namespace) creates and names each lab namespace. The throw-away namespace
disappears when the shell exits. Measured in bench/diag_poll.py: a dump drops from
~250 us to ~30 us of CPU.

Until session 9 this was a Python process that imported pyroute2 to do the same:
0.3 s of the 0.35 s the namespaces took, more than all of the rest of a run's
namespace set-up (docs/performance.md).
"""

from __future__ import annotations

EHASH_ENTRIES = 1024  # plenty for a lab host; the kernel rounds to a power of two
SYSCTL = "/proc/sys/net/ipv4/tcp_child_ehash_entries"  # Linux >= 6.1

_SCRIPT = (
    "set -e; "
    f"if [ -e {SYSCTL} ]; then echo {EHASH_ENTRIES} > {SYSCTL}; fi; "
    'for name in "$@"; do ip netns add "$name"; done'
)


def command(names: tuple[str, ...] | list[str]) -> list[str]:
    """The argv that creates `names` (run as root)."""
    return ["unshare", "--net", "sh", "-c", _SCRIPT, "mkns", *names]
