"""The kernel the model stands for: its version rules (one named property each), the
constants the model shares, and the one sysctl parser."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

TCP_TIMEOUT_INIT = 1.0
TCP_RTO_MAX = 120.0
TCP_RTO_MIN = 0.2  # HZ / 5: the default rto_min, and the base of tcp_model_timeout()
TCP_TIMEWAIT_LEN = 60.0  # include/net/tcp.h
TRANSIT = 0.0002  # one way through the router's hook
LVL_CLK_SHIFT, LVL_BITS = 3, 6  # kernel/time/timer.c


@dataclass(frozen=True)
class Kernel:
    version: tuple[int, int]
    hz: int = 250
    # How late this machine runs what is due (check/base.py machine_lateness: its apps'
    # sleeps overshot by this much): every timer may fire that much later too. 0 on a
    # machine with time to spare; milliseconds in an emulated VM.
    late: float = 0.0
    # How much slower than CLOCK_MONOTONIC this machine's jiffies ran (0.0037: a 60 s
    # timer takes 60.22 s of the lab's clock; Lateness.drift, lab/jiffies.py).
    drift: float = 0.0
    # The upstream stable release's third number (6.1.176: 176), when uname says it:
    # stable trees take fixes the mainline version rules below do not see.
    stable: int | None = None
    # CPUs the machine ran the kernel on: timers pinned to different CPUs run at once
    # (the flood model's request timers, model/flood.py). The machine's, saved with
    # the run (RunResult.cpus); 1 where not known: no such race is assumed.
    cpus: int = 1

    @classmethod
    def from_release(cls, release: str, hz: int = 250, build: str = "", cpus: int = 1) -> Kernel:
        """`release` is uname -r ("6.1.0-50-cloud-amd64", "6.18.44"); `build` is uname -v,
        where a distribution names the upstream stable release it is built from
        ("... Debian 6.1.176-1 (2025-...)"): the stable level, which decides backports."""
        m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
        if not m:
            return cls((0, 0), hz, cpus=cpus)
        version = (int(m[1]), int(m[2]))
        level = int(m[3]) if m[3] and int(m[3]) > 0 else None
        b = re.search(rf"\b{version[0]}\.{version[1]}\.(\d+)\b", build)
        if b and int(b[1]) > 0:
            level = int(b[1])
        return cls(version, hz, stable=level, cpus=cpus)

    @property
    def linear_timeouts(self) -> bool:
        return self.version >= (6, 5)

    @property
    def paws_old_ack_silent(self) -> bool:
        """A pure ACK rejected by PAWS (its TSval older than ts_recent) is dropped
        without a duplicate ACK: seen on 6.18 (gen-2080, an ACK held 1 s reaching
        CLOSE_WAIT drew nothing), which is tcp_validate_incoming()'s PAWS_ACK drop
        reason, added in 6.15 as far as this lab knows (not checked against the source
        here: kernels before it are not judged on such an ACK)."""
        return self.version >= (6, 15)

    @property
    def rto_max_sysctl(self) -> bool:
        return self.version >= (6, 15)

    @property
    def synack_in_syn_recv(self) -> bool | None:
        """From 6.11 (23e89e8ee7be, "tcp: Don't drop SYN+ACK for simultaneous
        connect()", with the dup ACK kept by "tcp: process the 3rd ACK with sk_socket
        for TFO/MPTCP"), tcp_validate_incoming() lets the peer's SYN-ACK through to an
        active-open socket in SYN_RECV: it completes the handshake and draws an ACK.
        Before, it drew a challenge ACK (RFC 5961 4.2) and was dropped. Stable trees
        took the fix too: below 6.11 it is known only where observed
        (STABLE_SYNACK_IN_SYN_RECV), else None (the model cannot tell)."""
        return self._fixed_since((6, 11), STABLE_SYNACK_IN_SYN_RECV)

    def _fixed_since(self, mainline: tuple[int, int], observed: dict[tuple[int, int], int]) -> bool | None:
        if self.version >= mainline:
            return True
        seen = observed.get(self.version)
        if seen is not None and self.stable is not None and self.stable >= seen:
            return True
        return None

    @property
    def rto_min_sysctl(self) -> bool:
        """net.ipv4.tcp_rto_min_us exists from 6.11 (docs/kernel-model.md, "RTO after
        the handshake"); before, rto_min is TCP_RTO_MIN unless a route says otherwise."""
        return self.version >= (6, 11)

    @property
    def accept_queue_full_above(self) -> bool | None:
        """inet_csk_reqsk_queue_is_full() compares qlen `>` the backlog from 6.13
        (commit 3479c7549fb1, "tcp/dccp: Allow a connection when sk_max_ack_backlog is
        zero"), `>=` before; the stable trees took it in January 2025, at a level this
        lab has not read from their logs. So below 6.13 it is known only where it was
        observed (STABLE_REQSK_ABOVE: the SYN flood of syn-flood-syncookies.yaml holding
        17 requests for listen(16)); otherwise None: the model cannot tell."""
        return self._fixed_since((6, 13), STABLE_REQSK_ABOVE)

    @property
    def timeout_min(self) -> float:
        """TCP_TIMEOUT_MIN: 2 jiffies."""
        return 2 / self.hz

    def running_late(self, late: float, drift: float = 0.0) -> Kernel:
        """This kernel on a machine that runs its timers `late` seconds late, on a tick
        `drift` slower than the lab's clock."""
        return Kernel(self.version, self.hz, late, drift, self.stable, self.cpus)

    def name(self) -> str:
        return f"Linux {self.version[0]}.{self.version[1]} (HZ={self.hz})"

    def slack(self, delay: float) -> float:
        """How late a timer of this delay can fire: its wheel level's granularity
        plus one jiffy for the tick that runs it."""
        jiffies = max(1, math.ceil(delay * self.hz))
        level = 0  # LVL_START(n) = (LVL_SIZE - 1) << ((n - 1) * LVL_CLK_SHIFT)
        while jiffies >= ((1 << LVL_BITS) - 1) << (LVL_CLK_SHIFT * level):
            level += 1
        return ((1 << (LVL_CLK_SHIFT * level)) + 1) / self.hz + self.late + delay * self.drift


# Stable levels observed with `>` in inet_csk_reqsk_queue_is_full() (Kernel.
# accept_queue_full_above): Debian 12's 6.1.176 in a TCG VM, session 6 (evidence/6.1.0-50-
# cloud-amd64/syn-flood-syncookies.json.gz: 17 requests for listen(16)).
STABLE_REQSK_ABOVE = {(6, 1): 176}
# ... and with the peer's SYN-ACK accepted in SYN_RECV (Kernel.synack_in_syn_recv):
# 6.1.176, the same run (simultaneous-open.json.gz: the server went SYN_RECV ->
# ESTABLISHED on the client's SYN-ACK, and ACKed it, 50 ms before the client's ACK).
STABLE_SYNACK_IN_SYN_RECV = {(6, 1): 176}


# Sysctls added by a kernel version whose absence before it is one value: an older
# kernel behaves as if it were set to that (what Kernel's properties of the same name
# say to the model). A scenario pinning that value runs there without it, with a note;
# any other value is a behaviour the kernel cannot have, and stays an error.
ABSENT_MEANS = {
    "net.ipv4.tcp_syn_linear_timeouts": ("0", "6.5"),  # Kernel.linear_timeouts
    "net.ipv4.tcp_rto_min_us": ("200000", "6.11"),  # Kernel.rto_min_sysctl: TCP_RTO_MIN
    "net.ipv4.tcp_rto_max_ms": ("120000", "6.15"),  # Kernel.rto_max_sysctl: TCP_RTO_MAX
}


def absent_means(name: str, value) -> str | None:
    """Why a missing sysctl set to `value` changes nothing (a note), or None."""
    known = ABSENT_MEANS.get(name)
    if known is None or str(value).strip() != known[0]:
        return None
    return (
        f"{name}={value} not set: this kernel predates it (it came in {known[1]}), and behaves as that value"
    )


def sysctl_value(sysctls: dict[str, str], name: str, default: float) -> float:
    """A sysctl as the agents reported it (a string, maybe several numbers: the first),
    or `default` when unset or unreadable. The one parser every *Params uses."""
    try:
        return float(str(sysctls.get(name, default)).split()[0])
    except (ValueError, IndexError):
        return default


def sysctl_int(sysctls: dict[str, str], name: str, default: int) -> int:
    return int(sysctl_value(sysctls, name, default))


# From the router's verdict to the receiving socket. The hook takes t_out just before
# it accepts the packet; on this 6.18 machine the receiver's tracepoint followed 55 us
# later (a client FIN, ESTABLISHED->CLOSE_WAIT), and a recv() the segment woke stamped
# its return 77 us later. What is left of the hop is inside the race bound.
LAST_HOP = 0.00005
