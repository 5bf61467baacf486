"""Step mode (`tcplab run --step`): the presenter decides, segment by segment, what the
router does with a held segment. Pure: keys and an explicit `now` in, commands out;
no terminal, no clock, no pipe (the runner's glue is tcplab/stepping.py).

What is held: with MODE_FAULTS every segment a scenario fault drops or delays, with
MODE_ALL every segment the router forwards (tcplab/lab/hook/plain.py holds it, as a
delay whose end nobody knows yet). The presenter's choice becomes the segment's fate
in the record, with `fault` saying who decided: "held by the presenter 2.130 s" (fate
`delayed`, released at t_out) or "dropped by the presenter after 2.130 s" (fate
`dropped`). Judging reads those back as faults (presenter_faults), so a stepped run is
judged like a scenario whose faults were the presenter's choices.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tcplab.core.faults import DELAY, DROP, Fault
from tcplab.core.rules import ACCEPT

MODE_FAULTS, MODE_ALL = "faults", "all"
MODES = (MODE_FAULTS, MODE_ALL)
DELIVER, HOLD = "deliver", "hold"  # and DROP, the fault's own word
# Every key the presenter may press, and what it does to the oldest held segment.
KEYS: dict[str, str] = {"d": DELIVER, "\n": DELIVER, "\r": DELIVER, " ": DELIVER, "x": DROP, "h": HOLD}
KEY_HELP = "d/Enter deliver · x drop · h hold"
# How the record names the presenter's decisions (SegmentSeen.fault), and how judging
# recognises them.
HELD_BY = "held by the presenter"
DROPPED_BY = "dropped by the presenter"
AT_END = "until the run ended"
# A delivered hold the scenario also delays agrees with it when the two holds differ by
# less than this (packetdrill's tolerance: max(4 ms, 12.5 %)).
AGREE_ABS, AGREE_REL = 0.004, 0.125


@dataclass(frozen=True)
class Pending:
    """A segment the router holds for the presenter: the hook's id for it and how the
    ladder names it."""

    ident: int
    t: float  # when the router received it (the record's t)
    name: str
    nth: int
    sender: str
    scenario: str = ""  # what the scenario's fault would have done ("" none)

    def label(self) -> str:
        return f"{self.sender} {self.name} #{self.nth}"


@dataclass(frozen=True)
class Command:
    """What the runner tells the hook: `deliver ID` or `drop ID`."""

    action: str  # DELIVER or DROP
    ident: int

    def wire(self) -> str:
        return f"{self.action} {self.ident}"


@dataclass
class Stepper:
    """The presenter's side of step mode: which segments are held (oldest first: the
    keys act on it), and how long the run has been paused on one, which the run's
    timeout does not count (the presenter may think as long as they like)."""

    mode: str = MODE_FAULTS
    pending: list[Pending] = field(default_factory=list)
    sent: set[int] = field(default_factory=set)  # decided, waiting for the hook's word
    paused: float = 0.0  # seconds with something held, up to paused_since
    paused_since: float | None = None

    def arrived(self, p: Pending, now: float) -> bool:
        """A held segment; True when it is the one the keys act on now."""
        self.pending.append(p)
        if self.paused_since is None:
            self.paused_since = now
        return self.current() is p

    def current(self) -> Pending | None:
        return next((p for p in self.pending if p.ident not in self.sent), None)

    def key(self, key: str) -> Command | None:
        """A key pressed: a command for the oldest undecided held segment, or None
        (hold, an unknown key, nothing held)."""
        action = KEYS.get(key.lower() if key not in ("\n", "\r") else key)
        p = self.current()
        if p is None or action in (None, HOLD):
            return None
        self.sent.add(p.ident)
        return Command(action, p.ident)

    def decided(self, ident: int, now: float) -> Pending | None:
        """The hook carried a decision out (or released the segment at the end)."""
        p = next((p for p in self.pending if p.ident == ident), None)
        self.pending = [q for q in self.pending if q.ident != ident]
        self.sent.discard(ident)
        if not self.pending and self.paused_since is not None:
            self.paused += now - self.paused_since
            self.paused_since = None
        return p

    def pause(self, now: float) -> float:
        """Seconds the run has spent with a segment held, now included."""
        return self.paused + (now - self.paused_since if self.paused_since is not None else 0.0)


def holds(mode: str | None, action: str, is_segment_fault: bool) -> bool:
    """Does step mode hold a segment the scenario's rules gave `action`? A drop or a
    delay by a segment fault, in either mode; one no fault touched, with MODE_ALL.
    Duplicates, rewrites and a silent host's drops go as the scenario says."""
    if mode is None:
        return False
    if action in (DROP, DELAY):
        return is_segment_fault
    return mode == MODE_ALL and action == ACCEPT


