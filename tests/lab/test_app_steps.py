"""The app-step scenarios (issue 3: backlog, socket options, bind, simultaneous open,
repeat, parallel, flood), run for real. Beyond each scenario's verdict, these tests
read from the result JSON what the kernel did, with the tolerances stated here.

    TCPLAB_ONLY=no-accept,accept-queue-*,... .venv/bin/python -m pytest tests/lab/test_app_steps.py
"""

from __future__ import annotations

import ipaddress

import pytest
from labhelpers import (
    LATENCY,
    calls,
    failure_report,
    ns_output,
    passes_here,
    result,
    segments,
    skip_unless_judged,
    states,
)

from tcplab.lab import topology

pytestmark = pytest.mark.root

NAMES = [
    "no-accept",
    "accept-queue-full",
    "accept-queue-abort",
    "syn-flood-syncookies",
    "simultaneous-open",
    "syn-lost-many",
    "close-wait-leak",
    "time-wait-port-exhaustion",
    "broken-pipe",
    "no-time-wait",
    "linger-zero",
]


@pytest.mark.parametrize("name", NAMES)
def test_scenario_passes_on_this_kernel(catalogue, name):
    res = result(catalogue, name)
    assert passes_here(res), failure_report(res)
    # a pass needs checks; an honest "not judged" error in a VM may have none (the
    # observer's loss is found before any check runs: 6.1 guest, session 13)
    assert res["checks"] or res["verdict"] != "pass", "a pass needs checks"


def conns(res, host, new):
    """4-tuples of the host's sockets that ever changed into `new`."""
    return {(e["laddr"], e["lport"], e["raddr"], e["rport"]) for e in states(res, host) if e["to"] == new}


def test_no_accept_connection_is_established_and_acks_data(catalogue):
    """H9: no accept() call at all, yet the child is ESTABLISHED and ACKs the data."""
    res = result(catalogue, "no-accept")
    assert not calls(res, "server", "accept")
    assert len(conns(res, "server", "ESTABLISHED")) == 1
    (data,) = segments(res, "data", "client")
    (ack,) = segments(res, "data-ack", "server")
    assert ack["ack"] == (data["seq"] + data["len"]) % 2**32
    assert 0 <= ack["t"] - data["t"] < 0.2  # an immediate or delayed ACK, not a timer


def test_accept_queue_holds_somaxconn_plus_one(catalogue):
    """H10: somaxconn 2 caps backlog 128; 3 children are queued (sk_acceptq_is_full()
    is `>`), the 4th handshake's ACK is dropped and its SYN-ACK retransmitted after
    1 s (32 ms timer granularity + forwarding); the 5th client's SYNs get no answer."""
    res = result(catalogue, "accept-queue-full")
    assert res["sysctls"]["server"]["net.core.somaxconn"] == "2"
    assert len(conns(res, "server", "ESTABLISHED")) == 3
    connects = calls(res, "client", "connect")
    ok = [c for c in connects if c["result"] == "ok"]
    (late,) = [c for c in connects if c["result"] == "ETIMEDOUT"]
    established = {t[3] for t in conns(res, "server", "ESTABLISHED")}
    (left_out,) = [c["lport"] for c in ok if c["lport"] not in established]
    # The left-out client: its ACK reached the server (delivered), the request stayed.
    synacks = [s for s in segments(res, "syn-ack", "server") if s["dport"] == left_out]
    acks = [s for s in segments(res, "ack", "client") if s["sport"] == left_out]
    assert acks and all(a["fate"] in ("delivered", "delayed") for a in acks)
    assert len(synacks) >= 2 and synacks[1]["retransmission"]
    assert 1.0 <= synacks[1]["t"] - synacks[0]["t"] <= 1.1
    assert res["sysctls"]["server"]["net.ipv4.tcp_abort_on_overflow"] == "0" and not segments(res, "rst")
    # The fifth: every SYN delivered, none answered (the SYN is dropped, ListenOverflows).
    syns = [s for s in segments(res, "syn", "client") if s["t"] >= late["t"]]
    assert len(syns) >= 3 and {s["fate"] for s in syns} == {"delivered"}
    assert not [s for s in segments(res, "syn-ack") if s["dport"] == syns[0]["sport"]]


