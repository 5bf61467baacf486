"""The kernel's tick count against CLOCK_MONOTONIC, read from /proc/timer_list.

Kernel timers count jiffies; the lab stamps everything with CLOCK_MONOTONIC. On a real
machine the two agree; in an emulated VM (qemu's TCG) jiffies were seen to run slow
against the monotonic clock — a 60 s TIME_WAIT lasting 62.25 s with every TCP timer on
time by its own tick count (6.1 under TCG, session 6). Two readings, at the start and
the end of observation, measure that drift for the run (Lateness, core/check/base.py).
"""

from __future__ import annotations

import re

_NOW = re.compile(r"^now at (\d+) nsecs$", re.M)
_JIFFIES = re.compile(r"^jiffies: (\d+)$", re.M)


def parse_timer_list(text: str) -> tuple[float, int] | None:
    """(monotonic seconds, jiffies) from /proc/timer_list's text: its `now at` line and
    the first `jiffies:` line, printed microseconds apart."""
    now, jiffies = _NOW.search(text), _JIFFIES.search(text)
    if not now or not jiffies:
        return None
    return int(now[1]) / 1e9, int(jiffies[1])


def read_clock(path: str = "/proc/timer_list") -> tuple[float, int] | None:
    """One reading, or None where /proc/timer_list is missing or unreadable."""
    try:
        with open(path) as f:
            return parse_timer_list(f.read())
    except OSError:
        return None
