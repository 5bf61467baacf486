"""The fault kinds beyond drop and delay, as pure code: loading them, what is in force
when (core/faults.py), the rule verdicts, packet rewriting (core/craft.py, checked
against scapy's own checksums), the record and checker treating injected segments,
and the ladder's lines. No root, no kernel, times passed in."""

from __future__ import annotations

import struct

import pytest
from unit.helpers import ACK, C, RST, S, SYN, X, Y, c2s, handshake, s2c

from tcplab.core import craft
from tcplab.core.events import FaultActed, event_from_json
from tcplab.core.faults import (
    DELAY,
    DUPLICATE,
    Forge,
    HostFault,
    STRIP_MSS,
    expected_seq,
    rst_after,
    schedule,
    silencing,
)
from tcplab.core.packet import parse_ipv4_tcp
from tcplab.core.record import Record
from tcplab.core.rules import decide
from tcplab.core.segments import Classifier
from tcplab.render.ladder import Ladder
from tcplab.format.load import load_text
from tcplab.core.check.expect import check_scenario

HEAD = (
    "scenario: t\nsummary: s\napps:\n  server: [listen: 8080, accept, sleep: 5s]\n"
    '  client: [connect: "server:8080", send: 4000]\ntimeout: 10s\nfaults:\n'
)


def load(faults: str):
    return load_text(HEAD + faults, "t.yaml")


# --- loading ------------------------------------------------------------------------


def test_host_faults_and_forges_load_apart_from_segment_faults():
    sc = load(
        "  - drop: syn\n    nth: 1\n"
        "  - link-down: server\n    at: 1s\n    until: 2.5s\n"
        "  - crash: client\n    at: 4s\n"
        "  - reboot: server\n    at: 3s\n    until: 5s\n"
        "  - kill: server\n    at: 500ms\n"
        "  - forge: rst\n    to: client\n    after: data\n    nth: 2\n"
        "  - forge: stale-syn\n"
        "  - duplicate: syn-ack\n    by: 10ms\n"
        "  - strip-mss: syn\n"
    )
    assert [f.action for f in sc.faults] == ["drop", "duplicate", "strip-mss"]
    assert sc.faults[1].by == 0.01 and sc.faults[2].by == 0.0
    assert sc.host_faults == (
        HostFault("link-down", "server", 1.0, 2.5, 10),
        HostFault("crash", "client", 4.0, None, 13),
        HostFault("reboot", "server", 3.0, 5.0, 15),
        HostFault("kill", "server", 0.5, None, 18),
    )
    assert sc.forges == (Forge("rst", "client", after="data", nth=(2,), line=20), Forge("stale-syn", line=24))


def test_a_duplicate_may_follow_at_once_but_a_delay_may_not_be_zero():
    assert load("  - duplicate: data\n").faults[0].by == 0.0
    with pytest.raises(Exception, match="above 0"):
        load("  - delay: data\n    by: 0s\n")


@pytest.mark.parametrize(
    "faults, key, words",
    [
        ("  - link-down: server\n    at: 3s\n    until: 2s\n", "faults[0].until", "after at"),
        ("  - crash: server\n    at: 10s\n", "faults[0].at", "below 10s"),
        ("  - kill: router\n    at: 1s\n", "faults[0].kill", "router is the lab's"),
        ("  - forge: rst\n    to: gateway\n    at: 1s\n", "faults[0].to", "client or server"),
        ("  - forge: rst\n    to: client\n", "faults[0]", "neither"),
        ("  - forge: rst\n    to: client\n    at: 1s\n    nth: 1\n", "faults[0].nth", "after"),
        (
            "  - forge: rst\n    to: client\n    after: syn-ack\n    from: client\n",
            "faults[0].from",
            "only sent by the server",
        ),
        ("  - forge: stale-syn\n    at: 1s\n", "faults[0].at", "no other key"),
        ("  - forge: bogus\n", "faults[0].forge", "rst or stale-syn"),
        ("  - crash: server\n    at: 1s\n    until: 2s\n", "faults[0].until", "no end"),
        ("  - reboot: server\n    at: 1s\n", "faults[0].until", "missing"),
        ("  - crash: server\n", "faults[0].at", "missing"),
        ("  - crash: server\n    at: 1s\n    by: 1s\n", "faults[0].by", "unknown key"),
        ("  - crash: server\n    at: 1s\n  - crash: server\n    at: 2s\n", "faults[1]", "given twice"),
        ("  - crash: server\n    at: 1s\n  - kill: server\n    at: 2s\n", "faults[1]", "crashed at 1s"),
        ("  - strip-mss: fin\n", "faults[0].strip-mss", "MSS option"),
        ("  - strip-mss: syn\n    by: 1s\n", "faults[0].by", "delay only"),
        ("  - drop: syn\n    duplicate: syn\n", "faults[0]", "both (drop and duplicate)"),
    ],
)
def test_mistakes_name_their_key(faults, key, words):
    with pytest.raises(Exception) as caught:
        load(faults)
    err = caught.value
    assert err.key == key, str(err)
    assert words in err.message, str(err)


