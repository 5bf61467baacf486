"""Issue 6, on the real kernel: whatever happens to a run, it leaves nothing behind,
never touches the root network namespace, keeps its packets inside its own namespaces,
and a hook that dies or falls behind makes the run an error while traffic still flows.

(a) test_interrupted_runs_leave_nothing: runs sent SIGINT or SIGTERM at random
    moments, from start-up to exit; each must exit 130 (or with its own verdict's code
    if it had already finished) and leave no namespace, tracefs instance, slot, process
    or root-namespace rule. tests/soak/test_interrupt_soak.py does it 100 times.
(b) test_root_namespace_untouched: iptables, nft, links, addresses, routes, rules and
    every readable file under /proc/sys/net, before this module and after it.
(c) test_no_lab_packet_on_root_interfaces: an AF_PACKET sniffer on every root-namespace
    interface sees none of the lab's packets, while the same sniffer in a lab router
    namespace and on `lo` does see packets.
(d) test_dead_hook_*, test_hook_falling_behind_*: a dead hook is an error and traffic
    crosses the router unhooked meanwhile; a hook that falls behind until the NFQUEUE
    overflows is an error that names the queue.

Like the other lab tests, these expect no other lab run on the machine meanwhile (the
leftover counts attribute what they find to a run where they can, but not always).
docs/robustness.md has the properties, the tests and the numbers measured.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import re
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from labhelpers import SLOW_MACHINE, children_of, lab_processes, ns_output, passes_here
from tcplab.lab import topology

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
NETNS_DIR = Path("/run/netns")
INSTANCES = Path("/sys/kernel/tracing/instances")
LAB_NET = (0xC6120000, 0xFFFE0000)  # 198.18.0.0/15, every lab address

# The interruption target, about 4 s from start to exit: set-up ~1 s, then a connect()
# blocked for 1 s by a lost SYN, a data segment the hook holds 0.5 s (the server's
# recv() blocks meanwhile), a four-way close, 0.5 s settle, teardown ~0.3 s.
INTERRUPT_ME = """\
# The interruption tests' target: a lost SYN (connect blocks 1 s) and a held data segment.
scenario: interrupt-me
summary: >-
  The first SYN is dropped and the data held 0.5 s, so calls block in the kernel and
  the hook holds a segment.
hosts:
  client:
    sysctls: {net.ipv4.tcp_syn_retries: 2}
apps:
  server: [listen: 8080, accept, recv: 100, close]
  client: [connect: "server:8080", send: 100, sleep: 1s, close]
faults:
  - drop: syn
    nth: 1
  - delay: data
    by: 0.5s
expect:
  client:
    connect: ok
  server:
    recv: ok
