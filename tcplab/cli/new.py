"""`tcplab new FILE`: a commented scenario file from a few answers. Each answer can be
given as a flag; what is not given is asked for when stdin is a terminal, and taken
from the defaults when it is not (a script, CI). The text is checked by the loader
before it is written, and its timeout comes from what the kernel model predicts."""

from __future__ import annotations

import math
import os
import platform
import sys
from pathlib import Path

import click

from tcplab.core.scenario import HOSTS
from tcplab.core.segments import VOCABULARY
from tcplab.errors import ScenarioError
from tcplab.format.template import CLIENT_APPS, FAULTS, SERVER_APPS, Draft, render

DEFAULTS = {
    "segment": "syn",
    "fault": "drop",
    "nth": "1",
    "by": "500ms",
    "sysctl": "",
    "client": "connect",
    "server": "accept",
    "claim": "",
}
QUESTIONS = {
    "segment": "Which segment does the router break",
    "fault": "What happens to it",
    "nth": "Which occurrences (1 is the first; 2; 1,3; all)",
    "by": "By how long",
    "sysctl": "Sysctls, HOST:NAME=VALUE, comma-separated (empty: kernel defaults)",
    "client": "The client's app",
    "server": "The server's app",
    "claim": "The claim it tests, e.g. H2 (empty: none)",
}
CHOICES = {
    "segment": tuple(VOCABULARY),
    "fault": FAULTS,
    "client": tuple(CLIENT_APPS),
    "server": tuple(SERVER_APPS),
}


def interactive() -> bool:
    return sys.stdin.isatty()


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option(
    "--segment", type=click.Choice(CHOICES["segment"]), help="The segment the fault acts on (default: syn)."
)
@click.option("--fault", type=click.Choice(FAULTS), help="drop, delay or duplicate (default: drop).")
@click.option("--nth", help="Which occurrences: 1, 2, 1,3 or all (default: 1).")
@click.option("--by", help="delay/duplicate: how long, e.g. 500ms (default: 500ms).")
@click.option(
    "--sysctl",
    "sysctls",
    multiple=True,
    metavar="HOST:NAME=VALUE",
    help="A sysctl in a host's namespace, e.g. client:net.ipv4.tcp_syn_retries=2 (repeatable).",
)
@click.option(
    "--client",
    type=click.Choice(CHOICES["client"]),
    help="connect (then close after 1 s), send (1000 bytes first) or close (at once); default: connect.",
)
@click.option(
    "--server",
    type=click.Choice(CHOICES["server"]),
    help="accept (read, then close), listen (never accept) or none (nothing listens); default: accept.",
)
@click.option("--claim", help="The ID of the claim it tests, e.g. H2.")
@click.option("--name", help="The scenario's name (default: the file's name).")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
def new(path, segment, fault, nth, by, sysctls, client, server, claim, name, force) -> None:
    """Write a commented scenario file: one segment fault, sysctls, the client's and
    server's apps, judged by the kernel model (no root needed). Flags not given are
    asked for on a terminal, else take their defaults."""
    target = Path(path)
    if target.exists() and not force:
        raise ScenarioError(path, None, "", "exists already (--force overwrites it)")
    given = {
        "segment": segment,
        "fault": fault,
        "nth": nth,
        "by": by,
        "sysctl": ",".join(sysctls) if sysctls else None,
        "client": client,
        "server": server,
        "claim": claim,
    }
    answers = {key: _answer(key, given) for key in QUESTIONS}
    draft = _draft(target, name or target.stem, answers)
    text = _checked(draft, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    click.echo(f"wrote {path}: {text.splitlines()[0].lstrip('# ')}")
    click.echo(f"next: tcplab validate {path}; tcplab explain {path}; sudo tcplab run {path}")


def _answer(key: str, given: dict) -> str:
    if given[key] is not None:
        return given[key]
    if key == "by" and given["fault"] == "drop":
        return DEFAULTS[key]
    if not interactive():
        return DEFAULTS[key]
    kind = click.Choice(CHOICES[key]) if key in CHOICES else str
    answer = click.prompt(QUESTIONS[key], default=DEFAULTS[key], type=kind, show_default=bool(DEFAULTS[key]))
    given[key] = answer  # `by` is asked only once the fault is known
    return answer


def _draft(target: Path, name: str, a: dict) -> Draft:
    from tcplab.catalogue import data_dir
    from tcplab.claims import BY_ID

    claim = a["claim"].strip().upper()
    if claim and claim not in BY_ID:
        raise ScenarioError(
            claim, None, "", f"no such claim (tcplab list --claims lists them: {', '.join(BY_ID)})"
        )
    schema = data_dir("schema") / "scenario.schema.json"
    return Draft(
        name=name,
        segment=a["segment"],
        fault=a["fault"],
        nth=a["nth"].strip(),
        by=a["by"].strip(),
        sysctls=_sysctls(a["sysctl"]),
        client=a["client"],
        server=a["server"],
        claim=claim,
        claim_text=BY_ID[claim].text if claim else "",
        schema=os.path.relpath(schema.resolve(), target.parent.resolve()),
    )


def _sysctls(text: str) -> dict[str, dict[str, str]]:
    by_host: dict[str, dict[str, str]] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        host, _, setting = item.partition(":")
        name, eq, value = setting.partition("=")
        if host not in HOSTS or not eq or not name.strip() or not value.strip():
            raise ScenarioError(
                item,
                None,
                "--sysctl",
                "expected HOST:NAME=VALUE with HOST "
                f"one of {', '.join(HOSTS)}, e.g. "
                "client:net.ipv4.tcp_syn_retries=2",
            )
        by_host.setdefault(host, {})[name.strip()] = value.strip()
    return by_host


def _checked(draft: Draft, path: str) -> str:
    """The text, loaded as the loader would (a bad --nth or sysctl name is said as
    `FILE:LINE: key: message`, and nothing is written), with the timeout the kernel
    model's last event needs."""
    from tcplab.core.model.kernel import Kernel
    from tcplab.core.model.predict import predict
    from tcplab.format.load import MAX_TIMEOUT, load_text
    from tcplab.lab.preflight import kernel_hz

    sc = load_text(render(_with(draft, timeout=MAX_TIMEOUT)), path)
    pred = predict(sc, Kernel.from_release(platform.release(), kernel_hz() or 250), sc.sysctls)
    last = max(
        [s.t + s.slack for s in pred.segments] + [end for _result, _start, end in pred.calls.values()],
        default=0.0,
    )
    timeout = max(15, math.ceil(last * 1.25 + 5))
    text = render(_with(draft, timeout=timeout))
    load_text(text, path)
    return text


def _with(draft: Draft, **changes) -> Draft:
    from dataclasses import replace

    return replace(draft, **changes)
