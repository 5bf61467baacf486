"""Random faults (issue 16): the dice are a pure function of (seed, fault index, which
segment), so the same seed gives the same fates to the same segments whatever the
order they arrive in, and a different seed different ones."""

import pytest

from tcplab.core.faults import DELAY, DROP, Fault, identity
from tcplab.core.rules import ACCEPT, decide
from tcplab.core.segments import Classifier
from unit.helpers import ACK, SYN, C, X, Y, c2s, s2c

MSS = 1000


def transfer(order, isn_c=X, isn_s=Y):
    """A handshake, then the client's data segments at the byte offsets in `order`
    (an offset sent twice is a retransmission), each ACKed by the server."""
    segs = [c2s(SYN, isn_c), s2c(SYN | ACK, isn_s, isn_c + 1), c2s(ACK, isn_c + 1, isn_s + 1)]
    top = 0
    for k in order:
        segs.append(c2s(ACK, isn_c + 1 + k * MSS, isn_s + 1, length=MSS))
        top = max(top, k + 1)
        segs.append(s2c(ACK, isn_s + 1, isn_c + 1 + top * MSS))
    clf = Classifier({C})
    return [clf.classify(s) for s in segs]


def fates(faults, order, **isns):
    """segment identity -> (action, roll) for every data segment."""
    return {
        identity(s): (v.action, v.roll)
        for s in transfer(order, **isns)
        if s.name == "data"
        for v in [decide(faults, s)]
    }


LOSS = (Fault(DROP, "data", probability=0.3, seed=7),)


def test_same_seed_same_fates():
    order = list(range(200))
    assert fates(LOSS, order) == fates(LOSS, order)


def test_about_the_probability():
    dropped = [a for a, _r in fates(LOSS, list(range(2000))).values() if a == DROP]
    assert 500 <= len(dropped) <= 700  # 30 % of 2000, well within 5 sigma (20.5)


def test_a_different_seed_gives_different_fates():
    other = (Fault(DROP, "data", probability=0.3, seed=8),)
    assert fates(LOSS, list(range(200))) != fates(other, list(range(200)))


def test_isns_do_not_matter():
    """ISNs are random in every run: the segment's place relative to them counts."""
    order = list(range(100))
    assert fates(LOSS, order) == fates(LOSS, order, isn_c=12345, isn_s=999999)


def test_retransmissions_interleaved_differently_shift_nothing():
    """Run A resends offset 3 right away, run B after 7 more new segments: every
    segment (the originals and each copy) meets the same fate in both."""
    a = [0, 1, 2, 3, 3, 4, 5, 6, 7, 8, 9, 10, 11, 3]
    b = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 3, 3, 11]
    assert fates(LOSS, a) == fates(LOSS, b)


def test_a_copy_gets_its_own_roll():
    segs = [s for s in transfer([5] * 40) if s.name == "data"]
    assert [s.copy for s in segs] == list(range(1, 41))
    assert {decide(LOSS, s).action for s in segs} == {DROP, ACCEPT}


def test_roll_is_recorded_hit_or_miss():
    for action, roll in fates(LOSS, list(range(50))).values():
        assert 0 <= roll < 1 and (action == DROP) == (roll < 0.3)


@pytest.mark.parametrize("p, want", [(0.0, {ACCEPT}), (1.0, {DROP})])
def test_probability_zero_and_one(p, want):
    faults = (Fault(DROP, "data", probability=p, seed=7),)
    assert {a for a, _r in fates(faults, list(range(300))).values()} == want


def test_probability_one_is_no_dice():
    v = decide((Fault(DROP, "data", probability=1.0),), transfer([0])[3])
    assert (v.action, v.roll) == (DROP, None)


def test_the_fault_index_separates_the_dice():
    """Two random faults do not roll the same number: a miss of the first is not a miss
    of the second."""
    one = (Fault(DROP, "data", probability=0.5, seed=7),)
    two = (Fault(DELAY, "data-ack", by=0.1), Fault(DROP, "data", probability=0.5, seed=7))
    assert fates(one, list(range(100))) != {k: (a, r) for k, (a, r) in fates(two, list(range(100))).items()}


def test_a_miss_falls_through_to_the_next_fault():
    faults = (Fault(DROP, "data", probability=0.5, seed=7), Fault(DELAY, "data", by=0.2))
    got = {a for a, _r in fates(faults, list(range(100))).values()}
    assert got == {DROP, DELAY}


def test_jitter_is_uniform_around_by():
    faults = (Fault(DELAY, "data", by=0.02, jitter=0.005, seed=7),)
    holds = [decide(faults, s).delay for s in transfer(list(range(2000))) if s.name == "data"]
    assert 0.015 <= min(holds) < 0.0152 and 0.0248 < max(holds) <= 0.025
    assert abs(sum(holds) / len(holds) - 0.02) < 0.0003
    assert {decide(faults, s).roll for s in transfer([0])} == {None}  # it always acts


def test_the_handshake_is_counted_by_copy():
    """A SYN's offset is 0; its retransmissions are copies 2, 3, ... (as nth)."""
    clf = Classifier({C})
    syns = [clf.classify(c2s(SYN, X)) for _ in range(3)]
    assert [(s.offset, s.copy, s.nth) for s in syns] == [(0, 1, 1), (0, 2, 2), (0, 3, 3)]


def test_describe_names_the_dice():
    f = Fault(DELAY, "data", by=0.02, jitter=0.005, probability=0.3, seed=7)
    assert f.describe() == ("delay data nth=all by=0.02s jitter=0.005s probability=30% seed=7")