def test_abort_on_overflow_resets_the_late_connection(catalogue):
    """H10 with tcp_abort_on_overflow=1: the RST goes to the client whose ACK found the
    queue full, as soon as that ACK arrives (within 20 ms of its release)."""
    res = result(catalogue, "accept-queue-abort")
    (rst,) = segments(res, "rst", "server")
    (reset,) = [c for c in calls(res, "client", "recv") if c["result"] == "ECONNRESET"]
    connect = next(
        c for c in calls(res, "client", "connect") if c["iteration"] == reset["iteration"] and c["t"] > 0.5
    )
    assert rst["dport"] == connect["lport"]
    (ack,) = [s for s in segments(res, "ack", "client") if s["sport"] == rst["dport"]]
    assert 0 <= rst["t"] - ack["t_out"] < 0.02
    assert reset["t_end"] >= rst["t"]


def test_syn_flood_fills_the_request_queue_then_cookies(catalogue):
    """H11: backlog 16 -> 17 request socks (more than the backlog means full), every
    other SYN (the flood's rest and the genuine client's) answered with a cookie,
    counted in the server namespace's own TcpExt counters."""
    res = result(catalogue, "syn-flood-syncookies")
    skip_unless_judged(res)  # 6.1 under TCG: the observer fell behind the flood
    before, after = (c["counters"] for c in calls(res, "server", "netstat"))
    cookies = after.get("SyncookiesSent", 0) - before.get("SyncookiesSent", 0)
    client = res["lab"]["client"]
    spoofed = {t for t in conns(res, "server", "SYN_RECV") if t[2] != client}
    assert len(spoofed) == 17
    assert cookies == 200 + 1 - len(spoofed)
    assert after.get("SyncookiesRecv", 0) - before.get("SyncookiesRecv", 0) == 1
    # A cookie SYN-ACK keeps no request, so no timer retransmits the genuine one.
    mine = [s for s in segments(res, "syn-ack", "server") if s["dst"] == client]
    assert len(mine) == 1
    # The flood never left the lab: every segment is between the two lab subnets.
    lab = [ipaddress.ip_network(f"{res['lab'][h]}/24", strict=False) for h in ("client", "server")]
    for s in segments(res):
        assert {ipaddress.ip_address(s["src"]) in n for n in lab} == {True, False}
        assert {ipaddress.ip_address(s["dst"]) in n for n in lab} == {True, False}
    assert len({s["src"] for s in segments(res, "syn", "client")}) > 100


def test_router_has_no_way_out_of_the_lab():
    """What keeps spoofed flood traffic in: the router knows only its two /24s, no
    default route, and no interface but the two veths into our own namespaces."""
    plan = topology.claim_slot()
    try:
        topology.build(plan)
        routes = ns_output(plan.router_ns, "ip", "-4", "route", "show", "table", "all")
        main = [r for r in routes.splitlines() if "table local" not in r]
        assert sorted(r.split()[0] for r in main) == sorted(
            [f"198.18.{plan.slot}.0/24", f"198.19.{plan.slot}.0/24"]
        ), routes
        assert "default" not in routes
        links = ns_output(plan.router_ns, "ip", "-o", "link", "show")
        assert sorted(line.split(":")[1].strip().split("@")[0] for line in links.splitlines()) == [
            "lo",
            "to-client",
            "to-server",
        ]
        unreachable = ns_output(plan.router_ns, "sh", "-c", "ip route get 192.0.2.1 2>&1")
        assert "unreachable" in unreachable
    finally:
        topology.destroy(plan)
        topology.release_slot(plan)


