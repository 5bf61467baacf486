"""The SVG/HTML ladder on constructed results, read back as XML (the SVG) and by
Python's HTML parser (the page): one arrow per segment, where the dropped ones end,
held ones, the time break, odd text escaped."""

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

from tcplab.core.events import AppCalled, SegmentSeen, StateChanged
from tcplab.render.picture import html_page, svg

NS = {"s": "http://www.w3.org/2000/svg"}
X_ISN, Y_ISN = 1000, 5000


def seg(t, name, nth, sender, fate, flags, seq, ack, t_out=None, retrans=False):
    return SegmentSeen(
        t=t,
        name=name,
        nth=nth,
        sender=sender,
        flags=flags,
        seq=seq,
        ack=ack,
        length=0,
        fate=fate,
        retransmission=retrans,
        conn=1,
        t_out=t_out,
        fault="drop syn nth=1" if fate == "dropped" else None,
    ).to_json()


def result(events, **extra):
    res = {
        "scenario": "demo",
        "file": "scenarios/demo.yaml",
        "claims": ["H2"],
        "verdict": "pass",
        "kernel": "6.18.0",
        "duration": 2.0,
        "errors": [],
        "notes": [],
        "checks": [
            {
                "name": "client connect()",
                "passed": True,
                "expected": "ok",
                "actual": "ok",
                "tolerance": None,
                "window": "both",
                "evidence": "",
                "line": 3,
            },
            {
                "name": "client syn repeats: interval 1",
                "passed": False,
                "expected": 1.0,
                "actual": 1.3,
                "tolerance": 0.125,
                "window": "both",
                "evidence": "t=1.300s syn #2",
                "line": 9,
            },
        ],
        "events": events,
    }
    res.update(extra)
    return res


HANDSHAKE = [
    AppCalled(t=0.0, host="client", call="connect", arg=["server", 8080], result="ok", t_end=1.02).to_json(),
    StateChanged(t=0.0, host="client", old="CLOSE", new="SYN_SENT", source="tracepoint").to_json(),
    seg(0.0001, "syn", 1, "client", "dropped", 0x02, X_ISN, 0),
    seg(1.01, "syn", 2, "client", "delivered", 0x02, X_ISN, 0, 1.0101, retrans=True),
    seg(1.011, "syn-ack", 1, "server", "delayed", 0x12, Y_ISN, X_ISN + 1, 2.511),
    StateChanged(t=1.011, host="server", old="LISTEN", new="SYN_RECV", source="inet_diag").to_json(),
    StateChanged(t=2.512, host="client", old="SYN_SENT", new="ESTABLISHED", source="tracepoint").to_json(),
    seg(2.512, "ack", 1, "client", "delivered", 0x10, X_ISN + 1, Y_ISN + 1, 2.5121),
]


def parse(text):
    return ET.fromstring(text.encode())


def lifelines(root):
    xs = sorted(float(line.get("x1")) for line in root.iterfind(".//s:line[@class='lifeline']", NS))
    assert len(xs) == 3
    return dict(zip(("client", "router", "server"), xs))


def groups(root, cls):
    return [g for g in root.iterfind(".//s:g", NS) if cls in g.get("class", "").split()]


def texts(el):
    return ["".join(t.itertext()) for t in el.iterfind(".//s:text", NS)]


def test_one_arrow_per_segment_with_relative_numbers():
    root = parse(svg(result(HANDSHAKE)))
    segs = groups(root, "segment")
    want = [(e["name"], str(e["nth"])) for e in HANDSHAKE if e["kind"] == "segment"]
    assert [(g.get("data-name"), g.get("data-nth")) for g in segs] == want
    labels = [t for g in segs for t in texts(g)]
    # Relative to each side's ISN: the SYN-ACK acknowledges x+1, the ACK y+1.
    assert "syn-ack #1 [SA] seq=0 ack=1" in labels
    assert "ack #1 [A] seq=1 ack=1" in labels
    assert "syn #2↻ [S] seq=0" in labels


def test_delivered_arrow_reaches_the_receiver_and_dropped_one_dies_in_the_router():
    root = parse(svg(result(HANDSHAKE)))
    x = lifelines(root)
    by = {(g.get("data-name"), g.get("data-nth")): g for g in groups(root, "segment")}

    dropped = by[("syn", "1")]
    assert "fate-dropped" in dropped.get("class")
    assert dropped.find("s:path[@class='drop-mark']", NS) is not None
    assert dropped.find("s:polygon", NS) is None  # no arrowhead: it never arrived
    (shaft,) = dropped.iterfind("s:line", NS)
    assert float(shaft.get("x1")) == x["client"]
    assert x["client"] < float(shaft.get("x2")) <= x["router"]
    assert "dropped" in texts(dropped)

    delivered = by[("syn", "2")]
    tip = delivered.find("s:polygon", NS).get("points").split()[0]
    assert float(tip.split(",")[0]) == x["server"]


