"""A run's result and its judging: the RunResult a run or a saved result JSON becomes,
the kernel the model stands for, and the one place a record is judged (by the
scenario's expectations, then the kernel model) — for a live run (runner.py) and for
`tcplab rejudge`."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field

from tcplab.core import step
from tcplab.core.check.base import Check, Lateness, verdict
from tcplab.core.check.expect import check_scenario
from tcplab.core.check.model import check_model
from tcplab.core.kernel_expect import for_kernel
from tcplab.core.model.kernel import Kernel
from tcplab.core.model.predict import predict
from tcplab.core.record import Record
from tcplab.core.scenario import Scenario
from tcplab.errors import EXIT_ERROR, EXIT_FAIL, EXIT_PASS
from tcplab.lab import preflight


@dataclass
class RunResult:
    scenario: Scenario
    verdict: str
    checks: list[Check] = field(default_factory=list)
    record: Record | None = None
    sysctls: dict[str, dict[str, str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    duration: float = 0.0
    kernel: str = field(default_factory=platform.release)
    kernel_build: str = field(default_factory=platform.version)  # uname -v: the stable level
    # The machine's CPUs: timers pinned to two CPUs run at once (Kernel.cpus).
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    lab: dict = field(default_factory=dict)  # run id, namespaces, addresses
    model: dict | None = None  # the kernel model's prediction, when expect.model asks
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds (--timings)

    @property
    def exit_code(self) -> int:
        return {"pass": EXIT_PASS, "fail": EXIT_FAIL}.get(self.verdict, EXIT_ERROR)

    def to_json(self) -> dict:
        events = self.record.events() if self.record else []
        return {
            "scenario": self.scenario.name,
            "file": self.scenario.path,
            "claims": list(self.scenario.claims),
            "verdict": self.verdict,
            "kernel": self.kernel,
            "kernel_build": self.kernel_build,
            "cpus": self.cpus,
            "sysctls": self.sysctls,
            "checks": [c.to_json() for c in self.checks],
            "errors": self.errors,
            "notes": self.notes,
            "duration": round(self.duration, 3),
            "lab": self.lab,
            "model": self.model,
            "timings": self.timings,
            "started": self.record.wall0 if self.record else None,
            "observation": self.record.observation() if self.record else None,
            "events": [e.to_json() for e in events],
        }


def model_kernel(res: RunResult) -> Kernel:
    """The kernel the model stands for: this run's release, and CONFIG_HZ as preflight
    reads it (250 assumed, and said, when it cannot)."""
    hz = preflight.kernel_hz()
    if hz is None:
        hz = 250
        if not any(n.startswith("CONFIG_HZ unknown") for n in res.notes):
            res.notes.append("CONFIG_HZ unknown: the model assumes HZ=250")
    return Kernel.from_release(res.kernel, hz, res.kernel_build, res.cpus)


def rejudge(sc: Scenario, saved: dict) -> RunResult:
    """A saved run judged again by today's checks and model: the record, the kernel and
    the sysctls from the result JSON, the scenario from its file. For triage (a model
    change replayed on many recorded runs) and for regression tests on real records."""
    res = RunResult(
        sc,
        "error",
        sysctls=saved.get("sysctls", {}),
        kernel=saved.get("kernel", platform.release()),
        kernel_build=saved.get("kernel_build", ""),
        # runs saved before it was kept: the machine judging them (the lab's host and
        # its guests all had 2)
        cpus=saved.get("cpus") or os.cpu_count() or 1,
        notes=[n for n in saved.get("notes", []) if n.startswith("CONFIG_HZ")],
    )
    res.record, res.duration = Record.from_json(saved), saved.get("duration", 0.0)
    res.errors = list(saved.get("errors", []))
    if not res.errors:
        judge_record(sc, res, res.record)
    res.verdict = "error" if res.errors else verdict(res.checks)
    if res.verdict == "error" and not res.errors:
        res.errors.append(nothing_judged(res))
    return res


def judge_record(sc: Scenario, res: RunResult, record: Record) -> None:
    kernel = model_kernel(res)
    lateness = Lateness.of(record, kernel.hz)
    kernel = kernel.running_late(lateness.late, lateness.drift)
    played, notes, not_as_written = step.for_judging(sc, record)  # --step: the presenter's
    res.notes += notes
    res.checks = check_scenario(sc, record, kernel)
    if not_as_written:
        res.checks = step.abstain(res.checks, not_as_written)
    sc = played  # the model judges the presenter's choices as faults
    res.notes += [
        f"expectations for {k.describe()} applied: this is {kernel.name()}"
        for k in for_kernel(sc.expect.hosts, sc.expect.by_kernel, kernel.version)[1]
    ]
    if sc.expect.model == "linux":
        prediction = predict(sc, kernel, res.sysctls, record)
        res.model = prediction.to_json()
        res.checks += check_model(prediction, record, sc.host_faults)


def nothing_judged(res: RunResult) -> str:
    too_slow = [f"{c.actual} [{c.name}]" for c in res.checks if c.error]
    if too_slow:  # the lab's own timing, not the kernel's, decided a window
        return too_slow[0] + (f" (and {len(too_slow) - 1} more)" if len(too_slow) > 1 else "")
    abstained = [c.actual for c in res.checks if not c.judged]
    return "not judged: " + "; ".join(abstained) if abstained else "the scenario has no expectations to judge"
