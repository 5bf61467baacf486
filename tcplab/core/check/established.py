"""The run against the established-connection model (tcplab/core/model/established.py):
retransmissions into a silent peer, keepalive probes, the give-up. Pure.

Each timer is judged from the moment the previous one really fired (the kernel re-arms
its retransmission and keepalive timers when they run), so one late timer does not
shift every later window; and the router's ICMP rate limit is replayed on the observed
times, since whether an ICMP comes back depends on the real spacing. A window is
[wait - 10 ms, wait + the timer wheel's lateness for that wait + the run's forwarding
slop], one-sided as the handshake model's are.
"""

from __future__ import annotations

from tcplab.core.check.base import Check, MODEL_SLOP, Slop, describe_call, describe_segment, not_judged
from tcplab.core.model.unreachable import ERRNO_OF_UNREACH, UnreachableRouter
from tcplab.core.model.established import (
    initial_rto,
    path_back,
    probe_timeout,
    time_limit,
)
from tcplab.core.model.teardown.observe import kernel_rtt_range, own_legs
from tcplab.core.record import Record


LIMIT_MARGIN = 0.005  # expiries this close to the give-up limit may go either way


def check_established(prediction, record: Record, slop: Slop) -> list:
    out = []

    for b in getattr(prediction, "established", ()):
        if b.unsupported:
            out.append(not_judged("a peer gone silent", b.unsupported))
            continue
        judge = {"data": _data, "keepalive": _keepalive, "quiet": _quiet}[b.name]
        out += judge(b, prediction.kernel, record, slop)
    return out


def _gap_check(
    name: str,
    wait: float,
    gap: float,
    at: float,
    kernel,
    slop: Slop,
    proof: str,
    extra_ok: bool = True,
    late: float | None = None,
) -> Check:
    """The gap ending at `at` against the wait, late by up to the timer's lateness."""
    hi = wait + (kernel.slack(wait) if late is None else late) + slop.at(at)
    return Check(
        name,
        extra_ok and wait - MODEL_SLOP <= gap <= hi,
        round(wait, 4),
        round(gap, 6),
        round(hi - wait, 4),
        proof,
        one_sided=True,
        slop=slop.at(at),
    )


def _rtt(record: Record, host: str) -> float:
    """The first RTT sample the host took, as the router saw the handshake: the client
    times SYN to SYN-ACK, the server SYN-ACK to the ACK."""
    syn, synack = record.sent_by("client", "syn"), record.sent_by("server", "syn-ack")
    ack = record.sent_by("client", "ack")
    if host == "client" and syn and synack:
        return max(0.0, (synack[0].t_out or synack[0].t) - syn[0].t)
    if host == "server" and synack and ack:
        return max(0.0, (ack[0].t_out or ack[0].t) - synack[-1].t)
    return 0.0004


def _closed(record: Record, host: str, after: float):
    return next(
        (
            e
            for e in record.states()
            if e.host == host and e.old == "ESTABLISHED" and e.new == "CLOSE" and e.t >= after
        ),
        None,
    )


def _call(record: Record, host: str, call: str | None, after: float):
    """The host's first such call still going at `after` (the abort ends it)."""
    return next(
        (
            c
            for c in record.apps
            if c.host == host and c.call == call and (c.t_end is None or c.t_end >= after)
        ),
        None,
    )


def _abort(
    b,
    kernel,
    record: Record,
    last,
    wait: float,
    slop: Slop,
    error: str,
    ok: bool = True,
    limit: str = "",
    late: float | None = None,
) -> list:
    label = f"model: {b.host}"
    out = []
    gone = _closed(record, b.host, last.t)
    if gone is None:
        out.append(
            Check(
                f"{label} gives up after {b.name} #{last.nth}",
                False,
                round(wait, 4),
                "still ESTABLISHED when the run ended",
            )
        )
    else:
        out.append(
            _gap_check(
                f"{label} gives up after {b.name} #{last.nth}",
                wait,
                gone.t - last.t,
                gone.t,
                kernel,
                slop,
                f"t={gone.t:.3f}s ESTABLISHED->CLOSE ({gone.source})" + (f"; {limit}" if limit else ""),
                ok,
                late,
            )
        )
    c = _call(record, b.host, b.call, b.fault.at)
    if c is not None:
        out.append(
            Check(
                f"{label} {b.call}()",
                c.result == error,
                error,
                c.result or "still blocked",
                evidence=describe_call(c),
            )
        )
    return out


def _link_down_at(record: Record, fault) -> float:
    """When the router's link really went down (the hook's event, stamped once
    setting it returned: lab/hook/faults.py Links.set()), 0 without one. A segment that
    reached the hook before that waited in its queue while the link was set and met the router's kernel, whose
    ip_error() spends the ICMP rate limit's tokens, only then: the buckets run on
    max(arrival, this) (gen-10219 on 6.18: set_link() took 0.28 s, the first data
    came 0.18 s into it and drew its ICMP when it returned; on its arrival stamp the
    buckets foresaw an ICMP for the 7th segment that never came)."""
    if fault.action != "link-down":
        return 0.0
    return next((e.t for e in record.faults if e.action == "link-down" and e.host == fault.host), 0.0)


