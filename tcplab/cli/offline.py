"""The commands that read and write files and need no root: `show` (a saved run
again), `rejudge` (saved runs judged again), `explain`, `validate`, `schema`, and
`generate` with its `tally`."""

from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path

import click

from tcplab.cli.common import load_all, make_console
from tcplab.cli.outputs import write_mermaid, write_pcap, write_pictures
from tcplab.errors import EXIT_INPUT, ScenarioError
from tcplab.generate.vocabulary import KINDS  # stdlib only: cheap, for --kind's choices


@click.command()
@click.argument("result_json", type=click.Path(exists=True, dir_okay=False))
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False))
@click.option("--mermaid", "mermaid_path", type=click.Path(dir_okay=False))
@click.option("--pcap", "pcap_path", type=click.Path(dir_okay=False))
@click.option("--svg", "svg_path", type=click.Path(dir_okay=False))
@click.option("--html", "html_path", type=click.Path(dir_okay=False))
@click.option("--no-color", is_flag=True)
def show(result_json, junit_path, mermaid_path, pcap_path, svg_path, html_path, no_color) -> None:
    """Re-render a saved run (from run --json): the ladder and the verdict."""
    from tcplab.core.events import event_from_json
    from tcplab.render.ladder import Ladder
    from tcplab.render.live import print_verdict

    try:
        res = json.loads(Path(result_json).read_text())
        events = [event_from_json(e) for e in res["events"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ScenarioError(result_json, None, "", f"not a tcplab result JSON ({e})") from None
    console = make_console(no_color)
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
    write_mermaid(res, mermaid_path, False)
    write_pcap(res, pcap_path, False)
    write_pictures(res, svg_path, html_path, False)
    sys.exit({"pass": 0, "fail": 1}.get(res["verdict"], 3))


@click.command()
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Where the new result JSONs go (one per saved run, same name).",
)
@click.option(
    "--scenarios",
    "scenario_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Where the scenario files are, when not where the results say.",
)
def rejudge(results_dir, out_dir, scenario_dir) -> None:
    """Judge saved runs (run --json DIR/; .json or .json.gz) again with this version's
    checks and model: nothing runs, no root. Each scenario comes from the file its
    result names, or by that name from --scenarios."""
    from tcplab.format.load import load_scenario
    from tcplab.judging import rejudge as judge_again

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved_runs = sorted(Path(results_dir).glob("*.json")) + sorted(Path(results_dir).glob("*.json.gz"))
    judged = 0
    for path in saved_runs:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as f:
            saved = json.load(f)
        if not isinstance(saved, dict) or "file" not in saved or "events" not in saved:
            continue  # not a run's result (kernel-vm's timing.json, scenarios.json)
        judged += 1
        scenario = Path(saved["file"])
        if not scenario.exists() and scenario_dir:
            scenario = Path(scenario_dir) / scenario.name
        result = judge_again(load_scenario(scenario), saved)
        name = path.name.removesuffix(".gz")
        (out / name).write_text(json.dumps(result.to_json()))
    click.echo(f"rejudged {judged} runs into {out}")


@click.command()
@click.argument("scenario_path", metavar="SCENARIO|CLAIM", type=click.Path())
@click.option("--no-color", is_flag=True)
def explain(scenario_path, no_color) -> None:
    """Say what a scenario tests and what the kernel model predicts, without running
    it (no root needed). A claim ID (H2) instead: the claim and its scenarios."""
    from tcplab.format.keys import CLAIM
    from tcplab.render.explain import explain_claim, explain_scenario

    console = make_console(no_color)
    claim = scenario_path.upper()
    if not os.path.lexists(scenario_path) and CLAIM.fullmatch(claim):
        from tcplab.claims import BY_ID

        if claim not in BY_ID:
            raise ScenarioError(scenario_path, None, "", f"no such claim (there are {', '.join(BY_ID)})")
        explain_claim(console, claim, BY_ID[claim].text, [sc for sc in load_all([]) if claim in sc.claims])
        return
    for sc in load_all([scenario_path]):
        explain_scenario(console, sc)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON document on stdout: each file with its scenario or its errors.",
)
def validate(paths, as_json) -> None:
    """Check scenario files without running them (no root needed): every mistake in
    every file, one `file:line: key: message` line each on stderr; exit 2 if any."""
    from tcplab.catalogue import resolve_all
    from tcplab.format.load import discover, load_scenario

    files = discover(resolve_all(paths))
    if not files:
        raise ScenarioError(" ".join(map(str, paths)), None, "", "no scenario files found")
    report = []
    for path in files:
        try:
            sc = load_scenario(path)
        except ScenarioError as e:
            report.append({"path": str(path), "errors": [err.to_json() for err in getattr(e, "errors", [e])]})
            if not as_json:
                for err in getattr(e, "errors", [e]):
                    click.echo(f"tcplab: {err}", err=True)
            continue
        report.append({"path": sc.path, "scenario": sc.name, "claims": list(sc.claims), "errors": []})
        if not as_json:
            click.echo(f"ok  {sc.path}: {sc.name} ({', '.join(sc.claims) or 'no claims'})")
    bad = sum(bool(f["errors"]) for f in report)
    if as_json:
        click.echo(json.dumps({"ok": not bad, "files": report}, indent=1))
    sys.exit(EXIT_INPUT if bad else 0)


@click.command()
def schema() -> None:
    """Print the JSON Schema of scenario files, built from the loader's tables (for
    editors and CI; schema/scenario.schema.json is this output)."""
    from tcplab.format.schema import schema_text

    click.echo(schema_text(), nl=False)


@click.group(invoke_without_command=True)
@click.option("--seed", type=int, help="The first seed (required to generate).")
@click.option(
    "--count",
    default=1,
    show_default=True,
    type=click.IntRange(1, 100000),
    help="How many files: seeds SEED .. SEED+COUNT-1.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="The folder for gen-<seed>.yaml (required to generate).",
)
@click.option(
    "--kind",
    default="any",
    show_default=True,
    type=click.Choice(KINDS),
    help="Which phase the faults and schedules aim at.",
)
@click.option("--fast", is_flag=True, help="Only scenarios with a timeout of 10 s or less.")
@click.option(
    "--linear-timeouts/--no-linear-timeouts",
    default=None,
    help="May the files pin tcp_syn_linear_timeouts (default: whether this kernel has it).",
)
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
            raise click.UsageError(f"{option} is for generating, not for {ctx.invoked_subcommand}")
        return
    if seed is None or out_dir is None:
        raise click.UsageError("generating needs --seed and --out")
    linear = has_linear_timeouts() if linear_timeouts is None else linear_timeouts
    written = write_scenarios(seed, count, Path(out_dir), kind, fast, linear)
    click.echo(
        f"wrote {len(written)} scenario{'s' * (len(written) != 1)} to {out_dir}: "
        f"gen-{seed}.yaml .. gen-{seed + count - 1}.yaml"
    )


@generate.command()
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="The same table as JSON.")
def tally(results_dir, as_json) -> None:
    """Count the verdicts, failing checks, abstentions (`not judged`) and failing seeds
    of a bulk run's result JSONs (run --json DIR/)."""
    from tcplab.tally import lines, load_results, tally as count

    table = count(load_results(Path(results_dir)))
    click.echo(json.dumps(table, indent=1) if as_json else "\n".join(lines(table)))
