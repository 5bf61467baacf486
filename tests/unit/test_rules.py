"""Fault rule matching: nth, direction, first match wins."""

from tcplab.core.faults import DELAY, DROP, Fault
from tcplab.core.rules import ACCEPT, decide
from tcplab.core.segments import Classifier
from unit.helpers import ACK, SYN, C, X, Y, c2s, s2c


def classify_all(segs):
    clf = Classifier({C})
    return [clf.classify(s) for s in segs]


def test_drop_only_the_nth():
    syns = classify_all([c2s(SYN, X)] * 3)
    faults = (Fault("drop", "syn", nth=(2,)),)
    assert [decide(faults, s).action for s in syns] == [ACCEPT, DROP, ACCEPT]


def test_drop_all_is_nth_none():
    syns = classify_all([c2s(SYN, X)] * 3)
    assert {decide((Fault("drop", "syn"),), s).action for s in syns} == {DROP}


def test_direction_filter():
    segs = classify_all(
        [
            c2s(SYN, X),
            s2c(SYN | ACK, Y, X + 1),
            c2s(ACK, X + 1, Y + 1),
            c2s(ACK, X + 1, Y + 1, length=5),
            s2c(ACK, Y + 1, X + 6, length=5),
        ]
    )
    faults = (Fault("drop", "data", sender="server"),)
    assert [decide(faults, s).action for s in segs] == [ACCEPT] * 4 + [DROP]


def test_first_match_wins_and_carries_delay():
    seg = classify_all([c2s(SYN, X)])[0]
    faults = (Fault("delay", "syn", by=1.5), Fault("drop", "syn"))
    v = decide(faults, seg)
    assert (v.action, v.delay, v.fault) == (DELAY, 1.5, faults[0])
