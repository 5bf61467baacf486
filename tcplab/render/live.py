"""Views the runner reports to: the live ladder for one scenario at a time, and a
quiet one-line-per-scenario view for parallel runs. Also the verdict block and the
summary table, shared by `run` and (later) `show`."""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tcplab.core.check.base import MODEL_SLOP as MODEL_EARLY
from tcplab.core.check.base import Check
from tcplab.render.ladder import Ladder
from tcplab.render.view import NullView

HEARTBEAT = 10.0
REORDER = 0.3  # seconds of silence before a plain-text "still running" line


class LiveView:
    """Prints each event as a ladder line the moment it happens. On a terminal a
    status line shows the elapsed time and what is blocked; in a pipe, a heartbeat
    line every 10 s of silence does the same job, so a 131 s run never looks hung."""

    def __init__(self, console: Console):
        self.console = console
        self.ladder = Ladder(console.width)
        self._pending: list = []  # (t, order, Text): a short reorder buffer
        self.status = None
        self.timeout = 0.0
        self._last_output = time.monotonic()

    def started(self, scenario, plan) -> None:
        c = self.console
        c.print(Text(f"▶ {scenario.name}", style="bold"), Text(f"({scenario.path})", style="dim"))
        c.print(Text(scenario.summary, style="italic"))
        every = (*scenario.faults, *scenario.host_faults, *scenario.forges)
        if every:
            c.print(Text("faults: " + "; ".join(f.describe() for f in every), style="yellow"))
        c.print(
            Text(
                f"lab {plan.run_id}: client {plan.client_addr} ⇄ router ⇄ server "
                f"{plan.server_addr}, queue {plan.queue}",
                style="dim",
            )
        )
        c.print(self.ladder.header())
        self.timeout = scenario.timeout
        if c.is_terminal:
            self.status = c.status("starting…")
            self.status.start()

    def _print(self, line) -> None:
        if line is not None:
            self.console.print(line, overflow="crop", no_wrap=True)
            self._last_output = time.monotonic()

    def _queue(self, t: float, line) -> None:
        """Tracepoint records reach us a little after the segments they caused, so lines
        wait REORDER seconds and come out in time order."""
        if line is not None:
            self._pending.append((t, len(self._pending), line))

    def _flush(self, upto: float) -> None:
        ready = sorted(p for p in self._pending if p[0] <= upto)
        self._pending = [p for p in self._pending if p[0] > upto]
        for _t, _n, line in ready:
            self._print(line)

    def event(self, ev) -> None:
        t = ev.t_end if getattr(ev, "kind", "") == "app" and ev.t_end is not None else ev.t
        self._queue(t, self.ladder.line(ev))

    def call_started(self, t, host, call, arg) -> None:
        self._queue(t, self.ladder.call_started(t, host, call, arg))

    def tick(self, t: float, waiting: str) -> None:
        self._flush(t - REORDER)
        text = f"t={t:.1f}s/{self.timeout:g}s" + (f" · {waiting}" if waiting else "")
        if self.status is not None:
            self.status.update(text)
        elif time.monotonic() - self._last_output >= HEARTBEAT:
            self._print(Text(f"{'…':>8} still running: {text}", style="dim"))

    def note(self, text: str) -> None:
        self._print(Text(f"note: {text}", style="yellow"))

    def held(self, pending, t: float, hints: dict[str, str]) -> None:
        """Step mode: what the presenter may do with the held segment, and what the
        kernel model expects after each choice (right away: the run waits on it)."""
        self._flush(float("inf"))
        for line in self.ladder.choices(pending, t, hints):  # wrapped: every word counts
            self.console.print(line)
        self._last_output = time.monotonic()

    def decided(self, seg, t: float | None) -> None:
        self._queue(t if t is not None else seg.t, self.ladder.decided(seg, t))

    def finish(self) -> None:
        self._flush(float("inf"))
        if self.status is not None:
            self.status.stop()
            self.status = None


class QuietView(NullView):
    """For runs side by side: nothing while running, the verdict at the end."""

    def finish(self) -> None:
        pass


VERDICT_STYLE = {"pass": "bold green", "fail": "bold red", "error": "bold yellow"}


def format_value(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f} s"
    return str(v)


