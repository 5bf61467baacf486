"""A host's handshake sysctls and the SYN / SYN-ACK timers they make (tcp_connect,
tcp_retransmit_timer, tcp_write_timeout, reqsk_timer_handler), and the server's
request socket the handshake simulator keeps (tcp_check_req())."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypedDict

from tcplab.core.model.kernel import Kernel, TCP_RTO_MAX, TCP_TIMEOUT_INIT, sysctl_int


@dataclass(frozen=True)
class HostParams:
    """The sysctls a host's handshake depends on, as the kernel would use them."""

    syn_retries: int = 6
    synack_retries: int = 5
    syn_linear_timeouts: int = 4
    rto_max: float = TCP_RTO_MAX
    invalid_ratelimit: float = 0.5

    @classmethod
    def from_sysctls(cls, kernel: Kernel, s: dict[str, str]) -> HostParams:
        return cls(
            syn_retries=sysctl_int(s, "net.ipv4.tcp_syn_retries", 6),
            synack_retries=sysctl_int(s, "net.ipv4.tcp_synack_retries", 5),
            syn_linear_timeouts=(
                sysctl_int(s, "net.ipv4.tcp_syn_linear_timeouts", 4) if kernel.linear_timeouts else 0
            ),
            rto_max=(
                sysctl_int(s, "net.ipv4.tcp_rto_max_ms", 120000) / 1000.0
                if kernel.rto_max_sysctl
                else TCP_RTO_MAX
            ),
            invalid_ratelimit=sysctl_int(s, "net.ipv4.tcp_invalid_ratelimit", 500) / 1000.0,
        )


# -- the client's SYN timer -------------------------------------------------------------


def syn_wait(p: HostParams, k: int) -> float:
    """The wait before SYN retransmission k (1-based) or the expiry after it."""
    doublings = max(0, k - 1 - p.syn_linear_timeouts)
    return min(TCP_TIMEOUT_INIT * 2**doublings, p.rto_max)


def syn_time_limit(p: HostParams) -> float:
    """tcp_model_timeout() for SYN_SENT: the time-based abort, from the first SYN."""
    thresh = int(math.log2(p.rto_max / TCP_TIMEOUT_INIT)) if p.rto_max >= 1 else 0
    n = p.syn_retries
    if n <= thresh:
        return ((2 << n) - 1) * TCP_TIMEOUT_INIT
    return ((2 << thresh) - 1) * TCP_TIMEOUT_INIT + (n - thresh) * p.rto_max


def syn_gives_up(p: HostParams, retransmits_done: int, elapsed: float) -> bool:
    return retransmits_done >= p.syn_retries + p.syn_linear_timeouts or elapsed >= syn_time_limit(p) - 1e-9


def syn_schedule(p: HostParams) -> tuple[list[float], float]:
    """Nominal SYN retransmission offsets from the first SYN, and the give-up time,
    when no answer ever comes."""
    offsets: list[float] = []
    t, k = 0.0, 0
    while True:
        t += syn_wait(p, k + 1)
        if syn_gives_up(p, k, t):
            return offsets, t
        offsets.append(t)
        k += 1


def synack_schedule(p: HostParams) -> tuple[list[float], float]:
    """Nominal timer-driven SYN-ACK retransmission offsets and the request's death,
    when nothing from the client reaches the request."""
    offsets = [float(2 ** (i + 1) - 1) for i in range(p.synack_retries)]
    return offsets, float(2 ** (p.synack_retries + 1) - 1)


# -- the handshake simulator ------------------------------------------------------------


# The app's and the hook's stamps around a rate-limited answer: 1 ms (RACE_NOISE's own
# figure, model/teardown/params.py).
RATE_STAMP_NOISE = 0.001


class Request(TypedDict):
    """The server's request socket."""

    isn: int  # the client's
    snt: int  # the server's ISN
    num_timeout: int
    gen: int  # the request timer's arming
    last_oow: float
    sent: float  # when the SYN that made it left the client: its TSval is ts_recent
    slack: float
    maybe: str  # PredictedChange.maybe


# tcp_synack_window(): the request's receive window, at most 65535 (no scaling yet)
SYNACK_WINDOW = 65535
RST_IN_REQUEST_WINDOW = (
    "a client RST reached the server's request inside its window but not at rcv_nxt: "
    "tcp_check_req() as read drops the request, while 6.18 answered one with an ACK "
    "(gen-15153); the model does not know which"
)
