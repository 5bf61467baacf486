"""tcplab's command line. One error handler at the top turns exceptions into one
line and an exit code: 0 pass, 1 an expectation failed, 2 bad input or usage,
3 the lab could not judge, 130 interrupted."""

from __future__ import annotations

import json
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
from rich.console import Console

from tcplab import __version__
from tcplab.errors import EXIT_INPUT, ScenarioError, TcplabError

EXIT_INTERRUPTED = 130


def _console(no_color: bool, stderr: bool = False) -> Console:
    # --no-color means plain text: no colours, no bold, no spinner, no cursor moves.
    plain = {"color_system": None, "force_terminal": False} if no_color else {}
    console = Console(stderr=stderr, highlight=False, soft_wrap=False, **plain)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 110  # a pipe or a CI log: room for the whole ladder
    return console


def _load_all(paths) -> list:
    from tcplab.scenario import discover, load_scenario

    files = discover(paths)
    if not files:
        raise ScenarioError(" ".join(map(str, paths)), None, "", "no scenario files found")
    return [load_scenario(f) for f in files]


def _check_sysctls_exist(scenarios) -> None:
    """A sysctl this kernel lacks (or that cannot be written) is the scenario's mistake
    (exit 2), found before any namespace exists. The root namespace's /proc/sys is only
    looked at here: per-namespace sysctls exist in every namespace or in none."""
    for sc in scenarios:
        for host, values in sc.sysctls.items():
            for name in values:
                key = f"hosts.{host}.sysctls.{name}"
                path = "/proc/sys/" + name.replace(".", "/")
                why = None
                if not os.path.isfile(path):
                    why = f"this kernel ({os.uname().release}) has no such sysctl"
                elif not os.stat(path).st_mode & 0o222:
                    why = "read-only: the kernel reports it but does not let it be set"
                if why:
                    raise ScenarioError(sc.path, sc.lines.get(key), key, why)


def _install_signal_handlers() -> None:
    from tcplab.runner import CANCEL

    def handler(signum, _frame):
        if CANCEL.is_set():  # a second Ctrl-C: the user really means it
            raise KeyboardInterrupt
        CANCEL.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tcplab")
def cli() -> None:
    """Break TCP handshakes and teardowns on a real Linux kernel and watch what it does."""


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--json", "json_path", type=click.Path(), help="Write the result JSON here "
              "(a directory when several scenarios run).")
@click.option("--jobs", "-j", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Scenarios to run side by side.")
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(1, 1000),
              help="Run each scenario N times; report verdict counts and the spread of "
                   "every checked timing.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False),
              help="Write JUnit XML here: one testcase per check.")
@click.option("--mermaid", "mermaid_path", type=click.Path(),
              help="Write the ladder as a Mermaid sequenceDiagram here (a directory when "
                   "several scenarios run).")
@click.option("--pcap", "pcap_path", type=click.Path(),
              help="Write a pcapng of the segments as sent and as delivered, with comments "
                   "(a directory when several scenarios run).")
@click.option("--no-color", is_flag=True, help="Plain text, no control codes.")
def run(paths, json_path, jobs, repeat, junit_path, mermaid_path, pcap_path,
        no_color) -> None:
    """Run scenario files (or folders of them) and judge what the kernel did."""
    from tcplab.render.live import (LiveView, QuietView, print_verdict, repeat_tables,
                                    summary_table)
    from tcplab.runner import CANCEL, run_scenario

    scenarios = _load_all(paths)
    _check_sysctls_exist(scenarios)
    console = _console(no_color)
    _install_signal_handlers()
    runs = [(sc, i) for sc in scenarios for i in range(1, repeat + 1)]

    def one(job):
        sc, i = job
        view = LiveView(console) if jobs == 1 else QuietView()
        try:
            result = run_scenario(sc, view)
        finally:
            view.finish()
        print_verdict(console, result)
        if jobs == 1:
            console.print()
        suffix = f".{i}" if repeat > 1 else ""
        _write_json(result, json_path, len(runs) > 1, suffix)
        _write_mermaid(result.to_json(), mermaid_path, len(runs) > 1, suffix)
        _write_pcap(result.to_json(), pcap_path, len(runs) > 1, suffix)
        return result

    if jobs == 1:
        results = [one(job) for job in runs if not CANCEL.is_set()]
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(one, runs))
    if junit_path:
        from tcplab.render.export import junit

        Path(junit_path).write_text(junit([r.to_json() for r in results]))
    if len(results) > 1:
        console.print(summary_table(results))
    if repeat > 1:
        for table in repeat_tables(results):
            console.print(table)
    if CANCEL.is_set():
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(max((r.exit_code for r in results), default=0, key=_severity))


