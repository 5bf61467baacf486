"""DiagTracker on constructed dumps with a fake clock, and dump_tcp on fake messages."""

from __future__ import annotations

import socket

from tcplab.lab.diag import DiagTracker, dump_tcp

SRV, CLI = "198.18.250.2", "198.18.250.1"
LISTENER = (SRV, 8080, "0.0.0.0", 0, "LISTEN")


def conn(state: str) -> tuple[str, int, str, int, str]:
    return (SRV, 8080, CLI, 40000, state)


def moves(changes) -> list[tuple[float, str, str, int]]:
    return [(c["mono"], c["old"], c["new"], c["rport"]) for c in changes]


def test_new_sockets_start_from_close():
    changes = DiagTracker().update(1.0, [LISTENER])
    assert changes == [{"mono": 1.0, "old": "CLOSE", "new": "LISTEN", "laddr": SRV,
                        "lport": 8080, "raddr": "0.0.0.0", "rport": 0}]


def test_unchanged_dump_says_nothing():
    tracker = DiagTracker()
    tracker.update(1.0, [LISTENER, conn("ESTABLISHED")])
    assert tracker.update(1.005, [conn("ESTABLISHED"), LISTENER]) == []


def test_request_sock_then_child_reads_as_one_socket():
    tracker = DiagTracker()
    tracker.update(1.0, [LISTENER])
    assert moves(tracker.update(1.005, [LISTENER, conn("SYN_RECV")])) == [
        (1.005, "CLOSE", "SYN_RECV", 40000)]
    assert moves(tracker.update(2.03, [LISTENER, conn("ESTABLISHED")])) == [
        (2.03, "SYN_RECV", "ESTABLISHED", 40000)]


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


class FakeDiagSocket:
    """Answers like pyroute2's DiagSocket: decoded inet_diag_msg fields by name."""

    def __init__(self, msgs):
        self.msgs, self.asked = msgs, {}

    def get_sock_stats(self, **kwargs):
        self.asked = kwargs
        return self.msgs


def test_dump_tcp_names_states_and_asks_for_minisockets():
    fake = FakeDiagSocket([
        {"idiag_src": SRV, "idiag_sport": 8080, "idiag_dst": "0.0.0.0", "idiag_dport": 0,
         "idiag_state": 10},
        {"idiag_src": SRV, "idiag_sport": 8080, "idiag_dst": CLI, "idiag_dport": 40000,
         "idiag_state": 3},
        {"idiag_src": SRV, "idiag_sport": 8081, "idiag_dst": CLI, "idiag_dport": 40001,
         "idiag_state": 6},
    ])
    assert dump_tcp(fake) == [LISTENER, conn("SYN_RECV"),
                              (SRV, 8081, CLI, 40001, "TIME_WAIT")]
    asked = fake.asked
    assert (asked["family"], asked["protocol"]) == (socket.AF_INET, socket.IPPROTO_TCP)
    # request socks (SYN_RECV), timewait (TIME_WAIT, FIN_WAIT2), not bound-only sockets
    for state in (3, 5, 6, 10):
        assert asked["states"] & (1 << state)
    assert not asked["states"] & (1 << 13)
