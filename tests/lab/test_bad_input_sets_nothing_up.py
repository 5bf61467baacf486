"""Bad input, run for real as root: `tcplab run` on a file from tests/bad_input/ exits 2
with one line and sets nothing up. Not only is nothing left behind: nothing was made and
removed either, since creating or deleting a namespace (/run/netns) or a slot
(/run/tcplab/slots) changes its directory's mtime.

Like the other lab tests, this expects no other lab run on the machine meanwhile.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "bad_input"
SAMPLE = [
    "sysctl-not-on-this-kernel.yaml",
    "sysctl-not-namespaced.yaml",
    "unknown-segment-name.yaml",
    "nth-zero.yaml",
    "delay-negative.yaml",
    "duration-absurd.yaml",
    "fault-shadowed-by-drop-all.yaml",
    "syn-ack-from-client.yaml",
    "missing-apps-server.yaml",
    "yaml-syntax-tab.yaml",
    "empty.yaml",
    "binary.yaml",
    "a-directory.yaml",
]
# Known wrong today (see KNOWN_WRONG in tests/unit/test_bad_input_corpus.py): the check
# before the run lets these through, the lab is built and the run ends with exit 3.
# Sysctls that exist as paths but cannot be set: caught before set-up, not by the lab.
BUILDS_A_LAB = {
    "sysctl-is-a-directory.yaml": "a directory is not a sysctl",
    "sysctl-read-only.yaml": "a read-only sysctl cannot be set",
}


def _dir_state(path: str, prefix: str = "") -> tuple[list[str], int | None]:
    try:
        names = sorted(n for n in os.listdir(path) if n.startswith(prefix))
        return names, os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return [], None


def snapshot() -> dict:
    iptables = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    instances = "/sys/kernel/tracing/instances"
    return {
        "netns": _dir_state("/run/netns", "tl-"),
        "slots": _dir_state("/run/tcplab/slots"),
        # iptables-save's comment lines carry a timestamp
        "iptables": [line for line in iptables.splitlines() if not line.startswith("#")],
        "tracefs": sorted(os.listdir(instances)) if os.path.isdir(instances) else [],
    }


def run_bad(name: str) -> tuple[subprocess.CompletedProcess, dict, dict]:
    before = snapshot()
    proc = subprocess.run(
        [sys.executable, "-m", "tcplab", "run", "--no-color", str(CORPUS / name)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    return proc, before, snapshot()


def check(name: str) -> None:
    proc, before, after = run_bad(name)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"tcplab: {CORPUS / name}"), proc.stderr
    assert after == before


@pytest.mark.parametrize("name", SAMPLE)
def test_bad_input_sets_nothing_up(name):
    check(name)


@pytest.mark.parametrize("name", sorted(BUILDS_A_LAB))
def test_sysctl_the_kernel_cannot_take_sets_nothing_up(name):
    check(name)