def decision_text(action: str, held: float, at_end: bool = False) -> str:
    """The record's `fault` for a segment the presenter decided."""
    if action == DROP:
        return f"{DROPPED_BY} after {held:.3f} s"
    return f"{HELD_BY} {held:.3f} s" + (f" ({AT_END})" if at_end else "")


def by_presenter(fault: str | None) -> bool:
    return fault is not None and fault.startswith((HELD_BY, DROPPED_BY))


def decided_segments(segments) -> list:
    """The record's segments the presenter decided."""
    return [s for s in segments if by_presenter(s.fault)]


def presenter_faults(segments) -> tuple[Fault, ...]:
    """The presenter's decisions as the faults that would have done the same: a drop,
    or a delay as long as the hold, of that one segment. A segment still held when the
    run ended reached nobody while it was observed: a drop, as far as the run goes."""
    out = []
    for s in decided_segments(segments):
        if s.fate == "dropped" or AT_END in s.fault:
            out.append(Fault(DROP, s.name, (s.nth,), s.sender))
        elif s.t_out is not None:
            out.append(Fault(DELAY, s.name, (s.nth,), s.sender, by=max(0.0, s.t_out - s.t)))
    return tuple(out)


def scenario_action(faults, s) -> tuple[str, Fault | None]:
    """What the scenario's own faults did to a recorded segment: the first matching by
    name, side and occurrence; a random one by the roll the record keeps."""
    for f in faults:
        if (
            f.segment != s.name
            or (f.sender and f.sender != s.sender)
            or (f.nth is not None and s.nth not in f.nth)
        ):
            continue
        if f.probability < 1.0 and (s.roll is None or s.roll >= f.probability):
            continue
        return f.action, f
    return ACCEPT, None


def disagreement(faults, s) -> str | None:
    """Why the presenter's decision on `s` is not what the scenario would have done;
    None when it is (a drop it drops; a hold as long as its delay)."""
    action, fault = scenario_action(faults, s)
    which = f"{s.sender} {s.name} #{s.nth}"
    if s.fate == "dropped" or AT_END in s.fault:
        return (
            None
            if action == DROP
            else f"the presenter dropped {which}, "
            + (
                f"which the scenario would {fault.describe()}"
                if fault
                else "which no fault of the scenario touches"
            )
        )
    held = (s.t_out - s.t) if s.t_out is not None else 0.0
    if action == DELAY and fault is not None and abs(held - fault.by) <= max(AGREE_ABS, AGREE_REL * fault.by):
        return None
    scen = f"the scenario: {fault.describe()}" if fault else "the scenario delivers it at once"
    return f"the presenter delivered {which} after {held:.3f} s ({scen})"


def stepped_scenario(sc, segments, t_stop: float | None):
    """The scenario the presenter played: their decisions first (first match wins),
    then the scenario's faults for anything they did not decide; as long as the run
    went (a pause lengthens it)."""
    timeout = max(sc.timeout, t_stop or 0.0)
    return dataclasses.replace(sc, faults=presenter_faults(segments) + tuple(sc.faults), timeout=timeout)


def for_judging(sc, record) -> tuple:
    """(the scenario the model judges, the result's notes, why the scenario's own
    expectations are not judged or None) for a run the presenter stepped. When every
    decision was what the scenario's faults would have done, its expectations stand;
    otherwise they assumed another run, and only the model, told the presenter's
    choices as faults, judges."""
    decided = decided_segments(record.segments)
    if not decided:
        return sc, [], None
    said = ", ".join(f"{s.sender} {s.name} #{s.nth} {s.fault}" for s in decided)
    notes = [f"stepped by hand: {said}"]
    differ = [d for d in (disagreement(sc.faults, s) for s in decided) if d]
    played = stepped_scenario(sc, record.segments, record.t_stop)
    if not differ:
        notes.append(
            "the presenter's choices were the scenario's own faults: its expectations are judged as written"
        )
        return played, notes, None
    notes.append(
        "the scenario's expectations are not judged (they describe the run its "
        "faults make): " + "; ".join(differ)
    )
    return played, notes, STEPPED


STEPPED = "stepped by hand (see the notes)"


def abstain(checks, why: str) -> list:
    """The scenario's own checks, each made an abstention: they describe the run its
    faults make, not the one the presenter chose."""
    return [
        dataclasses.replace(
            c, name=f"not judged: {c.name}", passed=True, actual=why, judged=False, error=False
        )
        for c in checks
    ]
