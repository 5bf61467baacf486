"""Fault rule matching: which fault, if any, decides a classified segment's fate.

Pure: the hook calls decide() with a Classified segment and applies the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcplab.core.scenario import Fault
from tcplab.core.segments import Classified

ACCEPT, DROP, DELAY = "accept", "drop", "delay"
# Delivered, and then: a copy follows (after the fault's `by`); or delivered without
# its MSS option (the option's bytes become NOPs).
DUPLICATE, STRIP_MSS = "duplicate", "strip-mss"


@dataclass(frozen=True)
class Verdict:
    action: str  # ACCEPT | DROP | DELAY | DUPLICATE | STRIP_MSS
    delay: float = 0.0  # DELAY: how long it is held; DUPLICATE: how much later the copy goes
    fault: Fault | None = None


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
