"""A count or a state sequence the model decides from the order in which a host met a
segment and did its own things: on a machine whose hosts acted on delivered segments
later than the model's order allows (core/check/teardown.py _slow_to_act), a failed one is
not judged. Constructed records: the 6.1 TCG guest's gen-3003, where the client acted
on the server's FIN 5 ms after the router delivered it."""

from tcplab.core.check.base import Check
from tcplab.core.check.teardown import _slow_to_act
from tcplab.core.events import StateChanged
from tcplab.core.record import Record
from unit.helpers import seen

C, S = ("198.18.1.2", 33126), ("198.19.1.2", 8080)


def fin_record(acted_after: float) -> Record:
    r = Record(t0=0.0)
    r.segments = [
        seen(0.1864, "server", "fin", 0x11, t_out=0.1874, src=S[0], sport=S[1], dst=C[0], dport=C[1])
    ]
    r.tracepoint_states = [
        StateChanged(
            0.1874 + acted_after, "client", "ESTABLISHED", "CLOSE_WAIT", "tracepoint", C[0], C[1], S[0], S[1]
        )
    ]
    return r


def checks():
    return [
        Check("model: client fin-ack count", False, 1, 0),
        Check("model: client data #2 after #1 (RTO)", False, 0.204, 0.5, 0.04),  # 0.256 s past
        Check("model: server rst count", True, 1, 1),
    ]


def test_a_failed_count_on_a_slow_way_is_not_judged():
    out = {c.name: c for c in _slow_to_act(checks(), fin_record(0.0049))}
    count = out["model: client fin-ack count"]
    assert not count.judged and count.error and "4.9 ms after the router delivered" in count.actual, count
    assert out["model: client data #2 after #1 (RTO)"].judged  # missed by far more than the way
    assert out["model: server rst count"].passed


def test_the_same_failure_on_a_quick_way_stays_a_failure():
    out = {c.name: c for c in _slow_to_act(checks(), fin_record(0.0015))}
    assert out["model: client fin-ack count"].judged and not out["model: client fin-ack count"].passed
