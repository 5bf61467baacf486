"""The run against the kernel model: the one dispatcher (a SYN flood first is judged
by flood.py, everything else by handshake.py and the parts it gathers)."""

from __future__ import annotations

from tcplab.core.check.base import (
    SLOP_CAP,
    Check,
    Lateness,
    machine_too_slow,
    missed_by,
    not_judged,
    slow_legs,
    too_slow,
)
from tcplab.core.check.flood import applies, check_flood
from tcplab.core.check.handshake import check_handshake
from tcplab.core.check.stamps import hook_acted_late, stamps_behind
from tcplab.core.model.prediction import Prediction
from tcplab.core.record import Record


# A tick more than 1 % slow than the lab's clock widens a 1 s timer's window by 10 ms
# more: MODEL_SLOP's whole allowance. Past it the machine's clocks disagree too much.
DRIFT_CAP = 0.01


def check_model(prediction: Prediction, record: Record, host_faults: tuple = ()) -> list[Check]:
    """Every model check; a timing check whose window would need more slop than
    SLOP_CAP is not judged, and makes the run an error (never a wider pass). So is a
    failed check of a run whose hook carried out one of `host_faults` (the scenario's)
    more than SLOP_CAP late."""
    abstained = [not_judged(what, why) for what, why in prediction.unjudged]
    if any(what == "everything" for what, _why in prediction.unjudged):
        return abstained  # random faults reach the opening (core/model/chance.py)
    if applies(prediction):  # a SYN flood first (H11): judged apart
        checks = check_flood(prediction, record)
    else:
        checks = check_handshake(prediction, record)
    late, drift = prediction.kernel.late, prediction.kernel.drift
    if late > SLOP_CAP or drift > DRIFT_CAP:  # every timer's window would widen past it
        why = (
            f"this machine ran {late * 1000:.0f} ms late, its tick {drift * 100:.2f} % "
            f"slow (caps {SLOP_CAP * 1000:.0f} ms, {DRIFT_CAP * 100:g} %): "
            f"{Lateness.of(record, prediction.kernel.hz).proof}"
        )
        checks = [machine_too_slow(c, why) if c.tolerance is not None and c.judged else c for c in checks]
    checks = _slow_way_out(checks, record)
    behind, proof = stamps_behind(record)
    if behind > SLOP_CAP:  # the record's times are the hook's, not the kernel's
        why = (
            f"the router stamped segments up to {behind * 1000:.0f} ms after their kernel "
            f"sent them (cap {SLOP_CAP * 1000:.0f} ms): {proof}"
        )
        checks = _failures_not_judged(checks, why)
    acted, proof = hook_acted_late(host_faults, record)
    if acted > SLOP_CAP:  # its queue waited as long: what it held met the kernel that late
        why = f"the hook carried out a timed fault late (cap {SLOP_CAP * 1000:.0f} ms): {proof}"
        checks = _failures_not_judged(checks, why)
    return abstained + [too_slow(c) if c.slop is not None and c.slop > SLOP_CAP else c for c in checks]


def _failures_not_judged(checks: list[Check], why: str) -> list[Check]:
    """Every judged check that failed becomes not judged, for `why` (the run an error)."""
    return [machine_too_slow(c, why) if c.judged and not c.passed else c for c in checks]


def _slow_way_out(checks: list[Check], record: Record) -> list[Check]:
    """The router stamps a segment when it arrives, not when the kernel sent it, and a
    host acts on a segment some time after the router delivers it: a timing that
    missed its window by no more than the machine's slowest way between the router and
    a host (measured in this run, slow_legs) may have been met by the kernel. Such a
    miss is not judged and the run is an error; a bigger miss stays a fail."""
    leg, proof = slow_legs(record)
    if not leg:
        return checks
    why = f"the machine was slow between the router and its hosts: {proof}"
    return [machine_too_slow(c, why) if (m := missed_by(c)) is not None and m <= leg else c for c in checks]
