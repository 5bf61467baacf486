"""The app steps of issue 3 without a kernel: the loader's shapes for them, what the agent
is sent, repeated-call expectations, open calls of parallel iterations, the flood's
packets and the TcpExt counter reader. No root needed."""

from __future__ import annotations

import socket
import struct
import textwrap

import pytest

from tcplab.core.packet import parse_ipv4_tcp
from tcplab.core.record import Record
from tcplab.core.scenario import Expect, HostExpect, Repeat, Scenario, Step, all_steps, step_to_wire
from tcplab.core.segments import SYN, Classifier
from tcplab.lab import sockets
from tcplab.format.load import load_text
from tcplab.core.check.expect import check_scenario

T0 = 500.0


def load(apps: str, expect: str = "") -> Scenario:
    text = "scenario: x\nsummary: y\napps:\n" + textwrap.indent(textwrap.dedent(apps), "  ")
    if expect:
        text += "expect:\n" + textwrap.indent(textwrap.dedent(expect), "  ")
    return load_text(text, "x.yaml")


# --- the loader ---------------------------------------------------------------------------


def test_listen_keeps_the_short_form_and_takes_a_backlog():
    sc = load("""\
        server: [listen: {port: 8080, backlog: 1}]
        client: [connect: "server:8080"]
        """)
    assert sc.apps["server"][0].arg == {"port": 8080, "backlog": 1}
    assert load("server: [listen: 8080]\nclient: [connect: server:1]\n").apps["server"][0].arg == 8080


def test_socket_options_parse_to_what_setsockopt_needs():
    sc = load("""\
        server: [listen: 8080]
        client:
          - linger: 0
          - keepalive: {idle: 2s, interval: 1s, count: 3}
          - keepalive: on
          - syncnt: 2
          - rcvtimeo: 1500ms
          - bind: 40000
          - connect: "server:8080"
        """)
    assert [(s.call, s.arg) for s in sc.apps["client"][:6]] == [
        ("linger", 0),
        ("keepalive", {"idle": 2, "interval": 1, "count": 3}),
        ("keepalive", True),
        ("syncnt", 2),
        ("rcvtimeo", 1.5),
        ("bind", 40000),
    ]


def test_simultaneous_open_lets_the_server_connect_to_the_client():
    sc = load("""\
        server: [bind: 40001, connect: "client:40000"]
        client: [bind: 40000, connect: "server:40001"]
        """)
    assert sc.apps["server"][1].arg == ("client", 40000)


def test_repeat_becomes_a_repeat_and_goes_to_the_agent_as_plain_json():
    sc = load("""\
        server: [listen: 8080]
        client:
          - repeat: {times: 3, parallel: true, steps: [connect: "server:8080", close]}
        """)
    step = sc.apps["client"][0]
    assert step.arg == Repeat(3, True, (Step("connect", ("server", 8080), 6), Step("close", None, 6)))
    assert step_to_wire(step) == [
        "repeat",
        {"times": 3, "parallel": True, "steps": [["connect", ("server", 8080)], ["close", None]]},
    ]
    # The client's connect is found inside the repeat (the loader demands one).
    assert [s.call for s in all_steps(sc.apps["client"])] == ["repeat", "connect", "close"]


def test_expectations_count_results_and_reach_into_repeats():
    sc = load(
        """\
        server: [listen: 8080]
        client: [repeat: {times: 4, steps: [connect: "server:8080", close]}]
        """,
        """\
        client:
          connect: {ok: 3, EADDRNOTAVAIL: 1}
          close: ok
        """,
    )
    assert sc.expect.hosts["client"].calls == {"connect": {"ok": 3, "EADDRNOTAVAIL": 1}, "close": "ok"}


# --- repeated calls against the record ------------------------------------------------------


def record_of(results: list[str | None]) -> Record:
    """One connect per iteration, in parallel: each starts before any ends."""
    rec = Record(t0=T0)
    for i, _ in enumerate(results, 1):
        rec.app_started(
            "client", {"mono": T0 + 0.001 * i, "call": "connect", "arg": ["server", 8080], "iteration": i}
        )
    for i, result in enumerate(results, 1):
        if result is not None:
            rec.app_finished(
                "client",
                {
                    "mono": T0 + 0.001 * i,
                    "mono_end": T0 + 3 + 0.001 * i,
                    "call": "connect",
                    "arg": ["server", 8080],
                    "result": result,
                    "iteration": i,
                    "lport": 40000 + i,
                },
            )
    rec.close_open_calls()
    return rec


