"""The run against the SYN-flood model (tcplab/core/model/flood.py). Pure.

The flood's connections are told apart from the genuine one by address: the genuine
connection is the one whose SYN left the client's connect() socket (its local port),
every connection from another client-side address is the flood's. The flood is judged
here; the genuine connection is judged by the handshake model (check.check_model) on a
view of the record that holds only its segments and states, with its first SYN as t=0.

The model is re-run on the times the flood's SYNs and the genuine SYN really reached
the router (they are the scenario's doing, not the kernel's), so the verdict is about
the listener: which SYN got a request, a cookie or nothing; how many SYN-ACKs each
request sent, each retransmission judged from the one before it in a one-sided window
[wait - 10 ms, wait + the timer wheel's lateness (Kernel.slack) + the run's forwarding
slop]; when requests were dropped; how many were held at once; and the server's TcpExt
counters between its first and last `netstat`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

from tcplab.core.check.base import Check, MODEL_SLOP, Slop, describe_segment
from tcplab.core.check.handshake import check_handshake
from tcplab.core.events import AppCalled, SegmentSeen, StateChanged
from tcplab.core.model.flood import (
    COOKIE,
    DROPPED,
    FloodPrediction,
    REQUEST,
    predict_flood,
    ranges,
    request_wait,
)
from tcplab.core.record import Record


DIAG_POLL = 0.05  # a request's end is seen by inet_diag polling: one poll late, loaded
# The TcpExt counters the model predicts (each increment, with its time).
COUNTERS = (
    "SyncookiesSent",
    "SyncookiesRecv",
    "SyncookiesFailed",
    "TCPReqQFullDoCookies",
    "TCPReqQFullDrop",
    "ListenDrops",
    "TCPSynRetrans",
    "TCPTimeouts",
)


def applies(prediction) -> bool:
    return getattr(prediction, "flood", None) is not None


@dataclass
class FloodConn:
    number: int  # the flood SYN's place in arrival order, from 1
    syn: SegmentSeen
    synacks: list[SegmentSeen] = field(default_factory=list)
    syn_recv: StateChanged | None = None  # inet_diag saw its request
    closed: StateChanged | None = None  # ... and saw it go (SYN_RECV -> CLOSE)

    @property
    def answer(self) -> str:
        if self.syn_recv is not None:
            return REQUEST
        return COOKIE if self.synacks else DROPPED


@dataclass
class Observed:
    flood: list[FloodConn]
    genuine: SegmentSeen | None  # the genuine client's first SYN


def observe(record: Record) -> Observed:
    syns = [s for s in record.segments if s.sender == "client" and s.name == "syn" and not s.injected]
    genuine = _genuine_syn(record, syns)
    flood_call = next((c for c in record.apps if c.host == "client" and c.call == "flood"), None)
    first: dict[int, SegmentSeen] = {}
    for s in syns:
        first.setdefault(s.conn, s)

    def spoofed(s: SegmentSeen) -> bool:
        if genuine is not None:
            return s.src != genuine.src
        end = flood_call.t_end if flood_call and flood_call.t_end is not None else s.t
        return flood_call is not None and flood_call.t <= s.t <= end + 0.05

    flood = [
        FloodConn(i + 1, s)
        for i, s in enumerate(sorted((s for s in first.values() if spoofed(s)), key=lambda s: s.t))
    ]
    by_conn = {c.syn.conn: c for c in flood}
    by_tuple = {(c.syn.src, c.syn.sport): c for c in flood}
    for s in record.segments:
        if s.conn in by_conn and s.sender == "server" and s.name == "syn-ack" and not s.injected:
            by_conn[s.conn].synacks.append(s)
    for e in record.states():
        c = by_tuple.get((e.raddr, e.rport)) if e.host == "server" else None
        if c is None:
            continue
        if e.new == "SYN_RECV" and c.syn_recv is None:
            c.syn_recv = e
        elif e.old == "SYN_RECV" and e.new == "CLOSE" and c.closed is None:
            c.closed = e
    return Observed(flood, genuine)


def _genuine_syn(record: Record, syns: list[SegmentSeen]) -> SegmentSeen | None:
    """The first SYN from the socket of the client's first connect()."""
    for c in sorted(
        (c for c in record.apps if c.host == "client" and c.call == "connect"), key=lambda c: c.t
    ):
        mine = [s for s in syns if s.t >= c.t - 0.05 and (c.lport is None or s.sport == c.lport)]
        if mine:
            return mine[0]
    return None


