"""DiagTracker on constructed dumps with a fake clock, and dump_tcp on a fake netlink
socket whose replies pyroute2 encodes (so dump_tcp's struct decoding is checked against
pyroute2's own idea of the message layout)."""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyroute2.netlink import NLM_F_DUMP, NLM_F_MULTI, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR
from pyroute2.netlink.diag import SOCK_DIAG_BY_FAMILY, inet_diag_msg, inet_diag_req

from tcplab.lab.diag import STATES, DiagTracker, dump_tcp

SRV, CLI = "198.18.250.2", "198.18.250.1"
LISTENER = (SRV, 8080, "0.0.0.0", 0, "LISTEN")


def conn(state: str) -> tuple[str, int, str, int, str]:
    return (SRV, 8080, CLI, 40000, state)


def moves(changes) -> list[tuple[float, str, str, int]]:
    return [(c["mono"], c["old"], c["new"], c["rport"]) for c in changes]


def test_new_sockets_start_from_close():
    changes = DiagTracker().update(1.0, [LISTENER])
    assert changes == [
        {
            "mono": 1.0,
            "after": None,
            "old": "CLOSE",
            "new": "LISTEN",
            "laddr": SRV,
            "lport": 8080,
            "raddr": "0.0.0.0",
            "rport": 0,
        }
    ]


def test_a_change_carries_when_the_dump_before_began():
    tracker = DiagTracker()
    tracker.update(0.0, [conn("TIME_WAIT")])
    (change,) = tracker.update(60.2, [], after=60.19)
    assert (change["after"], change["mono"]) == (60.19, 60.2)


def test_unchanged_dump_says_nothing():
    tracker = DiagTracker()
    tracker.update(1.0, [LISTENER, conn("ESTABLISHED")])
    assert tracker.update(1.005, [conn("ESTABLISHED"), LISTENER]) == []


def test_request_sock_then_child_reads_as_one_socket():
    tracker = DiagTracker()
    tracker.update(1.0, [LISTENER])
    assert moves(tracker.update(1.005, [LISTENER, conn("SYN_RECV")])) == [(1.005, "CLOSE", "SYN_RECV", 40000)]
    assert moves(tracker.update(2.03, [LISTENER, conn("ESTABLISHED")])) == [
        (2.03, "SYN_RECV", "ESTABLISHED", 40000)
    ]


def test_timewait_substates_and_expiry():
    tracker = DiagTracker()
    tracker.update(0.0, [conn("FIN_WAIT1")])
    assert moves(tracker.update(0.1, [conn("FIN_WAIT2")])) == [(0.1, "FIN_WAIT1", "FIN_WAIT2", 40000)]
    assert moves(tracker.update(0.2, [conn("TIME_WAIT")])) == [(0.2, "FIN_WAIT2", "TIME_WAIT", 40000)]
    assert moves(tracker.update(60.2, [])) == [(60.2, "TIME_WAIT", "CLOSE", 40000)]


def test_vanished_listener_closes():
    tracker = DiagTracker()
    tracker.update(0.0, [LISTENER])
    assert moves(tracker.update(0.5, [])) == [(0.5, "LISTEN", "CLOSE", 0)]


def test_known_lists_the_last_dump():
    tracker = DiagTracker()
    tracker.update(0.0, [LISTENER, conn("ESTABLISHED")])
    tracker.update(0.1, [LISTENER])
    assert tracker.known() == [(SRV, 8080, "0.0.0.0", 0)]


# --- dump_tcp on a fake NETLINK_SOCK_DIAG socket ------------------------------------


def diag_msg(seq: int, sock: tuple, state: int, attrs=(("INET_DIAG_SHUTDOWN", 0),)) -> bytes:
    """One inet_diag_msg as the kernel sends it, encoded by pyroute2, with attributes
    after the fixed header (the kernel always adds some)."""
    laddr, lport, raddr, rport = sock
    m = inet_diag_msg()
    m["header"] = {"type": SOCK_DIAG_BY_FAMILY, "flags": NLM_F_MULTI, "sequence_number": seq, "pid": 0}
    m["idiag_family"], m["idiag_state"] = socket.AF_INET, state
    m["idiag_sport"], m["idiag_dport"] = lport, rport
    m["idiag_src"] = (int(ipaddress.IPv4Address(laddr)), 0, 0, 0)
    m["idiag_dst"] = (int(ipaddress.IPv4Address(raddr)), 0, 0, 0)
    m["idiag_inode"], m["idiag_uid"] = 12345, 0
    m["attrs"] = list(attrs)
    m.encode()
    return bytes(m.data)


