"""A host's teardown sysctls, the constants and the RTO arithmetic of a FIN."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tcplab.core.model.kernel import TCP_RTO_MAX, TCP_RTO_MIN, TCP_TIMEWAIT_LEN, Kernel, sysctl_int

__all__ = ["TCP_TIMEWAIT_LEN"]  # the teardown model's names for it, re-exported
TCP_DELACK_MIN = 0.04  # HZ/25
TCP_DELACK_MAX = 0.2  # HZ/5


def delack_max(rtt: float) -> float:
    """The longest a delayed ACK waits (tcp_send_delayed_ack(): ato is at most
    max(TCP_DELACK_MIN, srtt) and TCP_DELACK_MAX), after one RTT sample."""
    return min(TCP_DELACK_MAX, max(TCP_DELACK_MIN, rtt))


TEARDOWN_NAMES = ("fin", "fin-ack", "peer-fin", "last-ack", "rst")
# How far apart the model's and the run's sending of one segment may be and still be
# the same segment (beyond the timer slack and the race bound): the hook's forwarding.
SAME_SEGMENT = 0.010
TLP_TIMEOUT_MIN = 0.002  # tcp_schedule_loss_probe() with more than the FIN out
TCP_TIMEOUT_MIN_US = 0.002  # the RACK reordering timer's floor (tcp_rack_mark_lost())
PAWS_TICK = 0.001  # the TSval clock's tick (ms): tcp_paws_check() allows one


def surely_older(sent: float, than: float) -> bool:
    """A TSval stamped at `sent` is below one stamped at `than` by more than
    tcp_paws_check()'s one-tick window for certain: TSvals tick once a millisecond
    (tcp_clock_ms()), so send times d ms apart are floor(d) or ceil(d) ticks apart,
    and 2 ms on is at least two."""
    return than - sent >= 2 * PAWS_TICK


RCV_WND = 65535  # the receive window early in a connection, as tcp_in_window() sees it
# The calls whose effect depends on whether a segment came before them. Each segment
# that reached the host within the race bound of the call is a race of its own (the
# kernel acted on the call at one moment, on one side of each), except for a recv():
# whether it returns at once or waits is decided by the first segment that has
# something for it (data, the FIN, an RST); those behind it are read, or left for the
# next call, in either order (tcp_recvmsg() returns what is queued, the FIN after it).
RACING_CALLS = ("close", "shutdown", "send", "recv")
MSS = 1448  # a 1500-byte MTU less the IP and TCP headers and the timestamp option
TCP_INIT_CWND = 10  # segments sent before the first ACK comes back (RFC 6928)
# tcp_need_reset(): the states in which an abort (SO_LINGER 0, unread data, a socket
# destroyed) tells the peer with an RST.
NEED_RESET = ("ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT1", "FIN_WAIT2", "SYN_RECV")


class Unsupported(Exception):
    """The apps do something the teardown model does not cover (repeats, dropped data,
    segments while a link is down, ...)."""


class UnsupportedLate(Unsupported):
    """A late handshake segment the teardown model cannot follow: what it draws is in
    the handshake's segment names too, so those counts are not judged either."""


@dataclass(frozen=True)
class TeardownParams:
    """The sysctls a host's teardown depends on, as the kernel would use them."""

    orphan_retries: int = 0
    retries2: int = 15
    fin_timeout: float = 60.0
    rto_min: float = 0.2
    rto_max: float = TCP_RTO_MAX
    tlp: bool = True  # tcp_early_retrans 3 or 4
    timewait: bool = True  # tcp_max_tw_buckets > 0: inet_twsk_alloc() can succeed
    invalid_ratelimit: float = 0.5  # tcp_invalid_ratelimit: out-of-window ACKs
    keepalive_time: float = 7200.0  # tcp_keepalive_time, _intvl, _probes (keepalive.py)
    keepalive_intvl: float = 75.0
    keepalive_probes: int = 9

    @classmethod
    def from_sysctls(cls, kernel: Kernel, s: dict[str, str]) -> TeardownParams:
        return cls(
            orphan_retries=sysctl_int(s, "net.ipv4.tcp_orphan_retries", 0),
            retries2=sysctl_int(s, "net.ipv4.tcp_retries2", 15),
            fin_timeout=float(sysctl_int(s, "net.ipv4.tcp_fin_timeout", 60)),
            rto_min=sysctl_int(s, "net.ipv4.tcp_rto_min_us", 200000) / 1e6,
            rto_max=(
                sysctl_int(s, "net.ipv4.tcp_rto_max_ms", 120000) / 1000.0
                if kernel.rto_max_sysctl
                else TCP_RTO_MAX
            ),
            tlp=sysctl_int(s, "net.ipv4.tcp_early_retrans", 3) in (3, 4),
            timewait=sysctl_int(s, "net.ipv4.tcp_max_tw_buckets", 1) > 0,
            invalid_ratelimit=sysctl_int(s, "net.ipv4.tcp_invalid_ratelimit", 500) / 1000.0,
            keepalive_time=float(sysctl_int(s, "net.ipv4.tcp_keepalive_time", 7200)),
            keepalive_intvl=float(sysctl_int(s, "net.ipv4.tcp_keepalive_intvl", 75)),
            keepalive_probes=sysctl_int(s, "net.ipv4.tcp_keepalive_probes", 9),
        )


