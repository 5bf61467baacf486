"""`tcplab explain`: what a scenario claims, what it breaks, what it expects, and what
the kernel model predicts for this kernel — before anything runs (no root)."""

from __future__ import annotations

import platform
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tcplab.core.model.kernel import Kernel
from tcplab.core.model.predict import predict
from tcplab.core.scenario import Scenario


def claim_line(path: str) -> str:
    try:
        first = Path(path).read_text().splitlines()[0]
    except (OSError, IndexError):
        return ""
    return first.lstrip("# ").strip() if first.startswith("#") else ""


def explain_claim(console: Console, claim: str, text: str, scenarios: list[Scenario]) -> None:
    """A claim and the shipped scenarios that cite it (`tcplab explain H2`)."""
    console.print(Text(f"{claim}: ", style="bold") + Text(text))
    if not scenarios:
        console.print("no shipped scenario cites it")
        return
    table = Table(title=f"{len(scenarios)} scenario{'s' * (len(scenarios) != 1)} citing {claim}")
    for col in ("scenario", "file", "claims", "timeout", "judged by"):
        table.add_column(col)
    for sc in scenarios:
        judged = "checks + model" if sc.expect.model else "checks"
        table.add_row(sc.name, str(sc.path), ", ".join(sc.claims), f"{sc.timeout:g}s", judged)
    console.print(table)
    console.print("tcplab explain NAME: what one of them expects and the model predicts")


def explain_scenario(console: Console, sc: Scenario) -> None:
    from tcplab.lab.preflight import kernel_hz

    console.print(Text(f"{sc.name}", style="bold") + Text(f"  ({sc.path})", style="dim"))
    claim = claim_line(sc.path)
    if claim:
        console.print(Text(f"claim: {claim}", style="italic"))
    console.print(f"claims: {', '.join(sc.claims) or '—'}")
    console.print(sc.summary)
    for host, values in sc.sysctls.items():
        if values:
            console.print(f"{host} sysctls: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    for f in (*sc.faults, *sc.host_faults, *sc.forges):
        console.print(Text(f"fault: {f.describe()}", style="yellow"))
    _expected(console, sc.expect.hosts, "")
    for k in sc.expect.by_kernel:
        _expected(console, k.hosts, f", on Linux {k.range.text}")
    # The judged prediction's own function, before a run: the scenario's sysctls stand
    # for what the agents will report (a new namespace's defaults for the rest).
    pred = predict(sc, Kernel.from_release(platform.release(), kernel_hz() or 250), sc.sysctls)
    table = Table(title=f"kernel model for {pred.kernel.name()}: what this kernel should do")
    for col in ("t (s)", "from", "segment", "fate", "why", "late by up to"):
        table.add_column(col)
    for p in pred.segments:
        table.add_row(f"{p.t:.3f}", p.sender, f"{p.name} #{p.nth}", p.fate, p.cause, f"{p.slack:.3f} s")
    console.print(table)
    for (host, call), (result, _start, end) in pred.calls.items():
        what = f"{call}() → {result}" if call != "request" else "request dropped"
        console.print(f"model: {host} {what} at t={end:.3f} s")
    if pred.teardown is not None and pred.teardown.unsupported:
        console.print(
            Text(f"model: the teardown is not modelled: {pred.teardown.unsupported}", style="yellow")
        )
    elif pred.teardown is not None:
        _explain_teardown(console, pred.teardown)
    for note in pred.notes:
        console.print(Text(f"model: {note}", style="dim"))


def _explain_teardown(console: Console, td) -> None:
    """The teardown model's segments and states (t = 0: the connection exists)."""
    table = Table(title="teardown (t from when the connection exists)")
    for col in ("t (s)", "host", "segment or state", "fate", "why", "late by up to"):
        table.add_column(col)
    rows = [(p.t, p.sender, f"{p.name} #{p.nth}", p.fate, p.cause, p.slack) for p in td.segments]
    rows += [(s.t, host, s.state, "", s.cause, s.slack) for host, states in td.states.items() for s in states]
    for t, host, what, fate, why, slack in sorted(rows, key=lambda r: r[0]):
        table.add_row(f"{t:.3f}", host, what, fate, why, f"{slack:.3f} s")
    console.print(table)


def _expected(console, hosts: dict, where: str) -> None:
    for host, exp in hosts.items():
        for name, timing in exp.retransmits.items():
            shown = timing.intervals or timing.offsets
            what = "intervals" if timing.intervals else "offsets"
            console.print(
                f"expected ({host} {name} {what}{where}): {', '.join(f'{x:g}' for x in shown or ())} s"
            )
        if exp.gives_up_after is not None:
            console.print(f"expected ({host} gives up after{where}): {exp.gives_up_after:g} s")