def _severity(code: int) -> int:
    return {0: 0, 1: 1, 3: 2}.get(code, 3)


def _output_path(path, name: str, suffix: str, ext: str, many: bool) -> Path:
    """The file an output goes to: PATH itself, or PATH/<scenario><suffix><ext> when
    several runs write outputs of the same kind."""
    target = Path(path)
    if many:
        target.mkdir(parents=True, exist_ok=True)
        target = target / f"{name}{suffix}{ext}"
    return target


def _write_json(result, json_path, many: bool, suffix: str = "") -> None:
    if json_path:
        _output_path(json_path, result.scenario.name, suffix, ".json", many).write_text(
            json.dumps(result.to_json(), indent=1) + "\n")


def _write_mermaid(res: dict, path, many: bool, suffix: str = "") -> None:
    if path:
        from tcplab.render.export import mermaid

        _output_path(path, res["scenario"], suffix, ".mmd", many).write_text(mermaid(res))


def _write_pcap(res: dict, path, many: bool, suffix: str = "") -> None:
    if path:
        from tcplab.render.export import pcap

        pcap(res, _output_path(path, res["scenario"], suffix, ".pcapng", many))


@cli.command()
@click.argument("result_json", type=click.Path(exists=True, dir_okay=False))
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False))
@click.option("--mermaid", "mermaid_path", type=click.Path(dir_okay=False))
@click.option("--pcap", "pcap_path", type=click.Path(dir_okay=False))
@click.option("--no-color", is_flag=True)
def show(result_json, junit_path, mermaid_path, pcap_path, no_color) -> None:
    """Re-render a saved run (from run --json): the ladder and the verdict."""
    from tcplab.core.events import event_from_json
    from tcplab.render.ladder import Ladder
    from tcplab.render.live import print_verdict

    try:
        res = json.loads(Path(result_json).read_text())
        events = [event_from_json(e) for e in res["events"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ScenarioError(result_json, None, "", f"not a tcplab result JSON ({e})") from None
    console = _console(no_color)
    ladder = Ladder(console.width)
    console.print(f"{res['scenario']} ({res.get('file', '')}), kernel {res['kernel']}")
    console.print(ladder.header())
    for ev in events:
        line = ladder.line(ev) if ev is not None else None
        if line is not None:
            console.print(line, overflow="crop", no_wrap=True)
    print_verdict(console, res)
    if junit_path:
        from tcplab.render.export import junit

        Path(junit_path).write_text(junit([res]))
    _write_mermaid(res, mermaid_path, False)
    _write_pcap(res, pcap_path, False)
    sys.exit({"pass": 0, "fail": 1}.get(res["verdict"], 3))


@cli.command()
@click.argument("scenario_path", type=click.Path())
@click.option("--no-color", is_flag=True)
def explain(scenario_path, no_color) -> None:
    """Say what a scenario tests and what the kernel model predicts, without running
    it (no root needed)."""
    from tcplab.render.explain import explain_scenario

    console = _console(no_color)
    for sc in _load_all([scenario_path]):
        explain_scenario(console, sc)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
def validate(paths) -> None:
    """Check scenario files without running them (no root needed)."""
    for sc in _load_all(paths):
        click.echo(f"ok  {sc.path}: {sc.name} ({', '.join(sc.claims) or 'no claims'})")


@cli.command()
@click.option("--no-color", is_flag=True)
def doctor(no_color) -> None:
    """Say what this machine has and lacks for the lab, and how to fix it."""
    from rich.table import Table

    from tcplab.lab.preflight import findings

    console = _console(no_color)
    table = Table(title="tcplab doctor")
    for col in ("check", "status", "detail", "fix"):
        table.add_column(col)
    found = findings()
    for f in found:
        status = "ok" if f.ok else ("MISSING" if f.fatal else "degraded")
        table.add_row(f.name, status, f.detail, "" if f.ok else f.fix)
    console.print(table)
    sys.exit(0 if all(f.ok or not f.fatal for f in found) else 3)


@cli.command()
def clean() -> None:
    """Remove what killed runs left behind (never a live run's lab)."""
    from tcplab.lab.clean import clean_dead_runs

    for line in clean_dead_runs():
        click.echo(line)


def main() -> None:
    traceback = "--traceback" in sys.argv
    if traceback:
        sys.argv.remove("--traceback")
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_INPUT)
    except click.exceptions.Abort:
        sys.exit(EXIT_INTERRUPTED)
    except TcplabError as e:
        if traceback:
            raise
        click.echo(f"tcplab: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
