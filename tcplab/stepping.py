"""Step mode's glue in the runner (`tcplab run --step`): the hook holds segments for
the presenter (tcplab/lab/hook/plain.py), the record says which (fate `held`), the
presenter's keys come in on a queue (tcplab/cli/keys.py reads the terminal), the
decisions go to the hook as `deliver ID` / `drop ID`, and the live view shows what
is held and what the kernel model expects after each choice. The state is
core/step.py's Stepper (pure); this module only moves messages."""

from __future__ import annotations

import queue

from tcplab.core.faults import Fault
from tcplab.core.model.choices import choices
from tcplab.core.model.kernel import Kernel
from tcplab.core.record import Record
from tcplab.core.step import HOLD, KEY_HELP, KEYS, Pending, Stepper, decided_segments, presenter_faults


class StepDriver:
    """One stepped run: `keys` is fed by whoever reads the presenter's keyboard."""

    def __init__(self, mode: str, keys: queue.Queue):
        self.mode, self.keys = mode, keys
        self.stepper = Stepper(mode)
        self.kernel: Kernel | None = None
        self.sysctls: dict = {}

    def config(self) -> dict:
        """What the hook needs to know (its config JSON)."""
        return {"step": self.mode}

    def model(self, kernel: Kernel, sysctls: dict) -> None:
        """The kernel and sysctls the run's prediction uses, for the choices' hints."""
        self.kernel, self.sysctls = kernel, sysctls

    def held(self, sc, rec: Record, seg, view, now: float) -> None:
        """A segment the hook holds for the presenter reached the record."""
        ident = rec.held_id(seg)
        if ident is None:
            return
        scenario = (seg.fault or "").partition("(the scenario: ")[2].rstrip(")")
        p = Pending(ident, seg.t, seg.name, seg.nth, seg.sender, scenario)
        if self.stepper.arrived(p, now):
            self.show(sc, rec, view, now)

    def decided(self, sc, rec: Record, msg: dict, view, now: float) -> None:
        seg = rec.decide(msg)
        self.stepper.decided(msg["id"], now)
        if seg is not None:
            view.decided(seg, rec.t(msg["mono"]))
        if self.stepper.current() is not None:
            self.show(sc, rec, view, now)

    def turn(self, sc, rec: Record, view, send, now: float) -> None:
        """The keys pressed since the last turn: each decides the oldest held segment
        (or, `h`, says again what each choice would do)."""
        while True:
            try:
                key = self.keys.get_nowait()
            except queue.Empty:
                return
            command = self.stepper.key(key)
            if command is not None:
                send(command.wire())
            elif KEYS.get(key.lower()) == HOLD and self.stepper.current() is not None:
                self.show(sc, rec, view, now)

    def show(self, sc, rec: Record, view, now: float) -> None:
        p = self.stepper.current()
        t = rec.t(now)
        syns = rec.sent_by("client", "syn")
        hints = {}
        if self.kernel is not None and syns:
            hints = choices(sc, self.kernel, self.sysctls, self._decided(rec), p, t, syns[0].t)
        view.held(p, t, hints)

    def _decided(self, rec: Record) -> tuple[Fault, ...]:
        return presenter_faults(decided_segments(rec.segments))

    def pause(self, now: float) -> float:
        return self.stepper.pause(now)

    def status(self, rec: Record, now: float) -> str:
        """For the live status line: what is held, for how long, and the keys."""
        p = self.stepper.current()
        if p is None:
            return ""
        return f"⏸ {p.label()} held {rec.t(now) - p.t:.1f}s ({KEY_HELP})"
