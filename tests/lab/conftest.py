"""The lab tests' shared fixture: the whole scenario catalogue, run once per session
through the CLI exactly as a user runs it, side by side. Topic test files
(test_scenarios.py, test_teardown.py, ...) read what the kernel did from its results.

TCPLAB_ONLY=name,glob,... runs only the matching scenarios (by scenario name or file
stem) while developing; tests about the others then skip.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from labhelpers import ROOT, SCENARIOS, root_snapshot, selected

from tcplab.format.load import load_scenario


@pytest.fixture(scope="session")
def catalogue(tmp_path_factory):
    """Runs every scenario this kernel can run (or those TCPLAB_ONLY names) once, all
    side by side, and returns their results and the root namespace before and after."""
    chosen = [path for path in SCENARIOS if selected(path)]
    if not chosen:
        pytest.skip("TCPLAB_ONLY matches no scenario")
    before = root_snapshot()
    out = tmp_path_factory.mktemp("results")
    # The longest scenario bounds the catalogue (they run side by side); the margin is
    # for set-up and teardown on a loaded machine.
    limit = max(load_scenario(path).timeout for path in chosen) + 300
    proc = subprocess.run([sys.executable, "-m", "tcplab", "run", "--jobs", str(len(chosen)),
                           "--json", str(out), "--no-color", *map(str, chosen)],
                          capture_output=True, text=True, cwd=ROOT, timeout=limit)
    results = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    return {"proc": proc, "results": results, "before": before, "after": root_snapshot(),
            "chosen": chosen}
