"""The run against the teardown model (core/model/teardown/). Pure; core/check/'s
check_model calls `check_teardown` when the prediction has a teardown part.

What is compared, and from which anchor (the apps' sleeps are Python's, a few ms off,
so each FIN chain is timed from its own first FIN, and states by their durations):
- how many segments of each teardown name each side sent;
- each retransmitted FIN's time since that side's first FIN, within [nominal - 10 ms,
  nominal + modelled timer lateness + forwarding slop];
- each host's states after ESTABLISHED, in order, up to where observation stopped;
- how long each state lasts that a timer ends (FIN_WAIT1 or LAST_ACK given up,
  FIN_WAIT2 after tcp_fin_time(), TIME_WAIT), or that it outlasts the run;
- each data segment RACK re-sends into a hole the peer SACKed around (model/teardown/
  sack.py), at its time since the client's first SYN: from the SACK's arrival to the
  reordering timer's latest, plus the forwarding slop.
"""

from __future__ import annotations

import dataclasses

from tcplab.core.check.base import (
    Check,
    Slop,
    describe_segment,
    machine_too_slow,
    not_judged,
    segment_at,
    slow_legs,
)
from tcplab.core.check.states import DIAG_SLOP, Stay, observed_until, stays
from tcplab.core.model.teardown.params import RACE_CAP, RACE_NOISE, TEARDOWN_NAMES
from tcplab.core.model.teardown.prediction import PredictedState, TeardownPrediction
from tcplab.core.record import Record


MODEL_SLOP = 0.010
CHAINS = ("fin", "peer-fin")
# core/model/teardown/keepalive.py: the probes and their answers, each probe timed from
# the client's first SYN (the model's clock; its chain goes on from the probe before)
KEEPALIVE_NAMES = ("keepalive", "keepalive-ack")


def check_teardown(pred: TeardownPrediction, record: Record, slop: Slop) -> list:

    if pred.unsupported:
        return [not_judged("teardown", pred.unsupported)]
    pred, race_note = _order(pred, record, slop)
    if pred.races and pred.race_bound > RACE_CAP:
        return [
            not_judged(
                "teardown",
                f"an app call and a segment met within "
                f"{pred.race_bound * 1000:.0f} ms, the stamps' uncertainty in "
                f"this run (over {RACE_CAP * 1000:.0f} ms: too loaded to order "
                "them)",
                race_note,
            )
        ]
    checks = []
    for sender in ("client", "server"):
        for name in TEARDOWN_NAMES + KEEPALIVE_NAMES:
            checks += _segments(pred, record, sender, name, slop)
        checks += _rack_resends(pred, record, sender, slop)
    end = observed_until(record)
    offset = _offset(pred, record)
    for host in ("client", "server"):
        checks += _states(pred.states.get(host, []), host, record, end, offset, slop, race_note)
    checks = _slow_to_act(checks, record)
    if pred.unmodelled_orders and not all(c.passed for c in checks):
        # The run did not take the modelled order(s); it may have taken one the model
        # does not cover.
        return [
            not_judged(
                "teardown",
                "the run matches no modelled order of a race, "
                f"and another order is not modelled ({pred.unmodelled_orders[0]})",
                race_note,
            )
        ]
    return checks


def _slow_to_act(checks: list, record: Record) -> list:
    """The teardown's counts and states follow from the order in which a host met a
    segment and did its own things (a send, a timer, a call). The model has a segment
    meet its host when the router let it go, within RACE_NOISE; a host that acted on a
    delivered segment later than that beyond the machine's usual way (slow_legs) may
    have sent first what the model has it send after (the 6.1 TCG guest, gen-3003: the
    client acted on the server's FIN 5 ms after the router delivered it, and its data,
    sent meanwhile, drew the server's RST before the ACK of the FIN the model foresaw).
    Such a run's failed counts and states are not judged."""
    leg, proof = slow_legs(record)
    if leg <= RACE_NOISE:
        return checks
    why = (
        f"the machine was slow between the router and its hosts, past the "
        f"{RACE_NOISE * 1000:g} ms within which the model orders a segment against its "
        f"host's own acts: {proof}"
    )
    return [
        machine_too_slow(c, why) if c.tolerance is None and c.judged and not c.passed else c for c in checks
    ]