timeout: 10s
settle: 0.5s
"""


def write_scenario(tmp: Path, text: str) -> Path:
    name = re.search(r"^scenario: (\S+)$", text, re.M).group(1)
    path = tmp / f"{name}.yaml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------
# What a run can leave behind
# ---------------------------------------------------------------------------------------


def _out(*cmd: str) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return f"{cmd[0]}: not installed"
    return proc.stdout + (f"\n[exit {proc.returncode}] {proc.stderr}" if proc.returncode else "")


def iptables_rules() -> str:
    """iptables-save (nft and legacy backends, v4 and v6) without comment lines and
    counters, which change on their own."""
    out = []
    for cmd in ("iptables-save", "ip6tables-save", "iptables-legacy-save", "ip6tables-legacy-save"):
        text = _out(cmd)
        if "not installed" in text:
            continue
        lines = [
            re.sub(r"\[\d+:\d+\]", "[-]", line) for line in text.splitlines() if not line.startswith("#")
        ]
        out.append(f"== {cmd}\n" + "\n".join(lines))
    return "\n".join(out)


def _names(path: Path, prefix: str = "") -> set[str]:
    try:
        return {n for n in os.listdir(path) if n.startswith(prefix)}
    except FileNotFoundError:
        return set()


def slots_dir() -> Path:
    return topology.STATE_DIR / "slots"


def live_slot_claims(exclude_pid: int | None = None) -> tuple[set[str], set[str]]:
    """Namespaces and run ids held by live runs (other than exclude_pid): never ours to
    count as leftovers."""
    names, ids = set(), set()
    for d in _names(slots_dir()):
        try:
            owner = json.loads((slots_dir() / d / "owner.json").read_text())
        except (OSError, ValueError):
            continue
        if owner.get("pid") != exclude_pid and topology.owner_alive(owner):
            names.update(owner.get("namespaces", []))
            ids.add(owner.get("run_id", ""))
    return names, ids


def processes_with(marker: str) -> list[str]:
    """Live processes whose environment carries marker: the runner and everything it
    started (children inherit the environment; none of them clears it)."""
    found = []
    needle = marker.encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if needle not in Path(f"/proc/{pid}/environ").read_bytes():
                continue
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            found.append(f"{pid}: {cmd.strip()}")
    return found


def lab_module_processes() -> set[str]:
    """Lab processes started from this checkout (their working directory, which the
    runner's children inherit): another checkout's lab runs on the same machine are
    none of this test's business."""

    def here(entry: str) -> bool:
        try:
            return Path(f"/proc/{entry.split(':')[0]}/cwd").resolve() == ROOT
        except OSError:
            return False

    return {p for p in lab_processes() if here(p)}


@dataclass
class LabState:
    """The lab's footprint on the machine at one moment."""

    namespaces: set[str]
    instances: set[str]
    slots: set[str]
    lab_procs: set[str]
    rules: str
    nft: str

    @classmethod
    def now(cls) -> LabState:
        return cls(
            namespaces=_names(NETNS_DIR, topology.PREFIX),
            instances=_names(INSTANCES, "tcplab-"),
            slots=_names(slots_dir()),
            lab_procs=lab_module_processes(),
            rules=iptables_rules(),
            nft=_out("nft", "list", "ruleset"),
        )


def leftovers(before: LabState, runner_pid: int, marker: str, results: list[dict]) -> list[str]:
    """Everything a finished runner left: its namespaces, tracefs instances, slots and
    processes, and any change to the root namespace's iptables or nft rules. Names
    new since `before` count unless a live run (not this runner) claims them."""
    after = LabState.now()
    live_ns, live_ids = live_slot_claims(exclude_pid=runner_pid)
    found = []
    own_ns = {n for r in results for n in r.get("lab", {}).get("namespaces", [])}
    own_inst = {r["lab"]["tracefs_instance"] for r in results if r.get("lab")}
    for name in sorted(((after.namespaces - before.namespaces) - live_ns) | (own_ns & after.namespaces)):
        found.append(f"namespace {name}")
    for inst in sorted(
        {i for i in after.instances - before.instances if i.removeprefix("tcplab-") not in live_ids}
        | (own_inst & after.instances)
    ):
        found.append(f"tracefs instance {inst}")
    for slot in sorted(after.slots - before.slots):
        try:
            owner = json.loads((slots_dir() / slot / "owner.json").read_text())
        except (OSError, ValueError):
            owner = {}
        if owner.get("pid") == runner_pid or not topology.owner_alive(owner):
            found.append(f"slot {slot} ({owner.get('run_id', 'no owner.json')})")
    # Lab processes must be gone when the runner exits: it stops them itself. Anything
    # else it started (an `iptables` the hook was running when it was killed) gets a
    # second to finish what it was doing.
    procs = set(processes_with(marker)) | (after.lab_procs - before.lab_procs)
    if any("tcplab.lab." not in p for p in procs):
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and any("tcplab.lab." not in p for p in procs):
            time.sleep(0.05)
            still = set(processes_with(marker))
            procs = {p for p in procs if "tcplab.lab." in p} | still
    found += [f"process {p}" for p in sorted(procs)]
    if after.rules != before.rules:
        found.append(f"root iptables rules changed:\n{after.rules}")
    if after.nft != before.nft:
        found.append(f"root nft ruleset changed:\n{after.nft}")
    return found


# ---------------------------------------------------------------------------------------
# (a) interruptions at random moments
# ---------------------------------------------------------------------------------------

# How the run is interrupted. "group" is what a terminal's Ctrl-C does (SIGINT to the
# foreground process group: the runner and whatever it has running in its group, such
# as the namespace maker; lab children have sessions of their own). "every process" is
# what systemd's KillMode=control-group does on stop: SIGTERM to the runner and all its
# descendants at once, children included.
MODES = ("SIGINT", "SIGINT to the group", "SIGTERM", "SIGTERM to every process")
PHASES = (
    "start-up",
    "lost by Python",
    "before set-up",
    "set-up",
    "mid-run",
    "teardown",
    "exiting",
    "after exit",
)


@dataclass
class Interruption:
    index: int
    delay: float
    mode: str
    jobs: int
    code: int | None = None
    phases: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    output: str = ""
    took: float = 0.0
    held: bool = False  # tcplab already held or caught the signal when it was sent
    written: list[float] = field(default_factory=list)  # result JSONs, s after the start

    def line(self) -> str:
        return (
            f"#{self.index:<3} {self.delay or 0:6.3f}s {self.mode:<25} jobs={self.jobs} "
            f"exit={self.code} phase={'+'.join(self.phases)} "
            f"{'held' if self.held else 'python'} "
            f"leftovers={len(self.leftovers)}"
            + (f" PROBLEM: {'; '.join(self.problems)}" if self.problems else "")
        )


def start_runner(scenario: Path, out: Path, jobs: int, marker: str, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tcplab", "run", "--no-color"]
    if jobs > 1:  # the worker-thread path: two runs side by side
        cmd += ["--repeat", str(jobs), "--jobs", str(jobs)]
    cmd += ["--json", str(out), str(scenario)]
    env = {**os.environ, "TCPLAB_TEST_MARK": marker, "PYTHONPATH": str(ROOT)}
    # Output to a file, not a pipe: a stray process holding the pipe open must not
    # keep the test waiting; the leftover count finds it instead.
    with open(log, "w") as f, sigint_as_in_a_terminal():
        return subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # its own group, as in a terminal


@contextmanager
def sigint_as_in_a_terminal():
    """Start the runner with SIGINT at its default, as a terminal's foreground command
    has it. A non-interactive shell starts its background jobs with SIGINT ignored
    (`./lab test &` in a script), exec keeps an ignored signal ignored, and so every
    Ctrl-C this test sends before tcplab's handler existed used to vanish: the run went
    on and exited 0. A handler, unlike SIG_IGN, is reset to the default by exec."""
    inherited = signal.getsignal(signal.SIGINT)
    if inherited == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if inherited == signal.SIG_IGN:
            signal.signal(signal.SIGINT, inherited)


def clean_up_after(proc: subprocess.Popen, marker: str) -> None:
    """After a failure: kill what is left of that run and let `tcplab clean` remove
    the rest, so the tests after this one start from a clean machine."""
    for pid in [proc.pid] + [int(p.split(":")[0]) for p in processes_with(marker)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    subprocess.run(
        [sys.executable, "-m", "tcplab", "clean"],
        cwd=ROOT,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )


def signals_held(pid: int) -> bool:
    """Whether tcplab's own code already has the signals: it blocks SIGINT and SIGTERM
    as its first act (tcplab/cli/signals.py) and later catches SIGTERM, which Python's
    start-up never does. Before that, a signal meets the interpreter's defaults."""
    try:
        status = {
            line.split(":")[0]: line.split()[1]
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith(("SigBlk", "SigCgt"))
        }
    except (OSError, IndexError):
        return False
    return bool(
        int(status["SigBlk"], 16) & (1 << (signal.SIGINT - 1))
        or int(status["SigCgt"], 16) & (1 << (signal.SIGTERM - 1))
    )


def send(proc: subprocess.Popen, mode: str, marker: str) -> None:
    sig = signal.SIGINT if mode.startswith("SIGINT") else signal.SIGTERM
    try:
        if mode.endswith("group"):
            os.killpg(proc.pid, sig)
        elif mode.endswith("every process"):
            pids = [int(p.split(":")[0]) for p in processes_with(marker)]
            for pid in [proc.pid] + [p for p in pids if p != proc.pid]:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        else:
            proc.send_signal(sig)
    except ProcessLookupError:
        pass


def results_of(out: Path, jobs: int) -> list[tuple[dict, float]]:
    """(result JSON, its mtime) for each result the run wrote."""
    paths = sorted(out.glob("*.json")) if jobs > 1 else [out] if out.exists() else []
    found = []
    for p in paths:
        try:
            found.append((json.loads(p.read_text()), p.stat().st_mtime))
        except (OSError, ValueError):
            pass
    return found


def phase_of(res: dict, written: float, signalled: float) -> str:
    errors = " ".join(res["errors"])
    if "interrupted before set-up" in errors:
        return "before set-up"
    if (
        "interrupted during set-up" in errors
        or "could not start the lab" in errors
        or "cannot create network namespaces" in errors
        or "did not become ready" in errors
    ):
        return "set-up"
    if "interrupted at t=" in errors or "died during the run" in errors:
        return "mid-run"
    # The run ended on its own: the signal came while it was torn down and judged
    # (before its JSON was written) or while the CLI was exiting.
    return "teardown" if signalled < written else "exiting"


def interrupt_once(
    index: int, scenario: Path, delay: float | None, mode: str, jobs: int, workdir: Path
) -> Interruption:
    it = Interruption(index, delay, mode, jobs)
    marker = f"tcplab-interrupt-{secrets.token_hex(6)}"
    out = workdir / f"run{index}" / ("results" if jobs > 1 else "result.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.parent / "output.txt"
    before = LabState.now()
    started, started_wall = time.monotonic(), time.time()
    proc = start_runner(scenario, out, jobs, marker, log)
    if delay is None:  # not interrupted: a baseline
        proc.wait(timeout=60)
    time.sleep(max(0.0, started + (delay or 0.0) - time.monotonic()))
    signalled = time.time()
    finished_first = proc.poll() is not None
    if not finished_first:
        # Read before sending: once tcplab holds the signals it never lets go of them
        # before Python's finalization, so "held" here means held when it arrives.
        it.held = signals_held(proc.pid)
        send(proc, mode, marker)
    hung = []
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        hung = processes_with(marker)
        it.problems.append("the runner did not exit within 30 s of the signal: " + "; ".join(hung))
    it.took = time.monotonic() - started
    it.code = proc.returncode
    it.output = log.read_text(errors="replace")
    found = results_of(out, jobs)
    results = [r for r, _ in found]
    it.written = [w - started_wall for _, w in found]
    sig = signal.SIGINT if mode.startswith("SIGINT") else signal.SIGTERM
    if finished_first:
        it.phases = ["after exit"]
        if it.code not in (0, 1):
            it.problems.append(f"uninterrupted run exited {it.code}")
    elif not found:
        # Nothing was set up yet. Held by tcplab, the signal is delivered to its handler
        # and ends the command with 130. Sent earlier, in the interpreter's own start-up
        # (before tcplab's first line), it meets Python's defaults: SIGTERM ends the
        # process (-15), SIGINT raises KeyboardInterrupt (-2), or, inside the import of
        # `site` or `runpy`, a fatal start-up error (exit 1).
        it.phases = ["start-up"]
        python_init = it.code == 1 and (
            "Fatal Python error: init_import_site" in it.output
            or "Could not import runpy module" in it.output
        )
        if it.code != 130 and (it.held or (it.code != -sig and not python_init)):
            it.problems.append(f"exit {it.code} with no result written")
    elif (
        not it.held
        and "Exception ignored" in it.output
        and "KeyboardInterrupt" in it.output
        and not any("interrupted" in " ".join(r["errors"]) for r in results)
    ):
        # Only before tcplab's first line: a KeyboardInterrupt raised inside one of
        # Python's own import callbacks is "ignored" (unraisable), and the run goes on
        # as if never interrupted. A signal tcplab held is never lost this way.
        it.phases = ["lost by Python"]
        own = max((r["verdict"] for r in results), key=["pass", "fail", "error"].index)
        if it.code != {"pass": 0, "fail": 1}.get(own, 3):
            it.problems.append(f"exit {it.code} for a {own} run")
    else:
        it.phases = [phase_of(r, written, signalled) for r, written in found]
        own = max((r["verdict"] for r in results), key=["pass", "fail", "error"].index)
        own_code = {"pass": 0, "fail": 1}.get(own, 3)
        # After its results are written the CLI may already be past its last look at
        # the flag (its own code), or in Python's finalization, which gives signals
        # their default action back (killed by it). All its work is done either way.
        exiting_ok = (130, own_code, -sig) if set(it.phases) == {"exiting"} else (130,)
        if it.code not in exiting_ok:
            it.problems.append(f"exit {it.code}, expected 130")
        if len(found) != jobs:
            it.problems.append(f"{len(found)} result files for {jobs} runs")
        for r in results:
            if r["verdict"] == "pass" and any("interrupted" in e for e in r["errors"]):
                it.problems.append("an interrupted run passed")
    if not hung:
        it.leftovers = leftovers(before, proc.pid, marker, results)
    if hung or it.leftovers:
        clean_up_after(proc, marker)
    return it


def plan_delays(rng: random.Random, n: int, total: float, written: float) -> list[float]:
    """Uniform over the whole run, with extra draws in the first 0.5 s (start-up and
    set-up) and around the end (teardown: the last ~0.6 s before the JSON is written,
    and the exit after it)."""
    delays = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            delays.append(rng.uniform(0.0, 0.5))
        elif kind == 1:
            delays.append(rng.uniform(max(0.0, written - 0.6), total + 0.05))
        else:
            delays.append(rng.uniform(0.0, total))
    return delays


def campaign(n: int, seed: int, workdir: Path, log=print) -> tuple[list[Interruption], dict]:
    """One uninterrupted run to time the scenario, then n interrupted ones."""
    rng = random.Random(seed)
    scenario = write_scenario(workdir, INTERRUPT_ME)
    baseline = interrupt_once(0, scenario, None, "none", 1, workdir)
    assert baseline.code == 0 and not baseline.leftovers, baseline.output[-3000:]
    ((res, _),) = results_of(workdir / "run0" / "result.json", 1)
    total, written = baseline.took, baseline.written[0]
    log(
        f"seed {seed}: baseline {res['verdict']}, exit after {total:.2f} s, result "
        f"written at {written:.2f} s, run_scenario took {res['duration']:.2f} s"
    )
    modes = [MODES[i % len(MODES)] for i in range(n)]
    rng.shuffle(modes)
    delays = plan_delays(rng, n, total, written)
    done = []
    for i in range(n):
        jobs = 2 if i % 4 == 0 else 1  # one in four: two runs side by side (threads)
        it = interrupt_once(i + 1, scenario, delays[i], modes[i], jobs, workdir)
        log(it.line())
        for left in it.leftovers:
            log(f"     leftover: {left}")
        done.append(it)
    return done, {"seed": seed, "baseline": total, "written": written}


def summarise(done: list[Interruption]) -> dict:
    phases = {p: 0 for p in PHASES}
    for it in done:
        for p in it.phases:
            phases[p] += 1
    # A --jobs 2 interruption hits two runs, each in its own phase.
    return {
        "interruptions": len(done),
        "runs_by_phase": phases,
        "before tcplab held the signals": sum(not it.held for it in done if it.phases != ["after exit"]),
        "modes": {m: sum(it.mode == m for it in done) for m in MODES},
        "parallel": sum(it.jobs > 1 for it in done),
        "leftovers": sum(len(it.leftovers) for it in done),
        "problems": sum(len(it.problems) for it in done),
    }


def assert_campaign(done: list[Interruption], seed: int, env: str) -> None:
    bad = [it for it in done if it.leftovers or it.problems]
    if bad:
        lines = [f"seed {seed} (rerun with {env}={seed}): {len(bad)} of {len(done)} interruptions went wrong"]
        for it in bad:
            lines.append(it.line())
            lines += [f"    leftover: {x}" for x in it.leftovers]
            lines.append("    output tail: " + it.output[-1500:].replace("\n", "\n    "))
        pytest.fail("\n".join(lines))


def test_interrupted_runs_leave_nothing(tmp_path):
    n = int(os.environ.get("TCPLAB_INTERRUPTS", "6"))
    seed = int(os.environ.get("TCPLAB_INTERRUPT_SEED") or secrets.randbelow(2**32))
    print(f"interruption seed {seed} (TCPLAB_INTERRUPT_SEED={seed} repeats it)")
    done, _ = campaign(n, seed, tmp_path)
    print(summarise(done))
    assert_campaign(done, seed, "TCPLAB_INTERRUPT_SEED")


def test_a_signal_during_start_up_is_never_lost(tmp_path):
    """Start-up (imports, loading, preflight: the first ~0.5 s) is where a Ctrl-C used
    to meet Python's default KeyboardInterrupt, which an import-lock callback can drop:
    a `--jobs 2` run then went on and exited 0. From tcplab's first line on, every
    SIGINT or SIGTERM must end the command with 130: the moment tcplab holds the
    signals (polled), and fixed moments through loading and preflight."""
    scenario = write_scenario(tmp_path, INTERRUPT_ME)
    done = []
    for i, (when, jobs, mode) in enumerate(
        [
            ("held", 2, "SIGINT"),
            ("held", 1, "SIGTERM"),
            (0.1, 2, "SIGINT"),
            (0.2, 2, "SIGTERM"),
            (0.3, 2, "SIGINT"),
            (0.45, 1, "SIGINT"),
        ]
    ):
        it = Interruption(i + 1, None if when == "held" else when, mode, jobs)
        marker = f"tcplab-interrupt-{secrets.token_hex(6)}"
        out = tmp_path / f"run{i}" / ("results" if jobs > 1 else "result.json")
        out.parent.mkdir(parents=True)
        before = LabState.now()
        started = time.monotonic()
        proc = start_runner(scenario, out, jobs, marker, out.parent / "output.txt")
        if when == "held":  # polled without sleeping: the first moment counts
            while not signals_held(proc.pid) and proc.poll() is None and time.monotonic() < started + 5.0:
                pass
        else:
            time.sleep(max(0.0, started + when - time.monotonic()))
            # Before tcplab's first line the interpreter's defaults apply, which this test
            # does not judge. Under TCG, Python's own start-up outlasts the early moments
            # (a 6.1 guest was still in site.py at 0.3 s), so the signal waits for it.
            limit = started + 5.0 * SLOW_MACHINE
            while not signals_held(proc.pid) and proc.poll() is None and time.monotonic() < limit:
                time.sleep(0.001)
        it.held = signals_held(proc.pid)
        send(proc, mode, marker)
        it.code = proc.wait(timeout=30)
        it.output = (out.parent / "output.txt").read_text(errors="replace")
        results = [r for r, _ in results_of(out, jobs)]
        if not it.held:
            it.problems.append("tcplab did not hold the signals yet")
        if it.code != 130:
            it.problems.append(f"exit {it.code}, expected 130")
        if any(r["verdict"] == "pass" for r in results):
            it.problems.append("an interrupted run passed")
        it.leftovers = leftovers(before, proc.pid, marker, results)
        if it.leftovers:
            clean_up_after(proc, marker)
        print(it.line())
        done.append(it)
    bad = [it for it in done if it.problems or it.leftovers]
    assert not bad, "\n".join(
        f"{it.line()}\n    leftovers: {it.leftovers}\n    output tail: {it.output[-1500:]}" for it in bad
    )


# ---------------------------------------------------------------------------------------
# helpers for the runs below
# ---------------------------------------------------------------------------------------


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tcplab", "run", "--no-color", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )


class Runner:
    """`tcplab run` in the background, its output collected by a thread (for the
    failure message), with ways to see how far the run has got from outside."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tcplab", "run", "--no-color", *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},  # lines as they are printed
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def child(self, module: str) -> int:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.proc.poll() is None:
            for pid in children_of(self.proc.pid, module):
                return pid
            time.sleep(0.05)
        raise AssertionError(f"no {module} child appeared:\n{self.output[-3000:]}")

    def wait_for_queued(self, plan: topology.Plan, packets: int, timeout: float = 20.0) -> None:
        """Until that many segments have passed through the run's NFQUEUE (its
        id_sequence in the router namespace's /proc/net/netfilter/nfnetlink_queue):
        the hook is bound and the scenario's traffic is on."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            out = ns_output(plan.router_ns, "cat", "/proc/net/netfilter/nfnetlink_queue")
            for cols in (line.split() for line in out.splitlines()):
                if len(cols) > 7 and cols[0] == str(plan.queue) and int(cols[7]) >= packets:
                    return
            time.sleep(0.05)
        raise AssertionError(f"{packets} segments never went through the queue:\n{self.output[-3000:]}")

    def slot(self) -> topology.Plan:
        """The plan of this runner's run, from its slot's owner.json."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.proc.poll() is None:
            for d in _names(slots_dir()):
                try:
                    owner = json.loads((slots_dir() / d / "owner.json").read_text())
                except (OSError, ValueError):
                    continue
                if owner.get("pid") == self.proc.pid:
                    return topology.plan(int(d), owner["run_id"])
            time.sleep(0.05)
        raise AssertionError(f"the run never claimed a slot:\n{self.output[-3000:]}")

    def finish(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


def assert_in_init_netns() -> None:
    """The root-namespace tests mean the namespace the lab runs from; where init's is
    readable, that must be init's."""
    try:
        init = os.stat("/proc/1/ns/net").st_ino
    except OSError:
        return  # a sandbox may hide it; the lab runs from our namespace either way
    assert os.stat("/proc/self/ns/net").st_ino == init, "not in the root network namespace"


def events(res: dict, kind: str, **match) -> list[dict]:
    return [e for e in res["events"] if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())]


# ---------------------------------------------------------------------------------------
# (c) isolation: no packet of a run on the root namespace's interfaces
# ---------------------------------------------------------------------------------------

ETH_P_ALL, ETH_P_IP, ETH_P_ARP = 0x0003, 0x0800, 0x0806
SOL_PACKET, PACKET_STATISTICS, SO_ATTACH_FILTER = 263, 6, 26


def bpf_lab_or_control(control_port: int) -> list[tuple[int, int, int, int]]:
    """Classic BPF for a SOCK_DGRAM packet socket (offset 0 is the network header):
    keep IPv4 packets from or to 198.18.0.0/15, ARP naming such an address, and the
    positive control's UDP datagrams to 127.0.0.1:control_port; drop everything else
    in the kernel, so the machine's own traffic cannot fill the socket's buffer."""
    net, mask = LAB_NET
    prog = [  # (code, jt label, jf label, k); labels resolved below, None = next
        ("ldh_proto", None, None, 0xFFFFF000),  # A = skb->protocol
        ("jeq", "ipv4", None, ETH_P_IP),
        ("jeq", "arp", "drop", ETH_P_ARP),
        ("ipv4:ld", None, None, 12),
        ("and", None, None, mask),
        ("jeq", "keep", None, net),
        ("ld", None, None, 16),
        ("and", None, None, mask),
        ("jeq", "keep", None, net),
        ("ld", None, None, 16),
        ("jeq", None, "drop", 0x7F000001),
        ("ldb", None, None, 9),
        ("jeq", None, "drop", socket.IPPROTO_UDP),
        ("ldx_iphl", None, None, 0),
        ("ldh_ind", None, None, 2),
        ("jeq", "keep", "drop", control_port),
        ("arp:ld", None, None, 14),
        ("and", None, None, mask),
        ("jeq", "keep", None, net),
        ("ld", None, None, 24),
        ("and", None, None, mask),
        ("jeq", "keep", "drop", net),
        ("drop:ret", None, None, 0),
        ("keep:ret", None, None, 0x40000),
    ]
    codes = {
        "ldh_proto": 0x28,
        "ld": 0x20,
        "ldb": 0x30,
        "and": 0x54,
        "jeq": 0x15,
        "ldx_iphl": 0xB1,
        "ldh_ind": 0x48,
        "ret": 0x06,
    }
    labels = {op.split(":")[0]: i for i, (op, *_r) in enumerate(prog) if ":" in op}
    out = []
    for i, (op, jt, jf, k) in enumerate(prog):
        op = op.split(":")[-1]
        off = [0 if lab is None else labels[lab] - i - 1 for lab in (jt, jf)]
        out.append((codes[op], *off, k))
    return out


def attach_filter(sock: socket.socket, insns) -> None:
    raw = b"".join(struct.pack("HBBI", *i) for i in insns)
    buf = ctypes.create_string_buffer(raw)
    fprog = struct.pack("HL", len(insns), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def in_lab_net(addr: bytes) -> bool:
    net, mask = LAB_NET
    return struct.unpack("!I", addr)[0] & mask == net


def lab_addresses(proto: int, data: bytes) -> tuple[str, str] | None:
    """(source, destination) of an IPv4 packet or ARP message touching the lab's
    range; None for anything else."""
    if proto == ETH_P_IP and len(data) >= 20:
        src, dst = data[12:16], data[16:20]
    elif proto == ETH_P_ARP and len(data) >= 28:
        src, dst = data[14:18], data[24:28]
    else:
        return None
    if in_lab_net(src) or in_lab_net(dst):
        return socket.inet_ntoa(src), socket.inet_ntoa(dst)
    return None


class Sniffer:
    """A packet socket on every interface of one namespace (the caller's, or the one
    `sock` was made in), filtered by bpf_lab_or_control, read after the fact."""

    def __init__(self, control_port: int, sock: socket.socket | None = None):
        self.sock = sock or socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        attach_filter(self.sock, bpf_lab_or_control(control_port))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.setblocking(False)
        self.drops = 0
        self.frames: list[tuple[str, int, int, bytes]] = []  # ifname, proto, pkttype, data

    def read(self) -> None:
        while True:
            try:
                data, (ifname, proto, pkttype, *_rest) = self.sock.recvfrom(1 << 16)
            except BlockingIOError:
                break
            self.frames.append((ifname, proto, pkttype, data))
        _packets, drops = struct.unpack("II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        self.drops += drops

    def lab_packets(self) -> list[str]:
        return [
            f"{ifname}: {pair[0]} -> {pair[1]}"
            for ifname, proto, _t, data in self.frames
            if (pair := lab_addresses(proto, data)) is not None
        ]

    def saw_payload(self, payload: bytes) -> list[str]:
        return [ifname for ifname, _p, _t, data in self.frames if payload in data]

    def close(self) -> None:
        self.sock.close()


def test_bpf_and_classifier_on_constructed_packets():
    """The pure parts of the sniffer, on packets made here: the lab's range is found as
    source, destination or ARP address, and nothing else is."""

    def ipv4(src, dst):
        return bytes(12) + socket.inet_aton(src) + socket.inet_aton(dst)

    def arp(spa, tpa):
        return bytes(14) + socket.inet_aton(spa) + bytes(6) + socket.inet_aton(tpa)

    assert lab_addresses(ETH_P_IP, ipv4("198.18.7.2", "10.0.0.1")) == ("198.18.7.2", "10.0.0.1")
    assert lab_addresses(ETH_P_IP, ipv4("10.0.0.1", "198.19.255.2"))
    assert lab_addresses(ETH_P_ARP, arp("192.0.2.1", "198.19.0.1"))
    assert lab_addresses(ETH_P_IP, ipv4("198.20.0.1", "198.17.255.255")) is None
    assert lab_addresses(0x86DD, ipv4("198.18.0.1", "198.18.0.2")) is None
    insns = bpf_lab_or_control(4242)
    assert insns[-1] == (0x06, 0, 0, 0x40000) and insns[-2] == (0x06, 0, 0, 0)
    for i, (code, jt, jf, _k) in enumerate(insns):
        assert code != 0x15 or (i + 1 + jt < len(insns) and i + 1 + jf < len(insns))


ISOLATION = """\
# Isolation test: the client waits 1 s before it connects, for a sniffer in the router.
scenario: isolation-probe
summary: A connection, 1000 bytes and a close, starting 1 s into the run.
apps:
  server: [listen: 8080, accept, recv: 1000, close]
  client: [sleep: 1s, connect: "server:8080", send: 1000, close]
expect:
  client:
    connect: ok
  server:
    recv: ok
timeout: 10s
settle: 0.5s
"""


def test_no_lab_packet_on_root_interfaces(tmp_path):
    """An AF_PACKET socket on all of the root namespace's interfaces, opened before
    three real runs side by side and read after them, sees none of their packets.
    Positive controls: it does see UDP datagrams this test sends to 127.0.0.1 (before
    and after the runs, so it was listening throughout), and the same socket code,
    opened in a lab router namespace, sees that run's packets."""
    from pyroute2 import netns as pr_netns

    assert_in_init_netns()
    control = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    control.bind(("127.0.0.1", 0))
    port = control.getsockname()[1]
    token = secrets.token_hex(8).encode()
    root = Sniffer(port)
    control.sendto(b"tcplab-control-before-" + token, ("127.0.0.1", port))

    probe = write_scenario(tmp_path, ISOLATION)
    before = _names(NETNS_DIR, topology.PREFIX)
    out = tmp_path / "results"
    run = Runner(
        "--jobs",
        "3",
        "--json",
        str(out),
        str(probe),
        str(SCENARIOS / "handshake" / "normal.yaml"),
        str(SCENARIOS / "teardown" / "normal.yaml"),
    )
    inside: dict[str, Sniffer] = {}
    deadline = time.monotonic() + 10 * SLOW_MACHINE
    while time.monotonic() < deadline and len(inside) < 3 and run.proc.poll() is None:
        for name in sorted(_names(NETNS_DIR, topology.PREFIX) - before - set(inside)):
            if name.endswith("-r"):
                try:
                    sock = pr_netns.create_socket(
                        name, socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL), flags=0
                    )
                except (OSError, RuntimeError, TimeoutError):
                    continue  # that run is already over
                inside[name] = Sniffer(port, sock)
        time.sleep(0.02)
    code = run.finish()
    control.sendto(b"tcplab-control-after-" + token, ("127.0.0.1", port))
    time.sleep(0.1)
    root.read()
    for sniffer in inside.values():
        sniffer.read()
        sniffer.close()
    root.close()
    control.close()

    assert code == 0, run.output[-3000:]
    results = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(results) == {"isolation-probe", "handshake-normal", "teardown-normal"}
    lab = results["isolation-probe"]["lab"]
    assert root.drops == 0, "the root sniffer dropped packets: the test proves nothing"
    assert root.lab_packets() == [], "lab packets on root-namespace interfaces"
    for when in (b"before", b"after"):
        assert "lo" in root.saw_payload(b"tcplab-control-" + when + b"-" + token), (
            f"positive control: the root sniffer missed the datagram sent {when.decode()}"
        )
    router = lab["namespaces"][1]
    assert router in inside, f"no sniffer opened in {router} (opened: {sorted(inside)})"
    seen = inside[router].lab_packets()
    data_path = [p for p in seen if f"{lab['client']} -> {lab['server']}" in p]
    assert len(data_path) >= 6, f"positive control: the router sniffer saw only {seen}"
    # Forwarded: each seen arriving (to the router's MAC) and leaving.
    kinds = {
        t
        for _i, proto, t, data in inside[router].frames
        if lab_addresses(proto, data) == (lab["client"], lab["server"])
    }
    assert kinds == {socket.PACKET_HOST, socket.PACKET_OUTGOING}, kinds


# ---------------------------------------------------------------------------------------
# (d) a hook that dies or falls behind: an error, never a verdict; traffic not black-holed
# ---------------------------------------------------------------------------------------


def streaming_scenario(sends: int, gap: str) -> str:
    client = ", ".join(['connect: "server:8080"'] + [f"send: 100, sleep: {gap}"] * sends)
    server = ", ".join(["listen: 8080", "accept"] + ["recv: 100"] * sends)
    return f"""\
# Hook-death test: the client sends 100 bytes every {gap}, the server reads them.
scenario: hook-dies-mid-stream
summary: A steady stream of small sends through the router, for the hook to die in the middle of.
apps:
  server: [{server}]
  client: [{client}]
# A fault on a pure-ACK kind that never strikes: the hook then queues every segment
# (tcplab/lab/hook/selection.py), so it is in the stream's path when it dies.
faults:
  - drop: data-ack
    nth: [1000]
expect:
  client:
    connect: ok
timeout: 30s
"""


def test_dead_hook_is_an_error_and_traffic_still_flows(tmp_path):
    """SIGKILL the hook in the middle of a stream. The verdict is error (exit 3), and
    meanwhile the router forwards the stream unhooked (--queue-bypass): the server
    keeps receiving data that no hook ever saw. The runner is paused (SIGSTOP) for the
    second after the kill, or it would end the run within milliseconds, before there
    is anything to see; the apps, in their own processes, go on."""
    scenario = write_scenario(tmp_path, streaming_scenario(80, "50ms"))
    run = Runner("--json", str(tmp_path / "r.json"), str(scenario))
    plan = run.slot()
    hook = run.child("tcplab.lab.hook")
    run.wait_for_queued(plan, 20)  # the handshake, then data and its ACKs: streaming
    os.kill(run.proc.pid, signal.SIGSTOP)
    try:
        os.kill(hook, signal.SIGKILL)
        time.sleep(1.0)
    finally:
        os.kill(run.proc.pid, signal.SIGCONT)
    code = run.finish()
    res = json.loads((tmp_path / "r.json").read_text())
    assert code == 3, run.output[-3000:]
    assert res["verdict"] == "error" and res["checks"] == []
    assert any("router exited" in e for e in res["errors"]), res["errors"]

    hooked = events(res, "segment")
    last_hooked = max(s["t"] for s in hooked)
    hooked_bytes = sum(
        s["len"] for s in hooked if s["name"] == "data" and s["from"] == "client" and s["fate"] == "delivered"
    )
    recvs = events(res, "app", host="server", call="recv", result="ok", detail="100 bytes")
    after = [r for r in recvs if r["t_end"] > last_hooked + 0.05]
    print(
        f"hook's last segment at t={last_hooked:.3f} s; the server read {len(recvs)} times, "
        f"{len(after)} of them after that ({hooked_bytes} bytes seen by the hook)"
    )
    # 1 s of a send every 50 ms: about 20 reads after the hook's death.
    assert len(after) >= 10, (
        f"the server read {len(after)} times after the hook died "
        f"(t={last_hooked:.2f}): traffic was black-holed"
    )
    assert 100 * len(recvs) >= hooked_bytes + 100 * len(after), (
        "the server got less than the hook saw plus the unhooked stream"
    )


QUIET = """\
# Observer-death test: nothing is queued (no fault), so the observer records it all.
scenario: observer-dies
summary: A connection that sleeps 2 s before it sends, time to kill the router's observer.
apps:
  server: [listen: 8080, accept, recv: 100, close]
  client: [connect: "server:8080", sleep: 2s, send: 100, close]
expect:
  client:
    connect: ok
timeout: 10s
settle: 0.5s
"""


def test_dead_observer_is_an_error_and_leaves_nothing(tmp_path):
    """SIGKILL the router's observer (tcplab/lab/hook/observer.py) once the connection
    is up: what it had not recorded is lost, so the run is an error saying so, never a
    pass on half a record; and the run still ends cleanly."""
    scenario = write_scenario(tmp_path, QUIET)
    run = Runner("--json", str(tmp_path / "r.json"), str(scenario))
    run.slot()
    hook = run.child("tcplab.lab.hook")
    deadline = time.monotonic() + 20
    observer = []
    while not observer and time.monotonic() < deadline:
        observer = children_of(hook, "tcplab.lab.hook.observer")
        time.sleep(0.05)
    assert observer, run.output[-3000:]
    time.sleep(1.0)  # connected; the client sleeps
    os.kill(observer[0], signal.SIGKILL)
    code = run.finish()
    res = json.loads((tmp_path / "r.json").read_text())
    assert code == 3, run.output[-3000:]
    assert res["verdict"] == "error"
    assert any("observer" in e for e in res["errors"]), res["errors"]
    assert not [p for p in lab_processes() if "observer" in p]


FLOOD = r"""
import socket, struct, sys
from tcplab.lab.child import enter_netns

ns, src, dst, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
enter_netns(ns)  # the lab's client namespace: the flood goes client -> router -> server


def checksum(b):
    b += b"\0" * (len(b) % 2)
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
sent = 0
for i in range(count):
    tcp = struct.pack("!HHIIBBHHH", 20000 + i, 9, i, 0, 5 << 4, 0x02, 1024, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    try:
        raw.sendto(tcp, (dst, 0))
        sent += 1
    except OSError:
        pass
print(sent)
"""

OVERFLOW = """\
# Queue-overflow test: a quiet connection, so the hook can be stopped while a burst goes through.
scenario: hook-falls-behind
summary: A connection that sleeps 2 s before it sends, time to stop the hook and overflow its queue.
apps:
  server: [listen: 8080, accept, recv: 100, close]
  client: [connect: "server:8080", sleep: 2s, send: 100, close]
# A fault that never strikes, on a pure-ACK kind: every segment is queued (the hook's
# selection.py), the flood's SYNs too.
faults:
  - drop: data-ack
    nth: [1000]
expect:
  client:
    connect: ok
  server:
    recv: ok
timeout: 10s
settle: 0.5s
"""


def test_hook_falling_behind_until_the_queue_overflows_is_an_error(tmp_path):
    """Stop the hook (SIGSTOP: it falls behind) and send 6000 SYNs from the lab's client
    namespace to a closed port on the server; the NFQUEUE (4096 long) overflows. The
    hook then resumes and the run ends normally, and everything the scenario expects
    happens — but the kernel dropped queued segments, so the verdict is error (exit 3)
    with the queue's counters, never pass."""
    scenario = write_scenario(tmp_path, OVERFLOW)
    run = Runner("--json", str(tmp_path / "r.json"), str(scenario))
    plan = run.slot()
    hook = run.child("tcplab.lab.hook")
    run.wait_for_queued(plan, 3)  # the handshake: connected, the client sleeps now
    os.kill(hook, signal.SIGSTOP)
    try:
        flood = subprocess.run(
            [sys.executable, "-c", FLOOD, plan.client_ns, plan.client_addr, plan.server_addr, "6000"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=30,
        )
        time.sleep(0.2)
    finally:
        os.kill(hook, signal.SIGCONT)
    assert flood.returncode == 0 and int(flood.stdout) > 4500, flood.stderr
    code = run.finish()
    res = json.loads((tmp_path / "r.json").read_text())
    assert code == 3, run.output[-3000:]
    assert res["verdict"] == "error" and res["checks"] == []
    (why,) = [e for e in res["errors"] if "NFQUEUE overflowed" in e]
    dropped = [int(n) for n in re.findall(r"(\d+) (?:queued|undeliverable)", why)]
    assert sum(dropped) > 0, why
    print(f"flood of {flood.stdout.strip()} SYNs: {why}")
    # The scenario itself went through: only the queue's losses make it an error.
    assert events(res, "app", host="server", call="recv")[0]["result"] == "ok"


def test_this_modules_scenarios_are_valid(tmp_path):
    """The scenarios written by the tests above load (a typo would make a lab test wait
    for a run that never starts)."""
    from tcplab.format.load import load_scenario

    for text in (INTERRUPT_ME, ISOLATION, streaming_scenario(3, "50ms"), OVERFLOW, QUIET):
        assert load_scenario(write_scenario(tmp_path, text)).apps["client"]


# ---------------------------------------------------------------------------------------
# (b) the root namespace, before this module and after it
# ---------------------------------------------------------------------------------------

# Files under /proc/sys/net that change with the root namespace's own life, not with the
# lab's. Found by snapshotting twice with no run in between (the fixture below does so
# again on every run and leaves out whatever changed by itself); on Linux 6.18 here none
# did over a second. This one is a live count of the root namespace's own connections,
# listed so a busy machine cannot fail the test.
SELF_CHANGING = {"/proc/sys/net/netfilter/nf_conntrack_count"}


def root_namespace() -> dict[str, str]:
    """What the lab promises never to touch, as seen from the root namespace: every
    readable file under /proc/sys/net, and the rules, links, addresses and routes."""
    snap: dict[str, str] = {}
    for cmd in (
        ("nft", "list", "ruleset"),
        ("ip", "-o", "link", "show"),
        ("ip", "-o", "addr", "show"),
        ("ip", "route", "show", "table", "all"),
        ("ip", "-6", "route", "show", "table", "all"),
        ("ip", "rule", "show"),
        ("ip", "-6", "rule", "show"),
        ("ip", "netns", "list"),
    ):
        text = _out(*cmd)
        # Lifetimes of dynamic addresses and routes count down on their own.
        text = re.sub(r"(valid_lft|preferred_lft|expires) \d+sec", r"\1 -", text)
        snap["$ " + " ".join(cmd)] = text
    snap["$ iptables-save (4 flavours)"] = iptables_rules()
    snap["tracefs instances"] = " ".join(sorted(_names(INSTANCES, "tcplab-")))
    for top, _dirs, files in os.walk("/proc/sys/net"):
        for name in files:
            path = os.path.join(top, name)
            try:
                with open(path) as f:
                    snap[path] = f.read()
            except OSError:
                continue  # write-only (route/flush) or refusing reads (stable_secret)
    return snap


@pytest.fixture(scope="module", autouse=True)
def root_before():
    """Taken before the first test of this module. Two snapshots a second apart tell
    which entries change by themselves; those are left out of the comparison."""
    assert_in_init_netns()
    first = root_namespace()
    time.sleep(1.0)
    second = root_namespace()
    volatile = {k for k in first.keys() | second.keys() if first.get(k) != second.get(k)}
    return second, volatile | SELF_CHANGING


ROOT_CHECK_SCENARIOS = [
    SCENARIOS / "handshake" / f"{n}.yaml" for n in ("normal", "no-listener", "delay-synack")
] + [SCENARIOS / "teardown" / "normal.yaml"]


def test_root_namespace_untouched(root_before, tmp_path):
    """Runs a few real scenarios side by side, then compares the root namespace with
    the snapshot taken before this module's first test (so the interrupted runs, the
    dead hook and the overflowed queue above count too): no difference at all."""
    before, volatile = root_before
    out = tmp_path / "results"
    proc = run_cli(
        "--jobs", str(len(ROOT_CHECK_SCENARIOS)), "--json", str(out), *map(str, ROOT_CHECK_SCENARIOS)
    )
    results = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    # every run judged (in a TCG guest an honest "not judged" error is judged enough:
    # 2 of 4 there ran 60 ms late, session 13); what matters here is what they left
    assert len(results) == len(ROOT_CHECK_SCENARIOS) and all(map(passes_here, results.values())), (
        proc.stdout[-3000:] + proc.stderr[-2000:]
    )
    after = root_namespace()
    sysctls = sum(k.startswith("/proc") for k in before)
    print(
        f"root namespace: {len(before)} entries compared ({sysctls} sysctl files), left out "
        f"as self-changing: {sorted(volatile) or 'none'}"
    )
    changed = sorted(
        k for k in before.keys() | after.keys() if k not in volatile and before.get(k) != after.get(k)
    )
    assert not changed, "the root namespace changed:\n" + "\n".join(
        f"{k}:\n  before: {before.get(k)!r}\n  after:  {after.get(k)!r}" for k in changed
    )
    assert lab_module_processes() == set()
