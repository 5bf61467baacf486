"""`tcplab run --step` on the real kernel, driven as a presenter drives it: in a tmux
session (a real terminal), reading the screen with capture-pane and pressing keys with
send-keys. The SYN-ACK of synack-lost-fast is held, dropped by a key, its
retransmission arrives held, is delivered by a key, and the run passes, judged by the
model with the presenter's choices as faults. And Ctrl-C while a segment is held: exit
130, nothing of the lab left behind, the terminal's mode restored."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from test_never_leaves_a_mess import LabState, leftovers

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "handshake" / "synack-lost-fast.yaml"
HELD = re.compile(r"⏸ (client|server) ([\w-]+) #(\d+) is held in the router")


def need_tmux() -> None:
    if shutil.which("tmux"):
        return
    reason = "tmux is not installed (scripts/setup.sh --test installs it)"
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{reason}: CI must run this check, not skip it", pytrace=False)
    pytest.skip(reason)


class Tmux:
    """One detached tmux session running a shell command, 220 columns wide unless
    told (the ladder needs 100 or more)."""

    def __init__(self, command: str, width: int = 220):
        need_tmux()
        self.name = f"tcplab-step-{uuid.uuid4().hex[:8]}"
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.name, "-x", str(width), "-y", "50", command],
            check=True,
            cwd=ROOT,
        )
        subprocess.run(["tmux", "set-option", "-t", self.name, "history-limit", "5000"], check=True)

    def screen(self) -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-J", "-S", "-5000", "-t", self.name],
            capture_output=True,
            text=True,
        ).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def wait_for(self, what, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.screen()
            if what(text) if callable(what) else what in text:
                return text
            time.sleep(0.1)
        raise AssertionError(f"not on the screen after {timeout:g} s: {what}\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def shell(tmp: Path, *args: str, marker: str = "") -> str:
    """The command tmux runs: the terminal's mode before and after, the exit code."""
    cli = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "tcplab", *args))
    env = f"env TCPLAB_STEP_TEST={marker} PYTHONPATH={shlex.quote(os.pathsep.join(sys.path))}"
    return f"stty -g > {tmp}/before; {env} {cli}; echo EXIT=$?; stty -g > {tmp}/after; echo DONE; sleep 600"


def held_now(text: str) -> tuple[str, str, int] | None:
    """The segment the keys act on now: the last one announced as held."""
    found = HELD.findall(text)
    return (found[-1][0], found[-1][1], int(found[-1][2])) if found else None


def test_a_presenter_drops_the_synack_and_delivers_its_retransmission(tmp_path):
    out = tmp_path / "result.json"
    session = Tmux(shell(tmp_path, "run", "--step", "--no-color", "--json", str(out), str(SCENARIO)))
    try:
        # The plan: the first SYN-ACK held until its retransmission has arrived (held
        # too), then dropped; the retransmitted one delivered; and
        # what else is held (the client's SYN copies, later SYN-ACK copies) dropped, as
        # the scenario does.
        decided, pressed = [], {}
        text = session.wait_for(lambda t: held_now(t) or "EXIT=" in t, 60)
        while "EXIT=" not in text:
            current = held_now(text)
            if current == ("server", "syn-ack", 1) and "syn-ack #2↻" not in text:
                current = None  # held past the server's 1 s timer: its copy comes live
            if current is not None and current not in pressed:
                key = "d" if current == ("server", "syn-ack", 2) else "x"
                if current == ("server", "syn-ack", 2):
                    # it came live while the first was held: shown held, with the hints
                    assert re.search(r"held ⏸─+ syn-ack #2↻ \[SA\]", text), text
                    assert "[d/Enter] deliver: client sends ack #1" in text, text
                session.keys(key)
                pressed[current] = key
                decided.append(current)
            time.sleep(0.15)
            text = session.screen()
        text = session.wait_for("DONE", 30)
    finally:
        session.kill()
    assert decided[:1] == [("server", "syn-ack", 1)], decided
    assert ("server", "syn-ack", 2) in decided, decided
    assert "EXIT=0" in text and "PASS synack-lost-fast" in text, text[-6000:]
    assert re.search(r"dropped ✕─+ syn-ack #1 \[SA\] seq=0 ack=1 · by hand ─", text)
    assert re.search(r"◀─+ syn-ack #2↻ \[SA\] seq=0 ack=1 · by hand ⧗\d+\.\d+s ─", text)
    assert (tmp_path / "before").read_text() == (tmp_path / "after").read_text()
    res = json.loads(out.read_text())
    segs = {(s["from"], s["name"], s["nth"]): s for s in res["events"] if s["kind"] == "segment"}
    first, second = segs[("server", "syn-ack", 1)], segs[("server", "syn-ack", 2)]
    assert first["fate"] == "dropped" and first["fault"].startswith("dropped by the presenter")
    assert second["fate"] == "delayed" and second["fault"].startswith("held by the presenter")
    assert second["t_out"] > second["t"] + 0.05  # held until the key, then out
    held_first = float(re.search(r"after (\d+\.\d+) s", first["fault"])[1])
    assert first["t"] + held_first > second["t"]  # #2 came while #1 was still held
    assert segs[("client", "ack", 1)]["t"] >= second["t_out"]  # the answer came after it
    # judged: the model, told the choices, passes; the scenario's own checks abstain
    assert res["verdict"] == "pass"
    model = [c for c in res["checks"] if c["judged"]]
    assert model and all(c["name"].startswith("model:") and c["passed"] for c in model)
    assert any(c["name"] == "model: client connect()" and c["actual"] == "ok" for c in model)
    assert all(c["name"].startswith("not judged: ") for c in res["checks"] if not c["judged"])
    assert any(
        n.startswith("stepped by hand: server syn-ack #1 dropped by the presenter") for n in res["notes"]
    )


def test_ctrl_c_while_a_segment_is_held_leaves_nothing_behind(tmp_path):
    marker = uuid.uuid4().hex
    out = tmp_path / "result.json"
    before = LabState.now()
    session = Tmux(
        shell(tmp_path, "run", "--step", "--no-color", "--json", str(out), str(SCENARIO), marker=marker)
    )
    try:
        session.wait_for("server syn-ack #1 is held in the router", 60)
        time.sleep(0.5)
        session.keys("C-c")
        text = session.wait_for("DONE", 60)
    finally:
        session.kill()
    assert "EXIT=130" in text, text[-4000:]
    assert (tmp_path / "before").read_text() == (tmp_path / "after").read_text()
    results = [json.loads(out.read_text())] if out.exists() else []
    assert leftovers(before, runner_pid=-1, marker=marker, results=results) == []
    if results:  # the held SYN-ACK went back to the kernel as the hook stopped
        assert "interrupted" in " ".join(results[0]["errors"])