def test_simultaneous_open_segments(catalogue):
    """H13: two SYNs cross, two SYN-ACKs each repeat the sender's ISN and ACK the
    other's, no listener anywhere; both sides pass SYN_RECV (the tracepoint sees it:
    these are full sockets, not request socks)."""
    res = result(catalogue, "simultaneous-open")
    assert not calls(res, "server", "listen")
    syn = {s["from"]: s for s in segments(res, "syn")}
    synack = {s["from"]: s for s in segments(res, "syn-ack")}
    assert set(syn) == set(synack) == {"client", "server"}
    for me, peer in (("client", "server"), ("server", "client")):
        assert synack[me]["seq"] == syn[me]["seq"]
        assert synack[me]["ack"] == (syn[peer]["seq"] + 1) % 2**32
        # Both SYNs were delivered before either SYN-ACK: they really crossed.
        assert syn[me]["t_out"] < min(s["t_out"] for s in synack.values())
        assert [
            e
            for e in states(res, me)
            if e["to"] == "SYN_RECV" and e["from"] == "SYN_SENT" and e["source"] == "tracepoint"
        ]
    assert {s["from"] for s in segments(res, "ack")} <= {"client", "server"}


def test_many_syn_sent_each_on_its_own_timer(catalogue):
    """H16: 8 sockets, 8 ports, 3 SYNs each (TCP_SYNCNT 1 with 4 linear timeouts: the
    time limit, (2^2 - 1) s, ends it): resends at 1 and 2 s, ETIMEDOUT at 3 s, late by
    up to three 1 s timers' lateness (3 x 36 ms at HZ=250) and load: the scenarios'
    default tolerance, 12.5 %, covers it (observed 3.079-3.107 s)."""
    res = result(catalogue, "syn-lost-many")
    syns = segments(res, "syn", "client")
    ports = sorted({s["sport"] for s in syns})
    assert len(ports) == 8
    # Linux < 6.5 has no linear timeouts: one resend at 1 s, the next wait is 2 s.
    linear = int(res["sysctls"]["client"].get("net.ipv4.tcp_syn_linear_timeouts", "0"))
    gaps = [1.0, 1.0] if linear else [1.0]
    for port in ports:
        times = [s["t"] for s in syns if s["sport"] == port]
        assert [round(b - a, 1) for a, b in zip(times, times[1:])] == gaps
    connects = calls(res, "client", "connect")
    assert {c["result"] for c in connects} == {"ETIMEDOUT"} and len(connects) == 8
    assert max(c["t"] for c in connects) - min(c["t"] for c in connects) < 0.05
    assert all(3.0 <= c["t_end"] - c["t"] <= 3.375 for c in connects)
    assert len(conns(res, "client", "SYN_SENT")) == 8


def test_close_wait_leak(catalogue):
    """T11: every server socket ACKs the client's FIN, moves to CLOSE_WAIT and stays:
    none sends a FIN, none leaves CLOSE_WAIT before the run ends."""
    res = result(catalogue, "close-wait-leak")
    waiting = conns(res, "server", "CLOSE_WAIT")
    assert len(waiting) == 5
    left = {
        (e["laddr"], e["lport"], e["raddr"], e["rport"])
        for e in states(res, "server")
        if e["from"] == "CLOSE_WAIT"
    }
    assert not left
    assert not [s for s in segments(res, sender="server") if "F" in s["flags"]]
    assert len({c["rport"] for c in calls(res, "server", "accept")}) == 5


def test_time_wait_exhausts_ten_ports(catalogue):
    """T12: the ten successful connects used each port of 40000-40009 once; the
    failing ones sent nothing and failed at once (< 10 ms)."""
    res = result(catalogue, "time-wait-port-exhaustion")
    skip_unless_judged(res)  # as the shape tests of the other runs the lab could not judge
    connects = calls(res, "client", "connect")
    ok = [c for c in connects if c["result"] == "ok"]
    failed = [c for c in connects if c["result"] == "EADDRNOTAVAIL"]
    assert sorted(c["lport"] for c in ok) == list(range(40000, 40010))
    # connect() takes even ports while there are any (__inet_hash_connect()).
    assert all(c["lport"] % 2 == 0 for c in ok[:5])
    assert [c["iteration"] for c in failed] == list(range(11, 16))
    assert all(c["t_end"] - c["t"] < 0.01 * LATENCY for c in failed)
    assert max(s["t"] for s in segments(res, "syn", "client")) < failed[0]["t"]
    assert len(conns(res, "client", "TIME_WAIT")) == 10


