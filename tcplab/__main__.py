"""`python -m tcplab` and the `tcplab` command. Ctrl-C and SIGTERM are held from here
on, before the CLI is even imported (tcplab/cli/signals.py says why)."""

from tcplab.cli import signals


def main() -> None:
    signals.hold()
    from tcplab.cli.main import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