def _data(b, kernel, record: Record, slop: Slop) -> list:
    label = f"model: {b.host} data"
    seen = [s for s in record.sent_by(b.host, "data") if s.t >= b.fault.at - MODEL_SLOP]
    if not seen:
        return [Check(f"{label} into the silence", False, f"data after t={b.fault.at:g}s", "none")]
    p = b.params
    # Without the host's own timestamps to bound its first sample, it lies between the
    # router's view and that plus the host's turnaround on its first handshake answer
    # (own_legs(): its way in and out, and its time to make the answer): the chain is
    # timed from the first, its lateness widened to the second (gen-5022 in the 6.1
    # guest: the server's RTO was 212 ms for the router view's 204, and its fourth RTO
    # expiry came 3.03 s after the first, past tcp_retries2=3's 3.0 s: no more owed).
    rtt, rtt_hi = kernel_rtt_range(record).get(b.host) or (
        _rtt(record, b.host),
        _rtt(record, b.host) + own_legs(record, b.host),
    )
    rto, rto_hi = initial_rto(kernel, p, rtt), initial_rto(kernel, p, rtt_hi)

    def later(wait: float, what: str) -> float:
        """The timer's lateness for `wait`, and how much longer it is if the RTT
        sample was the range's top (kernel_rtt_range: known to 1 ms either side; or the
        host's unseen legs)."""
        top = (
            probe_timeout(kernel, p, rtt_hi, rto_hi)
            if what == "tail loss probe"
            else min(wait * rto_hi / rto, p.rto_max)
        )
        return kernel.slack(wait) + max(0.0, top - wait)

    limit = time_limit(kernel, p.retries2, p.rto_max)
    back = path_back(b.fault)
    router = UnreachableRouter(hz=kernel.hz) if b.fault.action == "link-down" else None
    tlp = p.early_retrans in (3, 4)
    soft, backoff, stamp, out = None, 0, None, []
    down = _link_down_at(record, b.fault)
    if router is not None and router.answers(max(seen[0].t, down)):
        soft = ERRNO_OF_UNREACH[router.code]

    def next_wait(i: int, gap: float | None) -> tuple[float, str, bool]:
        """The wait after seen[i]: the tail loss probe's, or the RTO's, halved when an
        ICMP for seen[i] undid a doubling (tcp_ld_RTO_revert). Whether one came is read
        off the gap the run shows and checked against the router's rate limit."""
        nonlocal soft, backoff
        if i == 0 and tlp:
            return probe_timeout(kernel, p, rtt, rto), "tail loss probe", True
        if (
            router is None or (back is not None and seen[i].t >= back) or i < (2 if tlp else 1)
        ):  # no revert before an RTO retransmission
            if (
                router is not None
                and i > 0
                and (back is None or seen[i].t < back)
                and router.answers(max(seen[i].t, down))
            ):
                soft = ERRNO_OF_UNREACH[router.code]
            return min(rto * 2**backoff, p.rto_max), "RTO", True
        plain, halved = min(rto * 2**backoff, p.rto_max), min(rto * 2 ** (backoff - 1), p.rto_max)
        icmp = gap is not None and plain != halved and abs(gap - halved) < abs(gap - plain)
        expected, close = router.step(max(seen[i].t, down), icmp)
        if icmp:
            backoff -= 1
            soft = ERRNO_OF_UNREACH[router.code]
        what = "RTO" + (" after an ICMP" if icmp else "")
        if expected != icmp and not close:  # the router's rate limit says otherwise
            what += f", but the router {'would' if expected else 'could not'} answer"
        return (halved if icmp else plain), what, expected == icmp or close

    for i, s in enumerate(seen[1:], start=1):
        wait, what, fits = next_wait(i - 1, s.t - seen[i - 1].t)
        probe = i == 1 and tlp
        late = not probe and stamp is not None and s.t - stamp >= limit + LIMIT_MARGIN
        out.append(
            _gap_check(
                f"{label} #{s.nth} after #{seen[i - 1].nth} ({what})",
                wait,
                s.t - seen[i - 1].t,
                s.t,
                kernel,
                slop,
                describe_segment(s),
                extra_ok=fits and not late,
                late=later(wait, what),
            )
        )
        if back is not None and s.t >= back:
            return out  # the path is back: this one is answered
        if not probe:
            stamp = s.t if stamp is None else stamp
            backoff += 1
    last = seen[-1]
    gone = _closed(record, b.host, last.t)
    wait, what, fits = next_wait(len(seen) - 1, None if gone is None else gone.t - last.t)
    # Another retransmission is owed only if even the latest the next expiry can come
    # (its timer-wheel bucket, Kernel.slack) is still short of the limit: an expiry
    # due just short of it may run past it and give up instead (gen-3183: due 6.188 s
    # after the stamp, limit 6.2 s, the kernel gave up).
    if stamp is None or last.t + wait + later(wait, what) - stamp < limit - LIMIT_MARGIN:
        end = record.t_stop
        if end is None or last.t + wait < end - slop.worst:
            out.append(
                Check(
                    f"{label} count",
                    False,
                    f"another at t={last.t + wait:.3f}s",
                    f"{len(seen)}, the last at t={last.t:.3f}s",
                    evidence=describe_segment(last),
                )
            )
        return out
    # No more is owed: the give-up is what comes next (a retransmission past the
    # limit fails its own gap check above).
    return out + _abort(
        b,
        kernel,
        record,
        last,
        wait,
        slop,
        soft or "ETIMEDOUT",
        fits,
        f"limit tcp_retries2={p.retries2}: {limit:g} s after t={stamp:.3f}s",
        later(wait, what),
    )


