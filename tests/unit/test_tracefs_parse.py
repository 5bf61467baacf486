"""parse_trace_line and to_events on trace_pipe lines recorded on the 6.18 kernel.

The lines marked "recorded" are verbatim from a tracefs instance (trace_clock=mono)
while two veth namespaces, client 198.18.250.1 and server 198.18.250.2, ran the
exchanges named beside them. The few marked "constructed" vary one detail.
"""

from __future__ import annotations

import pytest

from tcplab.core.events import KernelNoted, StateChanged
from tcplab.lab.tracefs import parse_trace_line, to_events

HOSTS = {"198.18.250.1": "client", "198.18.250.2": "server"}

# recorded: listen on 198.18.250.2:8080, connect, send "hi", server closes first.
HANDSHAKE = """\
         python3-3677    [000] .....   279.197462: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=8080 dport=0 saddr=198.18.250.2 daddr=0.0.0.0 saddrv6=::ffff:198.18.250.2 daddrv6=::ffff:0.0.0.0 oldstate=TCP_CLOSE newstate=TCP_LISTEN
         python3-3719    [000] .....   279.509690: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=0 dport=8080 saddr=198.18.250.1 daddr=198.18.250.2 saddrv6=::ffff:198.18.250.1 daddrv6=::ffff:198.18.250.2 oldstate=TCP_CLOSE newstate=TCP_SYN_SENT
         python3-3719    [000] .....   279.509819: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=46068 dport=8080 saddr=198.18.250.1 daddr=198.18.250.2 saddrv6=::ffff:198.18.250.1 daddrv6=::ffff:198.18.250.2 oldstate=TCP_SYN_SENT newstate=TCP_ESTABLISHED
         python3-3719    [000] ..s2.   279.509827: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=8080 dport=46068 saddr=198.18.250.2 daddr=198.18.250.1 saddrv6=::ffff:198.18.250.2 daddrv6=::ffff:198.18.250.1 oldstate=TCP_LISTEN newstate=TCP_SYN_RECV
         python3-3719    [000] ..s2.   279.509834: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=8080 dport=46068 saddr=198.18.250.2 daddr=198.18.250.1 saddrv6=::ffff:198.18.250.2 daddrv6=::ffff:198.18.250.1 oldstate=TCP_SYN_RECV newstate=TCP_ESTABLISHED
         python3-3677    [001] .....   279.510170: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=8080 dport=46068 saddr=198.18.250.2 daddr=198.18.250.1 saddrv6=::ffff:198.18.250.2 daddrv6=::ffff:198.18.250.1 oldstate=TCP_ESTABLISHED newstate=TCP_FIN_WAIT1
          <idle>-0       [001] ..s2.   279.512074: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=8080 dport=46068 saddr=198.18.250.2 daddr=198.18.250.1 saddrv6=::ffff:198.18.250.2 daddrv6=::ffff:198.18.250.1 oldstate=TCP_FIN_WAIT1 newstate=TCP_FIN_WAIT2
          <idle>-0       [001] ..s2.   279.512080: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=8080 dport=46068 saddr=198.18.250.2 daddr=198.18.250.1 saddrv6=::ffff:198.18.250.2 daddrv6=::ffff:198.18.250.1 oldstate=TCP_FIN_WAIT2 newstate=TCP_CLOSE
"""

