"""What every check shares: the Check itself, abstentions, how events are described
in a check's evidence, the verdict over checks, and the model windows' slop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tcplab.core.events import AppCalled, SegmentSeen
from tcplab.core.record import Record
from tcplab.core.segments import flag_string


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    expected: Any
    actual: Any
    tolerance: float | None = None
    evidence: str = ""
    line: int = 0
    one_sided: bool = False  # the model's windows: the kernel may be late, never early
    # False: the lab could not judge this (not modelled, or the run too loaded to
    # order its events): shown as "not judged: why", never a pass and never a fail.
    judged: bool = True

    def to_json(self) -> dict:
        return {"name": self.name, "passed": self.passed, "expected": self.expected,
                "actual": self.actual, "tolerance": self.tolerance,
                "window": "late" if self.one_sided else "both",
                "evidence": self.evidence, "line": self.line, "judged": self.judged}


def not_judged(what: str, why: str, evidence: str = "") -> Check:
    """An abstention: `what` the model leaves unjudged, and why."""
    return Check(f"model: not judged: {what}", True, "", why, evidence=evidence,
                 judged=False)


def describe_segment(s: SegmentSeen) -> str:
    arrow = f"{s.src}:{s.sport} > {s.dst}:{s.dport}"
    text = (f"t={s.t:.3f}s {s.name} #{s.nth} {arrow} [{flag_string(s.flags)}] "
            f"seq={s.seq} ack={s.ack} len={s.length} {s.fate}")
    return text + (" (retransmission)" if s.retransmission else "")


def describe_call(c: AppCalled) -> str:
    end = f"{c.t_end:.3f}s" if c.t_end is not None else "never"
    which = f" #{c.iteration}" if c.iteration is not None else ""
    which += f" port {c.lport}" if c.lport else ""
    return f"{c.host} {c.call}(){which} t={c.t:.3f}s..{end} -> {c.result or 'still blocked'}"


def verdict(checks: list[Check]) -> str:
    """pass, fail, or error when nothing could be judged (no checks, or every one an
    abstention)."""
    judged = [c for c in checks if c.judged]
    if not judged:
        return "error"
    return "pass" if all(c.passed for c in judged) else "fail"


MODEL_SLOP = 0.010  # scheduling noise on top of the modelled timer lateness


def forwarding_slop(record: Record) -> float:
    """The hook is a userspace hop: under load a segment can wait milliseconds in the
    queue (or a held one be released late), and an answer's time includes its
    question's wait. So the model's window also widens by twice the slowest forwarding
    this run measured: t_out - t, or for a held segment how late its release came."""
    waits = [s.t_out - s.t for s in record.segments
             if s.fate == "delivered" and s.t_out is not None]
    waits += [s.held_late for s in record.segments if s.held_late is not None]
    return MODEL_SLOP + 2 * max(waits, default=0.0)


def window(nominal: float, slack: float, slop: float) -> tuple[float, float]:
    return nominal - MODEL_SLOP, nominal + slack + slop










