"""tcplab's command line. One error handler at the top turns exceptions into one
line and an exit code: 0 pass, 1 an expectation failed, 2 bad input or usage,
3 the lab could not judge, 130 interrupted."""

from __future__ import annotations

import sys

import click

from tcplab import __version__
from tcplab.cli import catalogue, machine, new, offline, running, signals
from tcplab.errors import EXIT_INPUT, TcplabError

# The commands that stop their runs on the runner's flag: they catch() the held signals
# once ready for them. Every other command gets Python's defaults back at once.
LAB_COMMANDS = frozenset({"run", "demo", "claims"})


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tcplab")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Break TCP handshakes and teardowns on a real Linux kernel and watch what it does."""
    if ctx.invoked_subcommand not in LAB_COMMANDS:
        signals.release()


for command in (
    running.run,
    running.demo,
    offline.show,
    offline.rejudge,
    offline.explain,
    offline.validate,
    offline.schema,
    offline.generate,
    new.new,
    machine.doctor,
    machine.clean,
    catalogue.claims,
    catalogue.list_,
):
    cli.add_command(command)


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
        sys.exit(signals.EXIT_INTERRUPTED)
    except TcplabError as e:
        if traceback:
            raise
        click.echo(f"tcplab: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(signals.EXIT_INTERRUPTED)
