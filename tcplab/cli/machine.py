"""The commands about this machine rather than a scenario: `doctor` (what the lab
needs and what is missing) and `clean` (what killed runs left behind)."""

from __future__ import annotations

import json
import sys

import click

from tcplab.cli.common import load_all, make_console


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="The findings as JSON: name, ok, fatal, detail, fix.")
@click.option("--no-color", is_flag=True)
def doctor(paths, as_json, no_color) -> None:
    """Say what this machine has and lacks for the lab, and how to fix it; with
    scenario files, also whether this kernel has every sysctl they set."""
    from rich.table import Table

    from tcplab.lab.preflight import findings

    wanted = {
        name for sc in (load_all(paths) if paths else []) for values in sc.sysctls.values() for name in values
    }
    found = findings(wanted)
    code = 0 if all(f.ok or not f.fatal for f in found) else 3
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": code == 0,
                    "findings": [
                        {
                            "name": f.name,
                            "ok": f.ok,
                            "fatal": f.fatal,
                            "detail": f.detail,
                            "fix": "" if f.ok else f.fix,
                        }
                        for f in found
                    ],
                },
                indent=1,
            )
        )
        sys.exit(code)
    console = make_console(no_color)
    table = Table(title="tcplab doctor")
    for col in ("check", "status", "detail", "fix"):
        table.add_column(col)
    for f in found:
        status = "ok" if f.ok else ("MISSING" if f.fatal else "degraded")
        table.add_row(f.name, status, f.detail, "" if f.ok else f.fix)
    console.print(table)
    sys.exit(code)


@click.command()
def clean() -> None:
    """Remove what killed runs left behind (never a live run's lab)."""
    from tcplab.lab.clean import clean_dead_runs

    for line in clean_dead_runs():
        click.echo(line)
