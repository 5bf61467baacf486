"""A slow machine (an emulated VM, a loaded host) is judged with windows that include
its lateness, or not at all: never a FAIL the lab's own slowness could have caused.
Constructed records, fake clock."""

import dataclasses

import pytest

from tcplab.core.check.base import Lateness, verdict
from tcplab.core.check.expect import check_scenario
from tcplab.core.check.model import check_model
from tcplab.core.model.handshake import predict_handshake
from tcplab.core.model.handshake_params import HostParams
from tcplab.core.model.kernel import Kernel
from tcplab.core.faults import Fault
from tcplab.core.record import Record
from unit.test_record_and_check import T0, TEXTBOOK, scenario, syn_lost_record


def slept(rec: Record, length: float, overshoot: float, at: float = 0.5) -> Record:
    rec.app_started("server", {"mono": T0 + at, "call": "sleep", "arg": length})
    rec.app_finished("server", {"mono": T0 + at, "mono_end": T0 + at + length + overshoot,
                                "call": "sleep", "arg": length, "result": "ok"})
    return rec


def forwarded(rec: Record, wait: float) -> Record:
    """The last SYN delivered `wait` after the router took it in (a slow hook)."""
    last = rec.segments[-1]
    rec.segments[-1] = dataclasses.replace(last, fate="delivered", t_out=last.t + wait)
    return rec


def test_lateness_is_the_worst_sleep_overshoot_with_its_proof():
    rec = slept(slept(Record(t0=T0), 0.1, 0.0004), 2.0, 0.031, at=3.0)
    got = Lateness.of(rec)
    assert got.late == pytest.approx(0.031) and "overshot by 31.0 ms" in got.proof
    assert Lateness.of(Record(t0=T0)).late == 0.0


def test_a_late_machine_widens_every_timer_by_its_lateness():
    k = Kernel((6, 18))
    assert k.slack(1.0) == pytest.approx(9 / 250)  # 250 jiffies: level 1, 8 + 1 jiffies
    assert dataclasses.replace(k, late=0.02).slack(1.0) == pytest.approx(9 / 250 + 0.02)


LATE_SYNS = [0, 1.06, 3.09, 7.12, 15.15, 31.18]  # the first RTO 60 ms late, then 30 ms each


def model_checks(rec, late):
    kernel = Kernel((6, 1), late=late)
    pred = predict_handshake(kernel, HostParams(syn_retries=5, syn_linear_timeouts=0),
                             HostParams(), (Fault("drop", "syn"),), listens=True)
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
