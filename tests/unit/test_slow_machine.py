"""A slow machine (an emulated VM, a loaded host) is judged with windows that include
its lateness, or not at all: never a FAIL the lab's own slowness could have caused.
Constructed records, fake clock."""

import dataclasses
from pathlib import Path

import pytest

from tcplab.core.check.base import Lateness, verdict
from tcplab.core.check.expect import check_scenario
from tcplab.core.check.model import check_model
from tcplab.core.model.handshake import predict_handshake
from tcplab.core.model.handshake_params import HostParams
from tcplab.core.model.kernel import Kernel
from tcplab.core.faults import Fault
from tcplab.core.record import Record
from tcplab.core.scenario import Tolerance
from unit.test_record_and_check import T0, TEXTBOOK, scenario, syn_lost_record


def slept(rec: Record, length: float, overshoot: float, at: float = 0.5) -> Record:
    rec.app_started("server", {"mono": T0 + at, "call": "sleep", "arg": length})
    rec.app_finished(
        "server",
        {
            "mono": T0 + at,
            "mono_end": T0 + at + length + overshoot,
            "call": "sleep",
            "arg": length,
            "result": "ok",
        },
    )
    return rec


def forwarded(rec: Record, wait: float) -> Record:
    """The last SYN delivered `wait` after the router took it in (a slow hook)."""
    last = rec.segments[-1]
    rec.segments[-1] = dataclasses.replace(last, fate="delivered", t_out=last.t + wait)
    return rec


def test_lateness_is_the_median_sleep_overshoot_with_its_proof():
    rec = slept(slept(slept(Record(t0=T0), 0.1, 0.0004), 2.0, 0.031, at=3.0), 1.0, 0.012, at=6)
    got = Lateness.of(rec)
    assert got.late == pytest.approx(0.012) and got.worst == pytest.approx(0.031)
    assert "overshot by 12.0 ms (median), up to 31.0 ms" in got.proof
    assert "t=3.000s" in got.proof  # the worst one, named
    two = Lateness.of(slept(slept(Record(t0=T0), 0.1, 0.002), 0.1, 0.004, at=1))
    assert two.late == pytest.approx(0.003)
    assert Lateness.of(Record(t0=T0)).late == 0.0


def test_a_late_machine_widens_every_timer_by_its_lateness():
    k = Kernel((6, 18))
    assert k.slack(1.0) == pytest.approx(9 / 250)  # 250 jiffies: level 1, 8 + 1 jiffies
    assert dataclasses.replace(k, late=0.02).slack(1.0) == pytest.approx(9 / 250 + 0.02)


LATE_SYNS = [0, 1.06, 3.09, 7.12, 15.15, 31.18]  # the first RTO 60 ms late, then 30 ms each


def model_checks(rec, late):
    kernel = Kernel((6, 1), late=late)
    pred = predict_handshake(
        kernel,
        HostParams(syn_retries=5, syn_linear_timeouts=0),
        HostParams(),
        (Fault("drop", "syn"),),
        listens=True,
    )
    return check_model(pred, rec)


@pytest.mark.parametrize("late, want", [(0.0, "fail"), (0.035, "pass"), (0.05, "error")])
def test_the_model_judges_a_late_machine_within_its_lateness_or_not_at_all(late, want):
    rec = syn_lost_record(LATE_SYNS, give_up_at=63.5)
    checks = model_checks(rec, late)
    assert verdict(checks) == want, [(c.name, c.actual) for c in checks if not c.passed]
    if want == "error":
        assert any("ran 50 ms late" in str(c.actual) for c in checks if c.error)


def test_an_explicit_timing_missed_on_a_slow_lab_is_not_judged():
    miss = [0, 1.0, 3.0, 7.0, 15.0, 31.9]  # the last interval 16.9 s, 16 +- 2 s: met
    fast = syn_lost_record([0, 1.0, 3.6, 7.6, 15.6, 31.6], give_up_at=63.2)  # 2.6 s: missed
    checks = check_scenario(scenario(TEXTBOOK), fast)
    assert verdict(checks) == "fail"  # the lab was fast: the kernel's miss
    slow = forwarded(syn_lost_record([0, 1.0, 3.6, 7.6, 15.6, 31.6], give_up_at=63.2), 0.02)
    checks = check_scenario(scenario(TEXTBOOK), slow)
    assert verdict(checks) == "error"
    (odd,) = [c for c in checks if c.error]
    assert "held a segment up to 20.0 ms" in odd.actual and "seen 2.6" in odd.actual
    met = check_scenario(scenario(TEXTBOOK), forwarded(syn_lost_record(miss, 63.2), 0.02))
    assert verdict(met) == "pass"  # a timing met on a slow lab stays met