def genuine_view(record: Record, obs: Observed) -> Record:
    """The record without the flood: what the handshake model judges."""
    conns = {c.syn.conn for c in obs.flood}
    tuples = {(c.syn.src, c.syn.sport) for c in obs.flood}

    def keep(e: StateChanged) -> bool:
        return not (e.host == "server" and (e.raddr, e.rport) in tuples)

    return dataclasses.replace(
        record,
        segments=[s for s in record.segments if s.conn not in conns],
        tracepoint_states=[e for e in record.tracepoint_states if keep(e)],
        diag_states=[e for e in record.diag_states if keep(e)],
    )


def check_flood(prediction, record: Record) -> list[Check]:
    """The flood's checks, then the handshake model's on the genuine connection."""
    fp: FloodPrediction = prediction.flood
    obs = observe(record)
    handshake = dataclasses.replace(prediction)  # the same prediction, without the flood
    rest = check_handshake(handshake, genuine_view(record, obs))
    if not obs.flood:
        return [Check("model: flood SYNs", False, fp.syns, 0, evidence="no flood SYN seen")] + rest
    end = record.t_stop if record.t_stop is not None else max((e.t for e in record.events()), default=0.0)
    # one slop for the flood's checks: each judges many requests of the whole flood
    slop = Slop.of(record).worst
    head = [
        Check(
            "model: flood SYNs",
            len(obs.flood) == fp.syns,
            fp.syns,
            len(obs.flood),
            evidence=describe_segment(obs.flood[-1].syn),
        )
    ]

    # The request timers of two CPUs may run at once and read the queue's length
    # before each other's drop (model/flood.py _Sim._stale_read): with each CPU but
    # one making such a read, the kernel may drop more than in-order expiries would.
    # Both outcomes are the kernel's; the record says which it was.
    def judged_against(stale: int) -> list[Check]:
        again = predict_flood(
            fp.kernel,
            fp.params,
            fp.client,
            [c.syn.t for c in obs.flood],
            obs.genuine.t if obs.genuine is not None else None,
            until=end + MODEL_SLOP,
            stale=stale,
        )
        return head + _answers(again, obs) + _requests(again, obs, end, slop) + _counters(again, record, slop)

    out = judged_against(0)  # in-order expiries: what is shown unless a race fits instead
    failed_in_order = {c.name for c in out if c.judged and not c.passed}
    for stale in range(1, fp.kernel.cpus) if failed_in_order else ():
        tried = judged_against(stale)
        if all(c.passed or not c.judged for c in tried):
            out = [_raced(c, stale) if c.name in failed_in_order else c for c in tried]
            break
    return [dataclasses.replace(c, slop=slop) if c.one_sided else c for c in out] + rest


# -- which SYN got what -------------------------------------------------------------------

_LABEL = {REQUEST: "a request (SYN_RECV)", COOKIE: "a cookie", DROPPED: "nothing"}


def _raced(c: Check, stale: int) -> Check:
    """A check the in-order expiries failed and the race's variant passes: says so."""
    return dataclasses.replace(
        c,
        evidence=(c.evidence + "; " if c.evidence else "")
        + f"race: request timers on two CPUs read the queue's length at once ({stale} read "
        "before another CPU's drop counted, one more request dropped); both orders modelled",
    )


def _answers(pred: FloodPrediction, obs: Observed) -> list[Check]:
    out = []
    for answer in (REQUEST, COOKIE, DROPPED):
        want = pred.indexes(answer)
        got = [c for c in obs.flood if c.answer == answer]
        if not want and not got:
            continue
        odd = next((c for c in got if c.number not in want), None) or next(
            (c for c in obs.flood if c.number in want and c.answer != answer), None
        )
        out.append(
            Check(
                f"model: flood SYNs answered with {_LABEL[answer]}",
                [c.number for c in got] == want,
                ranges(want),
                ranges([c.number for c in got]),
                evidence=_describe(odd) if odd else _describe(got[-1]),
            )
        )
    cookies = [c for c in obs.flood if c.answer == COOKIE]
    if cookies:  # no request, no timer: a cookie SYN-ACK is never sent again
        again = [c for c in cookies if len(c.synacks) > 1]
        out.append(
            Check(
                "model: flood cookie SYN-ACKs sent again",
                not again,
                0,
                sum(len(c.synacks) - 1 for c in again),
                evidence=_describe(again[0]) if again else f"{len(cookies)} cookie SYN-ACKs, one each",
            )
        )
    return out


