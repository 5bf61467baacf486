"""Step mode without a kernel or a terminal: the presenter's state (core/step.py) with
a fake clock, the hook holding and deciding segments with fake packets, the record
the runner builds from what the hook says, the judging of the presenter's choices as
faults, the model's hint per choice, and the CLI's refusal without a terminal."""

import dataclasses
import json
import os
import pty
import termios
from pathlib import Path

from click.testing import CliRunner

from tcplab.cli.main import cli
from tcplab.core import step
from tcplab.core.events import SegmentSeen
from tcplab.core.faults import DELAY, DROP, Fault
from tcplab.core.model.choices import choices
from tcplab.core.model.kernel import Kernel
from tcplab.core.record import Record
from tcplab.core.rules import ACCEPT
from tcplab.core.segments import Classifier
from tcplab.format.load import load_scenario
from tcplab.lab.hook.log import SegmentLog
from tcplab.lab.hook.plain import Hook
from unit.helpers import C, handshake

SYNACK_LOST = str(Path(__file__).resolve().parents[2] / "scenarios/handshake/synack-lost-fast.yaml")


def pending(ident, t, name="syn-ack", nth=1, sender="server"):
    return step.Pending(ident, t, name, nth, sender)


# -- the presenter's state, on a fake clock -------------------------------------------


def test_keys_decide_the_oldest_held_segment_and_hold_decides_nothing():
    s = step.Stepper()
    assert s.key("d") is None  # nothing held: nothing to decide
    assert s.arrived(pending(3, 0.1), now=10.0)
    assert not s.arrived(pending(5, 1.0, "syn", 2, "client"), now=11.0)  # waits its turn
    assert s.key("h") is None and s.key("q") is None and s.current().ident == 3
    assert s.key("x") == step.Command(DROP, 3) and s.key("x").wire() == "drop 5"
    assert s.current() is None  # both sent, neither carried out yet
    assert s.decided(3, now=12.0).ident == 3 and s.decided(5, now=12.5).ident == 5
    assert s.pending == [] and s.decided(5, now=13.0) is None


def test_enter_space_and_capitals_deliver_like_d():
    for key in ("\n", "\r", " ", "d", "D"):
        s = step.Stepper()
        s.arrived(pending(7, 0.0), now=0.0)
        assert s.key(key) == step.Command(step.DELIVER, 7)
        assert step.Command(step.DELIVER, 7).wire() == "deliver 7"


def test_the_pause_counts_only_while_something_is_held():
    s = step.Stepper()
    assert s.pause(5.0) == 0.0
    s.arrived(pending(1, 0.0), now=10.0)
    assert s.pause(12.5) == 2.5
    s.arrived(pending(2, 0.0), now=11.0)  # overlapping holds are one pause
    s.decided(1, now=13.0)
    assert s.pause(14.0) == 4.0
    s.decided(2, now=14.0)
    assert s.pause(20.0) == 4.0  # nothing held since 14 s: the timeout runs again
    s.arrived(pending(3, 0.0), now=30.0)
    s.decided(3, now=31.0)
    assert s.pause(40.0) == 5.0


def test_what_step_mode_holds():
    assert step.holds("faults", DROP, True) and step.holds("faults", DELAY, True)
    assert not step.holds("faults", ACCEPT, False)  # no fault touched it
    assert step.holds("all", ACCEPT, False) and step.holds("all", DROP, True)
    assert not step.holds("all", DROP, False)  # a silent host's drop: not a segment fault
    assert not step.holds("all", "duplicate", True) and not step.holds(None, DROP, True)


# -- the hook: held, then decided, told to the runner, read into the record ----------


class Lines:
    def __init__(self):
        self.lines = []

    def write_line(self, line):
        self.lines.append(json.loads(line))


class Pkt:
    def __init__(self):
        self.verdicts = []

    def retain(self):
        self.verdicts.append("retain")

    def accept(self):
        self.verdicts.append("accept")

    def drop(self):
        self.verdicts.append("drop")


def _hook(mode, faults):
    out = Lines()
    return Hook(faults, [C], SegmentLog(out), step=mode), out


def _feed(rec, out):
    for m in out.lines:
        if m["kind"] == "segments":
            rec.add_segments(m)
        elif m["kind"] == "decided":
            rec.decide(m)
    out.lines.clear()