KALLSYMS = """\
ffffffff8208cef0 t tcp_keepalive_timer
ffffffff81244513 t tcp_keepalive_timer.cold
ffffffff8208d3e0 t tcp_delack_timer
ffffffff8208d500 t tcp_write_timer
ffffffff820668f0 t tw_timer_handler
ffffffff82068e90 t reqsk_timer_handler
ffffffff82071b10 t tcp_orphan_update
"""


def test_the_timer_filter_names_tcps_timers_by_address():
    from tcplab.lab.tracefs import timer_filter

    rule = timer_filter(KALLSYMS)
    assert rule.count("function == 0x") == 5 and "0xffffffff8208d500" in rule
    assert "82071b10" not in rule and "81244513" not in rule  # not a TCP timer, a .cold part
    hidden = "\n".join("0" * 16 + line[16:] for line in KALLSYMS.splitlines())
    assert timer_filter(hidden) is None  # kptr_restrict: zeros, no filter, no tracing


def test_timer_lateness_keeps_what_ran_more_than_a_tick_late():
    from tcplab.lab.tracefs import parse_trace_line, timer_lateness

    lines = [
        f"          <idle>-0       [001] ..s1. 100.{i:06d}: timer_expire_entry: "
        f"timer=0000000011 function={fn} now={now} baseclk={base}"
        for i, (fn, now, base) in enumerate(
            [
                ("tcp_write_timer", 1000, 1000),
                ("tcp_write_timer", 2001, 2000),
                ("tcp_delack_timer", 3012, 3000),
            ]
        )
    ]
    got = timer_lateness([parse_trace_line(x) for x in lines])
    assert got == [[100.000002, 12, "tcp_delack_timer"]]


def test_lateness_from_the_kernels_timers_beats_the_apps_sleeps():
    rec = slept(Record(t0=T0), 0.1, 0.030)
    rec.timer_late = [[1.5, 3, "tcp_write_timer"], [4.0, 12, "tcp_write_timer"]]
    got = Lateness.of(rec, hz=250)
    assert got.late == pytest.approx(11 / 250) and "t=4.000s, 12 jiffies" in got.proof
    rec.timer_late = []  # traced, and nothing ran late: the sleeps do not count
    assert Lateness.of(rec).late == 0.0
    rec.timer_late = None  # not traced: the sleeps
    assert Lateness.of(rec).late == pytest.approx(0.030)


def test_timer_lateness_survives_the_result_json():
    rec = Record(t0=T0)
    rec.timer_late = [[4.0, 12, "tcp_write_timer"]]
    saved = {"events": [], "observation": rec.observation()}
    assert Record.from_json(saved).timer_late == [[4.0, 12, "tcp_write_timer"]]
    rec.timer_late = None
    assert "timer_late" not in rec.observation()


def test_the_stable_level_comes_from_uname():
    debian = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-01-10)"
    assert Kernel.from_release("6.1.0-50-cloud-amd64", 250, debian).stable == 176
    assert Kernel.from_release("6.1.0-50-cloud-amd64").stable is None
    assert Kernel.from_release("6.18.44-fc-v1147").stable == 44
    assert (
        Kernel.from_release(
            "6.12.95+deb12-cloud-amd64", 250, "#1 SMP PREEMPT_DYNAMIC Debian 6.12.95-1~bpo12+1"
        ).stable
        == 95
    )


