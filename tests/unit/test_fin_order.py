"""One FIN order for the record (core/fin_order.py): the pure ACKs the observer named
are renamed by the FIN order the hook named (and acted on). Constructed segments."""

from tcplab.core.fin_order import agree_on_fin_order
from unit.helpers import seen

FA, A = 0x11, 0x10


def seg(t, sender, name, flags, nth=1, conn=1):
    return seen(t, sender, name, flags, nth, conn=conn, t_out=t)


def names(segments):
    return [(s.sender, s.name, s.nth) for s in agree_on_fin_order(segments)]


def test_the_observers_other_order_is_renamed_by_the_hooks():
    # gen-12055: both FINs at 1.003047; the hook had the client's first, the observer
    # the server's, and named the client's ACK of the server's FIN `fin-ack`
    got = names(
        [
            seg(1.003047, "client", "fin", FA),
            seg(1.003047, "server", "peer-fin", FA),
            seg(1.003353, "client", "fin-ack", A),
        ]
    )
    assert got == [("client", "fin", 1), ("server", "peer-fin", 1), ("client", "last-ack", 1)]


def test_names_that_agree_are_left_alone():
    segments = [
        seg(1.0, "client", "fin", FA),
        seg(1.0001, "server", "fin-ack", A),
        seg(1.2, "server", "peer-fin", FA),
        seg(1.2001, "client", "last-ack", A),
        seg(1.4, "server", "peer-fin", FA, nth=2),
        seg(1.4001, "client", "last-ack", A, nth=2),
    ]
    assert agree_on_fin_order(segments) == segments


def test_renamed_acks_are_numbered_in_the_records_order():
    got = names(
        [
            seg(1.0, "server", "peer-fin", FA),
            seg(1.0, "client", "fin", FA),
            seg(1.0002, "server", "last-ack", A),  # the observer's order: the client's FIN second
            seg(1.0003, "client", "fin-ack", A),
            seg(1.2, "client", "fin", FA, nth=2),
            seg(1.2001, "server", "last-ack", A, nth=2),
        ]
    )
    assert got == [
        ("server", "peer-fin", 1),
        ("client", "fin", 1),
        ("server", "fin-ack", 1),
        ("client", "last-ack", 1),
        ("client", "fin", 2),
        ("server", "fin-ack", 2),
    ]


def test_each_connection_has_its_own_order():
    got = names(
        [
            seg(1.0, "client", "fin", FA, conn=1),
            seg(1.0, "server", "fin", FA, conn=2),
            seg(1.1, "server", "fin-ack", A, conn=1),
            seg(1.1, "client", "fin-ack", A, conn=2),
        ]
    )
    assert [n for _s, n, _k in got] == ["fin", "fin", "fin-ack", "fin-ack"]
