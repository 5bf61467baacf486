"""The Record (state merging) and the checker, on constructed events and a fake clock."""

from tcplab.core.events import StateChanged
from tcplab.core.record import Record, merge_states
from tcplab.core.scenario import Expect, HostExpect, Scenario, Step, Timing, Tolerance
from tcplab.core.segments import Classifier
from unit.helpers import SYN, C, S, X, c2s

from tcplab.core.check.base import verdict
from tcplab.core.check.expect import check_scenario
from tcplab.core.check.model import check_model
from tcplab.core.model.handshake import predict_handshake
from tcplab.core.model.handshake_params import HostParams
from tcplab.core.model.kernel import Kernel

T0 = 1000.0  # the fake clock's scenario start


def scenario(client: HostExpect, tolerance=Tolerance()) -> Scenario:
    return Scenario(
        path="x.yaml",
        name="x",
        summary="",
        claims=(),
        sysctls={},
        apps={"client": (Step("connect", ("server", 8080)),), "server": ()},
        faults=(),
        expect=Expect(hosts={"client": client}, tolerance=tolerance),
        timeout=80,
    )


def syn_lost_record(times, give_up_at):
    """SYNs at the given times, all dropped; connect() fails at give_up_at."""
    rec = Record(t0=T0)
    clf = Classifier({C})
    for i, t in enumerate(times):
        seen = clf.classify(c2s(SYN, X))
        s = seen.segment
        rec.add_segment(
            {
                "mono": T0 + t,
                "id": i,
                "name": seen.name,
                "nth": seen.nth,
                "sender": seen.sender,
                "flags": s.flags,
                "seq": s.seq,
                "ack": s.ack,
                "length": 0,
                "fate": "dropped",
                "retransmission": seen.retransmission,
                "conn": seen.conn,
                "mono_out": None,
                "src": C,
                "dst": S,
                "sport": s.sport,
                "dport": s.dport,
            }
        )
    rec.app_started("client", {"mono": T0, "call": "connect", "arg": ["server", 8080]})
    rec.app_finished(
        "client",
        {
            "mono": T0,
            "mono_end": T0 + give_up_at,
            "call": "connect",
            "arg": ["server", 8080],
            "result": "ETIMEDOUT",
        },
    )
    for t, old, new in ((0.0, "CLOSE", "SYN_SENT"), (give_up_at, "SYN_SENT", "CLOSE")):
        rec.tracepoint_states.append(StateChanged(t, "client", old, new, "tracepoint", C, 40000, S, 8080))
    return rec


TEXTBOOK = HostExpect(
    calls={"connect": "ETIMEDOUT"},
    retransmits={"syn": Timing(intervals=(1, 2, 4, 8, 16))},
    gives_up_after=63.0,
    states=("SYN_SENT", "CLOSE"),
)


def test_textbook_syn_schedule_passes_with_timer_lateness():
    rec = syn_lost_record([0, 1.01, 3.03, 7.2, 15.3, 32.1], give_up_at=64.4)
    checks = check_scenario(scenario(TEXTBOOK), rec)
    assert verdict(checks) == "pass", [c for c in checks if not c.passed]


def test_modern_schedule_fails_textbook_expectation_with_proof():
    rec = syn_lost_record([0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67], give_up_at=131.0)
    checks = {c.name: c for c in check_scenario(scenario(TEXTBOOK), rec)}
    assert verdict(list(checks.values())) == "fail"
    interval2 = checks["client syn repeats: interval 2"]
    assert (interval2.passed, interval2.expected, interval2.actual) == (False, 2, 1.0)
    assert interval2.tolerance == 0.25
    assert "syn #3" in interval2.evidence and "dropped" in interval2.evidence
    assert checks["client syn repeats: count"].actual == 10
    assert not checks["client gives up after"].passed


def test_tolerance_is_max_of_abs_and_rel():
    tol = Tolerance(abs=0.004, rel=0.125)
    assert tol.allowed(0.01) == 0.004 and tol.allowed(16) == 2.0


