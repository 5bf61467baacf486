"""The teardown expectations (`lasts`, `sockets`, `returns_after`) and the teardown
model's checks, on constructed records and a fake clock."""

import dataclasses

import pytest

from tcplab.core.events import StateChanged
from tcplab.core.record import Record
from tcplab.core.scenario import Expect, HostExpect, Lasting, Scenario, Step, Tolerance
from tcplab.core.segments import Classifier
from unit.helpers import ACK, C, FIN, SYN, S, X, Y, c2s, s2c

from tcplab.core.check.expect import check_scenario
from tcplab.core.check.states import most_sockets, stays
from tcplab.core.check.base import Slop
from tcplab.core.check.teardown import check_teardown
from tcplab.core.model.kernel import Kernel
from tcplab.core.model.teardown.params import TeardownParams
from tcplab.core.model.teardown.predict import predict_teardown

T0 = 1000.0


def st(t, host, old, new, source="tracepoint", lport=40000, rport=8080):
    laddr, raddr = (C, S) if host == "client" else (S, C)
    if host == "server":
        lport, rport = rport, lport
    return StateChanged(t, host, old, new, source, laddr, lport, raddr, rport)


def add(rec, clf, t, seg, fate="delivered", t_out=None):
    seen = clf.classify(seg)
    rec.add_segment(
        {
            "mono": T0 + t,
            "id": len(rec.segments),
            "name": seen.name,
            "nth": seen.nth,
            "sender": seen.sender,
            "flags": seg.flags,
            "seq": seg.seq,
            "ack": seg.ack,
            "length": 0,
            "fate": fate,
            "retransmission": seen.retransmission,
            "conn": seen.conn,
            "mono_out": None if fate == "dropped" else T0 + (t_out or t),
            "src": seg.src,
            "dst": seg.dst,
            "sport": seg.sport,
            "dport": seg.dport,
        }
    )


def time_wait_record(tw_ends=60.4, diag_late=0.006, after=None):
    """A normal close: the client's TIME_WAIT seen by inet_diag `diag_late` after the
    tracepoint's handover; it ends at tw_ends (or not at all: None), seen by a poll
    whose previous dump began at `after` (None: a run saved without the bracket)."""
    rec = Record(t0=T0)
    rec.tracepoint_states += [
        st(0.0, "client", "CLOSE", "SYN_SENT"),
        st(0.001, "client", "SYN_SENT", "ESTABLISHED"),
        st(0.1, "client", "ESTABLISHED", "FIN_WAIT1"),
        st(0.102, "client", "FIN_WAIT1", "FIN_WAIT2"),
        st(0.3, "client", "FIN_WAIT2", "CLOSE"),
    ]
    rec.diag_states.append(st(0.3 + diag_late, "client", "FIN_WAIT2", "TIME_WAIT", "inet_diag"))
    if tw_ends is not None:
        end = st(tw_ends, "client", "TIME_WAIT", "CLOSE", "inet_diag")
        rec.diag_states.append(dataclasses.replace(end, after=after))
    rec.t_stop = 65.0
    return rec


def run_checks(rec, client=None, server=None, tol=Tolerance()):
    hosts = {h: e for h, e in (("client", client), ("server", server)) if e is not None}
    sc = Scenario(
        path="x.yaml",
        name="x",
        summary="",
        claims=(),
        sysctls={},
        apps={
            "client": (Step("connect", ("server", 8080)),),
            "server": (Step("listen", 8080), Step("accept")),
        },
        faults=(),
        expect=Expect(hosts=hosts, tolerance=tol),
        timeout=80,
    )
    return check_scenario(sc, rec)


def test_time_wait_starts_at_the_tracepoint_handover_not_the_diag_poll():
    (tw,) = [s for s in stays(time_wait_record(diag_late=0.05), "client") if s.state == "TIME_WAIT"]
    assert (tw.start, tw.end) == (0.3, 60.4)
    assert "tracepoint handover" in tw.describe()


def test_an_orphans_time_wait_starts_when_the_peers_fin_arrives():
    """The client closed first and its FIN was ACKed at 0.102 s: the orphan is handed to
    a minisocket in substate FIN_WAIT2 at 0.3 s here (the tracepoint's FIN_WAIT2->CLOSE),
    and enters TIME_WAIT, its timer re-armed to 60 s, only when the server's FIN
    arrives at 0.5 s (tcp_timewait_state_process()). A FIN that reached it before the
    handover (a socket its app still held, or CLOSING) leaves the handover the start."""
    rec = time_wait_record(tw_ends=60.6, diag_late=0.25)
    add(rec, Classifier({C}), 0.499, s2c(FIN | ACK, Y + 1, X + 2), t_out=0.5)
    (tw,) = [s for s in stays(rec, "client") if s.state == "TIME_WAIT"]
    assert (tw.start, tw.end) == (0.5, 60.6) and "the peer's FIN" in tw.describe()
    (fw2,) = [s for s in stays(rec, "client") if s.state == "FIN_WAIT2"]
    assert fw2.end == 0.5
    rec = time_wait_record(tw_ends=60.4, diag_late=0.05)
    add(rec, Classifier({C}), 0.299, s2c(FIN | ACK, Y + 1, X + 2), t_out=0.2995)
    (tw,) = [s for s in stays(rec, "client") if s.state == "TIME_WAIT"]
    assert tw.start == 0.3 and "tracepoint handover" in tw.describe()