def control(kind: int, seq: int, code: int = 0) -> bytes:
    """NLMSG_DONE or NLMSG_ERROR: a header and an int (0 or -errno); an error also
    carries the request's header, as the kernel sends it."""
    payload = struct.pack("=i", code) + (bytes(16) if kind == NLMSG_ERROR else b"")
    return struct.pack("=IHHII", 16 + len(payload), kind, NLM_F_MULTI, seq, 0) + payload


class FakeNetlink:
    """Answers a dump request with datagrams built by `reply(seq)`."""

    def __init__(self, reply):
        self.reply, self.sent, self.datagrams = reply, [], []

    def send(self, data) -> int:
        data = bytes(data)
        self.sent.append(data)
        seq = struct.unpack_from("=I", data, 8)[0]
        self.datagrams.extend(self.reply(seq))
        return len(data)

    def recv_into(self, buf, nbytes=0, flags=0) -> int:
        datagram = self.datagrams.pop(0)
        n = min(len(datagram), len(buf))
        buf[:n] = datagram[:n]
        return len(datagram) if flags & socket.MSG_TRUNC else n


SOCKS = [
    ((SRV, 8080, "0.0.0.0", 0), 10),
    ((SRV, 8080, CLI, 40000), 3),
    ((SRV, 8081, CLI, 40001), 6),
    ((SRV, 8081, CLI, 40002), 5),
]
EXPECTED = [
    LISTENER,
    conn("SYN_RECV"),
    (SRV, 8081, CLI, 40001, "TIME_WAIT"),
    (SRV, 8081, CLI, 40002, "FIN_WAIT2"),
]


def test_dump_tcp_request_is_a_dump_of_ipv4_tcp_with_minisockets():
    fake = FakeNetlink(lambda seq: [control(NLMSG_DONE, seq)])
    assert dump_tcp(fake) == []
    (sent,) = fake.sent
    req = inet_diag_req(sent)
    req.decode()
    assert req["header"]["type"] == SOCK_DIAG_BY_FAMILY
    assert req["header"]["flags"] == NLM_F_REQUEST | NLM_F_DUMP
    assert req["header"]["length"] == len(sent) == 72
    assert (req["sdiag_family"], req["sdiag_protocol"]) == (socket.AF_INET, socket.IPPROTO_TCP)
    assert req["idiag_ext"] == 0 and (req["idiag_sport"], req["idiag_dport"]) == (0, 0)
    # request socks (SYN_RECV), timewait (TIME_WAIT, FIN_WAIT2), not bound-only sockets
    for state in (3, 5, 6, 10):
        assert req["idiag_states"] & (1 << state)
    assert not req["idiag_states"] & (1 << 13)


def test_dump_tcp_names_states_across_datagrams():
    def reply(seq):
        msgs = [diag_msg(seq, sock, state) for sock, state in SOCKS]
        return [b"".join(msgs[:3]), msgs[3] + control(NLMSG_DONE, seq)]

    assert dump_tcp(FakeNetlink(reply)) == EXPECTED


def test_dump_tcp_skips_what_an_abandoned_dump_left_behind():
    def reply(seq):
        stale = diag_msg(seq - 1, (SRV, 9, CLI, 9), 1) + control(NLMSG_DONE, seq - 1)
        return [stale, b"".join(diag_msg(seq, s, st) for s, st in SOCKS) + control(NLMSG_DONE, seq)]

    assert dump_tcp(FakeNetlink(reply)) == EXPECTED