SWAP = {"fin": "peer-fin", "peer-fin": "fin", "fin-ack": "last-ack", "last-ack": "fin-ack"}


def _as_the_router_named(pred: TeardownPrediction, record: Record) -> TeardownPrediction:
    """In a simultaneous close both FINs are on their way before either arrives: which
    one the router names `fin` (and so which ACK is `fin-ack` and which `last-ack`) is
    the order the two reached it, not the kernels' doing (gen-4222: the two close()
    calls 20 us apart, the later one's FIN at the router first). When the model's first
    FIN is the other host's and both hosts closed first (FIN_WAIT1: each sent its FIN
    before the other's came), its names follow the router's. Not only through CLOSING:
    an ACK of one FIN may overtake the other FIN at the router (a FIN the hook queues,
    an ACK it lets pass), and that host goes through FIN_WAIT2 (gen-5039 in CI)."""
    seen = [s for s in record.segments if s.name == "fin" and not s.injected]
    want = [s for s in pred.segments if s.name == "fin"]
    crossed = all(any(x.state == "FIN_WAIT1" for x in pred.states.get(h, [])) for h in ("client", "server"))
    if not (seen and want and crossed and seen[0].sender != want[0].sender):
        return pred
    return dataclasses.replace(
        pred,
        segments=[dataclasses.replace(s, name=SWAP.get(s.name, s.name)) for s in pred.segments],
        maybe=[dataclasses.replace(s, name=SWAP.get(s.name, s.name)) for s in pred.maybe],
    )


def _order(pred: TeardownPrediction, record: Record, slop: Slop = Slop()) -> tuple[TeardownPrediction, str]:
    """Where an app call and a segment reached a host too close to order (a race), the
    model has every order's outcome: the run is judged against the one it matches best
    (teardown segment counts, then each host's states), and the checks say so."""
    if not pred.races and not pred.alternatives:
        return _as_the_router_named(pred, record), ""

    def score(p: TeardownPrediction) -> tuple:
        # counted as the checks count them: up to where observation stopped (_due();
        # gen-16174 on 6.18: a held SYN reached the server's TIME_WAIT after it, and
        # the ACK and RST it drew were out of the record; scored on all it sent, the
        # outcome that matches was passed over for one that does not)
        counts = 0
        for h in ("client", "server"):
            for n in (*TEARDOWN_NAMES, *KEEPALIVE_NAMES, "data"):
                want, maybe = _due(p, record, h, n, slop)
                counts += len(want) <= len(record.sent_by(h, n)) <= len(want) + len(maybe)
        states = sum(
            [x.state for x in p.states.get(h, [])]
            == [s.state for s in _teardown_stays(record, h)][: len(p.states.get(h, []))]
            for h in ("client", "server")
        )
        # then the retransmission chains' timing, as they will be judged (_segments):
        # two outcomes may send the same counts, one probing the FIN at once, the other
        # only after the ACK that beat the probe's timer (gen-1028 on 6.18, CI of
        # session 9: the data's ACK 0.26 ms into the probe's bucket, the probe 212 ms on)
        timed = 0
        for h in ("client", "server"):
            for n in CHAINS:
                chain = _chain(p.of(h, n), record.sent_by(h, n), slop, p.rto_spread.get(h, 0.0))
                for _w, _x, _nominal, lo, hi, got in chain:
                    timed += lo <= got <= hi
        return (counts + states, timed)

    best = max([_as_the_router_named(p, record) for p in [pred, *pred.alternatives]], key=score)
    ways = "; ".join(
        f"the {r.host}'s {r.call if r.call == 'timer' else r.call + '()'} "
        f"{'after' if after else 'before'} {r.what} "
        f"({abs(r.call_t - r.arrival_t) * 1000:.2f} ms apart)"
        for r, after in zip(pred.races, best.orders or pred.orders)
    )
    # a race this outcome met of its own, flipped in it: the call went the other way
    ways = "; ".join(
        [ways]
        + [
            f"the {r.host}'s {r.call if r.call == 'timer' else r.call + '()'} "
            f"{'before' if r.call_t > r.arrival_t else 'after'} {r.what} "
            f"({abs(r.call_t - r.arrival_t) * 1000:.2f} ms apart)"
            for r in best.flipped
        ]
    )
    n = 1 + len(pred.alternatives)
    if pred.rack_choice:
        ways = _and(
            ways,
            "RACK "
            + ("waited for its reordering timer" if best.rack_wait else "re-sent the hole's data at once"),
        )
    if pred.delack_choice:
        ways = _and(
            ways,
            "the delayed ACK of the FIN "
            + ("waited (and what the host sent next carried it)" if best.delack_late else "left at once"),
        )
    handover = next((p.handover_choice for p in [best, pred, *pred.alternatives] if p.handover_choice), None)
    if handover is not None:
        host, what, after = handover
        ways = _and(
            ways,
            f"{what}, {_gap(after)} after the segment that closed the {host}'s full socket, "
            + (
                "was lost with it (another CPU's; tcp_rcv_state_process() in TCP_CLOSE)"
                if best.handover_lost
                else "reached what replaced it"
            ),
        )
    if any(p.giveup_choice for p in [pred, *pred.alternatives]):
        ways = _and(
            ways,
            "the retransmission timer, late within its slack, "
            + ("reached the give-up limit" if best.giveup_early else "came before the give-up limit"),
        )
    note = (
        f"race: {n} outcomes modelled, judged as {ways}"
        if n > 1
        else f"race, one outcome whichever way: {ways}"
    )
    best.races, best.unmodelled_orders = pred.races, pred.unmodelled_orders
    return best, note


