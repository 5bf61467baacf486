"""The commands about this machine rather than a scenario: `doctor` (what the lab
needs and what is missing) and `clean` (what killed runs left behind)."""

from __future__ import annotations

import sys

import click

from tcplab.cli.common import load_all, make_console


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--no-color", is_flag=True)
def doctor(paths, no_color) -> None:
    """Say what this machine has and lacks for the lab, and how to fix it; with
    scenario files, also whether this kernel has every sysctl they set."""
    from rich.table import Table

    from tcplab.lab.preflight import findings

    wanted = {name for sc in (load_all(paths) if paths else [])
              for values in sc.sysctls.values() for name in values}
    console = make_console(no_color)
    table = Table(title="tcplab doctor")
    for col in ("check", "status", "detail", "fix"):
        table.add_column(col)
    found = findings(wanted)
    for f in found:
        status = "ok" if f.ok else ("MISSING" if f.fatal else "degraded")
        table.add_row(f.name, status, f.detail, "" if f.ok else f.fix)
    console.print(table)
    sys.exit(0 if all(f.ok or not f.fatal for f in found) else 3)


@click.command()
def clean() -> None:
    """Remove what killed runs left behind (never a live run's lab)."""
    from tcplab.lab.clean import clean_dead_runs

    for line in clean_dead_runs():
        click.echo(line)
