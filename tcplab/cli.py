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
from tcplab.generate.vocabulary import KINDS  # stdlib only: cheap to import for the option's choices

EXIT_INTERRUPTED = 130


def _console(no_color: bool, stderr: bool = False) -> Console:
    # --no-color means plain text: no colours, no bold, no spinner, no cursor moves.
    plain = {"color_system": None, "force_terminal": False} if no_color else {}
    console = Console(stderr=stderr, highlight=False, soft_wrap=False, **plain)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 110  # a pipe or a CI log: room for the whole ladder
    return console


def _load_all(paths) -> list:
    from tcplab.format.load import discover, load_scenario

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
@click.option("--svg", "svg_path", type=click.Path(),
              help="Write the ladder as an SVG picture here (a directory when several "
                   "scenarios run).")
@click.option("--html", "html_path", type=click.Path(),
              help="Write a self-contained HTML page (the picture and the checks) here (a "
                   "directory when several scenarios run).")
@click.option("--no-color", is_flag=True, help="Plain text, no control codes.")
def run(paths, json_path, jobs, repeat, junit_path, mermaid_path, pcap_path,
        svg_path, html_path, no_color) -> None:
    """Run scenario files (or folders of them) and judge what the kernel did."""
    from tcplab.render.live import (LiveView, QuietView, print_verdict, repeat_tables,
                                    summary_table)
    from tcplab.lab import preflight
    from tcplab.runner import CANCEL, run_scenario

    scenarios = _load_all(paths)
    _check_sysctls_exist(scenarios)
    preflight.require()  # one line and exit 3 for this machine's lack, not one per run
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
        _write_pictures(result.to_json(), svg_path, html_path, len(runs) > 1, suffix)
        return result

    if jobs == 1:
        results = [one(job) for job in runs if not CANCEL.is_set()]
    else:
        results = _side_by_side(one, runs, jobs, lambda job: job[0].timeout)
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
    several runs write outputs of the same kind or PATH is a directory (an existing
    one, or one written with a trailing slash)."""
    target = Path(path)
    if many or target.is_dir() or str(path).endswith("/"):
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


def _write_pictures(res: dict, svg_path, html_path, many: bool, suffix: str = "") -> None:
    from tcplab.render.picture import html_page, svg

    if svg_path:
        _output_path(svg_path, res["scenario"], suffix, ".svg", many).write_text(svg(res))
    if html_path:
        _output_path(html_path, res["scenario"], suffix, ".html", many).write_text(
            html_page(res))


@cli.command()
@click.argument("result_json", type=click.Path(exists=True, dir_okay=False))
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False))
@click.option("--mermaid", "mermaid_path", type=click.Path(dir_okay=False))
@click.option("--pcap", "pcap_path", type=click.Path(dir_okay=False))
@click.option("--svg", "svg_path", type=click.Path(dir_okay=False))
@click.option("--html", "html_path", type=click.Path(dir_okay=False))
@click.option("--no-color", is_flag=True)
def show(result_json, junit_path, mermaid_path, pcap_path, svg_path, html_path,
         no_color) -> None:
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
    _write_pictures(res, svg_path, html_path, False)
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
def schema() -> None:
    """Print the JSON Schema of scenario files, built from the loader's tables (for
    editors and CI; schema/scenario.schema.json is this output)."""
    from tcplab.format.schema import schema_text

    click.echo(schema_text(), nl=False)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--no-color", is_flag=True)
def doctor(paths, no_color) -> None:
    """Say what this machine has and lacks for the lab, and how to fix it; with
    scenario files, also whether this kernel has every sysctl they set."""
    from rich.table import Table

    from tcplab.lab.preflight import findings

    wanted = {name for sc in (_load_all(paths) if paths else [])
              for values in sc.sysctls.values() for name in values}
    console = _console(no_color)
    table = Table(title="tcplab doctor")
    for col in ("check", "status", "detail", "fix"):
        table.add_column(col)
    found = findings(wanted)
    for f in found:
        status = "ok" if f.ok else ("MISSING" if f.fatal else "degraded")
        table.add_row(f.name, status, f.detail, "" if f.ok else f.fix)
    console.print(table)
    sys.exit(0 if all(f.ok or not f.fatal for f in found) else 3)


@cli.group(invoke_without_command=True)
@click.option("--seed", type=int, help="The first seed (required to generate).")
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 100000),
              help="How many files: seeds SEED .. SEED+COUNT-1.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="The folder for gen-<seed>.yaml (required to generate).")
@click.option("--kind", default="any", show_default=True,
              type=click.Choice(KINDS),
              help="Which phase the faults and schedules aim at.")
@click.option("--fast", is_flag=True, help="Only scenarios with a timeout of 10 s or less.")
@click.option("--linear-timeouts/--no-linear-timeouts", default=None,
              help="May the files pin tcp_syn_linear_timeouts (default: whether this "
                   "kernel has it).")
@click.pass_context
def generate(ctx, seed, count, out_dir, kind, fast, linear_timeouts) -> None:
    """Write seeded, reproducible scenarios judged by the kernel model only (no root
    needed); `tcplab generate tally DIR` counts the verdicts of their runs."""
    from click.core import ParameterSource

    from tcplab.generate.draft import has_linear_timeouts, write_scenarios

    given = [p for p in ctx.params if ctx.get_parameter_source(p) != ParameterSource.DEFAULT]
    if ctx.invoked_subcommand:
        if given:
            option = next(p.opts[0] for p in ctx.command.params if p.name == given[0])
            raise click.UsageError(f"{option} is for generating, not for "
                                   f"{ctx.invoked_subcommand}")
        return
    if seed is None or out_dir is None:
        raise click.UsageError("generating needs --seed and --out")
    linear = has_linear_timeouts() if linear_timeouts is None else linear_timeouts
    written = write_scenarios(seed, count, Path(out_dir), kind, fast, linear)
    click.echo(f"wrote {len(written)} scenario{'s' * (len(written) != 1)} to {out_dir}: "
               f"gen-{seed}.yaml .. gen-{seed + count - 1}.yaml")


@generate.command()
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="The same table as JSON.")
def tally(results_dir, as_json) -> None:
    """Count the verdicts, failing checks, abstentions (`not judged`) and failing seeds
    of a bulk run's result JSONs (run --json DIR/)."""
    from tcplab.tally import lines, load_results, tally as count

    table = count(load_results(Path(results_dir)))
    click.echo(json.dumps(table, indent=1) if as_json else "\n".join(lines(table)))


