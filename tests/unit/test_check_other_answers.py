"""The handshake model's answers under another name (check/handshake.py
_other_answers): a server's challenge ACK to a copy of the SYN, which the classifier
names `data-ack`, counted up to the client's first data or FIN. Constructed records
on the times of gen-8213 (6.18): every SYN held 2 s, the client's data 1 s after
connect() returned."""

from tcplab.core.check.base import Slop
from tcplab.core.check.handshake import _other_answers, _renamed_answers
from tcplab.core.events import SegmentSeen
from tcplab.core.model.kernel import Kernel
from tcplab.core.model.prediction import Prediction, PredictedSegment
from tcplab.core.record import Record

K618 = Kernel.from_release("6.18.44-fc-v657")


def seg(t, sender, name, length=0):
    return SegmentSeen(
        t=t, name=name, nth=1, sender=sender, flags=0x10, seq=1, ack=1, length=length,
        fate="delivered", retransmission=False, conn=1, t_out=t,
    )  # fmt: skip


def answer(t):
    """The server's challenge ACK to the copy of the SYN arriving at t."""
    return PredictedSegment(t, "server", "data-ack", 1, "delivered", "answer", slack=0.036)


def record(*segments):
    r = Record(t0=0.0)
    r.segments = [seg(0.0, "client", "syn"), *segments]
    return r


def count(prediction, rec):
    (check,) = _other_answers(prediction, rec, 0.0, Slop())
    return check


def test_an_answer_whose_window_holds_the_clients_data_may_be_named_by_the_teardown():
    # the copy of the SYN due at 3.000 s may arrive up to 36 ms late; the client's data
    # at 3.0015 s: its challenge ACK can come after the data and carry another name
    pred = Prediction(K618, segments=[answer(3.0002)], client_gone_at=3.0015)
    late = record(seg(3.002, "client", "data", length=4), seg(3.0021, "server", "data-ack"))
    check = count(pred, late)
    assert (check.passed, check.expected, check.actual) == (True, "0 to 1", 0)
    early = record(seg(3.0003, "server", "data-ack"), seg(3.002, "client", "data", length=4))
    assert count(pred, early).passed


def test_an_answer_due_well_before_the_data_must_come():
    # the copy arrives at 1.0 s, two seconds before the data: no room for a race
    pred = Prediction(K618, segments=[answer(1.0002)], client_gone_at=3.0015)
    missing = record(seg(3.002, "client", "data", length=4))
    check = count(pred, missing)
    assert (check.passed, check.expected, check.actual) == (False, 1, 0)
    there = record(seg(1.0004, "server", "data-ack"), seg(3.002, "client", "data", length=4))
    assert count(pred, there).passed


def test_two_answers_before_the_data_are_not_one():
    pred = Prediction(K618, segments=[answer(1.0002)], client_gone_at=3.0015)
    extra = record(
        seg(1.0004, "server", "data-ack"),
        seg(1.5, "server", "data-ack"),
        seg(3.002, "client", "data", length=4),
    )
    check = count(pred, extra)
    assert (check.passed, check.actual) == (False, 2)


def client_ack(t, nth):
    """The client's ACK answering a SYN-ACK again (a retransmission or a copy)."""
    return PredictedSegment(t, "client", "ack", nth, "delivered", "answer", slack=0.0)


def renamed(prediction, rec):
    return _renamed_answers(prediction, rec, "client", "ack", {"client": 0.0}, Slop())


def test_a_client_answer_between_the_models_cut_and_the_records_may_carry_the_datas_name():
    # The model has the client's data leave at 1.100 s, the record at 1.050 s; its second
    # ACK is due at 1.080 s: in the record it left after the data (named data-ack), in
    # the model before. Its window holds neither cut, but lies between them.
    pred = Prediction(K618, segments=[client_ack(0.5, 1), client_ack(1.08, 2)], client_gone_at=1.1)
    rec = record(seg(1.05, "client", "data", length=4))
    assert renamed(pred, rec) == 1
    # Well before both cuts it is an `ack` in both worlds; the first ACK never counts.
    pred = Prediction(K618, segments=[client_ack(0.5, 1), client_ack(0.7, 2)], client_gone_at=1.1)
    assert renamed(pred, rec) == 0
