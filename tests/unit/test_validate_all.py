"""`tcplab validate` reports every mistake in a file, one `file:line: key: message` line
each; `run` still stops at the first (one line, exit 2). A mistake is said once: its
consequences (a step that failed to parse, then an expectation "that can never match"
it) are not reported as more mistakes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tcplab.errors import ScenarioErrors
from tcplab.format.load import load_text

ROOT = Path(__file__).resolve().parents[2]

THREE = """\
scenario: three-mistakes
summary: one mistake in the top level, one in the steps, one in the faults
timout: 10s
apps:
  server: [listen: 8080, accept]
  client: [connect: "server:8080", sned: 100]
faults:
  - drop: syn
    nth: 0
"""


def tcplab(*args):
    return subprocess.run(
        [sys.executable, "-m", "tcplab", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_three_mistakes_are_three_lines(tmp_path):
    path = tmp_path / "three.yaml"
    path.write_text(THREE)
    proc = tcplab("validate", str(path))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"tcplab: {path}:3: timout: unknown key 'timout'; did you mean 'timeout'? "
        "(expected one of: scenario, summary, claims, hosts, apps, faults, expect, "
        "timeout, settle, seed)",
        f"tcplab: {path}:6: apps.client[1]: unknown call 'sned'; did you mean 'send'? "
        "(expected one of: listen, accept, connect, send, recv, sleep, close, shutdown, "
        "bind, linger, keepalive, syncnt, rcvtimeo, repeat, flood, netstat)",
        f"tcplab: {path}:9: faults[0].nth: expected all, an occurrence number from 1 to "
        "1000 or a list of them, found 0",
    ]


def test_run_reports_the_first_mistake_only(tmp_path):
    path = tmp_path / "three.yaml"
    path.write_text(THREE)
    proc = tcplab("run", "--no-color", str(path))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"tcplab: {path}:3: timout: unknown key")


def test_the_error_carries_them_all_and_reads_as_the_first():
    with pytest.raises(ScenarioErrors) as caught:
        load_text(THREE, "t.yaml")
    assert [(e.line, e.key) for e in caught.value.errors] == [
        (3, "timout"),
        (6, "apps.client[1]"),
        (9, "faults[0].nth"),
    ]
    assert str(caught.value) == str(caught.value.errors[0])


@pytest.mark.parametrize(
    "text, lines",
    [
        # a misspelt required key: not also "missing"
        (
            "scenaro: x\nsummary: y\napps: {server: [listen: 8080], client: [connect: 'server:8080']}\n",
            [(1, "scenaro")],
        ),
        # a step that does not parse: the expectation on that host is not "never matching"
        (
            "scenario: x\nsummary: y\napps:\n  server: [listen: 8080, acept]\n"
            "  client: [connect: 'server:8080']\nexpect:\n  server: {accept: ok}\n",
            [(4, "apps.server[1]")],
        ),
        # a misspelt fault action: not also "neither drop nor ..."
        (
            "scenario: x\nsummary: y\napps: {server: [listen: 8080], client: [connect: 'server:8080']}\n"
            "faults:\n  - drpo: syn\n  - drop: syn-ack\n    nth: -1\n",
            [(5, "faults[0].drpo"), (7, "faults[1].nth")],
        ),
        # a wrong timeout: the fault's delay is not held against it too
        (
            "scenario: x\nsummary: y\napps: {server: [listen: 8080], client: [connect: 'server:8080']}\n"
            "timeout: soon\nfaults:\n  - delay: syn\n    by: 90s\n",
            [(4, "timeout")],
        ),
        # two bad entries of one mapping, and a duplicate key
        (
            "scenario: x\nsummary: y\napps: {server: [listen: 8080], client: [connect: 'server:8080']}\n"
            "expect:\n  client:\n    sends: {syn: -1, fin: x}\n    sends: {syn: 1}\n",
            [(6, "expect.client.sends.syn"), (6, "expect.client.sends.fin"), (7, "expect.client.sends")],
        ),
    ],
)
def test_a_mistake_is_said_once(text, lines):
    with pytest.raises(ScenarioErrors) as caught:
        load_text(text, "t.yaml")
    assert [(e.line, e.key) for e in caught.value.errors] == lines, caught.value.errors


def test_validate_json(tmp_path):
    bad = tmp_path / "three.yaml"
    bad.write_text(THREE)
    good = ROOT / "scenarios" / "handshake" / "normal.yaml"
    proc = tcplab("validate", "--json", str(good), str(bad))
    assert proc.returncode == 2 and proc.stderr == ""
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    assert [f["path"] for f in report["files"]] == [str(good), str(bad)]
    assert report["files"][0]["errors"] == [] and report["files"][0]["claims"] == ["H1"]
    assert [(e["line"], e["key"]) for e in report["files"][1]["errors"]] == [
        (3, "timout"),
        (6, "apps.client[1]"),
        (9, "faults[0].nth"),
    ]
    ok = tcplab("validate", "--json", str(good))
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True
