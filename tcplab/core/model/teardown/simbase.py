"""What the teardown simulator's parts share, declared for the type checker: sim.Sim is
made of mixins (timers.Timers, receive.Receive, data.DataPath) that call each other's
methods and read the state sim.Sim's __init__ sets. Each part derives from SimBase,
which names that state and those methods with their signatures; the definitions are
where they were (the methods here exist only for mypy, so nothing changes at run time,
and mypy checks each definition against its declaration)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcplab.core.faults import Fault
from tcplab.core.model.kernel import Kernel
from tcplab.core.model.teardown.host import Host
from tcplab.core.model.teardown.params import AfterArrival
from tcplab.core.model.teardown.prediction import Observed, Race, TeardownPrediction
from tcplab.core.segments import Classifier, Segment


class SimBase:
    # sim.Sim.__init__ sets these
    k: Kernel
    faults: tuple[Fault, ...]
    obs: Observed | None  # with a record: what the run showed
    shifts: dict[tuple[str, int], float | str | AfterArrival]
    delack_late: bool
    clf: Classifier
    pred: TeardownPrediction
    races: list[Race]
    arrived: dict[str, list[tuple[float, str, bool]]]
    calls_done: dict[str, list[tuple[float, int, str, int]]]

    if TYPE_CHECKING:
        # sim.Sim
        def at(self, t: float, prio: int, what: str, *args) -> int: ...
        def peer(self, h: Host) -> Host: ...
        def set_state(self, t: float, h: Host, state: str, slack: float, cause: str) -> None: ...
        def segment(self, h: Host, flags: int, seq: int, ack: int, length: int = 0) -> Segment: ...
        def send(
            self,
            t: float,
            h: Host,
            flags: int,
            cause: str,
            slack: float,
            length: int = 0,
            seq: int | None = None,
            ack: int | None = None,
        ) -> str: ...
        def answer_rst(self, t: float, h: Host, ack: int, slack: float) -> None: ...
        def wake(self, t: float, h: Host) -> None: ...
        def note_timer_race(self, t: float, h: Host, step: int, wait: float) -> None: ...
        def release_deferred(self, t: float, h: Host) -> None: ...
        @staticmethod
        def matters(flags: int, length: int) -> bool: ...
        def describe_arrival(self, args: tuple) -> str: ...

        # timers.Timers
        def arm(self, t: float, h: Host, kind: str, wait: float) -> None: ...
        def probe_wait(self, h: Host, cap: float | None = None) -> float: ...
        def subsume_delack(self, t: float, h: Host) -> None: ...
        def old_ack(self, t: float, h: Host, sent: float | None, slack: float) -> None: ...
        def paws_in_time_wait(self, t: float, h: Host, slack: float, occupies: bool = False) -> None: ...
        def time_wait(self, t: float, h: Host, slack: float, restart_only: bool = False) -> None: ...
        def fin_wait2_timer(self, t: float, h: Host, slack: float) -> None: ...

        # data.DataPath
        def data_probe(self, t: float, h: Host) -> None: ...
        def rto_segment(self, t: float, h: Host) -> None: ...
        def data_acked(self, t: float, h: Host, ack: int) -> None: ...
