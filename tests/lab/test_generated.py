"""Scenarios nobody tuned the judge to, on the real kernel (issue 11): a slice of
`tcplab generate --fast` seeds and the regression corpus (tests/corpus/generated:
every seed, and every hand-written file, that once found a model bug), run side by
side through the CLI. The kernel is right about its own behaviour, so a `fail` here
is the lab's bug; an `error` is allowed only as an abstention ("not judged: why").

In `./lab test` since session 9: 40 seeds by default; TCPLAB_GENERATED=N runs N
(0: none). The bar is issue 11's: no `fail`, and at most 15 % of the seeds with a part
not judged. The fresh held-out batches behind making it the default are in
docs/kernel-model.md ("Generated scenarios"). tests/unit/test_judge_corpus.py judges
the same corpus offline on its recorded runs, deterministically."""

from __future__ import annotations

import json
import os
import re

import pytest
from labhelpers import ROOT, run_cli, send_record, timeline

from tcplab.generate.draft import generate
from tcplab.format.load import load_scenario

pytestmark = pytest.mark.root

SLICE_SEED = 5000  # seeds 5000.. with --fast; docs/kernel-model.md says what they found
SLICE = int(os.environ.get("TCPLAB_GENERATED", "40"))
CORPUS = ROOT / "tests/corpus/generated"


def linear_timeouts() -> bool:
    return os.path.exists("/proc/sys/net/ipv4/tcp_syn_linear_timeouts")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    if SLICE == 0:
        pytest.skip("TCPLAB_GENERATED=0: the generated slice is not run")
    files = tmp_path_factory.mktemp("generated")
    for seed in range(SLICE_SEED, SLICE_SEED + SLICE):
        (files / f"gen-{seed}.yaml").write_text(generate(seed, fast=True, linear_timeouts=linear_timeouts()))
    chosen = sorted(files.glob("*.yaml"))
    # The corpus files that pin tcp_syn_linear_timeouts cannot run where it is missing.
    chosen += [
        p
        for p in sorted(CORPUS.glob("*.yaml"))
        if linear_timeouts() or "tcp_syn_linear_timeouts" not in p.read_text()
    ]
    out = tmp_path_factory.mktemp("generated-results")
    limit = max(load_scenario(p).timeout for p in chosen) + 600
    # Four at a time: the judge must hold on a busy machine, but this slice is about
    # generality, not about load (the catalogue run is the load test).
    proc = run_cli(["run", "--jobs", "4", "--json", str(out), "--no-color", *map(str, chosen)], limit)
    return {
        "proc": proc,
        "chosen": chosen,
        "results": {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")},
    }


def test_every_file_ran(generated):
    names = {load_scenario(p).name for p in generated["chosen"]}
    assert names <= set(generated["results"]), generated["proc"].stderr[-2000:]


def test_no_false_fail(generated):
    """The kernel did what it does; the judge may abstain, never call it wrong."""
    wrong = {}
    for name, res in generated["results"].items():
        if res["verdict"] == "fail":
            wrong[name] = [
                f"{c['name']}: expected {c['expected']}, got {c['actual']}"
                for c in res["checks"]
                if c.get("judged", True) and not c["passed"]
            ]
        elif res["verdict"] == "error" and not all(e.startswith("not judged") for e in res["errors"]):
            wrong[name] = res["errors"]
    for name in wrong:
        send_record(generated["results"][name])
    # each wrong run's record goes with the message: CI keeps nothing else of it
    records = "\n\n".join(f"{name}:\n{timeline(generated['results'][name])}" for name in wrong)
    assert not wrong, json.dumps(wrong, indent=1) + "\n\n" + records


def test_abstentions_are_few(generated):
    """At most 15 % of the generated runs have a model part not judged (issue 11's
    bound; the corpus is left out: it was chosen for what the model found hard)."""
    results = [
        r
        for name, r in generated["results"].items()
        if (m := re.fullmatch(r"gen-(\d+)", name)) and SLICE_SEED <= int(m[1]) < SLICE_SEED + SLICE
    ]
    abstained = [r for r in results if any(not c.get("judged", True) for c in r["checks"])]
    assert len(abstained) <= 0.15 * len(results) + 1, [r["scenario"] for r in abstained]
