"""`tcplab explain` shows exactly what a run is judged against: for every catalogue
scenario, the rows it prints are the segments, calls and teardown of the prediction
the runner makes (model/predict.py) from the same scenario, kernel and sysctls."""

from __future__ import annotations

import io
import platform
import re
from pathlib import Path

import pytest
from rich.console import Console

from tcplab.core.model.kernel import Kernel
from tcplab.core.model.predict import predict
from tcplab.lab.preflight import kernel_hz
from tcplab.render.explain import explain_scenario
from tcplab.format.load import load_scenario

CATALOGUE = sorted((Path(__file__).resolve().parents[2] / "scenarios").rglob("*.yaml"))
ROW = re.compile(r"│ (\d+\.\d{3})\s*│ (\w+)\s*│ ([\w-]+ #\d+)\s*│ (\w+)\s*│")
CALL = re.compile(r"model: (\w+) (\w+)\(\) → (\S+) at t=(\d+\.\d{3}) s")


def shown(sc) -> tuple[list, list]:
    out = io.StringIO()
    explain_scenario(Console(file=out, width=200, color_system=None), sc)
    text = out.getvalue()
    return ROW.findall(text), CALL.findall(text)


def judged(sc) -> tuple[list, list]:
    """The runner's prediction before a run: the scenario's sysctls stand for the
    agents' report (what explain can know)."""
    p = predict(sc, Kernel.from_release(platform.release(), kernel_hz() or 250), sc.sysctls)
    rows = [(f"{s.t:.3f}", s.sender, f"{s.name} #{s.nth}", s.fate) for s in p.segments]
    if p.teardown is not None and not p.teardown.unsupported:
        rows += [(f"{s.t:.3f}", s.sender, f"{s.name} #{s.nth}", s.fate) for s in p.teardown.segments]
    calls = [(h, c, r, f"{e:.3f}") for (h, c), (r, _s, e) in p.calls.items() if c != "request"]
    return rows, calls


@pytest.mark.parametrize("path", CATALOGUE, ids=lambda p: p.stem)
def test_explain_shows_the_judged_prediction(path):
    sc = load_scenario(str(path))
    rows, calls = shown(sc)
    want_rows, want_calls = judged(sc)
    assert sorted(rows) == sorted(want_rows)
    assert sorted(calls) == sorted(want_calls)


def test_a_flood_scenario_shows_the_flood_prediction():
    """explain once rebuilt the prediction itself and skipped the SYN flood: the genuine
    client's handshake then showed no cookie."""
    sc = load_scenario(str(next(p for p in CATALOGUE if p.stem == "syn-flood-syncookies")))
    rows, _ = shown(sc)
    assert rows and rows == sorted(rows, key=lambda r: float(r[0]))
    assert predict(sc, Kernel.from_release(platform.release(), 250), sc.sysctls).flood is not None
