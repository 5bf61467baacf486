"""Expectations that differ by kernel version (`expect.kernels`, docs/scenario-format.md).

A scenario states what its kernel does; where an older or newer kernel does something
else by design (linear SYN timeouts from 6.5, the accept queue's `>` from 6.13, ...),
the file says so with a version range and the expectations that hold there:

    expect:
      server: {sockets: {SYN_RECV: 2}}
      kernels:
        "< 6.13": {server: {sockets: {SYN_RECV: 3}}}

For a kernel inside a range, each key the range gives for a host replaces the same key
of the host's expectations (one entry of a mapping such as `sockets` or `retransmits`,
or a whole value such as `states`); everything else stays. Pure.
"""

from __future__ import annotations

import dataclasses
import re

from tcplab.core.scenario import HostExpect, KernelExpect, KernelRange, Version

# ">= 6.5", "< 6.13", ">= 6.5, < 6.13": the bounds a kernel release is compared with
# (major.minor; a stable kernel 6.1.176 is 6.1).
BOUND = re.compile(r"^\s*(>=|<)\s*(\d+)\.(\d+)\s*$")


def parse_range(text: str) -> KernelRange | str:
    """The range, or why the text is not one."""
    since = before = None
    parts = [p for p in text.split(",")]
    if not 1 <= len(parts) <= 2:
        return 'expected one or two bounds such as ">= 6.5" or ">= 6.5, < 6.13"'
    for part in parts:
        m = BOUND.match(part)
        if not m:
            return f'expected a bound such as ">= 6.5" or "< 6.13" (major.minor), found {part.strip()!r}'
        version = (int(m[2]), int(m[3]))
        if m[1] == ">=":
            if since is not None:
                return "two lower bounds"
            since = version
        else:
            if before is not None:
                return "two upper bounds"
            before = version
    if since is not None and before is not None and since >= before:
        return f"an empty range: no kernel is >= {since[0]}.{since[1]} and < {before[0]}.{before[1]}"
    return KernelRange(since, before, ", ".join(p.strip() for p in parts))


# HostExpect fields that map names to expectations: a range replaces single entries.
PER_ENTRY = ("calls", "retransmits", "sends", "largest", "sockets", "lasts", "returns_after", "resent")


def overlay(base: HostExpect, over: HostExpect) -> HostExpect:
    """`base` with what `over` gives (over.lines names the keys it gives)."""
    changes: dict = {"lines": {**base.lines, **over.lines}}
    for name in PER_ENTRY:
        entries = getattr(over, name)
        if entries:
            changes[name] = {**getattr(base, name), **entries}
    if "gives_up_after" in over.lines:
        changes["gives_up_after"] = over.gives_up_after
    for name in ("states", "received"):  # whole values
        if name in over.lines:
            changes[name] = getattr(over, name)
    return dataclasses.replace(base, **changes)


def for_kernel(
    hosts: dict[str, HostExpect], by_kernel: tuple[KernelExpect, ...], version: Version | None
) -> tuple[dict[str, HostExpect], list[KernelExpect]]:
    """Each host's expectations on this kernel, and the ranges that applied (none when
    the version is unknown: the scenario's own expectations are judged)."""
    applied = [k for k in by_kernel if version is not None and version in k.range]
    out = dict(hosts)
    for k in applied:
        for host, over in k.hosts.items():
            out[host] = overlay(out.get(host, HostExpect()), over)
    return out, applied