def _gap(seconds: float) -> str:
    """Two segments' distance: microseconds, where that is what the router resolves."""
    return f"{seconds * 1e6:.0f} us" if seconds < 1e-4 else f"{seconds * 1000:.2f} ms"


def _and(ways: str, more: str) -> str:
    """One more way the judged outcome went, after those said so far."""
    return "; ".join(filter(None, [ways, more]))


def _offset(pred: TeardownPrediction, record: Record) -> float | None:
    """Record time minus model time, from the first FIN (None: no FIN seen or foreseen)."""
    seen = [s for s in record.segments if s.name == "fin"]
    want = [s for s in pred.segments if s.name == "fin"]
    return seen[0].t - want[0].t if seen and want else None


def _due(pred: TeardownPrediction, record: Record, sender: str, name: str, slop: Slop) -> tuple[list, list]:
    """The segments of that name the model has the host send while the run was
    observed, and those it may or may not have sent (pred.maybe). What the model has
    the kernel send after observation stopped cannot be in the record; what is due
    within the window around the stop may or may not be."""
    want = pred.of(sender, name)
    maybe = [s for s in pred.maybe if s.sender == sender and s.name == name]
    syns = record.sent_by("client", "syn")
    if syns:
        end = observed_until(record) - syns[0].t
        maybe += [p for p in want if end - p.slack - slop.worst <= p.t <= end + slop.worst]
        want = [p for p in want if p.t < end - p.slack - slop.worst]
    return want, maybe


def _segments(pred: TeardownPrediction, record: Record, sender: str, name: str, slop: Slop) -> list:
    want, maybe = _due(pred, record, sender, name, slop)
    seen, syns = record.sent_by(sender, name), record.sent_by("client", "syn")
    if not want and not seen:
        return []
    label = f"model: {sender} {name}"
    count = len(want) if not maybe else f"{len(want)} to {len(want) + len(maybe)}"
    out = [
        Check(
            f"{label} count",
            len(want) <= len(seen) <= len(want) + len(maybe),
            count,
            len(seen),
            evidence=describe_segment(seen[-1]) if seen else "",
        )
    ]
    if name == "keepalive" and syns:
        return out + _probes(want, seen, syns[0].t, slop)
    if name not in CHAINS or not want or not seen:
        return out
    for p, s, nominal, lo, hi, got in _chain(want, seen, slop, pred.rto_spread.get(sender, 0.0)):
        out.append(segment_at(f"{label} #{p.nth} after #1", nominal, lo, hi, got, s, slop.at(s.t)))
    return out


