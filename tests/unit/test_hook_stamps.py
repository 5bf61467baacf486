"""Kernel stamps (CLOCK_REALTIME) on the lab's clock: the offset between the clocks is
read between two monotonic reads and the tightest bracket wins, so a preemption
between the reads cannot shift every converted stamp. A fake clock, no kernel."""

from __future__ import annotations

from tcplab.lab.hook import stamps

OFFSET = 1_700_000_000.0  # CLOCK_REALTIME - CLOCK_MONOTONIC on the fake machine


def test_a_read_preempted_between_the_clocks_is_not_the_one_used(monkeypatch):
    mono = [100.0]
    # the first try: preempted 5 ms between its monotonic read and its realtime read
    delays = iter([0.005, 0.0, 0.0, 0.0, 0.0])

    def monotonic():
        mono[0] += 1e-6
        return mono[0]

    def realtime():
        mono[0] += next(delays, 0.0)
        return mono[0] + OFFSET

    monkeypatch.setattr(stamps.time, "monotonic", monotonic)
    monkeypatch.setattr(stamps.time, "time", realtime)
    assert abs(stamps.realtime_offset() - OFFSET) < 5e-6  # a plain read: 2.5 ms off


def test_the_offset_is_read_once_a_second_not_per_stamp(monkeypatch):
    clock = {"mono": 500.0, "reads": 0}

    def monotonic():
        return clock["mono"]

    def realtime():
        clock["reads"] += 1
        return clock["mono"] + OFFSET

    monkeypatch.setattr(stamps.time, "monotonic", monotonic)
    monkeypatch.setattr(stamps.time, "time", realtime)
    monkeypatch.setattr(stamps, "_read", (float("-inf"), 0.0))
    assert stamps.to_monotonic(OFFSET + 499.0) == 499.0
    reads = clock["reads"]
    clock["mono"] += 0.5
    stamps.to_monotonic(OFFSET + 500.2)
    assert clock["reads"] == reads  # within the second: the offset already read
    clock["mono"] += 0.6
    stamps.to_monotonic(OFFSET + 500.9)
    assert clock["reads"] > reads  # a second on: read again
