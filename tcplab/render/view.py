"""What the runner tells whoever watches a run. The live ladder and the quiet view
(live.py) are Views; a run nobody watches gets a NullView."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from tcplab.core.events import Event
from tcplab.core.scenario import Scenario

if TYPE_CHECKING:  # only named in annotations: a renderer never imports the lab
    from tcplab.lab.topology import Plan


class View(Protocol):
    """What the runner tells whoever watches (the live ladder, or nothing)."""

    def started(self, scenario: Scenario, plan: Plan) -> None: ...
    def event(self, ev: Event) -> None: ...
    def call_started(self, t: float, host: str, call: str, arg) -> None: ...
    def tick(self, t: float, waiting: str) -> None: ...
    def note(self, text: str) -> None: ...
    # step mode (core/step.py): a segment held for the presenter, with what the kernel
    # model expects after each choice; then the presenter's decision, at time t
    def held(self, pending, t: float, hints: dict[str, str]) -> None: ...
    def decided(self, seg: Event, t: float | None) -> None: ...


class NullView:
    def started(self, scenario, plan):
        pass

    def event(self, ev):
        pass

    def call_started(self, t, host, call, arg):
        pass

    def tick(self, t, waiting):
        pass

    def note(self, text):
        pass

    def held(self, pending, t, hints):
        pass

    def decided(self, seg, t):
        pass