def _chain(want: list, seen: list, slop: Slop, spread: float = 0.0) -> list[tuple]:
    """Each retransmission after the first, paired with the model's, and its window
    since the first: (predicted, seen, nominal, lo, hi, got). Judged by _segments and
    scored the same way by _order. The probe and the RTOs all scale with the RTO, which
    may be up to `spread` of itself shorter than the model's (TeardownPrediction.
    rto_spread: the host's unseen way to the router): so may the chain, from its
    first segment."""
    out = []
    for p, s in list(zip(want, seen))[1:]:
        nominal = p.t - want[0].t
        hi = nominal + (p.slack - want[0].slack) + slop.at(s.t)
        lo = nominal - MODEL_SLOP - nominal * spread
        out.append((p, s, nominal, lo, hi, round(s.t - seen[0].t, 6)))
    return out


def _probes(want: list, seen: list, t0: float, slop: Slop) -> list:
    """Each keepalive probe at [nominal - 10 ms, nominal + its timer's lateness +
    slop] since the client's first SYN (the model re-anchors on the probe before)."""
    out = []
    for p, s in zip(want, seen):
        got = round(s.t - t0, 6)
        lo, hi = p.t - MODEL_SLOP, p.t + p.slack + slop.at(s.t)
        out.append(segment_at(f"model: {p.sender} keepalive #{p.nth} at", p.t, lo, hi, got, s, slop.at(s.t)))
    return out


def _rack_resends(pred: TeardownPrediction, record: Record, sender: str, slop: Slop) -> list:
    """Each re-sending of data that RACK does in the model, against the run's segment
    of that name and number: a retransmission, within [nominal - 10 ms, nominal +
    the reordering timer's latest + slop] (the anchor is the client's first SYN: the
    SACK that causes it reached the sender when the router let it go)."""
    syns = record.sent_by("client", "syn")
    if not syns:
        return []
    end = observed_until(record) - syns[0].t
    seen = {s.nth: s for s in record.sent_by(sender, "data")}
    out = []
    for p in pred.of(sender, "data"):
        if p.cause != "rack" or p.t + p.slack + slop.worst >= end:
            continue
        s = seen.get(p.nth)
        label = f"model: {sender} data #{p.nth} re-sent by RACK at"
        if s is None or not s.retransmission:
            out.append(
                Check(
                    label,
                    False,
                    round(p.t, 4),
                    "no such retransmission",
                    evidence=describe_segment(s) if s else "",
                )
            )
            continue
        got = round(s.t - syns[0].t, 6)
        hi = p.t + p.slack + slop.at(s.t)
        out.append(segment_at(label, p.t, p.t - MODEL_SLOP, hi, got, s, slop.at(s.t)))
    return out


def _teardown_stays(record: Record, host: str) -> list[Stay]:
    mine = stays(record, host)
    last = max((i for i, s in enumerate(mine) if s.state == "ESTABLISHED"), default=None)
    return mine[last + 1 :] if last is not None else []


def _observed_stays(seen: list[Stay], until: float) -> list[Stay]:
    """The stays up to where observation stopped (and the window around it). The hosts'
    inet_diag pollers run on until the lab stops each host's child, after the apps and
    tracefs, while the router's record of segments has ended: a change seen then has
    its cause out of the record, as what the model predicts then is out of the
    judgement (gen-2051 in the 6.1 guest: a handshake ACK the router held 2 s, released
    0.15 s after observation stopped, reached the server's TIME_WAIT, and the poller saw
    the minisocket gone 8 ms later; whatever answered it was not recorded). A stay left
    after that is still going on as far as the run is judged."""
    kept = [s for s in seen if s.start <= until]
    if kept and kept[-1].end is not None and kept[-1].end > until:
        kept[-1] = dataclasses.replace(kept[-1], end=None, leave=None, leave_why="")
    return kept


