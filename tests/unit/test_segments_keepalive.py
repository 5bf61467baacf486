"""Keepalive probes and their answers in the classification table (constructed segments,
as Linux sends them: tcp_xmit_probe_skb() puts seq = snd_una - 1 on a bare ACK)."""

from tcplab.core.segments import VOCABULARY, Classifier
from unit.helpers import ACK, FIN, SYN, C, X, Y, c2s, handshake, s2c


def names(segments):
    clf = Classifier({C})
    return [(c.name, c.nth, c.sender, c.retransmission) for c in map(clf.classify, segments)]


def test_server_keepalive_after_the_handshake_and_the_clients_answer():
    # Nothing sent yet: the server's snd_nxt is y+1, its probe carries y. The answer from
    # the client looks like the handshake ACK (seq x+1, ack y+1) but answers the probe.
    segs = handshake() + [s2c(ACK, Y, X + 1), c2s(ACK, X + 1, Y + 1)]
    assert names(segs)[3:] == [("keepalive", 1, "server", False), ("keepalive-ack", 1, "client", False)]


def test_unanswered_probes_count_up_and_are_not_retransmissions():
    segs = handshake() + [s2c(ACK, Y, X + 1)] * 3
    assert names(segs)[3:] == [("keepalive", n, "server", False) for n in (1, 2, 3)]


def test_client_keepalive_after_data_both_ways():
    segs = handshake() + [
        c2s(ACK, X + 1, Y + 1, length=10),
        s2c(ACK, Y + 1, X + 11, length=5),
        c2s(ACK, X + 11, Y + 6),  # acknowledges the server's 5 bytes
        c2s(ACK, X + 10, Y + 6),
        s2c(ACK, Y + 6, X + 11),
    ]
    assert [n for n, *_ in names(segs)[3:]] == ["data", "data", "data-ack", "keepalive", "keepalive-ack"]


def test_ordinary_bare_acks_are_not_probes():
    # seq = snd_nxt: a data ACK, the repeated handshake ACK, an ACK after a FIN.
    segs = handshake() + [
        c2s(ACK, X + 1, Y + 1, length=100),
        s2c(ACK, Y + 1, X + 101),
        s2c(ACK, Y + 1, X + 101),
    ]
    assert [n for n, *_ in names(segs)[3:]] == ["data", "data-ack", "data-ack"]
    again = handshake() + [s2c(SYN | ACK, Y, X + 1), c2s(ACK, X + 1, Y + 1)]
    assert [n for n, *_ in names(again)[3:]] == ["syn-ack", "ack"]


def test_a_retransmitted_fin_or_synack_is_not_a_probe():
    # Both sit one below their sender's snd_nxt, but carry FIN or SYN.
    segs = handshake() + [c2s(FIN | ACK, X + 1, Y + 1), c2s(FIN | ACK, X + 1, Y + 1)]
    assert [n for n, *_ in names(segs)[3:]] == ["fin", "fin"]
    assert names([c2s(SYN, X), s2c(SYN | ACK, Y, X + 1), s2c(SYN | ACK, Y, X + 1)])[2][0] == "syn-ack"


def test_a_one_byte_retransmission_is_data():
    # Other stacks' probes carry one old byte; at the router that is indistinguishable
    # from a lost 1-byte send, so only bare probes (Linux's) are named keepalive.
    segs = handshake() + [c2s(ACK, X + 1, Y + 1, length=1), c2s(ACK, X + 1, Y + 1, length=1)]
    assert names(segs)[3:] == [("data", 1, "client", False), ("data", 2, "client", True)]


def test_an_ack_that_does_not_match_the_probe_is_not_its_answer():
    segs = handshake() + [s2c(ACK, Y, X + 1), c2s(ACK, X + 1, Y + 7)]
    assert names(segs)[4][0] != "keepalive-ack"


def test_both_names_can_come_from_either_side():
    for name in ("keepalive", "keepalive-ack"):
        assert VOCABULARY[name][1] == {"client", "server"}
        assert VOCABULARY[name][2] is False  # no sequence space: never a retransmission


def test_an_ack_overtaken_by_its_senders_fin_is_not_a_probe():
    # The server closed first; the client's delayed ACK of that FIN was built at seq
    # x+1 just before its own FIN (x+1), and reached the router 3 ms after it (6.1 under
    # TCG, gen-5002). No probe is sent while the FIN is in flight.
    segs = handshake() + [
        s2c(FIN | ACK, Y + 1, X + 1),
        c2s(FIN | ACK, X + 1, Y + 2),
        c2s(ACK, X + 1, Y + 2),
    ]
    assert [n for n, *_ in names(segs)[3:]] == ["fin", "peer-fin", "fin-ack"]


def test_a_probe_after_its_senders_fin_was_acked_is_a_probe():
    # Half-closed (shutdown: wr) and ACKed: FIN_WAIT2 with keepalive on probes at
    # snd_una - 1, which is the FIN's own sequence number.
    segs = handshake() + [
        c2s(FIN | ACK, X + 1, Y + 1),
        s2c(ACK, Y + 1, X + 2),
        c2s(ACK, X + 1, Y + 1),
    ]
    assert [n for n, *_ in names(segs)[3:]] == ["fin", "fin-ack", "keepalive"]