TW60 = HostExpect(lasts={"TIME_WAIT": Lasting(60.0)})


def test_time_wait_is_one_timer_never_early_at_most_a_wheel_granule_late():
    # HZ=250: 15000 jiffies sit in wheel level 3, granularity 512 jiffies (2.048 s),
    # plus the tick: 2.052 s; an end seen without a poll bracket gets 50 ms more.
    (good,) = run_checks(time_wait_record(), TW60)
    assert good.passed and good.actual == pytest.approx(60.1) and good.one_sided
    assert good.tolerance == pytest.approx(2.052 + 0.05) and "timer wheel" in good.evidence
    for ends, why in ((59.8, "early"), (62.6, "past the granule"), (73.3, "far off")):
        (bad,) = run_checks(time_wait_record(tw_ends=ends), TW60)
        assert not bad.passed, why
        assert "TIME_WAIT->CLOSE (inet_diag)" in bad.evidence


def test_the_poll_bracket_decides_where_the_end_can_be():
    # Seen at 62.38 s by a dump whose predecessor began at 62.345 s: the end may be
    # 62.345 s, inside 60.3 + 60 .. + 2.052 s; the same sighting without a bracket
    # is 62.08 s after the start, past 2.052 + 0.05.
    (inside,) = run_checks(time_wait_record(tw_ends=62.38, after=62.345), TW60)
    assert inside.passed and "between t=62.345s and t=62.380s" in inside.evidence
    assert inside.tolerance == pytest.approx(2.052)
    (late,) = run_checks(time_wait_record(tw_ends=62.38, after=62.36), TW60)
    assert not late.passed
    (starved,) = run_checks(time_wait_record(tw_ends=60.4, after=58.2), TW60)  # 2.2 s > 2.052
    assert starved.error and not starved.judged and "too slow" in starved.actual


def test_a_state_no_timer_ends_keeps_the_relative_tolerance():
    (c,) = run_checks(time_wait_record(), HostExpect(lasts={"FIN_WAIT1": Lasting(0.0)}))
    assert c.tolerance == 0.004 and not c.one_sided and c.passed  # 2 ms, within 4 ms
    (c,) = run_checks(time_wait_record(), HostExpect(lasts={"FIN_WAIT1": Lasting(0.01)}))
    assert not c.passed  # 2 ms is 8 ms from 10 ms
    (c,) = run_checks(time_wait_record(), HostExpect(lasts={"FIN_WAIT2": Lasting(0.2)}))
    assert c.passed and c.one_sided  # 0.198 s, as an orphan's 200 ms FIN_WAIT2 timer


def test_an_exact_length_fails_when_the_state_never_ended():
    (c,) = run_checks(time_wait_record(tw_ends=None), HostExpect(lasts={"TIME_WAIT": Lasting(60.0)}))
    assert not c.passed and "still in it when the run ended" in c.actual


def test_at_least_and_forever():
    open_ended = time_wait_record(tw_ends=None)
    a, f = run_checks(
        open_ended,
        HostExpect(lasts={"TIME_WAIT": Lasting(at_least=64.0), "FIN_WAIT2": Lasting(forever=True)}),
    )
    assert a.passed  # 64.7 s so far
    assert not f.passed and f.actual == pytest.approx(0.198)  # FIN_WAIT2 did end
    (short,) = run_checks(time_wait_record(), HostExpect(lasts={"TIME_WAIT": Lasting(at_least=64.0)}))
    assert not short.passed


def test_lasts_a_state_never_entered():
    (c,) = run_checks(time_wait_record(), HostExpect(lasts={"CLOSING": Lasting(1.0)}))
    assert not c.passed and c.actual.startswith("never in CLOSING")


def test_most_sockets_at_one_moment():
    rec = Record(t0=T0)
    for i, port in enumerate((40001, 40002, 40003)):
        rec.tracepoint_states += [st(i, "server", "ESTABLISHED", "CLOSE_WAIT", lport=port)]
    rec.tracepoint_states.append(st(1.5, "server", "CLOSE_WAIT", "LAST_ACK", lport=40001))
    assert most_sockets(rec, "server", "CLOSE_WAIT") == (2, 1)
    (c,) = run_checks(rec, server=HostExpect(sockets={"CLOSE_WAIT": 3}))
    assert not c.passed and c.actual == 2 and "t=1.000s" in c.evidence


