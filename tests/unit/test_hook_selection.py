"""What the hook queues (tcplab/lab/hook/selection.py): the iptables rules and the
Python test read one table, and a classifier fed only the queued kinds names and
counts them exactly as one that sees every segment (the record's)."""

from tcplab.core.faults import Fault
from tcplab.core.segments import PSH, Classifier
from tcplab.lab.hook import selection
from unit.helpers import ACK, FIN, RST, SYN, C, X, Y, c2s, s2c


def test_kinds_follow_the_faults():
    def both(faults):
        return selection.select(faults), selection.watched(faults)

    assert both([]) == ((), ())
    # queued: what the faults name; watched, not held: the SYNs and FINs besides
    assert both([Fault("delay", "fin", by=0.001)]) == (("fin",), ("syn",))
    assert both([Fault("drop", "syn")]) == (("syn",), ("fin",))
    assert both([Fault("drop", "syn-ack")]) == (("syn-ack",), ("fin", "syn"))
    assert both([Fault("drop", "peer-fin"), Fault("drop", "rst")]) == (("fin", "rst"), ("syn",))
    assert both([Fault("drop", "syn"), Fault("delay", "fin", by=0.1)]) == (("fin", "syn"), ())
    # a pure-ACK name depends on everything sent before it: everything is queued
    assert both([Fault("drop", "fin"), Fault("drop", "fin-ack")]) == (None, ())
    assert both([Fault("drop", "data", nth=(3,))]) == (None, ())
    assert selection.select([], "all") is None
    # a random fault: its whole kind, and the SYN-ACKs watched (the server's ISN, for the dice)
    assert both([Fault("drop", "rst", probability=0.3, seed=1)]) == (("rst",), ("fin", "syn", "syn-ack"))
    assert both([Fault("drop", "data", probability=0.3, seed=1)]) == (None, ())


def test_iptables_rules_say_what_the_python_test_says():
    assert selection.iptables_matches(None) == [["-p", "tcp"]]
    assert selection.iptables_matches(("fin", "syn")) == [
        ["-p", "tcp", "--tcp-flags", "SYN,FIN,RST", "FIN"],
        ["-p", "tcp", "--tcp-flags", "SYN,ACK,RST", "SYN"],
    ]
    kinds = ("fin", "syn")
    assert selection.queued(kinds, SYN) and selection.queued(kinds, FIN | ACK)
    assert not selection.queued(kinds, SYN | ACK)  # a SYN-ACK names itself
    assert not selection.queued(kinds, ACK | PSH) and not selection.queued(kinds, RST | ACK)
    assert not selection.queued(kinds, FIN | RST | ACK)  # an RST, whatever else it carries
    assert selection.queued(None, ACK) and not selection.queued((), SYN)


def _conversation():
    """Two connections on one 4-tuple: data both ways, a keepalive, a retransmitted
    FIN, both sides closing; then the tuple reused with a fresh ISN, and an RST."""
    x, y = X + 1, Y + 1
    first = [
        c2s(SYN, X),
        c2s(SYN, X),
        s2c(SYN | ACK, Y, X + 1),
        c2s(ACK, x, y),
        c2s(ACK | PSH, x, y, 100),
        s2c(ACK, y, x + 100),
        s2c(ACK | PSH, y, x + 100, 50),
        c2s(ACK, x + 100, y + 50),
        c2s(ACK, x + 99, y + 50),
        s2c(ACK, y + 50, x + 100),
        c2s(FIN | ACK, x + 100, y + 50),
        c2s(FIN | ACK, x + 100, y + 50),
        s2c(ACK, y + 50, x + 101),
        s2c(FIN | ACK, y + 50, x + 101),
        c2s(ACK, x + 101, y + 51),
    ]
    x2 = X + 7000
    again = [
        c2s(SYN, x2),
        s2c(SYN | ACK, Y + 9000, x2 + 1),
        c2s(ACK, x2 + 1, Y + 9001),
        s2c(FIN | ACK, Y + 9001, x2 + 1),
        c2s(RST | ACK, x2 + 1, Y + 9002),
    ]
    return first + again


def test_queued_kinds_are_named_and_counted_as_by_the_whole_record():
    segs = _conversation()
    full = Classifier({C})
    everything = [full.classify(s) for s in segs]
    for faults in (
        [Fault("delay", "fin", by=0.001)],
        [Fault("drop", "peer-fin")],
        [Fault("drop", "rst")],
        [Fault("drop", "syn-ack")],
        [Fault("drop", "rst", probability=0.5, seed=3)],
        [Fault("delay", "peer-fin", by=0.1, jitter=0.05, seed=3)],
    ):
        kinds, watched = selection.select(faults), selection.watched(faults)
        part = Classifier({C})  # fed what the queue holds and what the watch sees
        queued = []
        for i, s in enumerate(segs):
            if selection.queued(kinds, s.flags):
                queued.append((i, part.classify(s)))
            elif selection.queued(watched, s.flags):
                part.classify(s)
        assert queued, faults
        for i, seen in queued:
            want = everything[i]
            assert (seen.name, seen.nth, seen.sender, seen.conn, seen.retransmission) == (
                want.name,
                want.nth,
                want.sender,
                want.conn,
                want.retransmission,
            ), (i, faults)
            if any(f.random for f in faults):  # the dice's identity of the segment, too
                assert (seen.offset, seen.copy) == (want.offset, want.copy), (i, faults)
    # the conversation does exercise what the argument rests on
    names = [(s.conn, s.name, s.nth) for s in everything]
    assert {(1, "fin", 2), (1, "peer-fin", 1), (2, "syn", 1), (2, "fin", 1), (1, "keepalive", 1)} <= set(
        names
    )
    assert everything[18].sender == "server"  # conn 2's first FIN is the server's