@cli.command()
def clean() -> None:
    """Remove what killed runs left behind (never a live run's lab)."""
    from tcplab.lab.clean import clean_dead_runs

    for line in clean_dead_runs():
        click.echo(line)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--jobs", "-j", default=0, type=click.IntRange(0, 64),
              help="Scenarios side by side (default: all of them).")
@click.option("--results", "results_dir", type=click.Path(exists=True, file_okay=False),
              help="Build the report from saved run JSONs (.json or .json.gz; run --json "
                   "DIR) instead of running the catalogue: directly in DIR, or one "
                   "subfolder per kernel (evidence/), one report column per kernel.")
@click.option("--keep", "keep_dir", type=click.Path(file_okay=False),
              help="Keep each run's result JSON in this directory.")
@click.option("--out", "out_md", default="docs/claims.md", show_default=True,
              type=click.Path(dir_okay=False), help="The Markdown report.")
@click.option("--json", "out_json", default="docs/claims.json", show_default=True,
              type=click.Path(dir_okay=False), help="The same report as JSON.")
@click.option("--no-color", is_flag=True)
def claims(paths, jobs, results_dir, keep_dir, out_md, out_json, no_color) -> None:
    """Run the catalogue (default: scenarios/) and write the claims report: for every
    claim, documents, model and kernel side by side, whether the documents hold on this
    kernel, and whether the lab's checks passed. With --results, from saved runs; the
    scenarios.json a results folder holds (python -m tcplab.claims.evidence) stands for
    the scenario files, so committed evidence regenerates the same report."""
    from tcplab.claims import build_report, render_markdown
    from tcplab.claims.evidence import catalogue_of, load

    console = _console(no_color)
    if results_dir:
        try:
            groups, catalogue = load(Path(results_dir))
        except ValueError as e:
            raise ScenarioError(results_dir, None, "", str(e)) from None
        if not groups:
            raise ScenarioError(results_dir, None, "", "no tcplab result JSON in it")
        catalogue = catalogue or catalogue_of(_load_all(paths or ["scenarios"]))
    else:
        scenarios = _load_all(paths or ["scenarios"])
        catalogue = catalogue_of(scenarios)
        results = _run_catalogue(scenarios, jobs or len(scenarios), console, keep_dir)
        groups = {results[0]["kernel"] if results else os.uname().release: results}
    report = build_report(groups, catalogue)
    Path(out_md).parent.mkdir(parents=True, exist_ok=True)
    Path(out_md).write_text(render_markdown(report))
    Path(out_json).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    console.print(_claims_table(report))
    console.print(f"wrote {out_md} and {out_json}")
    labs = {k["lab"] for c in report["claims"] for k in c["kernels"].values()}
    sys.exit(1 if labs & {"fail", "error"} else 0)