def test_blocked_call_fails_with_reason():
    rec = syn_lost_record([0, 1], give_up_at=5)
    rec.apps.clear()
    rec.app_started("client", {"mono": T0, "call": "connect", "arg": None})
    rec.close_open_calls()
    checks = {c.name: c for c in check_scenario(scenario(TEXTBOOK), rec)}
    assert checks["client connect()"].actual == "still blocked when the run ended"
    assert "still blocked" in checks["client gives up after"].actual


def test_no_expectations_is_an_error_not_a_pass():
    assert verdict([]) == "error"


def _st(t, host, old, new, source, lport=40000, rport=8080):
    return StateChanged(t, host, old, new, source, C, lport, S, rport)


def test_merge_keeps_diag_only_for_what_the_tracepoint_cannot_see():
    tp = [
        _st(0.0, "server", "LISTEN", "SYN_RECV", "tracepoint"),
        _st(0.0, "server", "SYN_RECV", "ESTABLISHED", "tracepoint"),
    ]
    diag = [
        _st(0.003, "server", "CLOSE", "ESTABLISHED", "inet_diag"),
        _st(0.5, "server", "CLOSE", "SYN_RECV", "inet_diag", lport=40001),
    ]
    merged = merge_states(tp, diag, have_tracepoint=True)
    assert [(e.new, e.source) for e in merged] == [
        ("SYN_RECV", "tracepoint"),
        ("ESTABLISHED", "tracepoint"),
        ("SYN_RECV", "inet_diag"),
    ]


def test_a_late_stamped_request_never_follows_its_established_child():
    """A loaded poller stamped the request it saw 40 ms after the tracepoint's
    ESTABLISHED for the same connection: the request existed before it."""
    tp = [
        _st(1.000, "server", "SYN_RECV", "ESTABLISHED", "tracepoint"),
        _st(2.000, "server", "ESTABLISHED", "CLOSE_WAIT", "tracepoint"),
    ]
    diag = [
        _st(1.040, "server", "CLOSE", "SYN_RECV", "inet_diag"),
        _st(1.500, "server", "CLOSE", "SYN_RECV", "inet_diag", lport=40001),
    ]
    merged = merge_states(tp, diag, have_tracepoint=True)
    assert [(e.t, e.new, e.lport) for e in merged] == [
        (1.0, "SYN_RECV", 40000),
        (1.0, "ESTABLISHED", 40000),
        (1.5, "SYN_RECV", 40001),  # another connection's request: left where it was
        (2.0, "CLOSE_WAIT", 40000),
    ]


def test_timewait_handover_close_is_hidden_and_time_wait_shown():
    tp = [
        _st(1.0, "client", "FIN_WAIT1", "FIN_WAIT2", "tracepoint"),
        _st(1.1, "client", "FIN_WAIT2", "CLOSE", "tracepoint"),
    ]
    diag = [_st(1.104, "client", "FIN_WAIT2", "TIME_WAIT", "inet_diag")]
    merged = merge_states(tp, diag, have_tracepoint=True)
    assert [e.new for e in merged] == ["FIN_WAIT2", "TIME_WAIT"]


def test_reset_in_fin_wait2_is_a_real_close():
    tp = [
        _st(1.0, "client", "FIN_WAIT1", "FIN_WAIT2", "tracepoint"),
        _st(1.1, "client", "FIN_WAIT2", "CLOSE", "tracepoint"),
    ]
    diag = [_st(1.105, "client", "FIN_WAIT2", "CLOSE", "inet_diag")]  # gone within a poll
    assert [e.new for e in merge_states(tp, diag, True)] == ["FIN_WAIT2", "CLOSE"]


def test_without_tracefs_diag_is_everything():
    diag = [_st(0.0, "client", "CLOSE", "SYN_SENT", "inet_diag")]
    assert merge_states([], diag, have_tracepoint=False) == diag


def test_state_sequence_folds_repeats_and_skips_listeners():
    rec = Record(t0=0)
    rec.diag_states.append(_st(0.001, "server", "CLOSE", "SYN_RECV", "inet_diag"))
    rec.tracepoint_states += [
        _st(0.0, "server", "CLOSE", "LISTEN", "tracepoint", 8080, 0),
        _st(1.03, "server", "LISTEN", "SYN_RECV", "tracepoint"),
        _st(1.03, "server", "SYN_RECV", "ESTABLISHED", "tracepoint"),
    ]
    seq, proof = rec.state_sequence("server")
    assert seq == ["SYN_RECV", "ESTABLISHED"]
    assert proof[0].source == "inet_diag"