def test_broken_pipe(catalogue):
    """F8: the client's recv() gave up after its 1 s SO_RCVTIMEO; after its close each
    data segment that reaches it draws an RST: the initial window (at most 10 new
    segments), and the server's tail loss probe when the RSTs come back after it (seen
    under the catalogue's load: 11). The server's send fails with EPIPE before all 1 MB
    is queued, and the next one too."""
    res = result(catalogue, "broken-pipe")
    (recv,) = calls(res, "client", "recv")
    assert recv["result"] == "EAGAIN" and 1.0 <= recv["t_end"] - recv["t"] <= 1.05
    rsts = segments(res, "rst", "client")
    data = segments(res, "data", "server")
    new = [d for d in data if not d["retransmission"]]
    # The initial window (10), then at most the tail loss probe, which sends a new
    # segment when one is queued and the window allows (tcp_send_loss_probe()), else
    # retransmits the last: seen on 6.18 under the catalogue's load, an 11th new
    # segment 11 ms after the first ten, before their RSTs were all back.
    assert 1 <= len(rsts) <= len(data) <= 11 and len(new) <= 11
    assert len(data) - len(new) <= 1  # one probe at most before the first RST is back
    assert rsts[0]["t"] >= data[0]["t"]
    first, second = calls(res, "server", "send")
    assert first["result"] == second["result"] == "EPIPE"
    assert "of 1000000 bytes" in first["detail"] and not first["detail"].startswith(
        "Broken pipe after 1000000"
    )
    resets = [e for e in res["events"] if e["kind"] == "kernel" and e["event"] == "tcp_send_reset"]
    if resets:  # with tracepoints: the first RST came from the timewait minisocket
        assert "TCP_TIMEWAIT_SOCKET" in resets[0]["detail"]


def test_no_time_wait_answers_the_retransmitted_fin_with_rst(catalogue):
    """T9: no timewait bucket (TCPTimeWaitOverflow counted), so the retransmitted FIN
    (after the 200 ms minimum RTO, + 50 ms) finds no socket and draws an RST at once."""
    res = result(catalogue, "no-time-wait")
    (netstat,) = calls(res, "client", "netstat")
    assert netstat["counters"].get("TCPTimeWaitOverflow", 0) >= 1
    assert not conns(res, "client", "TIME_WAIT")
    fins = segments(res, "peer-fin", "server")
    (rst,) = segments(res, "rst", "client")
    # The RTO is 0.2 s + the RTT (tcp_set_rto()), and the RTT is this host's speed.
    assert fins[1]["retransmission"] and 0.2 <= fins[1]["t"] - fins[0]["t"] <= 0.2 + 0.05 * LATENCY
    assert 0 <= rst["t"] - fins[1]["t_out"] < 0.01 * LATENCY
    assert rst["seq"] == fins[1]["ack"]


def test_linger_zero_sends_rst_instead_of_fin(catalogue):
    """T9 (SO_LINGER 0): close() sends an RST at once (< 10 ms), no FIN; the server's
    blocked recv() returns ECONNRESET when it arrives."""
    res = result(catalogue, "linger-zero")
    (close,) = calls(res, "client", "close")
    (rst,) = segments(res, "rst", "client")
    assert 0 <= rst["t"] - close["t"] < 0.01 * LATENCY
    assert not [s for s in segments(res) if "F" in s["flags"]]
    (recv,) = calls(res, "server", "recv")
    assert recv["result"] == "ECONNRESET" and recv["t_end"] >= rst["t"]
    assert not conns(res, "client", "TIME_WAIT")