@pytest.mark.parametrize(
    "release, build, want",
    [
        ("6.18.44", "", True),
        ("6.13.0", "", True),
        ("6.1.0-50-cloud-amd64", "Debian 6.1.176-1", True),  # observed: 17 for listen(16)
        ("6.1.0-50-cloud-amd64", "Debian 6.1.100-1", None),  # not known either way
        ("6.1.0-50-cloud-amd64", "", None),
        ("6.6.0", "", None),
    ],
)
def test_the_request_queue_rule_is_known_only_where_it_is(release, build, want):
    assert Kernel.from_release(release, 250, build).accept_queue_full_above is want


def test_a_flood_is_not_judged_where_the_request_queue_rule_is_unknown():
    from tcplab.core.model.predict import predict
    from tcplab.format.load import load_scenario

    root = Path(__file__).resolve().parents[2]
    sc = load_scenario(str(root / "scenarios/handshake/syn-flood-syncookies.yaml"))
    unknown = predict(sc, Kernel.from_release("6.1.0-50-cloud-amd64"), sc.sysctls)
    assert unknown.unjudged and unknown.unjudged[0][0] == "everything"
    assert "3479c7549fb1" in unknown.unjudged[0][1]
    known = predict(sc, Kernel.from_release("6.1.0-50", 250, "Debian 6.1.176-1"), sc.sysctls)
    assert not known.unjudged and known.flood is not None


def test_a_simultaneous_open_on_an_unknown_stable_level_accepts_either_rule():
    from tcplab.core.model.predict import predict
    from tcplab.format.load import load_scenario

    root = Path(__file__).resolve().parents[2]
    sc = load_scenario(str(root / "scenarios/handshake/simultaneous-open.yaml"))
    unknown = predict(sc, Kernel.from_release("6.1.0-50-cloud-amd64"), sc.sysctls)
    outcomes = {o.calls[("server", "connect")][2] for o in [unknown, *unknown.alternatives]}
    assert len(outcomes) >= 2 and any("23e89e8ee7be" in n for n in unknown.notes)
    for known in (Kernel.from_release("6.1.0", 250, "Debian 6.1.176-1"), Kernel((6, 18))):
        p = predict(sc, known, sc.sysctls)
        assert not any("23e89e8ee7be" in n for n in p.notes)
        known_outcomes = {o.calls[("server", "connect")][2] for o in [p, *p.alternatives]}
        assert known_outcomes < outcomes  # one rule's outcomes, among either rule's


TIMER_LIST = """Timer List Version: v0.10
HRTIMER_MAX_CLOCK_BASES: 8
now at 31124801213869 nsecs

cpu: 0
  .idle_jiffies   : 4302671283
jiffies: 4302673438
"""


def test_the_tick_and_the_lab_clock_read_from_timer_list():
    from tcplab.lab.jiffies import parse_timer_list

    assert parse_timer_list(TIMER_LIST) == (31124.801213869, 4302673438)
    assert parse_timer_list("no such lines") is None


def test_tick_drift_from_two_readings():
    from tcplab.core.check.base import tick_drift

    # 15512 jiffies (62.048 s at HZ=250) took 62.3 s of the monotonic clock
    assert tick_drift([(10.0, 1000), (72.3, 16512)], 250) == pytest.approx(
        (62.3 - 0.008) / 62.048 - 1, abs=1e-6
    )
    assert tick_drift([(10.0, 1000), (72.048, 16512)], 250) == 0.0  # in step
    assert tick_drift([(10.0, 1000), (13.0, 1800)], 250) == 0.0  # too short to tell
    assert tick_drift([(10.0, 1000)], 250) == 0.0


def test_a_slow_tick_widens_a_one_timer_stay_by_its_drift():
    from unit.test_check_states import TW60, run_checks, time_wait_record
    from tcplab.core.check.states import check_host

    rec = time_wait_record(tw_ends=62.6, after=62.56)  # 62.26 s after the handover
    (on_time,) = run_checks(rec, TW60)
    assert not on_time.passed
    drifted = Kernel((6, 1), drift=0.004)  # 60 s of jiffies: 60.24 s of the lab's clock
    (slow,) = check_host("client", TW60, rec, Tolerance(), drifted)
    assert slow.passed and slow.tolerance == pytest.approx(2.052 + 0.24)
    (far,) = check_host("client", TW60, time_wait_record(tw_ends=63.0, after=62.99), Tolerance(), drifted)
    assert not far.passed
