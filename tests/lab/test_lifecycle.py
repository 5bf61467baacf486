"""Exit paths on the real kernel: Ctrl-C mid-run, a hook that dies, a runner killed
with SIGKILL and `tcplab clean` next to a live run. Each leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from labhelpers import SLOW_MACHINE, children_of, run_cli

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
FAST = ROOT / "scenarios" / "handshake" / "syn-lost-fast.yaml"  # ~9 s, a blocked connect()


def start_run(json_path: Path, scenario: Path = FAST) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tcplab", "run", "--no-color", "--json", str(json_path), str(scenario)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def lab_namespaces() -> set[str]:
    names = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    return {n for n in names if n.startswith("tl-")}


def wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def assert_clean(before: set[str], *results: Path) -> None:
    """No namespace appeared for good, and the runs' own tracefs instances are gone
    (other instances may belong to someone else's run on this machine)."""
    assert lab_namespaces() - before == set()
    for path in results:
        lab = json.loads(path.read_text())["lab"]
        assert not os.path.exists(f"/sys/kernel/tracing/instances/{lab['tracefs_instance']}")
        assert not set(lab["namespaces"]) & lab_namespaces()


def test_sigint_mid_run_tears_everything_down(tmp_path):
    before = lab_namespaces()
    proc = start_run(tmp_path / "r.json")
    wait_for(lambda: children_of(proc.pid, "tcplab.lab.hook"))
    time.sleep(1.5)  # mid-run: the SYN is being retransmitted
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["verdict"] == "error" and "interrupted" in " ".join(res["errors"])
    assert_clean(before, tmp_path / "r.json")


def test_dead_hook_is_an_error_not_a_verdict(tmp_path):
    before = lab_namespaces()
    proc = start_run(tmp_path / "r.json")
    (hook,) = wait_for(lambda: children_of(proc.pid, "tcplab.lab.hook"))
    time.sleep(1.0)
    os.kill(hook, signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, out + err
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["verdict"] == "error" and res["checks"] == []
    assert "router exited" in " ".join(res["errors"])
    assert_clean(before, tmp_path / "r.json")


# A run that outlives what the test does beside it, on any kernel and machine: under
# TCG starting the doomed run and `tcplab clean` took longer than syn-lost-fast's 7 s,
# and the live run had ended on its own before clean was done (the 6.1 guest).
LIVE = f"""scenario: live-for-a-while
summary: A connection that stays open while the test kills and cleans another run.
apps:
  server: [listen: 8080, accept, recv]
  client: [connect: "server:8080", sleep: {10 * SLOW_MACHINE:g}s, close]
expect:
  model: linux
  client: {{connect: ok}}
timeout: {20 * SLOW_MACHINE:g}s
"""


def test_clean_removes_a_killed_run_and_spares_a_live_one(tmp_path):
    before = lab_namespaces()
    (tmp_path / "live.yaml").write_text(LIVE)
    live = start_run(tmp_path / "live.json", tmp_path / "live.yaml")
    wait_for(lambda: children_of(live.pid, "tcplab.lab.hook"))
    live_ns = wait_for(lambda: lab_namespaces() - before)
    doomed = start_run(tmp_path / "doomed.json")
    wait_for(lambda: children_of(doomed.pid, "tcplab.lab.hook"))
    doomed_ns = wait_for(lambda: lab_namespaces() - before - live_ns)
    os.kill(doomed.pid, signal.SIGKILL)  # no finally runs: its namespaces stay
    doomed.communicate(timeout=10)
    assert doomed_ns <= lab_namespaces()

    clean = subprocess.run(
        [sys.executable, "-m", "tcplab", "clean"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert clean.returncode == 0, clean.stderr
    assert not doomed_ns & lab_namespaces(), clean.stdout
    assert live_ns <= lab_namespaces(), "clean touched a live run"

    out, err = live.communicate(timeout=60)
    assert live.returncode == 0, out + err  # the live run was not disturbed
    assert_clean(before, tmp_path / "live.json")


def test_without_tracefs_states_come_from_inet_diag(tmp_path):
    """Where tracefs cannot be had the run still judges, from inet_diag alone, and
    says so. SYN_SENT lasts seconds here, long enough for polling to see it."""
    env = {**os.environ, "TCPLAB_TRACEFS": "off"}
    proc = subprocess.run(
        [sys.executable, "-m", "tcplab", "run", "--no-color", "--json", str(tmp_path / "r.json"), str(FAST)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    res = json.loads((tmp_path / "r.json").read_text())
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "inet_diag only" in " ".join(res["notes"])
    client = [e for e in res["events"] if e["kind"] == "state" and e["host"] == "client"]
    assert [e["to"] for e in client] == ["SYN_SENT", "CLOSE"]
    assert {e["source"] for e in client} == {"inet_diag"}
    gone = client[-1]["t"]
    assert 7.0 <= gone <= 7.9, gone  # 7 s give-up + timer lateness + one poll


def test_a_run_past_the_tests_bound_is_stopped_and_cleaned_up(tmp_path):
    """labhelpers.run_cli, which the catalogue and generated fixtures run the CLI with:
    past its bound the CLI gets SIGTERM and cleans up, and the call returns (the 6.1
    guest's `./lab test` once hung 100 min on a CLI killed under subprocess.run(timeout=)
    whose children still held its pipes)."""
    before = lab_namespaces()
    started = time.monotonic()
    proc = run_cli(["run", "--no-color", "--json", str(tmp_path / "r.json"), str(FAST)], 3)
    took = time.monotonic() - started
    assert f"stopped after {3 * SLOW_MACHINE:.0f} s" in proc.stderr  # run_cli stretches the bound in a VM
    assert took < 3 * SLOW_MACHINE + 60, took
    assert_clean(before, tmp_path / "r.json")