def _run_catalogue(scenarios, jobs: int, console, keep_dir) -> list[dict]:
    """Every scenario once, side by side, each verdict printed as it comes."""
    from tcplab.render.live import QuietView, print_verdict
    from tcplab.runner import CANCEL, run_scenario

    _check_sysctls_exist(scenarios)
    _install_signal_handlers()

    def one(sc):
        result = run_scenario(sc, QuietView())
        print_verdict(console, result)
        _write_json(result, keep_dir, True)
        return result.to_json()

    results = _side_by_side(one, scenarios, jobs, lambda sc: sc.timeout)
    if CANCEL.is_set():
        sys.exit(EXIT_INTERRUPTED)
    return results


def _side_by_side(fn, items: list, jobs: int, length) -> list:
    """fn over items, `jobs` at a time, results in the items' order. The longest
    (by `length`, the scenario's timeout) start first: a catalogue then takes about as
    long as its longest scenario, instead of that one starting last behind the rest."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {i: pool.submit(fn, items[i])
                   for i in sorted(range(len(items)), key=lambda i: -length(items[i]))}
        return [futures[i].result() for i in range(len(items))]


def _claims_table(report: dict):
    from rich.table import Table

    table = Table(title="claims: " + "; ".join(k["summary"] for k in report["kernels"]))
    table.add_column("claim")
    for k in report["kernels"]:
        table.add_column(f"Linux {k['release']}")
    for c in report["claims"]:
        table.add_row(c["id"], *(f"{v['documents']} · lab {v['lab']}"
                                 for v in c["kernels"].values()))
    return table


@cli.command(name="list")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--claims", "by_claim", is_flag=True,
              help="One row per documented claim: its scenarios and whether they pass.")
@click.option("--report", "report_json", default="docs/claims.json", show_default=True,
              type=click.Path(dir_okay=False),
              help="The claims report whose verdicts to show (from `tcplab claims`).")
@click.option("--no-color", is_flag=True)
def list_(paths, by_claim, report_json, no_color) -> None:
    """List the scenarios (default: scenarios/), or with --claims which claims have a
    passing scenario and which do not (no root needed)."""
    from rich.table import Table

    from tcplab.claims import CLAIMS

    scenarios = _load_all(paths or ["scenarios"])
    console = _console(no_color)
    if not by_claim:
        table = Table(title="scenarios")
        for col in ("scenario", "file", "claims", "timeout"):
            table.add_column(col)
        for sc in scenarios:
            table.add_row(sc.name, sc.path, ", ".join(sc.claims), f"{sc.timeout:g}s")
        console.print(table)
        return
    verdicts, source = {}, "no report yet: run `tcplab claims`"
    try:
        report = json.loads(Path(report_json).read_text())
        verdicts = {c["id"]: "; ".join(f"{k['documents']} · lab {k['lab']}"
                                       for k in c["kernels"].values())
                    for c in report["claims"]}
        source = f"verdicts from {report_json} (" + "; ".join(
            k["summary"] for k in report["kernels"]) + ")"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    table = Table(title="claims", caption=source)
    for col in ("claim", "scenarios", "status"):
        table.add_column(col)
    for claim in CLAIMS:
        names = [sc.name for sc in scenarios if claim.id in sc.claims]
        status = ("no scenario" if not names
                  else verdicts.get(claim.id, "not run") if verdicts else "has a scenario")
        table.add_row(claim.id, ", ".join(names) or "—", status)
    console.print(table)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--slow", default=0.0, type=click.FloatRange(0, 4),
              help="Hold every segment FACTOR x 0.1 s in the router, so the ladder unfolds "
                   "at a pace people can follow (at most 4: a longer hold would reach the "
                   "kernel's 1 s retransmission timeout).", metavar="FACTOR")
@click.option("--no-pause", is_flag=True, help="Do not wait for Enter between scenarios.")
@click.option("--all", "all_", is_flag=True,
              help="Include the scenarios that run longer than a minute.")
@click.option("--no-color", is_flag=True)
def demo(paths, slow, no_pause, all_, no_color) -> None:
    """A guided tour for a classroom: each claim explained, then run with the live
    ladder and judged (default: scenarios/handshake and scenarios/teardown)."""
    from tcplab.demo import default_paths, tour
    from tcplab.lab import preflight
    from tcplab.render.live import summary_table
    from tcplab.runner import CANCEL

    scenarios = _load_all(paths or default_paths())
    preflight.require()  # not root, no netns: say so before the first explanation
    console = _console(no_color)
    _install_signal_handlers()
    results = tour(console, scenarios, slow, not no_pause, all_)
    if len(results) > 1:
        console.print(summary_table(results))
    if CANCEL.is_set():
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(max((r.exit_code for r in results), default=0, key=_severity))


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