# recorded: SYN-ACKs dropped at the client's INPUT for 2.5 s.
RETRANSMIT_SYN = "          <idle>-0       [000] ..s2.   296.928105: tcp_retransmit_skb: skbaddr=000000003492066d skaddr=0000000017635f2f family=AF_INET sport=40988 dport=8081 saddr=198.18.250.1 daddr=198.18.250.2 saddrv6=::ffff:198.18.250.1 daddrv6=::ffff:198.18.250.2 state=TCP_SYN_SENT err=0"  # noqa: E501
RETRANSMIT_SYNACK = "     ksoftirqd/0-14      [000] ..s..   296.928208: tcp_retransmit_synack: family=AF_INET sport=8081 dport=40988 saddr=198.18.250.2 daddr=198.18.250.1 saddrv6=::ffff:198.18.250.2 daddrv6=::ffff:198.18.250.1"  # noqa: E501
# recorded: the client's SYN dropped on its own OUTPUT chain (NF_DROP -> -EPERM).
RETRANSMIT_FAILED = "          <idle>-0       [001] ..s2.   327.232066: tcp_retransmit_skb: skbaddr=00000000be177958 skaddr=00000000290bb3c3 family=AF_INET sport=44440 dport=8084 saddr=198.18.250.1 daddr=198.18.250.2 saddrv6=::ffff:198.18.250.1 daddrv6=::ffff:198.18.250.2 state=TCP_SYN_SENT err=-1"  # noqa: E501
# recorded: connect to a port nobody listens on.
RESET_NO_SOCKET = "         python3-3760    [001] ..s1.   279.949524: tcp_send_reset: skbaddr=000000002aff6d5c skaddr=0000000000000000 src=198.18.250.2:9999 dest=198.18.250.1:52974 state=UNKNOWN reason=NO_SOCKET"  # noqa: E501
RESET_RECEIVED = "         python3-3760    [001] .....   279.949544: tcp_receive_reset: family=AF_INET sport=52974 dport=9999 saddr=198.18.250.1 daddr=198.18.250.2 saddrv6=::ffff:198.18.250.1 daddrv6=::ffff:198.18.250.2 sock_cookie=1"  # noqa: E501
# recorded: third ACK lost until the request expired; the client's data then met the
# listener, bound to 198.18.250.2, which reset it (the listener names its own address).
RESET_FROM_BOUND_LISTENER = "         python3-4394    [000] .Ns1.   332.884386: tcp_send_reset: skbaddr=000000008bc130e8 skaddr=00000000290bb3c3 src=198.18.250.2:8085 dest=0.0.0.0:0 state=TCP_LISTEN reason=TCP_FLAGS"  # noqa: E501

# recorded: the same with the listener bound to 0.0.0.0: no record names the server's
# address except the SYN-ACK retransmit of the request sock.
WILDCARD_LISTENER = """\
         python3-5254    [001] .....   500.675484: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=8092 dport=0 saddr=0.0.0.0 daddr=0.0.0.0 saddrv6=::ffff:0.0.0.0 daddrv6=::ffff:0.0.0.0 oldstate=TCP_CLOSE newstate=TCP_LISTEN
         python3-5296    [000] .....   500.859031: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=0 dport=8092 saddr=198.18.250.1 daddr=198.18.250.2 saddrv6=::ffff:198.18.250.1 daddrv6=::ffff:198.18.250.2 oldstate=TCP_CLOSE newstate=TCP_SYN_SENT
         python3-5296    [000] .....   500.859109: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=33818 dport=8092 saddr=198.18.250.1 daddr=198.18.250.2 saddrv6=::ffff:198.18.250.1 daddrv6=::ffff:198.18.250.2 oldstate=TCP_SYN_SENT newstate=TCP_ESTABLISHED
          <idle>-0       [000] ..s1.   501.888063: tcp_retransmit_synack: family=AF_INET sport=8092 dport=33818 saddr=198.18.250.2 daddr=198.18.250.1 saddrv6=::ffff:198.18.250.2 daddrv6=::ffff:198.18.250.1
         python3-5296    [000] ..s1.   504.859546: tcp_send_reset: skbaddr=000000007ffbdf22 skaddr=00000000f7f415fa src=0.0.0.0:8092 dest=0.0.0.0:0 state=TCP_LISTEN reason=TCP_FLAGS
         python3-5296    [000] .....   504.859565: tcp_receive_reset: family=AF_INET sport=33818 dport=8092 saddr=198.18.250.1 daddr=198.18.250.2 saddrv6=::ffff:198.18.250.1 daddrv6=::ffff:198.18.250.2 sock_cookie=100b
         python3-5254    [001] .....   506.981835: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=8092 dport=0 saddr=0.0.0.0 daddr=0.0.0.0 saddrv6=::ffff:0.0.0.0 daddrv6=::ffff:0.0.0.0 oldstate=TCP_LISTEN newstate=TCP_CLOSE
"""


def parsed(text: str) -> list[dict]:
    return [parse_trace_line(line) for line in text.splitlines()]


def states(events, host: str) -> list[tuple[str, str]]:
    return [(e.old, e.new) for e in events if isinstance(e, StateChanged) and e.host == host]


def noted(events, host: str) -> list[tuple[str, str]]:
    return [(e.event, e.detail) for e in events if isinstance(e, KernelNoted) and e.host == host]


