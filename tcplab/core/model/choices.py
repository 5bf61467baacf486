"""What the kernel model expects after each of the presenter's choices in step mode
(tcplab/core/step.py): the scenario predicted twice, with the held segment delivered
now or dropped, every earlier decision as the fault it was. Pure: the scenario, the
kernel, the sysctls, the decisions and the moment in; one short line per choice out.

The model knows nothing of segments held later, so each line is what follows if the
rest went as the scenario says; it is a hint for a classroom, not a check."""

from __future__ import annotations

import dataclasses

from tcplab.core.faults import DELAY, DROP, Fault
from tcplab.core.model.kernel import Kernel
from tcplab.core.model.predict import predict
from tcplab.core.model.prediction import Prediction
from tcplab.core.model.teardown.prediction import teardown_hints

# How far ahead a hint looks: enough for a 1 s, 2 s, 4 s backoff's next step.
AHEAD = 70.0
# What follows a delivery at once (the ACK of a SYN-ACK) is modelled a hair before
# `now` (the model's clock and the record's differ by the first SYN's stamp): so close
# counts as next.
NOW = 0.05
CAUSE = {"timer": "its timer", "answer": "an answer", "first": "first"}


def choices(
    sc, kernel: Kernel, sysctls: dict, decided: tuple[Fault, ...], held, now: float, origin: float
) -> dict[str, str]:
    """{"deliver": ..., "drop": ...} for the held segment `held` (core/step.Pending),
    `now` and `origin` (the client's first SYN) on the record's clock."""
    out = {}
    for action, fault in (
        (DELAY, Fault(DELAY, held.name, (held.nth,), held.sender, by=max(0.0, now - held.t))),
        (DROP, Fault(DROP, held.name, (held.nth,), held.sender)),
    ):
        played = dataclasses.replace(
            sc, faults=(*decided, fault, *sc.faults), timeout=max(sc.timeout, now - origin + AHEAD)
        )
        try:
            text = next_events(predict(played, kernel, sysctls), origin, now, held)
        except Exception as e:  # noqa: BLE001 - a hint; the model may not cover this
            text = f"the model has no answer here ({e})"
        out["deliver" if action == DELAY else "drop"] = text
    return out


def next_events(p: Prediction, origin: float, now: float, held) -> str:
    """The first segment the model expects after now (other than the held one), and
    how the client's connect() ends, in words. The model's times are shifted so that
    the held segment is where the record has it."""
    if p.unjudged and not p.segments:
        return "the model does not predict this (" + p.unjudged[0][1] + ")"
    mine = [s.t for s in p.segments if (s.sender, s.name, s.nth) == (held.sender, held.name, held.nth)]
    came = mine[0] if mine else held.t - origin
    shift = held.t - (origin + came)
    segs = sorted(
        (origin + s.t + shift, s) for s in p.segments if s.t > came and origin + s.t + shift > now - NOW
    )
    parts = []
    if segs:
        at, s = segs[0]
        fate = "" if s.fate == "delivered" else f", {s.fate} by the scenario"
        parts.append(
            f"{s.sender} sends {s.name} #{s.nth} at t≈{max(at, now):.1f} s "
            f"({CAUSE.get(s.cause, s.cause)}{fate})"
        )
    else:
        later = teardown_hints(p.teardown, origin, now)  # type: ignore[arg-type]  # typed object: no cycle
        if later:
            at, what = min(later)
            parts.append(f"next: {what} at t≈{at:.1f} s")
    connect = p.calls.get(("client", "connect"))
    if connect is not None:
        result, _start, end = connect
        when = origin + end + shift
        verb = "returned" if when <= now - NOW else "returns"
        parts.append(f"connect() {verb} {result} at t≈{max(when, now):.1f} s")
    return "; ".join(parts) if parts else "nothing more the model predicts"