def rto_after_handshake(kernel: Kernel, p: TeardownParams, rtt: float) -> float:
    """The RTO after one RTT sample (tcp_rtt_estimator, __tcp_set_rto), in jiffies."""
    rto = rtt + max(2 * rtt, p.rto_min)
    return min(math.ceil(rto * kernel.hz - 1e-9) / kernel.hz, p.rto_max)


def model_timeout(boundary: int, rto_max: float) -> float:
    """tcp_model_timeout() with rto_base TCP_RTO_MIN: the time-based retry limit."""
    thresh = int(math.log2(rto_max / TCP_RTO_MIN)) if rto_max >= TCP_RTO_MIN else 0
    if boundary <= thresh:
        return ((2 << boundary) - 1) * TCP_RTO_MIN
    return ((2 << thresh) - 1) * TCP_RTO_MIN + (boundary - thresh) * rto_max


def retry_limit(p: TeardownParams, orphaned: bool, rto_now: float) -> float:
    """How long after the first RTO retransmission an unanswered FIN is given up."""
    if not orphaned:
        return model_timeout(p.retries2, p.rto_max)
    retries = p.orphan_retries
    if retries == 0 and rto_now < p.rto_max:  # tcp_orphan_retries(): "alive"
        retries = 8
    return model_timeout(retries, p.rto_max)


def rtt_estimate(kernel: Kernel, p: TeardownParams, samples: list[float]) -> tuple[float, float]:
    """srtt and the RTO after these RTT samples, as tcp_rtt_estimator() and
    __tcp_set_rto() compute them (srtt: 7/8 old + 1/8 new; rttvar starts at
    max(2m, rto_min) and, each round trip, falls back a quarter of the way to the
    round's largest mdev, which starts at rto_min), the RTO in whole jiffies. Every
    sample counts as its own round trip: the lab's exchanges are a few segments. At
    least one sample."""
    # the first: no previous measure, so rto = 3 rtt, at least rtt + rto_min
    srtt, mdev = samples[0], 2 * samples[0]
    rttvar = mdev_max = max(mdev, p.rto_min)
    for m in samples[1:]:
        err = m - srtt
        srtt += err / 8
        if err < 0:  # a smaller RTT moves mdev an eighth as much
            e = -err - mdev / 4
            e = e / 8 if e > 0 else e
        else:
            e = err - mdev / 4
        mdev += e
        if mdev > mdev_max:
            mdev_max = mdev
            rttvar = max(rttvar, mdev_max)
        if mdev_max < rttvar:  # the round trip ends (snd_una past rtt_seq)
            rttvar -= (rttvar - mdev_max) / 4
        mdev_max = p.rto_min
    rto = min(math.ceil((srtt + rttvar) * kernel.hz - 1e-9) / kernel.hz, p.rto_max)
    return srtt, rto


def fin_schedule(p: TeardownParams, rto: float, orphaned: bool) -> tuple[list[float], float]:
    """Offsets of the retransmissions of a FIN that is never acknowledged (the probe
    first), and when the socket is destroyed, from the first FIN."""
    offsets, t, first_rto = [], 0.0, None
    if p.tlp:
        t += rto
        offsets.append(t)
    k = 0
    while True:
        t += min(rto * 2**k, p.rto_max)
        backed_off = min(rto * 2**k, p.rto_max)
        if first_rto is not None and t - first_rto >= retry_limit(p, orphaned, backed_off) - 1e-9:
            return offsets, t
        first_rto = t if first_rto is None else first_rto
        offsets.append(t)
        k += 1


def fin_time(p: TeardownParams, rto: float) -> float:
    """tcp_fin_time(): how long an orphan stays in FIN_WAIT2."""
    return max(p.fin_timeout, 3.5 * rto)


# -- the simulator ----------------------------------------------------------------------


MAX_EVENTS = 200_000  # far beyond any teardown's few hundred events


MAX_RACES = 4  # 2^4 orders at most; more races than that in one teardown is too loaded


AFTER_NEXT = "after the next arrival"  # a shift: hold a timer's expiry until an ACK comes
# a shift: hold a timer's expiry until the app's send() that the race found in its bucket
AFTER_SEND = "after the app's send()"
SEND_RACED = "its send()"  # what such a race names (Race.what)
TIMER_RACED = "its timer"  # ... and a send() that its host's timer may have beaten


@dataclass(frozen=True)
class AfterArrival:
    """A shift, the other order of a race: the call reached the kernel after the segment
    it raced. The syscall takes the socket lock, and what the softirq processed before
    it got the lock is what the call sees: so the call is held from its own stamp (it
    cannot act before the app made it) until that segment has been processed, and then
    acts on a socket that has seen it and everything that came before it. The segment
    is named by its kind (`what`, e.g. "the server's fin") and which of that kind since
    the stamp it is (`nth`), not by time, as its arrival may move when the order
    changes; the call acts at the latest at the end of the race bound (Observed.race),
    the latest the kernel can act on it."""

    what: str
    nth: int = 1


SOCKET_OPTIONS = ("linger", "rcvtimeo")  # set before connect(), they still apply after


# What ends (or could end) a connection on its own: the teardown model's part.
ENDINGS = ("close", "shutdown")


HOST_FAULT_ENDINGS = ("kill", "reboot", "link-down")


RACE_NOISE = 0.001


# Beyond this the apps ran so late after their stamps that ordering calls against
# segments is guesswork: a race then leaves the teardown unjudged.
RACE_CAP = 0.025