# parse_trace_line


def test_parses_state_line():
    rec = parse_trace_line(HANDSHAKE.splitlines()[3])
    assert rec["mono"] == 279.509827
    assert rec["event"] == "inet_sock_set_state"
    assert rec["fields"] == {
        "family": "AF_INET",
        "protocol": "IPPROTO_TCP",
        "sport": "8080",
        "dport": "46068",
        "saddr": "198.18.250.2",
        "daddr": "198.18.250.1",
        "saddrv6": "::ffff:198.18.250.2",
        "daddrv6": "::ffff:198.18.250.1",
        "oldstate": "TCP_LISTEN",
        "newstate": "TCP_SYN_RECV",
    }


@pytest.mark.parametrize(
    "line, event, key, value",
    [
        (RETRANSMIT_SYN, "tcp_retransmit_skb", "state", "TCP_SYN_SENT"),
        (RETRANSMIT_FAILED, "tcp_retransmit_skb", "err", "-1"),
        (RETRANSMIT_SYNACK, "tcp_retransmit_synack", "dport", "40988"),
        (RESET_NO_SOCKET, "tcp_send_reset", "src", "198.18.250.2:9999"),
        (RESET_FROM_BOUND_LISTENER, "tcp_send_reset", "reason", "TCP_FLAGS"),
        (RESET_RECEIVED, "tcp_receive_reset", "sock_cookie", "1"),
    ],
)
def test_parses_cause_lines(line, event, key, value):
    rec = parse_trace_line(line)
    assert (rec["event"], rec["fields"][key]) == (event, value)


@pytest.mark.parametrize(
    "prefix",
    [
        "   Web Content-1234  ",  # constructed: comm with a space
        "  kworker/u8:1-events-77   ",  # constructed: comm with dashes
        "  a-b-c-9 ( 9) ",  # constructed: options/record-tgid column
    ],
)
def test_task_names_with_spaces_and_dashes(prefix):
    rec = parse_trace_line(prefix + RETRANSMIT_SYN.split("   ", 1)[1].lstrip())
    assert rec["mono"] == 296.928105 and rec["fields"]["sport"] == "40988"


@pytest.mark.parametrize(
    "line",
    [
        "",
        "# tracer: nop",
        "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION",
        "CPU:1 [LOST 23 EVENTS]",
    ],
)
def test_other_lines_are_none(line):
    assert parse_trace_line(line) is None


# to_events


def test_handshake_states_per_host_relative_to_t0():
    events = to_events(parsed(HANDSHAKE), HOSTS, t0=279.0)
    assert states(events, "client") == [("CLOSE", "SYN_SENT"), ("SYN_SENT", "ESTABLISHED")]
    assert states(events, "server") == [
        ("CLOSE", "LISTEN"),
        ("LISTEN", "SYN_RECV"),
        ("SYN_RECV", "ESTABLISHED"),
        ("ESTABLISHED", "FIN_WAIT1"),
        ("FIN_WAIT1", "FIN_WAIT2"),
        ("FIN_WAIT2", "CLOSE"),
    ]
    first = events[0]
    assert first.t == pytest.approx(0.197462)
    assert (first.source, first.laddr, first.lport, first.raddr, first.rport) == (
        "tracepoint",
        "198.18.250.2",
        8080,
        "0.0.0.0",
        0,
    )


def test_syn_sent_gets_the_port_connect_picked_later():
    client = [e for e in to_events(parsed(HANDSHAKE), HOSTS, 0.0) if e.host == "client"]
    assert [(e.lport, e.raddr, e.rport) for e in client] == [(46068, "198.18.250.2", 8080)] * 2


def test_syn_sent_port_not_taken_from_an_older_connection():
    # constructed: a live connection on the same 4-tuple minus port, then a new connect
    older = HANDSHAKE.splitlines()[2].replace(
        "oldstate=TCP_SYN_SENT newstate=TCP_ESTABLISHED", "oldstate=TCP_ESTABLISHED newstate=TCP_FIN_WAIT1"
    )
    lines = [HANDSHAKE.splitlines()[1], older]
    syn_sent = to_events([parse_trace_line(x) for x in lines], HOSTS, 0.0)[0]
    assert (syn_sent.new, syn_sent.lport) == ("SYN_SENT", 0)