# --- what is in force when ------------------------------------------------------------


def test_silence_covers_both_directions_from_at_and_ends_at_until():
    crash = HostFault("crash", "server", 2.0)
    reboot = HostFault("reboot", "client", 1.0, 3.0)
    faults = (crash, reboot)
    assert silencing(faults, "client", "server", None) is None  # before the apps start
    assert silencing(faults, "client", "server", 0.5) is None
    assert silencing(faults, "client", "server", 1.0) is reboot
    assert silencing(faults, "server", "client", 2.9) is crash  # the first listed in force
    assert silencing((crash,), "server", "client", 2.0) is crash
    assert silencing((crash,), "client", "server", 1e6) is crash  # a crash never ends
    assert silencing((reboot,), "client", "server", 3.0) is None  # back up at until
    # link-down and kill are not silences: the kernel and the agent do those
    assert (
        silencing(
            (HostFault("link-down", "server", 0.0, 9.0), HostFault("kill", "server", 0.0)),
            "client",
            "server",
            1.0,
        )
        is None
    )


def test_schedule_lists_what_the_hook_does_on_its_own_in_time_order():
    down = HostFault("link-down", "client", 2.0, 4.0)
    late = Forge("rst", "server", at=3.0)
    after = Forge("rst", "server", after="data")
    assert schedule((down, HostFault("kill", "server", 1.0)), (late, after)) == [
        (2.0, "down", down),
        (3.0, "forge", late),
        (4.0, "up", down),
    ]


def test_forge_after_matches_name_sender_and_occurrence():
    f = Forge("rst", "client", after="data", nth=(2,), sender="server")
    assert rst_after((f,), "data", 2, "server") == [f]
    assert rst_after((f,), "data", 1, "server") == []
    assert rst_after((f,), "data", 2, "client") == []
    assert rst_after((Forge("rst", "client", at=1.0),), "data", 1, "client") == []


def test_a_forged_rst_carries_the_sequence_number_its_receiver_expects():
    ends = {"client": X + 101, "server": Y + 1}
    assert expected_seq(ends, "client") == Y + 1  # what the server has sent so far
    assert expected_seq(ends, "server") == X + 101
    assert expected_seq({}, "client") is None


# --- verdicts ------------------------------------------------------------------------


def test_duplicate_and_strip_mss_verdicts_deliver_and_only_a_delay_holds():
    sc = load("  - duplicate: syn\n    by: 20ms\n  - strip-mss: syn-ack\n  - delay: ack\n    by: 1s\n")
    clf = Classifier({C})
    syn, synack, ack = (clf.classify(s) for s in handshake())
    v = decide(sc.faults, syn)
    assert (v.action, v.delay) == (DUPLICATE, 0.02)
    assert decide(sc.faults, synack).action == STRIP_MSS
    assert (decide(sc.faults, ack).action, decide(sc.faults, ack).delay) == (DELAY, 1.0)


def test_the_server_isn_comes_from_the_syn_ack_of_the_clients_own_syn():
    """forge: stale-syn: the server first answers the old SYN (ack = old ISN + 1); the
    handshake's ACK must still be named `ack` against the second SYN-ACK."""
    clf = Classifier({C})
    old = X - 2**28
    names = [
        clf.classify(s).name
        for s in (
            c2s(SYN, X),  # the real SYN (held by the router)
            s2c(SYN | ACK, 777, old + 1),  # the answer to the stale SYN
            c2s(RST, old + 1),  # the client refuses it
            s2c(SYN | ACK, Y, X + 1),  # the answer to the real SYN
            c2s(ACK, X + 1, Y + 1),
        )
    ]
    assert names == ["syn", "syn-ack", "rst", "syn-ack", "ack"]