DIAG_SURE = 0.1  # inet_diag polls every few ms; a minisocket living this long is seen


def _fleeting(want: list[PredictedState]) -> set[int]:
    """Indexes of predicted TIME_WAIT stays (timewait minisockets: only inet_diag sees
    them) shorter than DIAG_SURE: an RST that kills one within a poll leaves the record
    showing the tracepoint's FIN_WAIT2|CLOSING->CLOSE handover and nothing else."""
    return {i for i, p in enumerate(want[:-1]) if p.state == "TIME_WAIT" and want[i + 1].t - p.t < DIAG_SURE}


def _states(
    want: list[PredictedState],
    host: str,
    record: Record,
    end: float,
    offset: float | None,
    slop: Slop,
    race_note: str = "",
) -> list:
    # Predicted changes up to where observation stopped; one due within the window
    # around the end may or may not have been seen.
    def upto(limit: float) -> list[str]:
        return [p.state for p in want if offset is None or p.t + offset <= limit]

    window = max((p.slack for p in want), default=0.0) + slop.worst + DIAG_SLOP
    seen = _observed_stays(_teardown_stays(record, host), end + window)
    if not want and not seen:
        return []
    names = [s.state for s in seen]
    short, long = upto(end - window), upto(end + window)
    ok = names in (short, long) or (names[: len(short)] == short and names == long[: len(names)])
    fleeting = _fleeting(want)
    if not ok and fleeting:
        # a minisocket too short-lived for inet_diag's polls may be missing
        short, long = ([x for i, x in enumerate(seq) if i not in fleeting] for seq in (short, long))
        ok = names in (short, long) or (names[: len(short)] == short and names == long[: len(names)])
    proof = "; ".join(s.describe() for s in seen)
    out = [
        Check(
            f"model: {host} states after ESTABLISHED",
            ok,
            long,
            names,
            evidence=f"{proof} ({race_note})" if race_note else proof,
        )
    ]
    for i, p in enumerate(want):
        if p.state == "CLOSE":
            continue
        nxt = want[i + 1] if i + 1 < len(want) else None
        stay = next((s for s in seen if s.state == p.state), None)
        if stay is None:
            continue  # the sequence check above already says so
        if nxt is None:  # nothing ends it before the run does (or ever)
            got = "still in it when the run ended" if stay.end is None else round(stay.end - stay.start, 6)
            out.append(
                Check(
                    f"model: {host} {p.state} lasts",
                    stay.end is None,
                    "past the end of the run",
                    got,
                    evidence=stay.describe(),
                )
            )
            continue
        if nxt.cause != "timer":
            continue  # ended by a segment: the segment checks time it
        nominal = nxt.t - p.t
        lo = nominal - p.slack - MODEL_SLOP
        sl = slop.at(stay.end if stay.end is not None else end)
        hi = nominal + nxt.slack + sl + DIAG_SLOP
        if stay.end is None:
            due = (nxt.t + offset) if offset is not None else None
            passed = due is not None and due + nxt.slack + sl > end
            out.append(
                Check(
                    f"model: {host} {p.state} lasts",
                    passed,
                    round(nominal, 4),
                    "still in it when the run ended",
                    round(hi - nominal, 4),
                    stay.describe(),
                    one_sided=True,
                    slop=sl,
                )
            )
            continue
        got = round(stay.end - stay.start, 6)
        earliest, evidence = got, stay.describe()
        bracket = stay.bracket()
        if bracket is not None:  # the end lies in (after, t]: no longer a guess
            earliest, hi = bracket[0], hi - DIAG_SLOP
            evidence += bracket[1]
        out.append(
            Check(
                f"model: {host} {p.state} lasts",
                lo <= got and earliest <= hi,
                round(nominal, 4),
                got,
                round(hi - nominal, 4),
                evidence,
                one_sided=True,
                slop=sl,
            )
        )
    return out
