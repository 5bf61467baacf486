"""Kernel receive stamps (CLOCK_REALTIME) on the lab's clock (CLOCK_MONOTONIC)."""

from __future__ import annotations

import time

TRIES = 5


def realtime_offset() -> float:
    """CLOCK_REALTIME - CLOCK_MONOTONIC, read between two monotonic reads, the tightest
    of a few tries: a process preempted between two plain reads (the observer runs at
    nice 10) would shift every stamp it converts by however long it waited (a reply's
    stamp came out 30 us before its question left, in a CI run under load)."""
    best = None
    for _ in range(TRIES):
        before = time.monotonic()
        real = time.time()
        after = time.monotonic()
        if best is None or after - before < best[0]:
            best = (after - before, real - (before + after) / 2)
    return best[1]


# The offset moves only as NTP slews or steps the realtime clock: read once a second,
# not on every queued segment (the callback's hot path).
REFRESH = 1.0
_read: tuple[float, float] = (float("-inf"), 0.0)  # (monotonic when read, offset)


def to_monotonic(realtime: float) -> float:
    """A CLOCK_REALTIME stamp on CLOCK_MONOTONIC, with the offset of the last second."""
    global _read
    now = time.monotonic()
    if now - _read[0] > REFRESH:
        _read = (now, realtime_offset())
    return realtime - _read[1]