# --- packets -----------------------------------------------------------------------


def _syn_with_mss(mss: int = 1460) -> bytes:
    from scapy.layers.inet import IP, TCP

    return bytes(
        IP(src=C, dst=S)
        / TCP(
            sport=40000,
            dport=8080,
            flags="S",
            seq=X,
            options=[("MSS", mss), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)],
        )
    )


def _checksums_ok(packet: bytes) -> bool:
    """scapy recomputes both checksums its own way; they must equal ours."""
    from scapy.layers.inet import IP, TCP

    ours = IP(packet)
    fresh = IP(packet)
    del fresh.chksum
    del fresh[TCP].chksum
    fresh = IP(bytes(fresh))
    return (ours.chksum, ours[TCP].chksum) == (fresh.chksum, fresh[TCP].chksum)


def test_strip_mss_turns_the_option_into_nops_and_keeps_the_rest():
    syn = _syn_with_mss()
    assert craft.mss_of(syn) == 1460
    out = craft.strip_mss(syn)
    assert len(out) == len(syn) and craft.mss_of(out) is None
    kinds = [k for k, _ in craft.options(out)]
    assert kinds[:4] == [craft.TCPOPT_NOP] * 4 and 8 in kinds and 3 in kinds  # TS, WS stay
    assert _checksums_ok(out) and not _checksums_ok(out[:-1] + bytes([out[-1] ^ 1]))
    assert parse_ipv4_tcp(out) == parse_ipv4_tcp(syn)  # same header fields otherwise


def test_with_seq_moves_only_the_sequence_number():
    syn = _syn_with_mss()
    stale = craft.with_seq(syn, X - 2**28)
    a, b = parse_ipv4_tcp(syn), parse_ipv4_tcp(stale)
    assert b.seq == (X - 2**28) % 2**32 and (b.src, b.sport, b.dst, b.dport, b.flags) == (
        a.src,
        a.sport,
        a.dst,
        a.dport,
        a.flags,
    )
    assert craft.mss_of(stale) == 1460 and _checksums_ok(stale)


def test_a_made_up_rst_is_a_well_formed_bare_rst():
    pkt = craft.rst(S, 8080, C, 40000, Y + 1)
    seg = parse_ipv4_tcp(pkt)
    assert (seg.src, seg.sport, seg.dst, seg.dport) == (S, 8080, C, 40000)
    assert (seg.flags, seg.seq, seg.length) == (RST, Y + 1, 0)
    assert struct.unpack_from("!H", pkt, 2)[0] == 40 and _checksums_ok(pkt)
    assert parse_ipv4_tcp(craft.rst(S, 1, C, 2, 5, ack=9)).flags == RST | ACK


# --- record, checker, ladder ---------------------------------------------------------


def _seg(t, name, sender, injected=False, length=0, nth=1):
    src, dst = (C, S) if sender == "client" else (S, C)
    return {
        "mono": 100.0 + t,
        "id": int(t * 1000),
        "name": name,
        "nth": nth,
        "sender": sender,
        "flags": RST if name == "rst" else ACK,
        "seq": 1,
        "ack": 1,
        "length": length,
        "fate": "delivered",
        "retransmission": False,
        "conn": 1,
        "mono_out": 100.0 + t,
        "src": src,
        "dst": dst,
        "sport": 1,
        "dport": 2,
        "injected": injected,
    }


def test_injected_segments_are_no_sends_of_the_host_they_pretend_to_be():
    rec = Record(t0=100.0)
    rec.add_segment(_seg(0.1, "rst", "server", injected=True, nth=0))
    rec.add_segment(_seg(0.2, "data", "server", length=536))
    rec.add_segment(_seg(0.3, "data", "server", injected=True, length=1460))
    assert rec.sent_by("server", "rst") == []
    sc = load_text(
        HEAD.replace("faults:\n", "") + "expect:\n  server:\n"
        "    sends: {rst: 0, data: 1}\n    largest: {data: 536}\n",
        "t.yaml",
    )
    checks = check_scenario(sc, rec)
    assert [(c.name, c.passed, c.actual) for c in checks] == [
        ("server sends rst", True, 0),
        ("server sends data", True, 1),
        ("server largest data", True, 536),
    ]


