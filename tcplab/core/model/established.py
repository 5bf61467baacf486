"""What this kernel does when an established connection's peer goes silent. Pure.

Rules read in net/ipv4/tcp_timer.c, tcp_output.c, tcp_input.c and tcp_ipv4.c (6.1 and
a 6.15+ tree) and measured on 6.18 by scenarios/failure (numbers: docs/kernel-notes.md):

- RTO (tcp_rtt_estimator, __tcp_set_rto): after the first RTT sample m (the handshake),
  srtt = m and rttvar = max(2m, rto_min), so R = srtt + rttvar rounded up to whole
  jiffies (0.204 s on a LAN at HZ=250), at most rto_max. rto_min is tcp_rto_min_us
  (from 6.11; TCP_RTO_MIN = 200 ms before), rto_max tcp_rto_max_ms (6.15; 120 s before).
- Tail loss probe (tcp_schedule_loss_probe, tcp_early_retrans 3 or 4, SACK on): one
  segment in flight waits 2 srtt + rto_min, no later than the RTO would; the probe
  retransmits the last segment and re-arms the RTO to a full R from then
  (tcp_send_loss_probe -> tcp_rearm_rto). It is not an RTO: icsk_retransmits stays 0.
- RTO expiry (tcp_retransmit_timer): tcp_write_timeout() first, then retransmit the
  head, icsk_backoff++, icsk_rto = min(2 icsk_rto, rto_max).
- Give-up (tcp_write_timeout, retransmits_timed_out): time-based, not a count. Once an
  RTO retransmission was made, an expiry aborts when the time since the first one
  (retrans_stamp, set by tcp_retransmit_skb) reaches tcp_model_timeout(tcp_retries2,
  TCP_RTO_MIN): (2^(N+1) - 1) x 200 ms while N <= t = ilog2(rto_max / 200 ms), else
  (2^(t+1) - 1) x 200 ms + (N - t) x rto_max. Default 15: 924.6 s. tcp_write_err()
  sets sk_err = sk_err_soft ?: ETIMEDOUT and closes without an RST.
- tcp_retries1 (default 3, 3.0 s by the same formula) only makes the route be looked
  up again (__dst_negative_advice, and MTU probing if enabled): nothing on the wire.
- ICMP unreachable for an established socket (tcp_v4_err) is a soft error: sk_err_soft
  = ENETUNREACH / EHOSTUNREACH, the connection lives on; and (tcp_ld_RTO_revert, RFC
  6069) one ICMP for snd_una while icsk_retransmits > 0 undoes one backoff doubling and
  re-arms the timer for what is left of the smaller RTO. The app gets the soft errno
  instead of ETIMEDOUT at the give-up.
- A router with no route (its link down) answers in ip_error() with ICMP net
  unreachable, through two token buckets that share one inet_peer per destination:
  ip_error's (1 s a message, at most 5 s saved) and icmp_send's icmpv4_xrlim_allow
  (icmp_ratelimit 1 s, 6 saved); a new peer starts 60 s in credit.
- Keepalive (tcp_keepalive_timer): with SO_KEEPALIVE and nothing in flight, the first
  probe goes idle (TCP_KEEPIDLE / tcp_keepalive_time) after the last segment received,
  then one every interval (TCP_KEEPINTVL / tcp_keepalive_intvl) while unanswered; the
  expiry that finds count (TCP_KEEPCNT / tcp_keepalive_probes) probes out sends an RST
  and aborts with ETIMEDOUT (tcp_write_err). A probe (tcp_xmit_probe_skb) is a bare ACK
  with seq = snd_una - 1, which the peer answers with an ACK.

Timer lateness is the handshake model's (Kernel.slack), summed along each chain.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from tcplab.core.faults import HostFault
from tcplab.core.model.kernel import TCP_RTO_MAX, TCP_RTO_MIN, Kernel, sysctl_value
from tcplab.core.model.prediction import PredictedSegment, Prediction
from tcplab.core.model.unreachable import ERRNO_OF_UNREACH, UnreachableRouter


@dataclass(frozen=True)
class EstParams:
    """The sysctls an established connection's timers depend on (one host)."""

    rto_min: float = TCP_RTO_MIN
    rto_max: float = TCP_RTO_MAX
    retries1: int = 3
    retries2: int = 15
    early_retrans: int = 3
    keepalive_time: float = 7200.0
    keepalive_intvl: float = 75.0
    keepalive_probes: int = 9

    @classmethod
    def from_sysctls(cls, kernel: Kernel, s: dict) -> EstParams:
        return cls(
            rto_min=(
                sysctl_value(s, "net.ipv4.tcp_rto_min_us", 200000) / 1e6
                if kernel.rto_min_sysctl
                else TCP_RTO_MIN
            ),
            rto_max=(
                sysctl_value(s, "net.ipv4.tcp_rto_max_ms", 120000) / 1000.0
                if kernel.rto_max_sysctl
                else TCP_RTO_MAX
            ),
            retries1=int(sysctl_value(s, "net.ipv4.tcp_retries1", 3)),
            retries2=int(sysctl_value(s, "net.ipv4.tcp_retries2", 15)),
            early_retrans=int(sysctl_value(s, "net.ipv4.tcp_early_retrans", 3)),
            keepalive_time=sysctl_value(s, "net.ipv4.tcp_keepalive_time", 7200),
            keepalive_intvl=sysctl_value(s, "net.ipv4.tcp_keepalive_intvl", 75),
            keepalive_probes=int(sysctl_value(s, "net.ipv4.tcp_keepalive_probes", 9)),
        )


