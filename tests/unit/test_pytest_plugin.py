"""The pytest plugin (tcplab/pytest_plugin.py) without root: what it collects and how
verdicts become outcomes. pytester runs pytest in-process on a temp dir, so the lab
itself is replaced by a fake run_scenario (the real one runs in
tests/lab/test_pytest_plugin_lab.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tcplab import pytest_plugin, runner
from tcplab.judging import RunResult
from tcplab.core.check.base import Check

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
NORMAL = (ROOT / "scenarios" / "handshake" / "normal.yaml").read_text()
PROOF = "t=0.002s syn #1 198.18.0.2:40000 > 198.19.0.2:8080 [S] seq=1 ack=0 len=0 delivered"


@pytest.fixture
def lab(pytester, monkeypatch):
    """A temp project with scenarios/handshake/normal.yaml; `lab.verdict(...)` makes the
    fake lab return that verdict; `lab.runs` lists the scenarios it was asked to run."""
    pytester.mkdir("scenarios")
    pytester.mkdir("scenarios/handshake")
    (pytester.path / "scenarios/handshake/normal.yaml").write_text(NORMAL)

    class Lab:
        def __init__(self):
            self.runs, self.result = [], None

        def verdict(self, verdict, checks=(), errors=()):
            self.result = (verdict, list(checks), list(errors))

    fake = Lab()

    def run_scenario(scenario, view=None):
        fake.runs.append(scenario.name)
        verdict, checks, errors = fake.result
        return RunResult(scenario, verdict, checks, errors=errors, duration=1.5)

    monkeypatch.setattr(runner, "run_scenario", run_scenario)
    monkeypatch.setattr(pytest_plugin, "is_root", lambda: True)
    return fake


def collected(result) -> list[str]:
    return [line for line in result.outlines if "::" in line]


def test_items_are_scenario_files_named_after_their_scenario(pytester, lab):
    (pytester.path / "scenarios/config.yaml").write_text("colour: blue\n")  # not a scenario
    result = pytester.runpytest("--collect-only", "-q", "scenarios")
    assert collected(result) == ["scenarios/handshake/normal.yaml::handshake-normal"]


def test_only_paths_inside_the_scenario_dirs_collect_by_directory(pytester, lab):
    pytester.mkdir("elsewhere")
    (pytester.path / "elsewhere/normal.yaml").write_text(NORMAL)
    assert collected(pytester.runpytest("--collect-only", "-q", "elsewhere")) == []
    assert collected(pytester.runpytest("--collect-only", "-q", ".")) == []
    # Naming the file itself always collects it.
    named = pytester.runpytest("--collect-only", "-q", "elsewhere/normal.yaml")
    assert collected(named) == ["elsewhere/normal.yaml::handshake-normal"]
    # tcplab_scenarios moves the scenario directory.
    pytester.makeini("[pytest]\ntcplab_scenarios = elsewhere\n")
    assert collected(pytester.runpytest("--collect-only", "-q", "elsewhere")) == [
        "elsewhere/normal.yaml::handshake-normal"
    ]
    assert collected(pytester.runpytest("--collect-only", "-q", "scenarios")) == []


def test_the_projects_own_test_run_collects_no_yaml():
    """tests/bad_input holds broken scenario files: under `./lab test` (pytest tests)
    they must stay files, not become collection errors."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/bad_input"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, proc.stdout + proc.stderr


def test_a_bad_scenario_is_a_collection_error_with_the_loaders_line(pytester, lab):
    (pytester.path / "scenarios/bad.yaml").write_text(
        "# a claim\nscenario: bad\nsummary: x\napps:\n  server: [listen: 8080]\n"
        "  client: [conect: 'server:8080']\n"
    )
    result = pytester.runpytest("scenarios")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    error = result.stdout.str().split("ERROR collecting scenarios/bad.yaml", 1)[1]
    assert error.splitlines()[1].startswith("scenarios/bad.yaml:6: apps.client[0]: unknown call 'conect'"), (
        error
    )
    assert lab.runs == []


def test_not_root_skips_with_the_reason(pytester, lab, monkeypatch):
    monkeypatch.setattr(pytest_plugin, "is_root", lambda: False)
    result = pytester.runpytest("-rs", "scenarios")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*need root*sudo*"])
    assert lab.runs == []


def test_a_failed_check_fails_the_item_with_expected_actual_tolerance_and_proof(pytester, lab):
    lab.verdict(
        "fail",
        [
            Check("client connect()", True, "ok", "ok"),
            Check(
                "client syn repeats: interval 1", False, 1.0, 3.2, tolerance=0.125, evidence=PROOF, line=15
            ),
        ],
    )
    result = pytester.runpytest("scenarios")
    result.assert_outcomes(failed=1)
    report = result.stdout.str().split("Captured")[0]  # the failure, not the verdict
    assert (
        "scenarios/handshake/normal.yaml: 1 of 2 checks failed\n"
        "  ✗ client syn repeats: interval 1: expected 1.000 s, got 3.200 s, tolerance "
        f"± 0.125 s [scenario line 15]\n      proof: {PROOF}\n"
    ) in report, report
    assert "client connect()" not in report


def test_verdict_error_is_an_error_not_a_failure(pytester, lab):
    lab.verdict("error", errors=["the hook (router) died: exit 1"])
    result = pytester.runpytest("scenarios")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*verdict error*the hook (router) died: exit 1*"])


def test_a_sysctl_this_kernel_lacks_is_an_error_before_any_run(pytester, lab):
    text = NORMAL.replace(
        "apps:", "hosts:\n  client:\n    sysctls: {net.ipv4.tcp_no_such_sysctl: 1}\napps:", 1
    )
    (pytester.path / "scenarios/handshake/normal.yaml").write_text(text)
    result = pytester.runpytest("scenarios")
    result.assert_outcomes(errors=1)
    assert "hosts.client.sysctls.net.ipv4.tcp_no_such_sysctl: this kernel" in result.stdout.str()
    assert lab.runs == []


def test_a_pass_passes_and_keeps_the_json(pytester, lab):
    lab.verdict("pass", [Check("client connect()", True, "ok", "ok")])
    result = pytester.runpytest("scenarios", "--tcplab-json", "out")
    result.assert_outcomes(passed=1)
    saved = json.loads((pytester.path / "out/handshake-normal.json").read_text())
    assert (saved["verdict"], saved["file"]) == ("pass", "scenarios/handshake/normal.yaml")
    assert lab.runs == ["handshake-normal"]
