"""Scenarios nobody tuned the judge to, on the real kernel (issue 11): a slice of
`tcplab generate --fast` seeds and the regression corpus (tests/corpus/generated:
every seed, and every hand-written file, that once found a model bug), run side by
side through the CLI. The kernel is right about its own behaviour, so a `fail` here
is the lab's bug; an `error` is allowed only as an abstention ("not judged: why").

Not in `./lab test` yet: TCPLAB_GENERATED=N runs it with N seeds (40 is the intended
CI slice). Of 300 fresh seeds (6000-6299, docs/kernel-model.md) the judge of today
still calls one wrong (gen-6086: the kernel's RTO timers ran late on a loaded
machine), 21.7 % have a part it does not judge (the bar is 15 %), and the handshake
model's arrivals are nominal, so a segment the hook holds a millisecond longer than
usual can reorder it against the client's data (gen-1038 failed here once that way).
It becomes the default when those are fixed. What does gate CI meanwhile is
tests/unit/test_judge_corpus.py: the same corpus judged offline on its recorded runs,
deterministic."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from labhelpers import ROOT

from tcplab.generate.draft import generate
from tcplab.format.load import load_scenario

pytestmark = pytest.mark.root

SLICE_SEED = 5000  # seeds 5000.. with --fast; docs/kernel-model.md says what they found
SLICE = int(os.environ.get("TCPLAB_GENERATED", "0"))
CORPUS = ROOT / "tests/corpus/generated"


def linear_timeouts() -> bool:
    return os.path.exists("/proc/sys/net/ipv4/tcp_syn_linear_timeouts")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    if SLICE == 0:
        pytest.skip(
            "set TCPLAB_GENERATED=40 to run the generated slice (not yet a CI "
            "gate: the judge's false-FAIL rate on fresh seeds is not zero)"
        )
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
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tcplab",
            "run",
            "--jobs",
            "4",
            "--json",
            str(out),
            "--no-color",
            *map(str, chosen),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=limit,
    )
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
    assert not wrong, json.dumps(wrong, indent=1)


def test_abstentions_are_few(generated):
    """At most 15 % of the generated runs have a model part not judged (issue 11's
    bound; the corpus is left out: it was chosen for what the model found hard)."""
    results = [
        r
        for name, r in generated["results"].items()
        if name.startswith("gen-") and SLICE_SEED <= int(name[4:]) < SLICE_SEED + SLICE
    ]
    abstained = [r for r in results if any(not c.get("judged", True) for c in r["checks"])]
    assert len(abstained) <= 0.15 * len(results) + 1, [r["scenario"] for r in abstained]