# -- the RTO arithmetic (shared: the teardown model's FIN retransmits use it too) --------


def jiffies_up(kernel: Kernel, seconds: float) -> float:
    """usecs_to_jiffies(): rounded up to whole jiffies."""
    return math.ceil(round(seconds * kernel.hz, 6)) / kernel.hz


def initial_rto(kernel: Kernel, p: EstParams, rtt: float) -> float:
    """icsk_rto after the first RTT sample: srtt + max(2 rtt, rto_min), in jiffies."""
    return min(jiffies_up(kernel, rtt + max(2 * rtt, p.rto_min)), p.rto_max)


def probe_timeout(kernel: Kernel, p: EstParams, rtt: float, rto: float) -> float:
    """The tail loss probe's wait with one segment in flight: 2 srtt + rto_min, but no
    later than the RTO (tcp_schedule_loss_probe)."""
    return min(jiffies_up(kernel, 2 * rtt + p.rto_min), rto)


def time_limit(kernel: Kernel, boundary: int, rto_max: float) -> float:
    """tcp_model_timeout(boundary, TCP_RTO_MIN): how long after the first RTO
    retransmission an established socket gives up (retransmits_timed_out)."""
    base = round(TCP_RTO_MIN * kernel.hz)  # jiffies, as the kernel divides them
    thresh = int(math.log2(max(1, round(rto_max * kernel.hz) // base)))
    if boundary <= thresh:
        return ((2 << boundary) - 1) * TCP_RTO_MIN
    return ((2 << thresh) - 1) * TCP_RTO_MIN + (boundary - thresh) * rto_max


# -- the data sender's retransmissions ----------------------------------------------------


@dataclass(frozen=True)
class Transmission:
    t: float  # since the first transmission
    cause: str  # "first", "probe" (TLP), "timer" (RTO)
    slack: float  # how late the kernel may send it (timer lateness, summed)
    icmp: bool = False  # the router answered it with ICMP unreachable


@dataclass(frozen=True)
class GiveUp:
    t: float  # since the first transmission
    error: str  # what the application's blocked call fails with
    slack: float
    rto_retransmits: int
    retries1_at: float | None  # the first expiry past tcp_retries1 (a route re-check)


def retransmissions(
    kernel: Kernel,
    p: EstParams,
    rtt: float,
    router: UnreachableRouter | None = None,
    back_at: float | None = None,
    horizon: float = 3600.0,
) -> tuple[list[Transmission], GiveUp | None]:
    """One segment sent at 0 into silence: its tail loss probe and RTO retransmissions
    and the give-up. With `router`, each transmission may draw an ICMP unreachable. If
    the path is back at `back_at`, the first transmission after it is answered: no
    give-up (None)."""
    rto = initial_rto(kernel, p, rtt)
    limit, limit1 = time_limit(kernel, p.retries2, p.rto_max), time_limit(kernel, p.retries1, p.rto_max)
    soft = None

    def send(t: float, cause: str, slack: float) -> Transmission:
        nonlocal soft
        icmp = False
        if router is not None and (back_at is None or t < back_at) and router.answers(t):
            icmp, soft = True, ERRNO_OF_UNREACH[router.code]
        return Transmission(t, cause, slack, icmp)

    out = [send(0.0, "first", 0.0)]
    t = slack = 0.0
    if p.early_retrans in (3, 4):
        wait = probe_timeout(kernel, p, rtt, rto)
        t, slack = wait, kernel.slack(wait)
        out.append(send(t, "probe", slack))  # icsk_retransmits is 0: no RTO revert
    if back_at is not None and t >= back_at:
        return out, None
    backoff, stamp, retries1_at, wait = 0, None, None, rto
    while t + wait <= horizon:
        t += wait
        slack += kernel.slack(wait)
        if stamp is not None and t - stamp >= limit - 1e-9:
            return out, GiveUp(
                t, soft or "ETIMEDOUT", slack, sum(x.cause == "timer" for x in out), retries1_at
            )
        if stamp is not None and retries1_at is None and t - stamp >= limit1 - 1e-9:
            retries1_at = t
        stamp = t if stamp is None else stamp
        backoff += 1
        sent = send(t, "timer", slack)
        out.append(sent)
        if back_at is not None and t >= back_at:
            return out, None
        if sent.icmp:
            backoff -= 1  # tcp_ld_RTO_revert(): the ICMP comes back at once
        wait = min(rto * 2**backoff, p.rto_max)
    return out, None


# -- keepalive ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Keepalive:
    idle: float
    interval: float
    count: int

    @classmethod
    def of(cls, arg, p: EstParams) -> Keepalive:
        """The keepalive step's argument (True or {idle, interval, count}) over the
        host's tcp_keepalive_* sysctls."""
        arg = arg if isinstance(arg, dict) else {}
        pick = lambda key, default: default if arg.get(key) is None else arg[key]  # noqa: E731
        return cls(
            float(pick("idle", p.keepalive_time)),
            float(pick("interval", p.keepalive_intvl)),
            int(pick("count", p.keepalive_probes)),
        )


def keepalive_probes(
    kernel: Kernel, ka: Keepalive, silent_from: float = 0.0, horizon: float = 1e9
) -> tuple[list[tuple[float, float]], float | None, float]:
    """Probes (t, slack) since the last segment received, and the abort time (None
    past the horizon) with its slack. Probes before `silent_from` are answered, which
    resets the count and restarts the idle time."""
    probes: list[tuple[float, float]] = []
    t, slack, out = ka.idle, kernel.slack(ka.idle), 0
    while t <= horizon:
        if out >= ka.count:
            return probes, t, slack
        probes.append((t, slack))
        if t < silent_from:  # answered: probes_out = 0, rcv_tstamp = now; the timer
            # runs an interval later and, if idle is longer, re-arms for what is left
            out = 0
            slack += kernel.slack(ka.interval) + (
                kernel.slack(ka.idle - ka.interval) if ka.idle > ka.interval else 0.0
            )
            t += max(ka.idle, ka.interval)
            continue
        out += 1
        t += ka.interval
        slack += kernel.slack(ka.interval)
    return probes, None, slack


# -- one scenario -------------------------------------------------------------------------


@dataclass
class Burst:
    """What a surviving host sends into a silent peer (crashed, or its link down):
    retransmissions of its data, or keepalive probes. Nominal times are since the
    client's first SYN; `offsets` are since the burst's anchor: the first data segment
    sent into the silence, or the last segment received before keepalive started."""

    host: str  # the survivor
    name: str  # "data" | "keepalive" | "quiet" (nothing: it stays ESTABLISHED)
    fault: HostFault  # crash, link-down
    params: EstParams
    keepalive: Keepalive | None = None
    anchor: float = 0.0
    offsets: list[Transmission] = field(default_factory=list)
    abort: float | None = None  # since the anchor; None: not before the run ends
    abort_slack: float = 0.0
    error: str | None = None
    call: str | None = None  # the step that is blocked when the abort comes
    notes: list[str] = field(default_factory=list)
    unsupported: str = ""  # why this burst is not modelled (then nothing is judged)


def _silences(sc) -> list:
    # Not a reboot: after `until` the peer answers with an RST, which is not modelled.
    return [f for f in sc.host_faults if f.action in ("crash", "link-down")]


def _step_times(steps, t_conn: float) -> list[tuple[object, float]]:
    """Nominal start of each step once the connection exists (sleeps add up, sends and
    options are instant), up to the first call that waits for the peer."""
    out, t, started = [], t_conn, False
    for step in steps:
        if step.call in ("connect", "accept"):
            started = True
            continue
        if started:
            out.append((step, t))
            if step.call == "sleep":
                t += step.arg
            elif step.call not in ("send", "keepalive", "linger", "rcvtimeo", "syncnt", "netstat"):
                break
    return out


def predict(
    kernel: Kernel,
    sc,
    sysctls: dict,
    handshake,
    rtts: dict[str, float] | None = None,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> list[Burst]:
    """The bursts each surviving host sends into the silence of the other, from the
    scenario's host faults and steps, once the handshake `handshake` predicts is done.
    `rtts`: each host's first RTT sample as the record shows it (teardown/observe.py
    handshake_rtt), else the lab's idle path (0.4 ms); `ranges`: where the kernel's own
    timestamps bound that sample (kernel_rtt_range), those bounds instead."""
    connect = handshake.calls.get(("client", "connect"))
    if connect is None or connect[0] != "ok":
        return []
    bursts = []
    for fault in _silences(sc):
        host = "server" if fault.host == "client" else "client"
        p = EstParams.from_sysctls(kernel, sysctls.get(host, {}))
        t_conn = connect[2] + (0.0002 if host == "server" else 0.0)  # the last ACK's transit
        steps = _step_times(sc.apps.get(host, ()), t_conn)
        rtt = (ranges or {}).get(host) or (rtts or {}).get(host, 0.0004)
        burst = _data(kernel, p, rtt, fault, host, steps) or _keepalive(
            kernel, p, fault, host, steps, t_conn, sc.timeout
        )
        if burst is None:  # no data to send, no keepalive: no timer will ever run
            burst = Burst(
                host,
                "quiet",
                fault,
                p,
                anchor=fault.at,
                notes=[f"the {host} has nothing to send and no keepalive: it stays ESTABLISHED"],
            )
        bursts.append(burst)
    return bursts


ONE_SEGMENT = 1448  # the MSS with timestamps at a 1500-byte MTU


def path_back(fault) -> float | None:
    # A restored link answers with ACKs; a crash never ends.
    return fault.until if fault.action == "link-down" else None


def _data(kernel, p, rtt, fault, host, steps) -> Burst | None:
    back = path_back(fault)
    sent = next(
        ((s, t) for s, t in steps if s.call == "send" and t >= fault.at and (back is None or t < back)), None
    )  # sent into the silence
    if sent is None:
        return None
    step, t0 = sent
    size = len(step.arg.encode()) if isinstance(step.arg, str) else step.arg
    if size > ONE_SEGMENT:
        # Several segments in flight: the probe comes after 2 srtt + 2 ms and resends
        # the tail, the RTOs resend the head (seen on 6.18, gen-2031): not this chain.
        return Burst(
            host,
            "data",
            fault,
            p,
            anchor=t0,
            unsupported=f"the {host} sends {size} bytes (more than one segment) into the silence",
        )
    offsets, give_up = _within(kernel, p, rtt, fault, None if back is None else back - t0)
    b = Burst(host, "data", fault, p, anchor=t0, offsets=offsets)
    later = [s.call for s, t in steps if t >= t0 and s is not step]
    b.call = next((c for c in later if c == "recv"), None)
    if give_up is not None:
        b.abort, b.abort_slack, b.error = give_up.t, give_up.slack, give_up.error
        if give_up.retries1_at is not None:
            b.notes.append(
                f"tcp_retries1={p.retries1}: the route is looked up again at "
                f"{give_up.retries1_at:.3f} s after the first transmission "
                "(nothing on the wire)"
            )
        b.notes.append(
            f"tcp_retries2={p.retries2}: gives up "
            f"{time_limit(kernel, p.retries2, p.rto_max):g} s after the first RTO "
            f"retransmission, at {give_up.t:.3f} s after the first transmission, "
            f"{give_up.rto_retransmits} RTO retransmissions; {give_up.error}"
        )
    return b


def _within(kernel, p, rtt, fault, back_at):
    """retransmissions() for an RTT sample known exactly, or known to lie in a range
    (lo, hi): timed from lo, each moment's slack widened by how much later hi would put
    it. Where the two ends disagree on more than the times (which transmissions the
    router's rate limit answers), lo's chain as it is: it is what the live view shows,
    while core/check/established.py replays the ICMPs on the times the run shows."""

    def chain(sample):
        router = UnreachableRouter(hz=kernel.hz) if fault.action == "link-down" else None
        return retransmissions(kernel, p, sample, router, back_at)

    if not isinstance(rtt, tuple):
        return chain(rtt)
    (early, end), (late, late_end) = chain(rtt[0]), chain(rtt[1])
    shape = [(x.cause, x.icmp) for x in early], end is None, end and end.error
    if shape != ([(x.cause, x.icmp) for x in late], late_end is None, late_end and late_end.error):
        return early, end
    merged = [dataclasses.replace(x, slack=x.slack + max(0.0, y.t - x.t)) for x, y in zip(early, late)]
    if end is not None and late_end is not None:
        end = dataclasses.replace(end, slack=end.slack + max(0.0, late_end.t - end.t))
    return merged, end


def _keepalive(kernel, p, fault, host, steps, t_conn, timeout) -> Burst | None:
    step = next((s for s, _t in steps if s.call == "keepalive"), None)
    if step is None:
        return None
    ka = Keepalive.of(step.arg, p)
    probes, abort, slack = keepalive_probes(kernel, ka, fault.at - t_conn)
    b = Burst(
        host,
        "keepalive",
        fault,
        p,
        ka,
        anchor=t_conn,
        offsets=[Transmission(t, "timer", s) for t, s in probes if t_conn + t <= timeout],
    )
    b.abort, b.abort_slack, b.error = abort, slack, "ETIMEDOUT"
    b.call = next((s.call for s, _t in steps if s.call == "recv"), None)
    b.notes.append(
        f"keepalive idle {ka.idle:g} s, interval {ka.interval:g} s, count "
        f"{ka.count}: the {host} aborts {abort:g} s after the last segment it "
        "received, with an RST"
    )
    default = Keepalive.of(True, EstParams.from_sysctls(kernel, {}))
    if ka != default:
        b.notes.append(
            f"with the kernel's defaults ({default.idle:g} s, {default.interval:g} "
            f"s, {default.count}) it would take "
            f"{keepalive_probes(kernel, default)[1]:g} s"
        )
    return b


def with_bursts(prediction: Prediction, bursts: list[Burst]) -> Prediction:
    """The handshake model's prediction with the bursts added (a new Prediction): their
    segments (so the result JSON, the live view and the model's RST count see them),
    calls and notes."""
    out = dataclasses.replace(
        prediction,
        segments=list(prediction.segments),
        calls=dict(prediction.calls),
        notes=list(prediction.notes),
        established=bursts,
    )
    for b in bursts:  # the handshake model's own guess at the first data gives way
        out.segments[:] = [
            s for s in out.segments if not (s.sender == b.host and s.name == b.name and s.t >= b.fault.at)
        ]
        back = path_back(b.fault)
        for i, x in enumerate(b.offsets):
            fate = "delivered" if back is not None and b.anchor + x.t >= back else "dropped"
            cause = x.cause + (", ICMP back" if x.icmp else "")
            out.segments.append(PredictedSegment(b.anchor + x.t, b.host, b.name, i + 1, fate, cause, x.slack))
        if b.abort is None:
            out.notes += b.notes
            continue
        if b.name == "keepalive":
            out.segments.append(
                PredictedSegment(b.anchor + b.abort, b.host, "rst", 1, "dropped", "timer", b.abort_slack)
            )
        if b.call is not None:
            assert b.error is not None  # an abort comes with its errno (_data, _keepalive)
            out.calls[(b.host, b.call)] = (b.error, b.anchor, b.anchor + b.abort)
        out.notes += b.notes
    out.segments.sort(key=lambda s: s.t)
    return out