def test_dump_tcp_each_dump_has_its_own_sequence_number():
    fake = FakeNetlink(lambda seq: [control(NLMSG_DONE, seq)])
    dump_tcp(fake)
    dump_tcp(fake)
    first, second = (struct.unpack_from("=I", data, 8)[0] for data in fake.sent)
    assert first != second


def test_dump_tcp_unknown_state_is_its_number():
    def reply(seq):
        return [diag_msg(seq, (SRV, 1, CLI, 2), 14) + control(NLMSG_DONE, seq)]

    assert dump_tcp(FakeNetlink(reply)) == [(SRV, 1, CLI, 2, "14")]


@pytest.mark.parametrize("kind", [NLMSG_ERROR, NLMSG_DONE])
def test_dump_tcp_raises_the_kernels_error(kind):
    fake = FakeNetlink(lambda seq: [control(kind, seq, -errno.ENOENT)])
    with pytest.raises(OSError) as e:
        dump_tcp(fake)
    assert e.value.errno == errno.ENOENT


def test_dump_tcp_refuses_a_truncated_datagram():
    def huge(seq):
        return [diag_msg(seq, (SRV, 1, CLI, 2), 1) * 1000]  # 96 000 bytes

    with pytest.raises(OSError) as e:
        dump_tcp(FakeNetlink(huge))
    assert e.value.errno == errno.EMSGSIZE


def test_dump_tcp_refuses_a_short_message():
    def reply(seq):
        short = struct.pack("=IHHII", 24, SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, seq, 0) + bytes(8)
        return [short + control(NLMSG_DONE, seq)]

    with pytest.raises(OSError) as e:
        dump_tcp(FakeNetlink(reply))
    assert e.value.errno == errno.EBADMSG


ipv4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
port = st.integers(0, 65535)


@given(
    st.lists(st.tuples(st.tuples(ipv4, port, ipv4, port), st.integers(1, 12)), max_size=40),
    st.sampled_from(
        [(), (("INET_DIAG_SHUTDOWN", 3),), (("INET_DIAG_CONG", "cubic"), ("INET_DIAG_SHUTDOWN", 0))]
    ),
)
def test_dump_tcp_reads_what_pyroute2_reads(socks, attrs):
    def pyroute2_reads(data: bytes) -> tuple:
        m = inet_diag_msg(data)
        m.decode()
        return (m["idiag_src"], m["idiag_sport"], m["idiag_dst"], m["idiag_dport"], STATES[m["idiag_state"]])

    expected = [pyroute2_reads(diag_msg(0, s, state, attrs)) for s, state in socks]

    def reply(seq):
        return [b"".join(diag_msg(seq, s, state, attrs) for s, state in socks) + control(NLMSG_DONE, seq)]

    assert dump_tcp(FakeNetlink(reply)) == expected


def test_the_request_and_constants_are_pyroute2s():
    """diag.py encodes its request with struct (importing pyroute2 cost each app agent
    0.3 s of start-up): byte for byte what pyroute2's inet_diag_req encodes, with
    pyroute2's netlink constants."""
    from pyroute2.netlink.diag import NETLINK_SOCK_DIAG

    from tcplab.lab import diag

    assert (diag.NETLINK_SOCK_DIAG, diag.SOCK_DIAG_BY_FAMILY) == (NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY)
    assert (diag.NLMSG_ERROR, diag.NLMSG_DONE, diag.NLM_F_REQUEST, diag.NLM_F_DUMP) == (
        NLMSG_ERROR,
        NLMSG_DONE,
        NLM_F_REQUEST,
        NLM_F_DUMP,
    )
    for seq in (0, 7, 0xFFFFFFFF):
        req = inet_diag_req()
        req["header"] = {
            "type": SOCK_DIAG_BY_FAMILY,
            "flags": NLM_F_REQUEST | NLM_F_DUMP,
            "sequence_number": seq,
            "pid": 0,
        }
        req["sdiag_family"] = socket.AF_INET
        req["sdiag_protocol"] = socket.IPPROTO_TCP
        req["idiag_ext"] = 0
        req["idiag_states"] = diag.REQUEST_STATES
        req["idiag_sport"] = req["idiag_dport"] = 0
        req.encode()
        assert diag._request(seq) == bytes(req.data)