def connect_check(want, results):
    sc = Scenario(
        path="x.yaml",
        name="x",
        summary="",
        claims=(),
        sysctls={},
        apps={"client": (Step("connect", ("server", 8080)),), "server": ()},
        faults=(),
        expect=Expect(hosts={"client": HostExpect(calls={"connect": want})}),
        timeout=10,
    )
    (check,) = check_scenario(sc, record_of(results))
    return check


def test_one_result_means_every_call_had_it():
    assert connect_check("ETIMEDOUT", ["ETIMEDOUT"] * 8).passed
    check = connect_check("ETIMEDOUT", ["ETIMEDOUT"] * 7 + ["ok"])
    assert not check.passed
    assert check.actual == {"ETIMEDOUT": 7, "ok": 1}
    assert "#8 port 40008" in check.evidence  # the odd one out, with its socket


def test_counts_per_result():
    assert connect_check({"ok": 2, "EADDRNOTAVAIL": 1}, ["ok", "ok", "EADDRNOTAVAIL"]).passed
    check = connect_check({"ok": 3, "EADDRNOTAVAIL": 0}, ["ok", "ok", "EADDRNOTAVAIL"])
    assert (check.passed, check.expected, check.actual) == (False, {"ok": 3}, {"ok": 2, "EADDRNOTAVAIL": 1})


def test_parallel_calls_still_blocked_are_each_recorded():
    rec = record_of(["ok", None, None])
    blocked = [c for c in rec.apps if c.result is None]
    assert [c.iteration for c in blocked] == [2, 3]
    check = connect_check({"ok": 1}, ["ok", None, None])
    assert check.actual == {"ok": 1, "still blocked when the run ended": 2}


# --- the agent's helpers --------------------------------------------------------------------


def test_flood_packets_are_valid_syns_from_the_spoofed_source():
    raw = sockets.syn_packet("198.18.3.77", "198.19.3.2", 12345, 8080, 0xFFFFFFF0)
    seg = parse_ipv4_tcp(raw)
    assert (seg.src, seg.sport, seg.dst, seg.dport, seg.flags, seg.seq) == (
        "198.18.3.77",
        12345,
        "198.19.3.2",
        8080,
        SYN,
        0xFFFFFFF0,
    )
    # Checksums that verify: the sum over the IP header, and over pseudo-header + TCP.
    assert sockets.checksum(raw[:20]) == 0
    pseudo = raw[12:20] + struct.pack("!BBH", 0, 6, len(raw) - 20)
    assert sockets.checksum(pseudo + raw[20:]) == 0
    # The router's hook counts them as the client's.
    clf = Classifier(set(sockets.client_side("198.18.3.2", 24, "198.18.3.1")))
    assert clf.classify(seg).sender == "client"


def test_spoofed_sources_stay_in_the_subnet_and_avoid_router_and_client():
    sources = sockets.spoofed_sources("198.18.9.2")
    assert sources[0] == "198.18.9.10" and sources[-1] == "198.18.9.254"
    assert all(a.startswith("198.18.9.") for a in sources)


def test_socket_options_encode_as_the_kernel_reads_them():
    assert sockets.linger(0) == [(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))]
    assert sockets.rcvtimeo(1.5)[0][2] == struct.pack("ll", 1, 500000)
    assert sockets.keepalive(True) == [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    assert [o[1] for o in sockets.keepalive({"idle": 2, "interval": None, "count": 3})] == [
        socket.SO_KEEPALIVE,
        socket.TCP_KEEPIDLE,
        socket.TCP_KEEPCNT,
    ]


def test_tcp_counters_reads_tcpext_only(tmp_path):
    netstat = tmp_path / "netstat"
    netstat.write_text(
        "TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows\n"
        "TcpExt: 184 1 0\n"
        "IpExt: InNoRoutes InTruncatedPkts\nIpExt: 7 0\n"
    )
    assert sockets.tcp_counters(str(netstat)) == {"SyncookiesSent": 184, "SyncookiesRecv": 1}


@pytest.mark.parametrize(
    "steps",
    [
        "[listen: 8080, repeat: {times: 2, steps: [accept]}]",
        "[listen: {port: 8080, backlog: 0}]",
    ],
)
def test_server_shapes_load(steps):
    load(f"server: {steps}\nclient: [connect: server:8080]\n")
