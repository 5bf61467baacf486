"""Renderers at a fixed width into a StringIO (the rich habit): the ladder and the
--repeat summary."""

import io

from rich.console import Console

from tcplab.core.events import SegmentSeen
from tcplab.core.scenario import Expect, Scenario
from tcplab.render.ladder import Ladder
from tcplab.render.live import repeat_tables
from tcplab.judging import RunResult
from tcplab.core.check.base import Check


def text(renderable, width=110):
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable)
    return out.getvalue()


def seg(t, name, nth, sender, fate, flags=0x02, t_out=None):
    return SegmentSeen(
        t=t,
        name=name,
        nth=nth,
        sender=sender,
        flags=flags,
        seq=7,
        ack=0,
        length=0,
        fate=fate,
        retransmission=nth > 1,
        conn=1,
        t_out=t_out,
    )


def test_dropped_segment_ends_mid_network_and_retransmission_is_marked():
    ladder = Ladder(110)
    first = text(ladder.line(seg(0.0, "syn", 1, "client", "dropped")))
    again = text(ladder.line(seg(1.0, "syn", 2, "client", "dropped")))
    assert "syn #1 [S] seq=0" in first and "✕ dropped" in first and "▶" not in first
    assert "#2↻" in again


def test_delayed_segment_shows_its_hold():
    line = text(Ladder(110).line(seg(0.0, "syn-ack", 1, "server", "delayed", 0x12, 1.5)))
    assert "⧗1.500s" in line and line.index("◀") < line.index("syn-ack")


def scenario(name):
    return Scenario(
        path=f"{name}.yaml",
        name=name,
        summary="",
        claims=(),
        sysctls={},
        apps={},
        faults=(),
        expect=Expect(),
        timeout=1,
    )


def test_repeat_table_counts_verdicts_and_spreads_timings():
    sc = scenario("s")
    runs = [
        RunResult(sc, v, [Check("client syn repeats: interval 1", v == "pass", 1.0, a, 0.125)])
        for v, a in (("pass", 1.01), ("pass", 1.03), ("fail", 1.2))
    ]
    (table,) = repeat_tables(runs)
    out = text(table)
    assert "3 runs" in out and "pass 2" in out and "fail 1" in out and "VERDICT FLIPS" in out
    row = next(line for line in out.splitlines() if "interval 1" in line)
    assert "1.010 s" in row and "1.030 s" in row and "1.200 s" in row and row.rstrip(" │").endswith("1")
