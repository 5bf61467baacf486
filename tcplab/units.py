"""Durations as scenario files write them: 1.5s, 200ms, 2m, 63 (seconds)."""

from __future__ import annotations

import re

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(us|ms|s|min|m|h)?\s*$")


def parse_duration(value: object) -> float:
    """Seconds from '1.5s', '200ms', 3, 0.25. Raises ValueError on anything else
    (negative, NaN, booleans, garbage)."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        m = DURATION.match(value)
        if not m:
            raise ValueError(f"not a duration: {value!r} (write e.g. 1.5s or 200ms)")
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    else:
        raise ValueError(f"not a duration: {value!r}")
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"duration must be a finite number >= 0, got {value!r}")
    return seconds


def parse_percent(value: object) -> float:
    """Fraction from '12.5%' or 0.125."""
    if isinstance(value, bool):
        raise ValueError(f"not a ratio: {value!r}")
    if isinstance(value, (int, float)):
        ratio = float(value)
    elif isinstance(value, str) and value.strip().endswith("%"):
        try:
            ratio = float(value.strip()[:-1]) / 100.0
        except ValueError:
            raise ValueError(f"not a percentage: {value!r}") from None
    else:
        raise ValueError(f"not a ratio: {value!r} (write e.g. 12.5% or 0.125)")
    if not 0 <= ratio <= 10:
        raise ValueError(f"ratio out of range: {value!r}")
    return ratio


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.3f} s"
