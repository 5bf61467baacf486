"""The commands that run the lab: `run` (scenario files, side by side or repeated, with
their outputs) and `demo` (the guided tour). Both stop on a Ctrl-C or SIGTERM through
the runner's flag (signals.py), so every run tears down in its own `finally`."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import click

from tcplab.cli import signals
from tcplab.cli.common import load_all, make_console, severity, side_by_side
from tcplab.cli.outputs import write_json, write_mermaid, write_pcap, write_pictures


def _step_option(f):
    return click.option(
        "--step",
        is_flag=True,
        help="Step through the run: each segment a fault touches "
        "(`--step all FILE`: every segment) is held in the router until the presenter "
        "presses d/Enter (deliver), x (drop) or h (hold on). Needs a terminal.",
    )(f)


def step_mode(step: bool, paths: tuple) -> tuple[str | None, tuple]:
    """(the mode, the paths): `--step` is a flag, and a first path `all` or `faults`
    that is no file is its mode (click would take any word after it as the value)."""
    from tcplab.core.step import MODE_FAULTS, MODES

    if not step:
        return None, paths
    if paths and paths[0] in MODES and not Path(paths[0]).exists():
        return paths[0], paths[1:]
    return MODE_FAULTS, paths


def stepping(mode: str | None):
    """A context per run: None, or the presenter's StepDriver with the terminal in
    cbreak mode for as long as the run goes (restored on every way out)."""

    @contextmanager
    def session():
        if mode is None:
            yield None
            return
        from tcplab.cli.keys import presenter_keys
        from tcplab.stepping import StepDriver

        with presenter_keys() as keys:
            yield StepDriver(mode, keys)

    return session


def _check_step(step: str | None, jobs: int = 1, repeat: int = 1, slow: float = 0.0) -> None:
    if step is None:
        return
    from tcplab.cli.keys import require_terminal

    if jobs > 1 or repeat > 1:
        raise click.UsageError("--step runs one scenario at a time: no --jobs or --repeat")
    if slow:
        raise click.UsageError("--step and --slow both hold segments: choose one")
    require_terminal()


def _output(flag: str, dest: str, what: str):
    """An option naming where an output goes: a file, or a folder for several runs."""
    return click.option(
        flag, dest, type=click.Path(), help=f"{what} (a directory when several scenarios run)."
    )


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@_output("--json", "json_path", "Write the result JSON here")
@click.option(
    "--jobs",
    "-j",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Scenarios to run side by side.",
)
@click.option(
    "--repeat",
    default=1,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Run each scenario N times; report verdict counts and the spread of every checked timing.",
)
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(dir_okay=False),
    help="Write JUnit XML here: one testcase per check.",
)
@_output("--mermaid", "mermaid_path", "Write the ladder as a Mermaid sequenceDiagram here")
@_output("--pcap", "pcap_path", "Write a pcapng of the segments as sent and as delivered, with comments")
@_output("--svg", "svg_path", "Write the ladder as an SVG picture here")
@_output("--html", "html_path", "Write a self-contained HTML page (the picture and the checks) here")
@click.option("--no-color", is_flag=True, help="Plain text, no control codes.")
@click.option(
    "--timings",
    is_flag=True,
    help="After each verdict, the seconds each phase "
    "of set-up and teardown took (also in the result JSON, `timings`).",
)
@_step_option
def run(
    paths,
    json_path,
    jobs,
    repeat,
    junit_path,
    mermaid_path,
    pcap_path,
    svg_path,
    html_path,
    no_color,
    timings,
    step,
) -> None:
    """Run scenario files (or folders of them) and judge what the kernel did."""
    from tcplab.render.live import LiveView, QuietView, print_verdict, repeat_tables, summary_table
    from tcplab.lab import preflight
    from tcplab.runner import CANCEL, run_scenario

    step, paths = step_mode(step, paths)
    _check_step(step, jobs, repeat)
    if not paths:
        raise click.UsageError("no scenario given")
    scenarios = load_all(paths)
    preflight.check_sysctls_exist(scenarios)
    preflight.require()  # one line and exit 3 for this machine's lack, not one per run
    console = make_console(no_color)
    signals.catch()  # a Ctrl-C held since start-up sets CANCEL now
    runs = [(sc, i) for sc in scenarios for i in range(1, repeat + 1)]

    def one(job):
        sc, i = job
        view = LiveView(console) if jobs == 1 else QuietView()
        try:
            with stepping(step)() as driver:
                result = run_scenario(sc, view, driver)
        finally:
            view.finish()
        print_verdict(console, result)
        if timings:
            console.print(
                "  timings: "
                + ", ".join(f"{phase} {seconds:.3f} s" for phase, seconds in result.timings.items()),
                highlight=False,
            )
        if jobs == 1:
            console.print()
        suffix = f".{i}" if repeat > 1 else ""
        write_json(result, json_path, len(runs) > 1, suffix)
        write_mermaid(result.to_json(), mermaid_path, len(runs) > 1, suffix)
        write_pcap(result.to_json(), pcap_path, len(runs) > 1, suffix)
        write_pictures(result.to_json(), svg_path, html_path, len(runs) > 1, suffix)
        return result

    if jobs == 1:
        results = [one(job) for job in runs if not CANCEL.is_set()]
    else:
        results = side_by_side(one, runs, jobs, lambda job: job[0].timeout)
    if junit_path:
        from tcplab.render.export import junit

        Path(junit_path).write_text(junit([r.to_json() for r in results]))
    if len(results) > 1:
        console.print(summary_table(results))
    if repeat > 1:
        for table in repeat_tables(results):
            console.print(table)
    if CANCEL.is_set():
        sys.exit(signals.EXIT_INTERRUPTED)
    sys.exit(max((r.exit_code for r in results), default=0, key=severity))


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--slow",
    default=0.0,
    type=click.FloatRange(0, 4),
    help="Hold every segment FACTOR x 0.1 s in the router, so the ladder unfolds "
    "at a pace people can follow (at most 4: a longer hold would reach the "
    "kernel's 1 s retransmission timeout).",
    metavar="FACTOR",
)
@click.option("--no-pause", is_flag=True, help="Do not wait for Enter between scenarios.")
@click.option("--all", "all_", is_flag=True, help="Include the scenarios that run longer than a minute.")
@click.option("--no-color", is_flag=True)
@_step_option
def demo(paths, slow, no_pause, all_, no_color, step) -> None:
    """A guided tour for a classroom: each claim explained, then run with the live
    ladder and judged (default: scenarios/handshake and scenarios/teardown)."""
    from tcplab.demo import default_paths, tour
    from tcplab.lab import preflight
    from tcplab.render.live import summary_table
    from tcplab.runner import CANCEL

    step, paths = step_mode(step, paths)
    _check_step(step, slow=slow)
    scenarios = load_all(paths or default_paths())
    preflight.require()  # not root, no netns: say so before the first explanation
    console = make_console(no_color)
    signals.catch()  # a Ctrl-C held since start-up sets CANCEL now
    results = tour(console, scenarios, slow, not no_pause, all_, stepping(step))
    if len(results) > 1:
        console.print(summary_table(results))
    if CANCEL.is_set():
        sys.exit(signals.EXIT_INTERRUPTED)
    sys.exit(max((r.exit_code for r in results), default=0, key=severity))