def test_sockets_of_other_hosts_are_left_out():
    events = to_events(parsed(HANDSHAKE), {"198.18.250.1": "client"}, 0.0)
    assert {e.host for e in events} == {"client"}


def test_ipv6_and_new_syn_recv():
    # constructed: the family and the state vary on a recorded line
    line = HANDSHAKE.splitlines()[3]
    v6 = parse_trace_line(line.replace("family=AF_INET ", "family=AF_INET6 "))
    req = parse_trace_line(line.replace("newstate=TCP_SYN_RECV", "newstate=TCP_NEW_SYN_RECV"))
    assert to_events([v6], HOSTS, 0.0) == []
    assert to_events([req], HOSTS, 0.0)[0].new == "SYN_RECV"


def test_retransmits_become_kernel_notes():
    events = to_events(
        parsed("\n".join([RETRANSMIT_SYN, RETRANSMIT_SYNACK, RETRANSMIT_FAILED])), HOSTS, 296.0
    )
    assert noted(events, "client") == [
        ("tcp_retransmit_skb", "198.18.250.1:40988 -> 198.18.250.2:8081 state=SYN_SENT err=0"),
        ("tcp_retransmit_skb", "198.18.250.1:44440 -> 198.18.250.2:8084 state=SYN_SENT err=-1"),
    ]
    assert noted(events, "server") == [("tcp_retransmit_synack", "198.18.250.2:8081 -> 198.18.250.1:40988")]
    assert events[0].t == pytest.approx(0.928105)


def test_resets_sent_and_received():
    events = to_events(
        parsed("\n".join([RESET_NO_SOCKET, RESET_RECEIVED, RESET_FROM_BOUND_LISTENER])), HOSTS, 0.0
    )
    assert noted(events, "server") == [
        ("tcp_send_reset", "198.18.250.2:9999 -> 198.18.250.1:52974 state=UNKNOWN reason=NO_SOCKET"),
        ("tcp_send_reset", "198.18.250.2:8085 -> 0.0.0.0:0 state=LISTEN reason=TCP_FLAGS"),
    ]
    assert noted(events, "client") == [("tcp_receive_reset", "198.18.250.1:52974 <- 198.18.250.2:9999")]


def test_wildcard_listener_is_known_by_its_port():
    events = to_events(parsed(WILDCARD_LISTENER), HOSTS, 500.0)
    assert states(events, "server") == [("CLOSE", "LISTEN"), ("LISTEN", "CLOSE")]
    assert noted(events, "server") == [
        ("tcp_retransmit_synack", "198.18.250.2:8092 -> 198.18.250.1:33818"),
        ("tcp_send_reset", "0.0.0.0:8092 -> 0.0.0.0:0 state=LISTEN reason=TCP_FLAGS"),
    ]


def test_wildcard_listener_port_shared_outside_the_lab_is_left_out():
    # constructed: a socket of another run (10.9.9.9) also uses port 8092
    foreign = WILDCARD_LISTENER.splitlines()[3].replace("saddr=198.18.250.2", "saddr=10.9.9.9")
    events = to_events(parsed(WILDCARD_LISTENER) + [parse_trace_line(foreign)], HOSTS, 0.0)
    assert [e for e in events if getattr(e, "laddr", "") == "0.0.0.0"] == []
    assert all("0.0.0.0:8092" not in getattr(e, "detail", "") for e in events)


def test_own_instance_removal_waits_out_a_transient_ebusy(monkeypatch):
    """A process forked by a parallel run holds a copy of our trace_pipe fd until it
    execs: rmdir says EBUSY for a moment. Our own session retries; clean does not."""
    import errno as errno_
    import os

    from tcplab.errors import LabError
    from tcplab.lab import tracefs

    calls = []

    def rmdir(path):
        calls.append(path)
        if len(calls) < 3:
            raise OSError(errno_.EBUSY, "Device or resource busy")

    monkeypatch.setattr(os, "rmdir", rmdir)
    tracefs.remove_instance("tcplab-x", "/t", patience=1.0)
    assert calls == ["/t/instances/tcplab-x"] * 3
    calls.clear()
    import pytest

    with pytest.raises(LabError, match="busy"):
        tracefs.remove_instance("tcplab-x", "/t")  # no patience: one try
    assert len(calls) == 1