def _keepalive(b, kernel, record: Record, slop: Slop) -> list:
    label = f"model: {b.host} keepalive"
    ka = b.keepalive
    probes = record.sent_by(b.host, "keepalive")
    conn = probes[0].conn if probes else 1
    until = probes[0].t if probes else float("inf")
    got = [
        s
        for s in record.segments
        if s.conn == conn and s.sender != b.host and s.fate == "delivered" and s.t < until
    ]
    if not got:
        return [Check(f"{label} #1", False, "a segment received first", "none")]
    rx = got[-1]
    rx_t = rx.left
    if not probes:
        end = record.t_stop
        if end is not None and end < rx_t + ka.idle:
            return []  # the run ended first
        return [Check(f"{label} #1", False, f"at t={rx_t + ka.idle:.3f}s", "none")]
    out = [
        _gap_check(
            f"{label} #1 after the last segment received",
            ka.idle,
            probes[0].t - rx_t,
            probes[0].t,
            kernel,
            slop,
            describe_segment(probes[0]),
        )
    ]

    def answered(after: float, before: float = float("inf")) -> bool:
        return any(
            x.name == "keepalive-ack" and x.fate == "delivered" and x.conn == conn and after <= x.t < before
            for x in record.segments
        )

    probes_out = 1  # tcp_keepalive_timer(): icsk_probes_out, reset by any ACK
    for prev, s in zip(probes, probes[1:]):
        late = kernel.slack(ka.interval)
        if answered(prev.t, s.t):  # the timer runs an interval on, re-arms for the rest
            probes_out, wait = 0, max(ka.interval, ka.idle)
            late += kernel.slack(ka.idle - ka.interval) if ka.idle > ka.interval else 0.0
        else:
            wait = ka.interval
        out.append(
            _gap_check(
                f"{label} #{s.nth} after #{prev.nth}",
                wait,
                s.t - prev.t,
                s.t,
                kernel,
                slop,
                describe_segment(s),
                extra_ok=probes_out < ka.count,
                late=late,
            )
        )
        probes_out += 1
    last = probes[-1]
    if answered(last.t):
        return out
    if probes_out < ka.count:
        end = record.t_stop
        if end is None or last.t + ka.interval < end - slop.worst:
            out.append(
                Check(
                    f"{label} count",
                    False,
                    f"another at t={last.t + ka.interval:.3f}s",
                    f"{len(probes)}, the last at t={last.t:.3f}s",
                    evidence=describe_segment(last),
                )
            )
        return out
    # tcp_keepalive_timer() aborts when icsk_probes_out reaches keepalive_probes: not
    # one probe more
    out.append(
        Check(f"{label} count", probes_out == ka.count, ka.count, probes_out, evidence=describe_segment(last))
    )
    return out + _abort(b, kernel, record, last, ka.interval, slop, "ETIMEDOUT")


def _quiet(b, kernel, record: Record, slop: Slop) -> list:
    """Nothing to send and no keepalive: the survivor sends nothing into the silence and
    nothing ends its connection (claim F7's other half)."""
    back = path_back(b.fault)
    end = back if back is not None else float("inf")
    sent = [s for s in record.segments if s.sender == b.host and b.fault.at <= s.t < end]
    gone = _closed(record, b.host, b.fault.at)
    gone = gone if gone is not None and gone.t < end else None
    span = f"after t={b.fault.at:g}s" + (f" until t={end:g}s" if end != float("inf") else "")
    return [
        Check(
            f"model: {b.host} sends nothing {span}",
            not sent,
            0,
            len(sent),
            evidence=describe_segment(sent[0]) if sent else "",
        ),
        Check(
            f"model: {b.host} stays ESTABLISHED",
            gone is None,
            "ESTABLISHED",
            "CLOSE" if gone else "ESTABLISHED",
            evidence=f"t={gone.t:.3f}s ESTABLISHED->CLOSE" if gone else "",
        ),
    ]
