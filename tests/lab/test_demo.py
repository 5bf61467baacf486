"""`tcplab demo` on the real kernel, slowed: it explains each claim, says it is slowed
and what that moves, runs the scenarios with every segment really held in the router,
and still judges them right (exit 0, both PASS), without waiting for input."""

import re
import subprocess
from pathlib import Path

import pytest
from labhelpers import run_cli

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]


def test_slowed_demo_explains_runs_and_judges(tmp_path):
    files = [ROOT / "scenarios" / "handshake" / f for f in ("no-listener.yaml", "normal.yaml")]
    argv = ["demo", "--no-pause", "--slow", "2", "--no-color", *map(str, files)]
    proc = run_cli(argv, 180, stdin=subprocess.DEVNULL)
    out = proc.stdout
    flat = " ".join(out.split())  # the console wraps long sentences
    assert proc.returncode == 0, out[-4000:] + proc.stderr
    # The tour: the normal handshake first, each claim told before its run.
    first, second = out.index("1/2  handshake-normal"), out.index("2/2  no-listener")
    assert first < second
    for f in files:
        claim = f.read_text().splitlines()[0].lstrip("# ")
        assert " ".join(claim.split()) in flat
    assert flat.count("slowed: every segment the router forwards is held 0.2 s more") == 2
    assert "client gives up after 0 s → 0.400 s" in flat
    assert "PASS handshake-normal" in out and "PASS no-listener" in out
    # Really held: each handshake segment reaches the router one hold after the one
    # it answers (unslowed, well under a millisecond), and the refusal takes one slowed
    # round trip (SYN held, RST held), not the ~1 ms of an unslowed run.
    normal = out[first:second]
    seen = {
        m[2]: float(m[1])
        for m in re.finditer(r"^\s+(\d+\.\d+)\s+.*?(?:─|◀)+ ((?:syn|syn-ack|ack)) #1 ", normal, re.M)
    }
    assert set(seen) == {"syn", "syn-ack", "ack"}, normal
    assert 0.19 <= seen["syn-ack"] - seen["syn"] <= 0.3
    assert 0.19 <= seen["ack"] - seen["syn-ack"] <= 0.3
    assert "⧗0.200s" in normal
    refused = re.search(r"connect\(\) → ECONNREFUSED (\d\.\d+)", out)
    assert refused and 0.38 <= float(refused[1]) <= 0.6, refused
    assert "tcplab summary" in out