def _describe(c: FloodConn) -> str:
    s = c.syn
    text = f"flood SYN #{c.number} t={s.t:.3f}s {s.src}:{s.sport}: {c.answer}, {len(c.synacks)} SYN-ACK(s)"
    if c.synacks:
        text += " at " + ", ".join(f"{a.t:.3f}" for a in c.synacks)
    if c.syn_recv is not None:
        text += f"; SYN_RECV seen t={c.syn_recv.t:.3f}s"
    if c.closed is not None:
        text += f", gone t={c.closed.t:.3f}s ({c.closed.source})"
    return text


# -- the requests: SYN-ACKs, their times, their end ----------------------------------------


def _requests(pred: FloodPrediction, obs: Observed, end: float, slop: float) -> list[Check]:
    reqs = pred.flood_requests()
    mine = [c for c in obs.flood if c.answer == REQUEST]
    if not reqs and not mine:
        return []
    k = pred.kernel
    out = [
        Check(
            "model: flood requests held at once",
            _peak(mine) == pred.peak,
            pred.peak,
            _peak(mine),
            evidence=f"{len(mine)} flood requests seen by inet_diag",
        )
    ]
    # How many SYN-ACKs each request sent before the run ended. Which requests the
    # kernel drops first is the timer wheel's order (a bucket runs last-armed first),
    # so the counts are compared as a multiset.
    ranges = sorted(_seen_by(r.synacks, r.slacks, end, slop) for r in reqs)
    counts = sorted(len(c.synacks) for c in mine)
    fits = len(ranges) == len(counts) and all(lo <= n <= hi for (lo, hi), n in zip(ranges, counts))
    out.append(
        Check(
            "model: flood SYN-ACKs per request",
            fits,
            _multiset(ranges),
            _multiset([(n, n) for n in counts]),
            evidence="; ".join(_describe(c) for c in mine[:3])
            + (f"; ... {len(mine) - 3} more" if len(mine) > 3 else ""),
        )
    )
    # Each retransmission, from the SYN-ACK before it: the request timer's wait.
    gaps: dict[int, list[tuple[float, FloodConn, SegmentSeen]]] = {}
    for c in mine:
        for i in range(1, len(c.synacks)):
            gaps.setdefault(i, []).append((c.synacks[i].t - c.synacks[i - 1].t, c, c.synacks[i]))
    for i, seen in sorted(gaps.items()):
        wait = request_wait(i - 1)
        hi = wait + k.slack(wait) + slop
        out.append(
            _worst(
                f"model: flood request SYN-ACK #{i + 1} after #{i}",
                wait,
                hi,
                [(g, describe_segment(s)) for g, _c, s in seen],
            )
        )
    # The requests the timer dropped, and when (inet_diag sees the request go).
    drops = []  # (when, how late it may be)
    for r in reqs:
        if r.fate == "dropped":
            assert r.end is not None  # model/flood.py: its timer dropped it at `end`
            drops.append((r.end, r.end_slack))
    lo = sum(1 for t, late in drops if t + late + slop + DIAG_POLL < end)
    hi_n = sum(1 for t, _late in drops if t - MODEL_SLOP <= end)
    gone = [c for c in mine if c.closed is not None]
    out.append(
        Check(
            "model: flood requests dropped",
            lo <= len(gone) <= hi_n,
            lo if lo == hi_n else f"{lo}-{hi_n}",
            len(gone),
            evidence=_describe(gone[0]) if gone else "none seen to go",
        )
    )
    if gone:
        timed = []
        for c in gone:
            assert c.closed is not None  # `gone`: the requests seen to go
            wait = request_wait(len(c.synacks) - 1)  # the expiry after its last SYN-ACK
            timed.append((c.closed.t - c.synacks[-1].t, wait, _describe(c)))
        waits = {w for _g, w, _d in timed}
        for wait in sorted(waits):
            hi = wait + k.slack(wait) + slop + DIAG_POLL
            out.append(
                _worst(
                    f"model: flood request dropped {wait:g} s after its last SYN-ACK",
                    wait,
                    hi,
                    [(g, d) for g, w, d in timed if w == wait],
                )
            )
    return out


