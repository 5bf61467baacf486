"""`pytest scenarios/` on the real kernel: pytest in a subprocess, on a temp project
holding one quick real scenario and a copy whose expectation no kernel can meet."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]


def test_pytest_runs_scenarios_and_reports_the_failed_check(tmp_path):
    normal = (ROOT / "scenarios" / "handshake" / "normal.yaml").read_text()
    # One SYN goes out when nothing is lost; seven cannot.
    impossible = normal.replace("scenario: handshake-normal", "scenario: handshake-seven-syns")
    impossible = impossible.replace("sends: {syn: 1,", "sends: {syn: 7,")
    assert impossible.count("syn: 7") == 1, "normal.yaml changed: adjust this test"
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "normal.yaml").write_text(normal)
    (tmp_path / "scenarios" / "impossible.yaml").write_text(impossible)

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-rA",
            "scenarios",
            "--tcplab-json",
            "results",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, out[-3000:] + proc.stderr
    assert "1 failed, 1 passed" in out, out[-3000:]
    assert "PASSED scenarios/normal.yaml::handshake-normal" in out
    assert "FAILED scenarios/impossible.yaml::handshake-seven-syns" in out
    failure = out.split("_ scenario handshake-seven-syns _", 1)[1].split("Captured", 1)[0]
    assert "scenarios/impossible.yaml: 1 of " in failure
    assert "✗ client sends syn: expected 7, got 1 [scenario line " in failure
    assert "proof: t=" in failure and " syn #1 " in failure

    saved = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")}
    assert {name: r["verdict"] for name, r in saved.items()} == {
        "handshake-normal": "pass",
        "handshake-seven-syns": "fail",
    }
