"""Preflight, for real as root: what this machine lacks stops a run before anything is
set up, with exit 3 and the fix in one line; `tcplab doctor` says the same.

"tracefs not mountable" is made real, not mocked: in a private mount namespace a
read-only empty tmpfs covers /sys/kernel, so /sys/kernel/tracing does not exist and
`mount -t tracefs` fails there as it would on a host without tracefs. The lab's
namespaces live in /run/netns of the real mount namespace, which the test watches.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from labhelpers import ROOT
from test_bad_input_sets_nothing_up import snapshot

pytestmark = pytest.mark.root

NORMAL = ROOT / "scenarios" / "handshake" / "normal.yaml"
# In the new mount namespace, the mount that holds /sys/kernel is made private first, so
# that the tmpfs cannot propagate back to the real one. Not `unshare --propagation
# private`: that remounts "/" and fails in a chroot (a clean-machine check), where "/"
# is no mount point.
NO_TRACEFS = """
mp=$(findmnt -n -o TARGET -T /sys/kernel) && mount --make-rprivate "$mp" || exit 97
mount -t tmpfs -o ro tcplab-test-no-tracefs /sys/kernel || exit 98
exec "$@"
"""


def without_tracefs(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    if not shutil.which("unshare") or not shutil.which("findmnt"):
        pytest.skip("unshare or findmnt (util-linux) is missing")
    proc = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "unchanged",
            "sh",
            "-c",
            NO_TRACEFS,
            "sh",
            sys.executable,
            "-m",
            "tcplab",
            *argv,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env=env or os.environ.copy(),
    )
    if proc.returncode == 97:
        pytest.skip(f"no private copy of the mount holding /sys/kernel: {proc.stderr[-200:]}")
    assert proc.returncode != 98, f"could not hide tracefs: {proc.stderr}"
    return proc


def test_tracefs_not_mountable_stops_the_run_before_set_up():
    before = snapshot()
    proc = without_tracefs("run", "--no-color", str(NORMAL))
    after = snapshot()
    assert proc.returncode == 3, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "tracefs" in lines[0] and "mount -t tracefs nodev /sys/kernel/tracing" in lines[0]
    assert "TCPLAB_TRACEFS=off" in lines[0]  # the other way out, named
    assert after == before  # no namespace, slot, rule or instance was made and removed


def test_doctor_names_tracefs_missing_with_its_fix():
    proc = without_tracefs("doctor", "--no-color")
    assert proc.returncode == 3, proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("│ tracefs"))
    assert "MISSING" in row, proc.stdout
    assert "mount -t tracefs" in proc.stdout


def test_polling_only_is_a_choice_doctor_shows_as_degraded():
    env = {**os.environ, "TCPLAB_TRACEFS": "off"}
    proc = without_tracefs("doctor", "--no-color", env=env)
    assert proc.returncode == 0, proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("│ tracefs"))
    assert "degraded" in row, proc.stdout


def _run_normal(argv_prefix: list[str], env: dict | None = None):
    before = snapshot()
    proc = subprocess.run(
        [*argv_prefix, sys.executable, "-m", "tcplab", "run", "--no-color", str(NORMAL)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env=env or os.environ.copy(),
    )
    return proc, before, snapshot()


def test_not_root_stops_the_run_before_set_up():
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is missing")
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    reach = subprocess.run(
        [*nobody, sys.executable, "-c", "import tcplab"], cwd=ROOT, capture_output=True, text=True
    )
    if reach.returncode != 0:  # a checkout under /root: uid 65534 cannot even start it
        pytest.skip(f"uid 65534 cannot run this checkout's Python: {reach.stderr[-200:]}")
    proc, before, after = _run_normal(nobody)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "tcplab: root: uid 65534 (fix: run as root (sudo tcplab ...))"
    ]
    assert after == before


def test_no_iptables_stops_the_run_before_set_up():
    """A PATH with the lab's Python and nothing else: no iptables to be found."""
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}
    proc, before, after = _run_normal([], env)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("tcplab: iptables: iptables not found (fix: apt-get install")
    assert after == before


def test_nfqueue_binding_missing_stops_the_run_before_set_up(tmp_path):
    """The kernel side (nfnetlink_queue) is built into this kernel and cannot be taken
    away; the Python side can: a `netfilterqueue` first on the path that fails to
    import, as on a machine where the binding was never built."""
    shadow = tmp_path / "netfilterqueue"
    shadow.mkdir()
    (shadow / "__init__.py").write_text(
        "raise ImportError('libnetfilter_queue.so.1: cannot open shared object file')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc, before, after = _run_normal([], env)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("tcplab: nfnetlink_queue: python binding missing")
    assert "pip install NetfilterQueue" in line
    assert after == before
