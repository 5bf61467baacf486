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

    @property
    def fate(self) -> str:
        """The segment's fate as the record names it (core/faults.py, FATES)."""
        return FATES.get(self.action, "delivered")


PASS = Verdict(ACCEPT)


def matches(fault: Fault, seg: Classified) -> bool:
    return (fault.segment == seg.name
            and (fault.sender is None or fault.sender == seg.sender)
            and (fault.nth is None or seg.nth in fault.nth))


def decide(faults: tuple[Fault, ...] | list[Fault], seg: Classified) -> Verdict:
    """The first fault that matches wins (scenario order), as in a firewall."""
    for fault in faults:
        if matches(fault, seg):
            return Verdict(fault.action, fault.by, fault)
    return PASS
