"""A scenario as data: what the loader (tcplab/scenario.py) produces from YAML.

Plain frozen dataclasses; no IO. Durations are float seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HOSTS = ("client", "router", "server")
APP_HOSTS = ("client", "server")

# App step calls and the argument each takes (documented in docs/scenario-format.md).
#   listen: PORT          -> int
#   accept                -> None
#   connect: server:PORT  -> ("server", int)
#   send: BYTES           -> int (that many bytes) or str (those bytes, UTF-8)
#   recv                  -> None (one recv() of up to 64 KiB) or int (read until that
#                            many bytes or EOF)
#   sleep: DURATION       -> float seconds
#   close                 -> None
#   shutdown: wr|rd|rdwr  -> "wr" | "rd" | "rdwr"
STEP_CALLS = ("listen", "accept", "connect", "send", "recv", "sleep", "close", "shutdown")


@dataclass(frozen=True)
class Step:
    call: str
    arg: Any = None
    line: int = 0


@dataclass(frozen=True)
class Fault:
    """drop or delay the segments called `segment` (canonical vocabulary name).
    nth None means all occurrences; sender None means either side."""

    action: str  # "drop" | "delay"
    segment: str
    nth: tuple[int, ...] | None = None
    sender: str | None = None
    by: float = 0.0
    line: int = 0

    def describe(self) -> str:
        nth = "all" if self.nth is None else ",".join(map(str, self.nth))
        text = f"{self.action} {self.segment} nth={nth}"
        if self.sender:
            text += f" from={self.sender}"
        if self.action == "delay":
            text += f" by={self.by:g}s"
        return text


@dataclass(frozen=True)
class Timing:
    """Expected times of the repeats of one segment name from one host.

    intervals: gaps between consecutive occurrences (first to second, ...);
    offsets: times of the 2nd, 3rd, ... occurrence measured from the first;
    count: how many repeats (occurrences after the first)."""

    intervals: tuple[float, ...] | None = None
    offsets: tuple[float, ...] | None = None
    count: int | None = None
    line: int = 0


@dataclass(frozen=True)
class HostExpect:
    calls: dict[str, str] = field(default_factory=dict)  # call -> "ok" | errno name
    retransmits: dict[str, Timing] = field(default_factory=dict)  # segment name -> timing
    sends: dict[str, int] = field(default_factory=dict)  # segment name -> total count
    gives_up_after: float | None = None  # seconds from the failing call's start to its end
    states: tuple[str, ...] | None = None  # TCP states of the connection socket, in order
    lines: dict[str, int] = field(default_factory=dict)  # key -> line, for messages


@dataclass(frozen=True)
class Tolerance:
    """max(abs, rel * expected gap), as packetdrill does."""

    abs: float = 0.004
    rel: float = 0.125

    def allowed(self, expected: float) -> float:
        return max(self.abs, self.rel * abs(expected))


@dataclass(frozen=True)
class Expect:
    hosts: dict[str, HostExpect] = field(default_factory=dict)
    model: str | None = None
    tolerance: Tolerance = Tolerance()


@dataclass(frozen=True)
class Scenario:
    path: str
    name: str
    summary: str
    claims: tuple[str, ...]
    sysctls: dict[str, dict[str, str]]  # host -> {"net.ipv4.tcp_syn_retries": "5"}
    apps: dict[str, tuple[Step, ...]]  # "client"/"server" -> steps
    faults: tuple[Fault, ...]
    expect: Expect
    timeout: float  # the whole run is stopped after this long
    settle: float = 1.0  # keep observing this long after both apps finished
    lines: dict[str, int] = field(default_factory=dict, compare=False)  # key -> line