def _seen_by(times: list[float], slacks: list[float], end: float, slop: float) -> tuple[int, int]:
    """How many of these predicted SYN-ACKs the run must have seen, and may have: one
    whose window straddles the end may or may not be in the record."""
    must = sum(1 for t, s in zip(times, slacks) if t + s + slop < end)
    may = sum(1 for t in times if t - MODEL_SLOP <= end)
    return must, may


def _multiset(ranges: list[tuple[int, int]]) -> str:
    """[(3, 3)] * 9 + [(4, 4)] * 8 -> '9 x 3, 8 x 4'."""
    counts = Counter(ranges)
    return ", ".join(
        f"{n} x {lo}" if lo == hi else f"{n} x {lo}-{hi}" for (lo, hi), n in sorted(counts.items())
    )


def _worst(name: str, wait: float, hi: float, seen: list[tuple[float, str]]) -> Check:
    """One check for many requests' same timer: each within [wait - 10 ms, hi]; the
    actual shown is the one furthest out (or the latest, when all fit)."""
    lo = wait - MODEL_SLOP
    bad = [(g, d) for g, d in seen if not lo <= g <= hi]
    g, d = max(bad or seen, key=lambda x: max(lo - x[0], x[0] - hi) if bad else x[0])
    spread = (
        f"{len(seen) - len(bad)} of {len(seen)} within; "
        f"{min(x[0] for x in seen):.3f}-{max(x[0] for x in seen):.3f} s"
    )
    return Check(
        name, not bad, round(wait, 4), round(g, 6), round(hi - wait, 4), f"{spread}; {d}", one_sided=True
    )


def _peak(conns: list[FloodConn]) -> int:
    """Most requests inet_diag saw at once."""
    opened, closed = [], []
    for c in conns:
        assert c.syn_recv is not None  # a request: inet_diag saw it (FloodConn.answer)
        opened.append((c.syn_recv.t, 1))
        if c.closed is not None:
            closed.append((c.closed.t, -1))
    moves = sorted(opened + closed, key=lambda m: (m[0], m[1]))
    held = peak = 0
    for _t, d in moves:
        held += d
        peak = max(peak, held)
    return peak


# -- the server's counters ------------------------------------------------------------------


def _counters(pred: FloodPrediction, record: Record, slop: float) -> list[Check]:
    """TcpExt deltas between the server's first and last `netstat` (from the namespace's
    creation, when it reads them once). An increment whose time window overlaps a
    read may fall on either side of it: the expected value is then a range."""
    reads = sorted(
        (
            c
            for c in record.apps
            if c.host == "server" and c.call == "netstat" and c.counters is not None and c.result == "ok"
        ),
        key=lambda c: c.t,
    )
    if not reads:
        return []
    first: AppCalled | None = reads[0] if len(reads) > 1 else None
    last = reads[-1]
    # `reads` keeps only the netstat calls that returned counters
    assert last.counters is not None
    before: dict[str, int] = {}
    if first is not None:
        assert first.counters is not None
        before = first.counters
    start_lo = first.t if first is not None else float("-inf")
    start_hi = (first.t_end or first.t) if first is not None else float("-inf")
    want_lo: Counter[str] = Counter()
    want_hi: Counter[str] = Counter()
    for t, slack, name in pred.counters:
        lo = t if slack == 0 else t - MODEL_SLOP
        hi = t + slack + slop
        if lo > start_hi and hi < last.t:
            want_lo[name] += 1
        if hi >= start_lo and lo <= (last.t_end or last.t):
            want_hi[name] += 1
    out = []
    for name in COUNTERS:
        got = last.counters.get(name, 0) - before.get(name, 0)
        lo, hi = want_lo[name], want_hi[name]
        if not hi and not got:
            continue
        span = f"netstat t={first.t:.3f}s" if first is not None else "the namespace's start"
        out.append(
            Check(
                f"model: server TcpExt {name}",
                lo <= got <= hi,
                lo if lo == hi else f"{lo}-{hi}",
                got,
                evidence=f"{before.get(name, 0)} at {span}, "
                f"{last.counters.get(name, 0)} at netstat t={last.t:.3f}s",
            )
        )
    return out
