"""Exports read back by their consumers: JUnit by junitparser, Mermaid by a structure
check, saved events by the loader of `tcplab show` (round trip)."""

import re

from junitparser import Error, Failure, JUnitXml

from tcplab.core.events import AppCalled, SegmentSeen, StateChanged, event_from_json
from tcplab.render.export import junit, mermaid

EVENTS = [
    SegmentSeen(
        t=0.001,
        name="syn",
        nth=1,
        sender="client",
        flags=0x02,
        seq=5,
        ack=0,
        length=0,
        fate="dropped",
        retransmission=False,
        conn=1,
        t_out=None,
        src="198.18.1.2",
        dst="198.19.1.2",
        sport=40000,
        dport=8080,
        fault="drop syn nth=all",
    ),
    SegmentSeen(
        t=1.01,
        name="syn",
        nth=2,
        sender="client",
        flags=0x02,
        seq=5,
        ack=0,
        length=0,
        fate="delivered",
        retransmission=True,
        conn=1,
        t_out=1.0102,
    ),
    SegmentSeen(
        t=1.02,
        name="syn-ack",
        nth=1,
        sender="server",
        flags=0x12,
        seq=9,
        ack=6,
        length=0,
        fate="delayed",
        retransmission=False,
        conn=1,
        t_out=2.52,
        held_late=0.0004,
    ),
    StateChanged(
        t=0.0,
        host="client",
        old="CLOSE",
        new="SYN_SENT",
        source="tracepoint",
        laddr="198.18.1.2",
        lport=40000,
        raddr="198.19.1.2",
        rport=8080,
    ),
    AppCalled(t=0.0, host="client", call="connect", arg=["server", 8080], result="ok", t_end=2.53, detail=""),
]


def result(verdict="fail"):
    return {
        "scenario": "demo",
        "verdict": verdict,
        "kernel": "6.18",
        "claims": ["H2"],
        "duration": 3.5,
        "errors": ["hook died"] if verdict == "error" else [],
        "checks": []
        if verdict == "error"
        else [
            {
                "name": "client syn repeats: interval 1",
                "passed": False,
                "expected": 1.0,
                "actual": 2.0,
                "tolerance": 0.125,
                "evidence": "t=1.010s syn #2",
            },
            {"name": "client connect()", "passed": True, "expected": "ok", "actual": "ok", "tolerance": None},
        ],
        "events": [e.to_json() for e in EVENTS],
    }


def test_events_round_trip_through_json():
    for e in EVENTS:
        assert event_from_json(e.to_json()) == e


def test_junit_is_read_by_a_junit_parser(tmp_path):
    path = tmp_path / "j.xml"
    path.write_text(junit([result("fail"), result("error")]))
    suites = list(JUnitXml.fromfile(str(path)))
    assert [s.name for s in suites] == ["demo", "demo"]
    failed, errored = suites
    assert (failed.tests, failed.failures, failed.errors) == (2, 1, 0)
    cases = {c.name: c for c in failed}
    (failure,) = cases["client syn repeats: interval 1"].result
    assert isinstance(failure, Failure)
    assert "expected 1.0, got 2.0, tolerance 0.125" in failure.message
    assert cases["client connect()"].is_passed
    (err,) = next(iter(errored)).result
    assert isinstance(err, Error) and "hook died" in err.message


def test_mermaid_is_a_sequence_diagram():
    text = mermaid(result())
    lines = text.splitlines()
    assert lines[0] == "sequenceDiagram"
    declared = {m[1] for line in lines if (m := re.match(r"\s+participant (\w) as \w+", line))}
    assert declared == {"C", "R", "S"}
    arrow = re.compile(r"^\s+([CRS])(->>|-x|-\))([CRS]): (.+)$")
    note = re.compile(r"^\s+Note over ([CRS]): (.+)$")
    body = lines[4:]
    assert all(arrow.match(x) or note.match(x) for x in body), body
    assert "    C-xR: 0.001s syn no. 1 [S] (dropped)" in body
    assert any(x.startswith("    R-)C: 1.020s syn-ack") and "held 1.500s" in x for x in body)
    assert not any(";" in x or "#" in x for x in body)  # Mermaid statement/entity syntax


def test_pcap_has_sent_and_delivered_copies_with_comments(tmp_path):
    from scapy.layers.inet import IP, TCP
    from scapy.utils import PcapNgReader

    from tcplab.render.export import pcap

    raw = bytes(IP(src="198.18.1.2", dst="198.19.1.2") / TCP(flags="S", seq=5)).hex()
    res = result()
    res["started"] = 1_700_000_000.0
    for e in res["events"]:
        if e["kind"] == "segment":
            e["raw"] = raw
    n = pcap(res, tmp_path / "r.pcapng")
    packets = list(PcapNgReader(str(tmp_path / "r.pcapng")))
    assert n == len(packets) == 5  # dropped: 1 copy; delivered and delayed: 2 each
    comments = [p.comments[0].decode() for p in packets]
    assert comments[0] == "syn #1 from client: sent (dropped by drop syn nth=all)"
    assert "syn-ack #1 from server: released" in comments
    assert [float(p.time) for p in packets] == sorted(float(p.time) for p in packets)
    assert abs(float(packets[-1].time) - (1_700_000_000.0 + 2.52)) < 1e-3