def test_held_segment_waits_in_the_router_and_says_how_long():
    root = parse(svg(result(HANDSHAKE)))
    x = lifelines(root)
    (held,) = [g for g in groups(root, "segment") if g.get("data-name") == "syn-ack"]
    hold = held.find("s:line[@class='hold']", NS)
    assert float(hold.get("x1")) == float(hold.get("x2")) == x["router"]
    assert float(hold.get("y2")) > float(hold.get("y1"))  # down the router's column
    tip = held.find("s:polygon", NS).get("points").split()[0]
    assert float(tip.split(",")[0]) == x["client"]
    assert "syn-ack #1 held 1.500 s" in texts(held)


def test_states_sit_on_their_side_and_calls_show_results():
    root = parse(svg(result(HANDSHAKE)))
    x = lifelines(root)
    for g in groups(root, "state"):
        rect = g.find("s:rect", NS)
        middle = float(rect.get("x")) + float(rect.get("width")) / 2
        assert abs(middle - x[g.get("data-host")]) < 0.5
    state_texts = [t for g in groups(root, "state") for t in texts(g)]
    assert state_texts == ["SYN_SENT", "LISTEN→SYN_RECV", "SYN_SENT→ESTABLISHED"]
    calls = [t for g in groups(root, "call") for t in texts(g)]
    # connect() blocked a second: its start is drawn too, then its result.
    assert calls == ["connect(server:8080) …", "connect() → ok 1.020s"]


def test_a_long_silence_becomes_one_break_and_keeps_the_picture_short():
    quiet = HANDSHAKE + [
        StateChanged(t=62.6, host="client", old="TIME_WAIT", new="CLOSE", source="inet_diag").to_json()
    ]
    short = parse(svg(result(HANDSHAKE)))
    long = parse(svg(result(quiet)))
    assert groups(short, "time-break") == []
    (brk,) = groups(long, "time-break")
    assert texts(brk) == ["… 60.1 s later …"]
    assert float(long.get("height")) - float(short.get("height")) < 120


def test_checks_are_listed_under_the_picture_with_their_verdicts():
    root = parse(svg(result(HANDSHAKE)))
    (checks,) = groups(root, "checks")
    lines = texts(checks)
    assert lines[0] == "✓ client connect(): ok"
    assert lines[1].startswith("✗ client syn repeats: interval 1: expected 1.000 s, got 1.300 s")
    title = " ".join(texts(root)[:2])
    assert "demo — PASS" in title and "claims H2" in title and "kernel 6.18.0" in title


def test_unknown_fates_are_drawn_and_named():
    forged = dict(seg(0.5, "rst", 1, "server", "forged", 0x04, 77, 0, 0.5001))
    lost = dict(seg(0.6, "rst", 2, "server", "swallowed", 0x04, 77, 0))
    root = parse(svg(result(HANDSHAKE + [forged, lost])))
    by = {g.get("data-nth"): g for g in groups(root, "segment") if g.get("data-name") == "rst"}
    assert "fate-forged" in by["1"].get("class")
    assert any("(forged)" in t for t in texts(by["1"]))
    assert by["1"].find("s:polygon", NS) is not None  # it went somewhere: an arrow
    assert any("swallowed" in t for t in texts(by["2"]))
    assert by["2"].find("s:polygon", NS) is None  # no t_out: it stops in the router


def test_odd_text_is_escaped_in_svg_and_html():
    odd = 'a<b & "c" ]]> \x01 </svg>'
    call = AppCalled(t=0.0, host="server", call="listen", arg=odd, result="ok", t_end=0.001).to_json()
    res = result([call], scenario=odd, notes=[odd])
    root = parse(svg(res))  # would raise if anything broke the XML
    assert any('a<b & "c" ]]> \ufffd </svg>' in t for t in texts(root))
    page = html_page(res)

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.data, self.urls = [], [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self.urls += [v for k, v in attrs if k in ("src", "href") and v]

        def handle_data(self, data):
            self.data.append(data)

    p = Collect()
    p.feed(page)
    assert p.tags.count("svg") == 1 and "script" not in p.tags and p.urls == []
    assert p.tags.count("tr") == 1 + len(res["checks"])
    assert any('a<b & "c" ]]> \ufffd </svg>' in d for d in p.data)


def test_html_page_needs_nothing_from_the_network():
    page = html_page(result(HANDSHAKE))
    urls = re.findall(r"https?://[^\s\"'<>]+", page)
    assert set(urls) == {"http://www.w3.org/2000/svg"}  # a namespace name, never fetched
    assert "<script" not in page and "@import" not in page and "url(" not in page
