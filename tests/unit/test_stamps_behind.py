"""stamps_behind (core/check/stamps.py): how far behind the kernel the router's
stamps ran, from the tcp_retransmit_skb tracepoint beside the router's record of each
retransmission; and a run whose stamps ran further behind than the slop cap is an
`error`, never a fail (gen-5016 in the 6.1 guest under TCG: the hook, blocked 0.65 s
in set_link(), stamped three retransmissions a second late, and the RTO checks failed
on gaps of 4 ms)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tcplab.core.check.stamps import stamps_behind
from tcplab.core.events import KernelNoted, SegmentSeen
from tcplab.core.record import Record
from tcplab.format.load import load_scenario
from tcplab.judging import rejudge

ROOT = Path(__file__).resolve().parents[2]
TUPLE = ("198.19.1.2", 8080, "198.18.1.2", 40000)


def seg(t: float, nth: int) -> SegmentSeen:
    src, sport, dst, dport = TUPLE
    return SegmentSeen(
        t=t, name="data", nth=nth, sender="server", flags=0x18, seq=1, ack=1, length=1, fate="dropped",
        retransmission=nth > 1, conn=1, src=src, sport=sport, dst=dst, dport=dport,
    )  # fmt: skip


def kernel(t: float) -> KernelNoted:
    detail = f"{TUPLE[0]}:{TUPLE[1]} -> {TUPLE[2]}:{TUPLE[3]} state=ESTABLISHED err=0"
    return KernelNoted(t, "server", "tcp_retransmit_skb", detail)


def record(stamps: list[float], fired: list[float]) -> Record:
    rec = Record(t0=0.0)
    rec.segments = [seg(t, i + 1) for i, t in enumerate(stamps)]
    rec.kernel = [kernel(t) for t in fired]
    return rec


def test_the_lag_is_the_worst_of_the_time_ordered_pairing():
    # retransmitted at 1.45, 1.66, 2.08; the router stamped them at 1.4502, 2.74, 2.75
    behind, proof = stamps_behind(record([1.2, 1.4502, 2.74, 2.75], [1.45, 1.66, 2.08]))
    assert abs(behind - (2.74 - 1.66)) < 1e-9 and "tcp_retransmit_skb at t=1.660s" in proof


def test_nothing_is_concluded_when_the_router_saw_fewer_retransmissions():
    assert stamps_behind(record([1.2, 2.74], [1.45, 1.66])) == (0.0, "")


def test_nothing_is_concluded_when_a_stamp_would_come_before_its_retransmission():
    assert stamps_behind(record([1.2, 1.40, 1.70], [1.45, 1.66])) == (0.0, "")


def test_a_run_whose_stamps_ran_a_second_behind_is_an_error_not_a_fail():
    """gen-10219 (link-down: the server's data into the silence, every retransmission
    on the tracepoint), with the router's stamps of data #3 to #5 moved 1 s later, as
    a blocked hook would stamp them: the RTO gaps no longer fit, and the run says the
    lab was too slow instead of failing the kernel."""
    with gzip.open(ROOT / "tests/corpus/generated/runs/gen-10219.json.gz") as f:
        run = json.load(f)
    sc = load_scenario(ROOT / run["file"])
    assert rejudge(sc, run).verdict == "pass"

    def later(e):
        if e.get("kind") == "segment" and e.get("name") == "data" and e.get("nth") in (3, 4, 5):
            return {**e, "t": e["t"] + 1.0}
        return e

    res = rejudge(sc, {**run, "events": [later(e) for e in run["events"]]})
    assert res.verdict == "error", [(c.name, c.expected, c.actual) for c in res.checks if not c.passed]
    assert any("the router stamped segments up to 1" in str(c.actual) for c in res.checks if c.error)
