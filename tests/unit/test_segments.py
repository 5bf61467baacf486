"""Classification table: names, occurrence numbers, retransmissions."""

import pytest

from tcplab.core.segments import Classifier, canonical_name, flag_string, senders
from unit.helpers import ACK, FIN, RST, SYN, C, X, Y, c2s, client_close_4way, handshake, s2c


def names(segments):
    clf = Classifier({C})
    return [(c.name, c.nth, c.sender, c.retransmission) for c in map(clf.classify, segments)]


def test_handshake_names_and_senders():
    assert names(handshake()) == [
        ("syn", 1, "client", False),
        ("syn-ack", 1, "server", False),
        ("ack", 1, "client", False),
    ]


def test_retransmitted_syn_has_same_seq_and_counts_up():
    got = names([c2s(SYN, X), c2s(SYN, X), c2s(SYN, X)])
    assert got == [("syn", 1, "client", False), ("syn", 2, "client", True), ("syn", 3, "client", True)]


def test_repeated_handshake_ack_is_counted_but_not_a_retransmission():
    # The client answers every retransmitted SYN-ACK with the same ACK: a reply, not a
    # timer-driven retransmission (claim H5).
    segs = handshake() + [s2c(SYN | ACK, Y, X + 1), c2s(ACK, X + 1, Y + 1)]
    assert names(segs)[-2:] == [("syn-ack", 2, "server", True), ("ack", 2, "client", False)]


def test_four_way_close_from_client():
    got = names(handshake() + client_close_4way())[3:]
    assert got == [
        ("fin", 1, "client", False),
        ("fin-ack", 1, "server", False),
        ("peer-fin", 1, "server", False),
        ("last-ack", 1, "client", False),
    ]


def test_three_way_close_fin_carries_ack():
    segs = handshake() + [c2s(FIN | ACK, X + 1, Y + 1), s2c(FIN | ACK, Y + 1, X + 2), c2s(ACK, X + 2, Y + 2)]
    assert [n for n, *_ in names(segs)[3:]] == ["fin", "peer-fin", "last-ack"]


def test_server_closes_first():
    segs = handshake() + [s2c(FIN | ACK, Y + 1, X + 1), c2s(ACK, X + 1, Y + 2)]
    assert names(segs)[3:] == [("fin", 1, "server", False), ("fin-ack", 1, "client", False)]


def test_data_and_its_ack():
    segs = handshake() + [c2s(ACK, X + 1, Y + 1, length=100), s2c(ACK, Y + 1, X + 101)]
    assert [n for n, *_ in names(segs)[3:]] == ["data", "data-ack"]


def test_data_retransmission_by_seq():
    segs = handshake() + [c2s(ACK, X + 1, Y + 1, length=10), c2s(ACK, X + 1, Y + 1, length=10)]
    assert names(segs)[-1] == ("data", 2, "client", True)


def test_rst_from_either_side():
    assert names([c2s(SYN, X), s2c(RST | ACK, 0, X + 1)]) == [
        ("syn", 1, "client", False),
        ("rst", 1, "server", False),
    ]


def test_seq_wraps_around():
    x = 0xFFFFFFFF
    segs = [c2s(SYN, x), s2c(SYN | ACK, Y, x + 1), c2s(ACK, x + 1, Y + 1)]
    assert names(segs)[-1][0] == "ack"


def test_connections_are_counted_separately():
    clf = Classifier({C})
    a = clf.classify(c2s(SYN, X, sport=40001))
    b = clf.classify(c2s(SYN, X + 7, sport=40002))
    assert (a.conn, a.nth, b.conn, b.nth) == (1, 1, 2, 1)


def test_vocabulary_aliases_and_senders():
    assert canonical_name("handshake-2") == "syn-ack"
    assert canonical_name("teardown-4") == "last-ack"
    assert canonical_name("syn") == "syn"
    assert canonical_name("synack") is None
    assert senders("syn") == {"client"} and senders("syn-ack") == {"server"}


@pytest.mark.parametrize(
    "flags,text", [(SYN, "S"), (SYN | ACK, "SA"), (FIN | ACK, "FA"), (RST | ACK, "RA"), (0, ".")]
)
def test_flag_string(flags, text):
    assert flag_string(flags) == text


def test_simultaneous_open_names_both_sides_alike():
    # RFC 9293 figure 8, as seen by a router between the two (H13): the SYNs cross, each
    # side answers with a SYN-ACK carrying its own ISN again, then each ACKs the other's
    # SYN-ACK. Whichever SYN the router sees first, both ACKs are the handshake's `ack`.
    for first_syn in ([c2s(SYN, X), s2c(SYN, Y)], [s2c(SYN, Y), c2s(SYN, X)]):
        segs = first_syn + [
            s2c(SYN | ACK, Y, X + 1),
            c2s(SYN | ACK, X, Y + 1),
            c2s(ACK, X + 1, Y + 1),
            s2c(ACK, Y + 1, X + 1),
        ]
        got = sorted(names(segs))
        assert got == [
            ("ack", 1, "client", False),
            ("ack", 1, "server", False),
            ("syn", 1, "client", False),
            ("syn", 1, "server", False),
            ("syn-ack", 1, "client", False),
            ("syn-ack", 1, "server", False),
        ]


def test_server_ack_without_simultaneous_open_stays_data_ack():
    # A keepalive answer before any data has the same numbers as a handshake ACK would:
    # outside a simultaneous open it is not one.
    assert names(handshake() + [s2c(ACK, Y + 1, X + 1)])[-1] == ("data-ack", 1, "server", False)