def test_the_hook_holds_what_a_fault_touches_and_does_what_the_presenter_says():
    hook, out = _hook("faults", [Fault(DROP, "syn-ack")])
    clf, pkts = Classifier({C}), [Pkt(), Pkt(), Pkt()]
    for pkt, seg in zip(pkts, handshake()):
        hook.on_classified(pkt, clf.classify(seg), 100.0, b"")
    hook.log.flush()
    assert [p.verdicts for p in pkts] == [["accept"], ["retain"], ["accept"]]
    rec = Record(t0=100.0)
    _feed(rec, out)
    held = rec.segments[1]
    assert held.fate == "held" and held.t_out is None
    assert held.fault == "held for the presenter (the scenario: drop syn-ack nth=all)"
    assert rec.held_id(held) == 2 and rec.held_id(rec.segments[0]) is None
    hook.command("deliver 2")
    hook.command("deliver 2")  # a second key for the same segment: nothing
    assert pkts[1].verdicts == ["retain", "accept"]
    _feed(rec, out)
    s = rec.segments[1]
    assert s.fate == "delayed" and s.t_out is not None and step.by_presenter(s.fault)
    assert s.fault.startswith("held by the presenter ")


def test_a_drop_by_the_presenter_and_the_end_of_the_run():
    hook, out = _hook("all", [])
    clf, pkts = Classifier({C}), [Pkt(), Pkt()]
    for pkt, seg in zip(pkts, handshake()):
        hook.on_classified(pkt, clf.classify(seg), 100.0, b"")
    hook.command("drop 1")
    hook.release_all()  # the run ended with the SYN-ACK still held: the kernel gets it back
    rec = Record(t0=100.0)
    _feed(rec, out)
    assert [p.verdicts for p in pkts] == [["retain", "drop"], ["retain", "accept"]]
    syn, synack = rec.segments
    assert syn.fate == "dropped" and syn.t_out is None
    assert syn.fault.startswith("dropped by the presenter after ")
    assert synack.fate == "delayed" and synack.fault.endswith(f"({step.AT_END})")
    # ...which reached nobody while the run was observed: a drop, when judging
    assert step.presenter_faults(rec.segments) == (
        Fault(DROP, "syn", (1,), "client"),
        Fault(DROP, "syn-ack", (1,), "server"),
    )


def test_without_step_mode_nothing_is_held():
    hook, out = _hook(None, [Fault(DROP, "syn-ack")])
    pkt = Pkt()
    hook.on_classified(pkt, Classifier({C}).classify(handshake()[0]), 1.0, b"")
    assert pkt.verdicts == ["accept"] and hook.presenter == {}


# -- judging the presenter's choices ----------------------------------------------------


def seen(name, nth, sender, fate, t, t_out=None, fault=None, roll=None):
    return SegmentSeen(
        t=t,
        name=name,
        nth=nth,
        sender=sender,
        flags=0,
        seq=0,
        ack=0,
        length=0,
        fate=fate,
        retransmission=nth > 1,
        conn=1,
        t_out=t_out,
        fault=fault,
        roll=roll,
    )


def test_choices_become_faults_and_are_compared_with_the_scenarios():
    sc = load_scenario(SYNACK_LOST)
    dropped = seen("syn-ack", 1, "server", "dropped", 0.002, fault=step.decision_text(DROP, 0.8))
    delivered = seen("syn-ack", 2, "server", "delayed", 1.01, 3.0, step.decision_text(step.DELIVER, 1.99))
    untouched = seen("syn", 1, "client", "delivered", 0.0, 0.0)
    segs = [untouched, dropped, delivered]
    assert step.presenter_faults(segs) == (
        Fault(DROP, "syn-ack", (1,), "server"),
        Fault(DELAY, "syn-ack", (2,), "server", by=3.0 - 1.01),
    )
    assert step.disagreement(sc.faults, dropped) is None  # the scenario drops it too
    assert "the presenter delivered server syn-ack #2 after 1.990 s" in step.disagreement(
        sc.faults, delivered
    )
    played = step.stepped_scenario(sc, segs, t_stop=20.0)
    assert played.faults[:2] == step.presenter_faults(segs)
    assert played.faults[2:] == sc.faults and played.timeout == 20.0


def test_a_held_delivery_agrees_with_a_delay_of_the_same_length_only():
    faults = (Fault(DELAY, "syn-ack", by=1.5),)
    same = seen("syn-ack", 1, "server", "delayed", 0.0, 1.55, "held by the presenter 1.55 s")
    longer = dataclasses.replace(same, t_out=2.5)
    assert step.disagreement(faults, same) is None
    assert "delay syn-ack nth=all by=1.5s" in step.disagreement(faults, longer)
    # a random fault's dice: the roll the record kept says whether it touched the segment
    rolled = (Fault(DROP, "syn-ack", probability=0.3, seed=1),)
    hit = seen("syn-ack", 1, "server", "dropped", 0.0, None, "dropped by the presenter", roll=0.1)
    assert step.disagreement(rolled, hit) is None
    assert "no fault" in step.disagreement(rolled, dataclasses.replace(hit, roll=0.9))


