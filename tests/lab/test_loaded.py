"""A machine loaded on purpose: the judge says `error`, never `fail` (issue 11).

Short timing-sensitive scenarios run side by side while twice as many busy loops as
there are CPUs compete with the lab's processes (the hook and the apps run at a higher
priority, docs/robustness.md, but the runner, the tracefs reader and the set-ups do
not). The kernel still does what it does; what the load may do is make the lab too
slow to judge a timing (the slop cap, docs/kernel-model.md) or to order a race: that
must come out as an `error` that says why, never as a verdict against the kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from labhelpers import ROOT, run_cli

pytestmark = pytest.mark.root

SCENARIOS = [
    "handshake/syn-lost-fast",
    "handshake/synack-lost-fast",
    "handshake/ack-lost-fast",
    "handshake/normal",
    "teardown/normal",
    "teardown/fin-lost-fast",
    "teardown/fin-ack-lost",
    "teardown/peer-fin-lost",
    "teardown/last-ack-lost",
    "failure/server-host-crash-fast",
]


@pytest.fixture(scope="module")
def loaded_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("loaded")
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * (os.cpu_count() or 2))
    ]
    try:
        proc = run_cli(
            [
                "run",
                "--jobs",
                str(len(SCENARIOS)),
                "--json",
                str(out),
                "--no-color",
                *(str(ROOT / "scenarios" / f"{name}.yaml") for name in SCENARIOS),
            ],
            600,
        )
    finally:
        for b in burners:
            b.kill()
            b.wait()
    return proc, {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


def test_every_scenario_ran(loaded_run):
    proc, results = loaded_run
    assert len(results) == len(SCENARIOS), proc.stderr[-2000:]


def test_a_loaded_run_is_an_error_never_a_fail(loaded_run):
    _proc, results = loaded_run
    wrong = {
        name: [
            f"{c['name']}: expected {c['expected']}, got {c['actual']}"
            for c in res["checks"]
            if c.get("judged", True) and not c["passed"]
        ]
        for name, res in results.items()
        if res["verdict"] == "fail"
    }
    assert not wrong, json.dumps(wrong, indent=1)
    for name, res in results.items():
        if res["verdict"] == "error":  # it says why: the lab, not the kernel
            assert res["errors"], name
    verdicts = sorted(f"{n}: {r['verdict']}" for n, r in results.items())
    print("\n".join(verdicts))  # how much the load bit, for whoever reads the log