def handshake_record(connect_end, accept_end):
    """SYN-ACK held 0.3 s, ACK held 0.5 s; the calls end when the apps say."""
    rec, clf = Record(t0=T0), Classifier({C})
    add(rec, clf, 0.001, c2s(SYN, X))
    add(rec, clf, 0.002, s2c(SYN | ACK, Y, X + 1), "delayed", t_out=0.302)
    add(rec, clf, 0.303, c2s(ACK, X + 1, Y + 1), "delayed", t_out=0.803)
    for host, call, end in (("client", "connect", connect_end), ("server", "accept", accept_end)):
        rec.app_started(host, {"mono": T0, "call": call})
        rec.app_finished(host, {"mono": T0, "mono_end": T0 + end, "call": call, "result": "ok"})
    return rec


def test_returns_after_the_segment_arrives():
    exp_c, exp_s = (
        HostExpect(returns_after={"connect": "syn-ack"}),
        HostExpect(returns_after={"accept": "ack"}),
    )
    c, s = run_checks(handshake_record(0.305, 0.806), exp_c, exp_s)
    assert c.passed and s.passed and c.expected == pytest.approx(0.302)
    # accept() returning with the SYN-ACK, before the ACK arrived, is not the claim.
    c, s = run_checks(handshake_record(0.305, 0.305), exp_c, exp_s)
    assert c.passed and not s.passed and "ack #1" in s.evidence


def test_returns_after_a_segment_that_never_arrived():
    rec = handshake_record(0.305, 0.806)
    (c,) = run_checks(rec, HostExpect(returns_after={"connect": "fin"}))
    assert not c.passed and "no fin reached the client" in c.actual


# -- the teardown model's checks ---------------------------------------------------

K = Kernel.from_release("6.18.44")
R = 0.204


def fin_lost_record(copies, dies_at):
    """The client's FIN dropped every time: copies at the given offsets after 0.1 s."""
    rec, clf = Record(t0=T0), Classifier({C})
    add(rec, clf, 0.0, c2s(SYN, X))
    add(rec, clf, 0.0002, s2c(SYN | ACK, Y, X + 1))
    add(rec, clf, 0.0004, c2s(ACK, X + 1, Y + 1))
    for off in [0.0, *copies]:
        add(rec, clf, 0.1 + off, c2s(FIN | ACK, X + 1, Y + 1), "dropped")
    rec.tracepoint_states += [
        st(0.0, "client", "CLOSE", "SYN_SENT"),
        st(0.0003, "client", "SYN_SENT", "ESTABLISHED"),
        st(0.1, "client", "ESTABLISHED", "FIN_WAIT1"),
        st(0.1 + dies_at, "client", "FIN_WAIT1", "CLOSE"),
    ]
    rec.t_stop = 5.0
    return rec


def fin_lost_prediction():
    p = {
        h: TeardownParams.from_sysctls(K, {"net.ipv4.tcp_orphan_retries": "2"}) for h in ("client", "server")
    }
    from tcplab.core.faults import Fault

    return predict_teardown(
        K,
        p,
        {},
        {"client": [Step("sleep", 0.1), Step("close"), Step("sleep", 4.0)], "server": [Step("sleep", 5.0)]},
        (Fault("drop", "fin"),),
        until=15,
    )


def test_model_passes_a_run_as_measured():
    rec = fin_lost_record([0.206, 0.414, 0.834, 1.665], 3.329)
    checks = check_teardown(fin_lost_prediction(), rec, slop=Slop())
    assert checks and all(c.passed for c in checks), [c for c in checks if not c.passed]
    names = [c.name for c in checks]
    assert "model: client FIN_WAIT1 lasts" in names and "model: client fin #5 after #1" in names


def test_model_fails_an_early_retransmit_and_an_extra_copy():
    rec = fin_lost_record([0.150, 0.414, 0.834, 1.665, 3.3], 6.6)
    failed = {c.name for c in check_teardown(fin_lost_prediction(), rec, Slop()) if not c.passed}
    assert {
        "model: client fin count",
        "model: client fin #2 after #1",
        "model: client FIN_WAIT1 lasts",
    } <= failed


def test_a_time_wait_longer_than_its_timer_is_a_chain_judged_with_the_tolerance():
    # retransmitted FINs restarted the timer (last-ack-lost: 75.36 s for 73.06 s)
    (c,) = run_checks(time_wait_record(tw_ends=75.7), HostExpect(lasts={"TIME_WAIT": Lasting(73.06)}))
    assert c.passed and not c.one_sided and c.tolerance == pytest.approx(0.125 * 73.06)
