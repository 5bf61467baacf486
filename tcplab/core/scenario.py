"""A scenario as data: what the loader (tcplab/format/) produces from YAML.

Plain frozen dataclasses; no IO. Durations are float seconds. The faults are
core/faults.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tcplab.core.faults import Fault, Forge, HostFault

HOSTS = ("client", "router", "server")
APP_HOSTS = ("client", "server")

# App step calls and the argument each takes (documented in docs/scenario-format.md).
#   listen: PORT          -> int, or {"port": int, "backlog": int}
#   accept                -> None
#   connect: HOST:PORT    -> ("server", int) from the client, ("client", int) from the server
#   send: BYTES           -> int (that many bytes) or str (those bytes, UTF-8)
#   recv                  -> None (one recv() of up to 64 KiB) or int (read until that
#                            many bytes or EOF)
#   sleep: DURATION       -> float seconds
#   close                 -> None
#   shutdown: wr|rd|rdwr  -> "wr" | "rd" | "rdwr"
#   bind: PORT            -> int (the next socket's local port)
#   linger: SECONDS       -> int (SO_LINGER on; 0: close() sends RST)
#   keepalive: on|{...}   -> True, or {"idle": int|None, "interval": int|None, "count": int|None}
#   syncnt: N             -> int (TCP_SYNCNT)
#   rcvtimeo: DURATION    -> float seconds (SO_RCVTIMEO)
#   repeat: {...}         -> Repeat
#   flood: {syns, port}   -> {"syns": int, "port": int} (raw SYNs from spoofed lab addresses)
#   netstat               -> None (reads the namespace's TcpExt counters)
STEP_CALLS = (
    "listen",
    "accept",
    "connect",
    "send",
    "recv",
    "sleep",
    "close",
    "shutdown",
    "bind",
    "linger",
    "keepalive",
    "syncnt",
    "rcvtimeo",
    "repeat",
    "flood",
    "netstat",
)
# Steps that set an option on the current socket (or the next one, if none yet).
OPTION_CALLS = ("linger", "keepalive", "syncnt", "rcvtimeo")


@dataclass(frozen=True)
class Step:
    call: str
    arg: Any = None
    line: int = 0


@dataclass(frozen=True)
class Repeat:
    """`repeat:`: the steps `times` times, each iteration on a socket of its own; with
    `parallel`, all iterations at once, each in its own thread."""

    times: int
    parallel: bool
    steps: tuple[Step, ...]

    def to_wire(self) -> dict:
        return {
            "times": self.times,
            "parallel": self.parallel,
            "steps": [step_to_wire(s) for s in self.steps],
        }


def step_to_wire(step: Step) -> list:
    """[call, arg] as the app agent gets it (JSON)."""
    return [step.call, step.arg.to_wire() if isinstance(step.arg, Repeat) else step.arg]


def all_steps(steps: tuple[Step, ...]):
    """Every step, those inside a repeat included, in file order."""
    for step in steps:
        yield step
        if isinstance(step.arg, Repeat):
            yield from all_steps(step.arg.steps)


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
    # call -> "ok" | errno name (every such call), or {result: how many calls}
    calls: dict[str, str | dict[str, int]] = field(default_factory=dict)
    retransmits: dict[str, Timing] = field(default_factory=dict)  # segment name -> timing
    sends: dict[str, int] = field(default_factory=dict)  # segment name -> total count
    largest: dict[str, int] = field(default_factory=dict)  # segment name -> max payload bytes
    gives_up_after: float | None = None  # seconds from the failing call's start to its end
    states: tuple[str, ...] | None = None  # TCP states of the connection socket, in order
    # Teardown expectations (docs/scenario-format.md; checked by core/check/states.py):
    sockets: dict[str, int] = field(default_factory=dict)  # state -> most at one moment
    lasts: dict[str, Lasting] = field(default_factory=dict)  # state -> its first stay
    returns_after: dict[str, str] = field(default_factory=dict)  # call -> segment it awaits
    lines: dict[str, int] = field(default_factory=dict)  # key -> line, for messages
    # segment name -> (at least, at most or None) retransmissions (same name, same seq)
    resent: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    received: int | None = None  # bytes the host's recv calls returned, in all


@dataclass(frozen=True)
class Lasting:
    """How long the first connection socket's first stay in a state lasts: `seconds`
    within the tolerance, at least `at_least` seconds (ended or not), or `forever`:
    still in that state when the run ended."""

    seconds: float | None = None
    at_least: float | None = None
    forever: bool = False
    line: int = 0


@dataclass(frozen=True)
class Tolerance:
    """max(abs, rel * expected gap), as packetdrill does."""

    abs: float = 0.004
    rel: float = 0.125

    def allowed(self, expected: float) -> float:
        return max(self.abs, self.rel * abs(expected))


Version = tuple[int, int]  # a kernel's major.minor


@dataclass(frozen=True)
class KernelRange:
    since: Version | None = None  # >= since
    before: Version | None = None  # < before
    text: str = ""

    def __contains__(self, version: Version) -> bool:
        return (self.since is None or version >= self.since) and (
            self.before is None or version < self.before
        )


@dataclass(frozen=True)
class KernelExpect:
    range: KernelRange
    hosts: dict[str, HostExpect] = field(default_factory=dict)
    line: int = 0

    def describe(self) -> str:
        return f"Linux {self.range.text} (scenario line {self.line})"


@dataclass(frozen=True)
class Expect:
    hosts: dict[str, HostExpect] = field(default_factory=dict)
    model: str | None = None
    tolerance: Tolerance = Tolerance()
    # Expectations for a range of kernel versions (core/kernel_expect.py).
    by_kernel: tuple[KernelExpect, ...] = ()


@dataclass(frozen=True)
class Scenario:
    path: str
    name: str
    summary: str
    claims: tuple[str, ...]
    sysctls: dict[str, dict[str, str]]  # host -> {"net.ipv4.tcp_syn_retries": "5"}
    apps: dict[str, tuple[Step, ...]]  # "client"/"server" -> steps
    faults: tuple[Fault, ...]  # decided segment by segment, first match wins
    expect: Expect
    timeout: float  # the whole run is stopped after this long
    settle: float = 1.0  # keep observing this long after both apps finished
    lines: dict[str, int] = field(default_factory=dict, compare=False)  # key -> line
    host_faults: tuple[HostFault, ...] = ()  # link-down, crash, reboot, kill at a time
    forges: tuple[Forge, ...] = ()  # segments the router makes up
    seed: int | None = None  # the random faults' dice (core/faults.py); each Fault has it