def test_largest_fails_with_the_biggest_segment_as_proof():
    rec = Record(t0=100.0)
    rec.add_segment(_seg(0.2, "data", "server", length=1460))
    sc = load_text(HEAD.replace("faults:\n", "") + "expect:\n  server:\n    largest: {data: 536}\n", "t.yaml")
    (check,) = check_scenario(sc, rec)
    assert (check.passed, check.expected, check.actual) == (False, 536, 1460)
    assert "len=1460" in check.evidence


def test_fault_events_round_trip_and_show_in_the_ladder():
    rec = Record(t0=100.0)
    ev = rec.add_fault(
        "router",
        {
            "kind": "fault",
            "mono": 101.5,
            "host": "server",
            "action": "link-down",
            "what": "link down",
            "fault": "link-down server at=1.5s",
        },
    )
    died = rec.add_fault("server", {"kind": "app-exit", "mono": 102.0, "how": "SIGKILL"})
    assert (ev.t, ev.host, died.action, died.what) == (1.5, "server", "app-exit", "app ended: SIGKILL")
    assert rec.events() == [ev, died]
    assert event_from_json(ev.to_json()) == ev
    line = Ladder(120).line(ev).plain
    assert "⚡ server link down" in line and line.startswith("   1.500 ")
    assert isinstance(event_from_json(died.to_json()), FaultActed)


def test_the_ladder_marks_injected_segments_and_keeps_the_real_isn():
    from tcplab.core.events import SegmentSeen

    ladder = Ladder(120)
    stale = SegmentSeen(0.0, "syn", 0, "client", SYN, X - 2**28, 0, 0, "delivered", False, 1, injected=True)
    real = SegmentSeen(0.0, "syn", 1, "client", SYN, X, 0, 0, "delayed", False, 1, 0.01)
    assert "⊕syn (router)" in ladder.line(stale).plain
    assert "seq=0 " in ladder.line(real).plain  # relative to the client's own ISN


def test_the_routers_icmp_unreachable_is_read_with_the_segment_it_quotes():
    from scapy.layers.inet import ICMP, IP, TCP

    from tcplab.lab.hook.faults import parse_icmp_unreach

    quoted = IP(src=C, dst=S) / TCP(sport=40000, dport=8080, flags="PA", seq=X + 1)
    icmp = bytes(IP(src="198.18.7.1", dst=C) / ICMP(type=3, code=0) / bytes(quoted)[:28])
    assert parse_icmp_unreach(icmp) == (0, C, X + 1)
    echo = bytes(IP(src="198.18.7.1", dst=C) / ICMP(type=8) / bytes(quoted)[:28])
    assert parse_icmp_unreach(echo) is None
    assert parse_icmp_unreach(bytes(quoted)) is None  # TCP, not ICMP


def test_sock_destroy_request_encodes_as_pyroute2_encodes_inet_diag_req_v2():
    """The reboot's SOCK_DESTROY (tcplab/lab/appproc.py) built with struct, checked
    against pyroute2's own encoding of struct inet_diag_req_v2."""
    import socket as so

    from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST
    from pyroute2.netlink.diag import SOCK_DESTROY, inet_diag_req

    from tcplab.lab.appproc import destroy_request

    req = inet_diag_req()
    req["header"] = {"type": SOCK_DESTROY, "flags": NLM_F_REQUEST | NLM_F_ACK, "sequence_number": 7, "pid": 0}
    req["sdiag_family"], req["sdiag_protocol"] = so.AF_INET, so.IPPROTO_TCP
    req["idiag_ext"], req["idiag_states"] = 0, 0xFFFFFFFF
    req["idiag_sport"], req["idiag_dport"] = 8080, 40000
    req["idiag_src"] = (struct.unpack("!I", so.inet_aton(S))[0], 0, 0, 0)
    req["idiag_dst"] = (struct.unpack("!I", so.inet_aton(C))[0], 0, 0, 0)
    req["idiag_if"], req["idiag_cookie"] = 0, 0xFFFFFFFFFFFFFFFF  # INET_DIAG_NOCOOKIE
    req.encode()
    assert destroy_request((S, 8080, C, 40000, "ESTABLISHED"), 7) == bytes(req.data)
