"""Soak profile (issue 6): tests/lab/test_never_leaves_a_mess.py's random interruption,
100 times by default. Not part of the normal suite: it is skipped unless TCPLAB_SOAK=1.

    sudo TCPLAB_SOAK=1 .venv/bin/python -m pytest -s tests/soak
    TCPLAB_INTERRUPTS=N         how many interruptions (default 100)
    TCPLAB_INTERRUPT_SEED=S     repeat a campaign (the seed is printed)
    TCPLAB_SOAK_REPORT=PATH     also write the summary and every interruption as JSON

About 5 s per interruption on a 2-CPU machine. docs/robustness.md has the last numbers.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import secrets
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.root,
    pytest.mark.soak,
    pytest.mark.skipif(
        os.environ.get("TCPLAB_SOAK") != "1", reason="soak profile: set TCPLAB_SOAK=1 to run it"
    ),
]

_LAB = Path(__file__).resolve().parents[1] / "lab" / "test_never_leaves_a_mess.py"


def _interruptions():
    """The lab test's campaign code, loaded under a name of its own (its tests and
    fixtures stay out of this module)."""
    spec = importlib.util.spec_from_file_location("tcplab_interruptions", _LAB)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_interrupt_soak(tmp_path):
    lab = _interruptions()
    n = int(os.environ.get("TCPLAB_INTERRUPTS", "100"))
    seed = int(os.environ.get("TCPLAB_INTERRUPT_SEED") or secrets.randbelow(2**32))
    print(f"soak: {n} interruptions, seed {seed} (TCPLAB_INTERRUPT_SEED={seed} repeats it)")
    started = time.monotonic()
    done, info = lab.campaign(n, seed, tmp_path)
    summary = {**lab.summarise(done), **info, "seconds": round(time.monotonic() - started, 1)}
    print(json.dumps(summary, indent=1))
    if report := os.environ.get("TCPLAB_SOAK_REPORT"):
        Path(report).write_text(
            json.dumps(
                {
                    "summary": summary,
                    "interruptions": [
                        {k: v for k, v in dataclasses.asdict(it).items() if k != "output"} for it in done
                    ],
                },
                indent=1,
            )
            + "\n"
        )
    lab.assert_campaign(done, seed, "TCPLAB_INTERRUPT_SEED")