def test_model_judges_the_kernels_moment_not_the_apps_wakeup():
    """A loaded machine wakes the connecting thread late: the kernel gave up on time
    (tracepoint SYN_SENT -> CLOSE), the app saw ETIMEDOUT 0.5 s later. The model's
    "returns after" judges the kernel and names the wake-up delay; without the
    tracepoint the app's return is all there is, and 0.5 s late fails."""

    kernel = Kernel.from_release("6.18.0", 250)
    params = HostParams.from_sysctls(
        kernel, {"net.ipv4.tcp_syn_retries": "2", "net.ipv4.tcp_syn_linear_timeouts": "0"}
    )
    from tcplab.core.faults import Fault

    pred = predict_handshake(
        kernel, params, HostParams.from_sysctls(kernel, {}), (Fault("drop", "syn"),), listens=True
    )
    result, _start, end = pred.calls[("client", "connect")]
    assert result == "ETIMEDOUT" and end > 6.9
    times = [s.t for s in pred.segments if s.sender == "client" and s.name == "syn"]

    def returns_after(rec):
        (check,) = [c for c in check_model(pred, rec) if c.name == "model: client connect() returns after"]
        return check

    late_app = syn_lost_record(times, end + 0.5)
    late_app.tracepoint_states[-1] = StateChanged(
        end, "client", "SYN_SENT", "CLOSE", "tracepoint", C, 40000, S, 8080
    )
    check = returns_after(late_app)
    assert check.passed and check.actual == round(end, 6)
    assert "the app woke 500.0 ms later" in check.evidence
    no_tracepoint = syn_lost_record(times, end + 0.5)
    no_tracepoint.tracepoint_states.clear()
    assert not returns_after(no_tracepoint).passed


def test_a_request_no_poll_saw_is_inferred_from_its_child_leaving_syn_recv():
    """6.1 under TCG: the tracepoint reports the child's SYN_RECV->ESTABLISHED, not a
    change into SYN_RECV, and the 8 ms poll missed the request: it was in SYN_RECV."""
    tp = [
        _st(1.000, "server", "SYN_RECV", "ESTABLISHED", "tracepoint"),
        _st(2.000, "server", "ESTABLISHED", "CLOSE_WAIT", "tracepoint"),
    ]
    merged = merge_states(tp, [], have_tracepoint=True)
    assert [(e.t, e.old, e.new, e.source) for e in merged] == [
        (1.0, "LISTEN", "SYN_RECV", "inferred"),
        (1.0, "SYN_RECV", "ESTABLISHED", "tracepoint"),
        (2.0, "ESTABLISHED", "CLOSE_WAIT", "tracepoint"),
    ]
    seen = [_st(0.998, "server", "CLOSE", "SYN_RECV", "inet_diag")]  # the poll saw it
    assert [e.source for e in merge_states(tp, seen, True)] == ["inet_diag", "tracepoint", "tracepoint"]


def test_a_childs_clone_reported_on_the_listeners_tuple_is_not_the_listener():
    """6.1: LISTEN->SYN_RECV with the listener's addresses (rport 0) as each child is
    cloned; counted as a socket, the listener read as one more SYN_RECV socket."""
    tp = [
        StateChanged(0.0, "server", "CLOSE", "LISTEN", "tracepoint", S, 8080, "0.0.0.0", 0),
        StateChanged(0.3, "server", "LISTEN", "SYN_RECV", "tracepoint", S, 8080, "0.0.0.0", 0),
        _st(0.3, "server", "SYN_RECV", "ESTABLISHED", "tracepoint"),
    ]
    merged = merge_states(tp, [], have_tracepoint=True)
    assert [(e.old, e.new, e.rport, e.source) for e in merged] == [
        ("CLOSE", "LISTEN", 0, "tracepoint"),  # the listener's own change stays
        ("LISTEN", "SYN_RECV", 8080, "inferred"),  # the child's request, from its change
        ("SYN_RECV", "ESTABLISHED", 8080, "tracepoint"),
    ]
