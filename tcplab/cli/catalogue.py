"""The catalogue and its claims: `claims` runs the catalogue (or reads saved runs) and
writes the claims report; `list` shows the scenarios, or which claims have one."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from tcplab.cli import signals
from tcplab.cli.common import load_all, make_console, side_by_side
from tcplab.cli.outputs import write_json
from tcplab.errors import ScenarioError


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--jobs",
    "-j",
    default=0,
    type=click.IntRange(0, 64),
    help="Scenarios side by side (default: all of them).",
)
@click.option(
    "--results",
    "results_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Build the report from saved run JSONs (.json or .json.gz; run --json "
    "DIR) instead of running the catalogue: directly in DIR, or one "
    "subfolder per kernel (evidence/), one report column per kernel.",
)
@click.option(
    "--keep",
    "keep_dir",
    type=click.Path(file_okay=False),
    help="Keep each run's result JSON in this directory.",
)
@click.option(
    "--out",
    "out_md",
    default="docs/claims.md",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The Markdown report.",
)
@click.option(
    "--json",
    "out_json",
    default="docs/claims.json",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The same report as JSON.",
)
@click.option("--no-color", is_flag=True)
def claims(paths, jobs, results_dir, keep_dir, out_md, out_json, no_color) -> None:
    """Run the catalogue (default: scenarios/) and write the claims report: for every
    claim, documents, model and kernel side by side, whether the documents hold on this
    kernel, and whether the lab's checks passed. With --results, from saved runs; the
    scenarios.json a results folder holds (python -m tcplab.claims.evidence) stands for
    the scenario files, so committed evidence regenerates the same report."""
    from tcplab.claims import build_report, render_markdown
    from tcplab.claims.evidence import catalogue_of, load

    console = make_console(no_color)
    if results_dir:
        signals.release()  # no lab to stop: a Ctrl-C just ends the report
        try:
            groups, catalogue = load(Path(results_dir))
        except ValueError as e:
            raise ScenarioError(results_dir, None, "", str(e)) from None
        if not groups:
            raise ScenarioError(results_dir, None, "", "no tcplab result JSON in it")
        catalogue = catalogue or catalogue_of(load_all(paths))
    else:
        scenarios = load_all(paths)
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
    from tcplab.lab import preflight
    from tcplab.render.live import QuietView, print_verdict
    from tcplab.runner import CANCEL, run_scenario

    preflight.check_sysctls_exist(scenarios)
    signals.catch()  # a Ctrl-C held since start-up sets CANCEL now

    def one(sc):
        result = run_scenario(sc, QuietView())
        print_verdict(console, result)
        write_json(result, keep_dir, True)
        return result.to_json()

    results = side_by_side(one, scenarios, jobs, lambda sc: sc.timeout)
    if CANCEL.is_set():
        sys.exit(signals.EXIT_INTERRUPTED)
    return results


def _claims_table(report: dict):
    from rich.table import Table

    table = Table(title="claims: " + "; ".join(k["summary"] for k in report["kernels"]))
    table.add_column("claim")
    for k in report["kernels"]:
        table.add_column(f"Linux {k['release']}")
    for c in report["claims"]:
        table.add_row(c["id"], *(f"{v['documents']} · lab {v['lab']}" for v in c["kernels"].values()))
    return table


@click.command(name="list")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--claims",
    "by_claim",
    is_flag=True,
    help="One row per documented claim: its scenarios and whether they pass.",
)
@click.option(
    "--report",
    "report_json",
    default="docs/claims.json",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The claims report whose verdicts to show (from `tcplab claims`).",
)
@click.option("--json", "as_json", is_flag=True, help="The same rows as a JSON list.")
@click.option("--no-color", is_flag=True)
def list_(paths, by_claim, report_json, as_json, no_color) -> None:
    """List the scenarios (default: the shipped ones), or with --claims which claims have
    a passing scenario and which do not (no root needed)."""
    from rich.table import Table

    from tcplab.claims import CLAIMS

    scenarios = load_all(paths)
    console = make_console(no_color)
    if not by_claim:
        if as_json:
            click.echo(
                json.dumps(
                    [
                        {
                            "scenario": sc.name,
                            "file": str(sc.path),
                            "claims": list(sc.claims),
                            "timeout": sc.timeout,
                            "model": sc.expect.model,
                        }
                        for sc in scenarios
                    ],
                    indent=1,
                )
            )
            return
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
        verdicts = {
            c["id"]: "; ".join(f"{k['documents']} · lab {k['lab']}" for k in c["kernels"].values())
            for c in report["claims"]
        }
        source = f"verdicts from {report_json} (" + "; ".join(k["summary"] for k in report["kernels"]) + ")"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    rows = []
    for claim in CLAIMS:
        names = [sc.name for sc in scenarios if claim.id in sc.claims]
        status = (
            "no scenario"
            if not names
            else verdicts.get(claim.id, "not run")
            if verdicts
            else "has a scenario"
        )
        rows.append({"claim": claim.id, "scenarios": names, "status": status})
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    table = Table(title="claims", caption=source)
    for col in ("claim", "scenarios", "status"):
        table.add_column(col)
    for row in rows:
        table.add_row(row["claim"], ", ".join(row["scenarios"]) or "—", row["status"])
    console.print(table)
