"""Fault rule matching: which fault, if any, decides a classified segment's fate.

Pure: the hook calls decide() with a Classified segment and applies the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcplab.core.faults import FATES, Fault
from tcplab.core.segments import Classified

ACCEPT = "accept"  # no fault matched; the other verdicts are the fault's own action


@dataclass(frozen=True)
class Verdict:
    action: str  # ACCEPT, or the deciding Fault's action (core/faults.py)
    delay: float = 0.0  # DELAY: how long it is held; DUPLICATE: how much later the copy goes
    fault: Fault | None = None
    # The dice's roll when a random fault matched the segment: the deciding fault's when
    # one acted, else the first random fault's that let it pass. None: no dice rolled.
    roll: float | None = None

    @property
    def fate(self) -> str:
        """The segment's fate as the record names it (core/faults.py, FATES)."""
        return FATES.get(self.action, "delivered")


PASS = Verdict(ACCEPT)


def matches(fault: Fault, seg: Classified) -> bool:
    return (
        fault.segment == seg.name
        and (fault.sender is None or fault.sender == seg.sender)
        and (fault.nth is None or seg.nth in fault.nth)
    )


def decide(faults: tuple[Fault, ...] | list[Fault], seg: Classified) -> Verdict:
    """The first fault that matches wins (scenario order), as in a firewall. A random
    fault whose dice say no does not match, as iptables' `-m statistic`: the next
    fault may still decide."""
    missed = None
    for index, fault in enumerate(faults):
        if not matches(fault, seg):
            continue
        if not fault.random:
            return Verdict(fault.action, fault.by, fault)
        dice = fault.dice(index, seg)
        if dice.hit:
            return Verdict(fault.action, dice.delay, fault, dice.roll if fault.probability < 1.0 else None)
        missed = dice.roll if missed is None else missed
    return PASS if missed is None else Verdict(ACCEPT, roll=missed)
