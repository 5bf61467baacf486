"""What a claim is: the documents' statement, and the comparisons that test it in a run
(table.py lists them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tcplab.claims import record as r
from tcplab.claims.record import Run


@dataclass(frozen=True)
class Comparison:
    label: str
    read: Callable[..., r.Seen | None]
    host: str
    what: str = ""
    nth: int = 0
    # The documents' value, or their rule applied to the observed run (None: the run
    # lacks what the rule needs).
    documented: Any = None
    says: str = ""  # the documents' value in words, when the value alone says too little
    how: str = "equal"  # equal | near | at_least | forever | contains | mss (judge.py)
    # The sysctls the quantity depends on, at the value the documents give ("": the
    # kernel's default). A run that sets one to something else cannot confirm or refute
    # the documents' number: "not tested here".
    setting: tuple[tuple[str, str], ...] = ()
    why: str | Callable[[Run], str] = ""  # the kernel's mechanism, said when they differ
    scenarios: tuple[str, ...] = ()  # the runs that show it (default: the claim's own)
    when: Callable[[Run], bool] | None = None  # ... and only where the run did this
    tolerance: tuple[float, float] | None = None  # (abs s, relative) for "near"; default judge's
    modelled: bool = True  # False where the models do not predict it (data, many sockets)


@dataclass(frozen=True)
class Claim:
    id: str
    seeds: tuple[str, ...]
    text: str
    comparisons: tuple[Comparison, ...]
