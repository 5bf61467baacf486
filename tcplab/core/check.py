"""The checker: a scenario's `expect` against a Record. Pure.

Each check says expected, actual, tolerance and the event that proves it, in the
manner of packetdrill ("expected 4.000 s, got 4.130 s, tolerance 0.500 s").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tcplab.core.events import AppCalled, SegmentSeen
from tcplab.core.record import Record
from tcplab.core.scenario import HostExpect, Scenario, Timing, Tolerance
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

    def to_json(self) -> dict:
        return {"name": self.name, "passed": self.passed, "expected": self.expected,
                "actual": self.actual, "tolerance": self.tolerance,
                "evidence": self.evidence, "line": self.line}


def describe_segment(s: SegmentSeen) -> str:
    arrow = f"{s.src}:{s.sport} > {s.dst}:{s.dport}"
    text = (f"t={s.t:.3f}s {s.name} #{s.nth} {arrow} [{flag_string(s.flags)}] "
            f"seq={s.seq} ack={s.ack} len={s.length} {s.fate}")
    return text + (" (retransmission)" if s.retransmission else "")


def describe_call(c: AppCalled) -> str:
    end = f"{c.t_end:.3f}s" if c.t_end is not None else "never"
    return f"{c.host} {c.call}() t={c.t:.3f}s..{end} -> {c.result or 'still blocked'}"


def check_scenario(scenario: Scenario, record: Record) -> list[Check]:
    tol = scenario.expect.tolerance
    checks: list[Check] = []
    for host, exp in scenario.expect.hosts.items():
        checks += _calls(host, exp, record)
        for name, timing in exp.retransmits.items():
            checks += _timing(host, name, timing, record, tol)
        checks += _sends(host, exp, record)
        if exp.gives_up_after is not None:
            checks.append(_gives_up(host, exp, record, tol))
        if exp.states is not None:
            checks.append(_states(host, exp, record))
    return checks


def _calls(host: str, exp: HostExpect, record: Record) -> list[Check]:
    out = []
    for call, want in exp.calls.items():
        made = [c for c in record.apps if c.host == host and c.call == call]
        if not made:
            out.append(Check(f"{host} {call}()", False, want, "never called",
                             line=exp.lines.get(call, 0)))
            continue
        c = made[0]
        actual = c.result or "still blocked when the run ended"
        out.append(Check(f"{host} {call}()", actual == want, want, actual,
                         evidence=describe_call(c), line=exp.lines.get(call, 0)))
    return out


def _timing(host: str, name: str, timing: Timing, record: Record,
            tol: Tolerance) -> list[Check]:
    seen = record.sent_by(host, name)
    repeats = seen[1:]
    label = f"{host} {name} repeats"
    out = []
    expected_count = timing.count
    if expected_count is None:
        lists = [x for x in (timing.intervals, timing.offsets) if x is not None]
        expected_count = len(lists[0]) if lists else None
    if expected_count is not None:
        out.append(Check(f"{label}: count", len(repeats) == expected_count, expected_count,
                         len(repeats), evidence=describe_segment(seen[-1]) if seen else
                         f"no {name} from the {host} at all", line=timing.line))
    for kind, wanted in (("interval", timing.intervals), ("offset", timing.offsets)):
        for i, want in enumerate(wanted or ()):
            if i + 1 >= len(seen):
                out.append(Check(f"{label}: {kind} {i + 1}", False, want, "missing",
                                 tol.allowed(want), line=timing.line))
                continue
            base = seen[i] if kind == "interval" else seen[0]
            got = round(seen[i + 1].t - base.t, 6)
            allowed = tol.allowed(want)
            out.append(Check(f"{label}: {kind} {i + 1}", abs(got - want) <= allowed, want,
                             got, allowed, describe_segment(seen[i + 1]), timing.line))
    return out


def _sends(host: str, exp: HostExpect, record: Record) -> list[Check]:
    out = []
    for name, want in exp.sends.items():
        sent = [s for s in record.segments if s.sender == host and s.name == name]
        proof = describe_segment(sent[want]) if len(sent) > want else (
            describe_segment(sent[-1]) if sent else "")
        out.append(Check(f"{host} sends {name}", len(sent) == want, want, len(sent),
                         evidence=proof, line=exp.lines.get("sends", 0)))
    return out


def _gives_up(host: str, exp: HostExpect, record: Record, tol: Tolerance) -> Check:
    want = exp.gives_up_after
    failed = [c for c in record.apps if c.host == host and c.result not in ("ok", None)]
    line = exp.lines.get("gives_up_after", 0)
    if not failed:
        blocked = [c for c in record.apps if c.host == host and c.result is None]
        actual = (f"{blocked[0].call}() still blocked when the run ended" if blocked
                  else "no call failed")
        return Check(f"{host} gives up after", False, want, actual, tol.allowed(want),
                     line=line)
    c = failed[0]
    got = round(c.t_end - c.t, 6)
    allowed = tol.allowed(want)
    return Check(f"{host} gives up after", abs(got - want) <= allowed, want, got, allowed,
                 describe_call(c), line)


def _states(host: str, exp: HostExpect, record: Record) -> Check:
    seq, proof = record.state_sequence(host)
    evidence = "; ".join(f"t={e.t:.3f}s {e.old}->{e.new} ({e.source})" for e in proof)
    want = list(exp.states)
    return Check(f"{host} states", seq == want, want, seq, evidence=evidence,
                 line=exp.lines.get("states", 0))


def verdict(checks: list[Check]) -> str:
    if not checks:
        return "error"
    return "pass" if all(c.passed for c in checks) else "fail"