def _record(*segs, t_stop=15.0):
    rec = Record(t0=0.0)
    rec.segments = list(segs)
    rec.t_stop = t_stop
    return rec


def test_the_scenarios_expectations_stand_only_when_the_choices_were_its_faults():
    sc = load_scenario(SYNACK_LOST)
    own = seen("syn-ack", 1, "server", "dropped", 0.0, fault="dropped by the presenter after 1.000 s")
    played, notes, why = step.for_judging(sc, _record(own))
    assert why is None and "judged as written" in notes[-1]
    assert played.faults[0] == Fault(DROP, "syn-ack", (1,), "server")
    other = seen("syn-ack", 2, "server", "delayed", 1.0, 2.0, "held by the presenter 1 s")
    _played, notes, why = step.for_judging(sc, _record(own, other))
    assert why == step.STEPPED and "the presenter delivered server syn-ack #2" in notes[-1]
    assert notes[0].startswith("stepped by hand: server syn-ack #1 dropped by the presenter")
    # a run nobody stepped is judged as ever
    assert step.for_judging(sc, _record(seen("syn", 1, "client", "delivered", 0.0, 0.0))) == (sc, [], None)


def test_abstentions_are_neither_pass_nor_fail():
    from tcplab.core.check.base import Check, verdict

    checks = [Check("client connect()", False, "ETIMEDOUT", "ok", line=20)]
    (c,) = step.abstain(checks, step.STEPPED)
    assert not c.judged and c.name == "not judged: client connect()"
    assert c.actual == step.STEPPED and c.line == 20
    assert verdict([c]) == "error"  # alone it judges nothing
    assert verdict([c, Check("model: x", True, 1, 1)]) == "pass"


# -- the model's hint for each choice ----------------------------------------------------

SYSCTLS = {
    "client": {"net.ipv4.tcp_syn_retries": "2", "net.ipv4.tcp_syn_linear_timeouts": "0"},
    "server": {"net.ipv4.tcp_synack_retries": "2"},
}


def test_the_hint_says_what_follows_each_choice():
    sc = load_scenario(SYNACK_LOST)
    kernel = Kernel.from_release("6.18.0", 250)
    hints = choices(sc, kernel, SYSCTLS, (), pending(2, 0.002), now=0.5, origin=0.001)
    assert hints["deliver"] == ("client sends ack #1 at t≈0.5 s (an answer); connect() returns ok at t≈0.5 s")
    assert hints["drop"].startswith("client sends syn #2 at t≈1.0 s (its timer")
    assert hints["drop"].endswith("connect() returns ETIMEDOUT at t≈7.0 s")
    # the retransmitted SYN-ACK, after the first was dropped by the presenter
    decided = (Fault(DROP, "syn-ack", (1,), "server"), Fault(DROP, "syn", (2,), "client"))
    later = choices(sc, kernel, SYSCTLS, decided, pending(5, 1.003, nth=2), now=2.2, origin=0.001)
    assert later["deliver"].startswith("client sends ack #1 at t≈2.2 s")
    assert later["drop"].startswith("client sends syn #3 at t≈3.0 s")


# -- the command line ------------------------------------------------------------------


def test_step_without_a_terminal_is_a_usage_error_before_anything_runs():
    for args in (
        ["run", "--step", SYNACK_LOST],
        ["run", "--step", "all", SYNACK_LOST],
        ["demo", "--step", SYNACK_LOST],
    ):
        result = CliRunner().invoke(cli, args, input="")
        assert result.exit_code == 2, result.output
        assert "--step needs a terminal" in result.output


def test_step_runs_one_scenario_at_a_time():
    result = CliRunner().invoke(cli, ["run", "--step", "--jobs", "2", SYNACK_LOST])
    assert result.exit_code == 2 and "one scenario at a time" in result.output
    result = CliRunner().invoke(cli, ["demo", "--step", "--slow", "2", SYNACK_LOST])
    assert result.exit_code == 2 and "choose one" in result.output


def test_the_terminal_gives_single_keys_and_gets_its_mode_back_even_on_an_error():
    from tcplab.cli.keys import presenter_keys

    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        assert before[3] & termios.ICANON and before[3] & termios.ECHO
        with open(slave, closefd=False) as tty_in:
            try:
                with presenter_keys(tty_in) as keys:
                    mode = termios.tcgetattr(slave)[3]
                    assert not mode & termios.ICANON and not mode & termios.ECHO
                    assert mode & termios.ISIG  # Ctrl-C is still a signal
                    os.write(master, b"xd")  # no Enter: cbreak hands each key over
                    assert keys.get(timeout=2) == "x" and keys.get(timeout=2) == "d"
                    raise RuntimeError("the run failed")
            except RuntimeError:
                pass
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)