def check_line(c: Check) -> Text:
    if not c.judged:  # an abstention: neither a pass nor a fail
        return (
            Text("  – ", style="yellow")
            + Text(f"{c.name}: {c.actual}")
            + (Text(f"\n      ({c.evidence})", style="dim") if c.evidence else Text(""))
        )
    mark = Text("  ✓ " if c.passed else "  ✗ ", style="green" if c.passed else "bold red")
    body = f"{c.name}: "
    window = (
        (
            f"-{(MODEL_EARLY if c.early is None else c.early) * 1000:.0f} ms/+{c.tolerance:.3f} s"
            if c.one_sided
            else f"± {c.tolerance:.3f} s"
        )
        if c.tolerance is not None
        else ""
    )
    if window and c.slop is not None:  # the lab's own share of the window
        window += f", slop {c.slop * 1000:.1f} ms"
    if c.passed:
        body += f"{format_value(c.actual)}"
        if window:
            body += f" (expected {format_value(c.expected)} {window})"
    else:
        body += f"expected {format_value(c.expected)}, got {format_value(c.actual)}"
        if window:
            body += f", tolerance {window}"
        if c.line:
            body += f" [scenario line {c.line}]"
        if c.evidence:
            body += f"\n      proof: {c.evidence}"
    return mark + Text(body)


def print_verdict(console: Console, result) -> None:
    """A RunResult, or a saved result JSON (dict) for `tcplab show`."""
    if isinstance(result, dict):
        name, verdict, duration, kernel = (
            result["scenario"],
            result["verdict"],
            result.get("duration", 0.0),
            result["kernel"],
        )
        checks = [
            Check(
                **{k: v for k, v in c.items() if k in _CHECK_FIELDS},
                judged=c.get("judged", True),
                slop=c.get("slop"),
                error=c.get("error", False),
                one_sided=c.get("window") == "late",
                early=c.get("early"),
            )
            for c in result["checks"]
        ]
        errors, notes = result.get("errors", []), result.get("notes", [])
    else:
        name, verdict, duration, kernel = (
            result.scenario.name,
            result.verdict,
            result.duration,
            result.kernel,
        )
        checks, errors, notes = result.checks, result.errors, result.notes
    style = VERDICT_STYLE.get(verdict, "")
    console.print(
        Text(f"{verdict.upper()} ", style=style) + Text(f"{name} in {duration:.1f} s (kernel {kernel})")
    )
    for c in checks:
        console.print(check_line(c))
    for e in errors:
        console.print(Text(f"  error: {e}", style="yellow"))
    for n in notes:
        console.print(Text(f"  note: {n}", style="dim"))


_CHECK_FIELDS = ("name", "passed", "expected", "actual", "tolerance", "evidence", "line")


def summary_table(results) -> Table:
    table = Table(title="tcplab summary")
    for col in ("scenario", "claims", "verdict", "checks", "time"):
        table.add_column(col)
    for r in results:
        passed = sum(c.passed for c in r.checks)
        table.add_row(
            r.scenario.name,
            ",".join(r.scenario.claims),
            Text(r.verdict, style=VERDICT_STYLE.get(r.verdict, "")),
            f"{passed}/{len(r.checks)}",
            f"{r.duration:.1f} s",
        )
    return table


def repeat_tables(results) -> list[Table]:
    """For `run --repeat N`: per scenario, how often each verdict came out (more than
    one verdict is a flip) and the spread of every checked timing."""
    import statistics
    from collections import Counter, defaultdict

    by_name: dict[str, list] = defaultdict(list)
    for r in results:
        by_name[r.scenario.name].append(r)
    tables = []
    for name, runs in by_name.items():
        verdicts = Counter(r.verdict for r in runs)
        flips = "no flips" if len(verdicts) == 1 else "VERDICT FLIPS"
        table = Table(
            title=f"{name}: {len(runs)} runs, {', '.join(f'{v} {n}' for v, n in verdicts.items())} ({flips})"
        )
        for col in ("check", "expected", "min", "median", "max", "failed"):
            table.add_column(col)
        timings: dict[str, list] = defaultdict(list)
        failed: Counter = Counter()
        expected: dict[str, object] = {}
        for r in runs:
            for c in r.checks:
                failed[c.name] += not c.passed
                if isinstance(c.actual, (int, float)) and c.tolerance is not None:
                    timings[c.name].append(c.actual)
                    expected[c.name] = c.expected
        for check, values in timings.items():
            table.add_row(
                check,
                format_value(expected[check]),
                format_value(min(values)),
                format_value(statistics.median(values)),
                format_value(max(values)),
                str(failed[check]),
            )
        tables.append(table)
    return tables
