"""The handshake model's checks: each handshake segment's count and time since the
client's first SYN, connect()'s result and time, the request's drop; the teardown,
opening-state and established checks are gathered here too (they share its slop and
its origins)."""

from __future__ import annotations

from tcplab.core.check.base import (
    Check,
    describe_call,
    describe_segment,
    Slop,
    not_judged,
    segment_at,
    window,
)
from tcplab.core.check.established import check_established
from tcplab.core.check.open import check_opening_states
from tcplab.core.check.teardown import check_teardown
from tcplab.core.events import AppCalled, StateChanged
from tcplab.core.model.inputs import client_hand_over
from tcplab.core.model.teardown.params import TEARDOWN_NAMES
from tcplab.core.record import Record


MODEL_NAMES = ("syn", "syn-ack", "ack", "rst")


def check_handshake(prediction, record: Record) -> list[Check]:
    """The run against the kernel model: the count of every handshake segment each
    side sent, each one's time since the client's first SYN within [nominal, nominal +
    modelled timer lateness], the connect() result and time, and when the server
    dropped a half-open request."""
    origin = record.sent_by("client", "syn")
    if not origin:
        return [Check("model: client syn", False, "a SYN", "no SYN seen")]
    t0 = origin[0].t
    # A simultaneous open's segments count from the first SYN of the host whose
    # connect() started their chain (PredictedSegment.clock).
    server_syn = record.sent_by("server", "syn")
    origins = {"client": t0, **({"server": server_syn[0].t} if server_syn else {})}
    slop = Slop.of(record)
    teardown = prediction.teardown  # core/model/teardown/; it counts the RSTs then
    checks_after = check_established(prediction, record, slop)  # a peer gone silent
    dice = bool(prediction.unjudged)  # random faults: the RSTs are nobody's to count
    prediction = _closest(prediction, record, origins, slop)
    checks: list[Check] = []
    ended = check_teardown(teardown, record, slop) if teardown is not None else []
    late = teardown is not None and (
        teardown.unsupported_late or (teardown.unmodelled_late and any(not c.judged for c in ended))
    )
    if late:
        checks.append(
            not_judged(
                "handshake segment counts",
                "a late handshake segment "
                "the teardown model cannot follow draws answers named as "
                "handshake segments",
            )
        )
    for sender in ("client", "server"):
        # the RSTs are the teardown model's to count when it runs; nobody's when the
        # established model steps aside (it would have said when one comes)
        unjudged = any(b.unsupported for b in getattr(prediction, "established", ())) or dice
        for name in MODEL_NAMES if teardown is None and not unjudged else MODEL_NAMES[:-1]:
            if late and name != "rst":
                continue
            checks += _model_segments(prediction, record, sender, name, origins, slop)
    checks += _other_answers(prediction, record, t0, slop)
    checks += _model_connect(prediction, record, slop)
    checks += _model_request(prediction, record, t0, slop)
    checks += check_opening_states(prediction, record)
    return checks + ended + checks_after


def _other_answers(prediction, record: Record, t0: float, slop: Slop = Slop()) -> list[Check]:
    """Answers the handshake model predicts under another name than a handshake
    segment's: the challenge ACK a full socket sends to a copy of the SYN (the
    classifier calls a server's pure ACK after the handshake `data-ack`). Counted
    before the client's first data or FIN (client_gone_at): after it, such names are
    the data's and the teardown's. The cut is a moment in each world: the model's for
    what it predicts, the record's first data or FIN for what was seen; an answer
    whose window (nominal .. + timer lateness + slop) holds either cut may fall on
    either side of the client's data and be named by the teardown instead, so it
    makes the count a range (gen-8213 on 6.18: a copy of the SYN held 2 s arrived
    0.9 ms after the client's data, not 1.5 ms before it, because its timer fired
    2.5 ms late; its challenge ACK carried the FIN's ACK)."""
    until = prediction.client_gone_at if prediction.client_gone_at is not None else float("inf")
    cut = _hand_over(record, until)
    out = []
    for sender in ("client", "server"):
        names = {
            p.name
            for p in prediction.segments
            if p.sender == sender
            and p.name not in MODEL_NAMES + TEARDOWN_NAMES + ("data",)
            and not p.injected
            and p.t < max(until, cut)
        }
        for name in sorted(names):
            sure = maybe = 0
            for p in prediction.of(sender, name):
                lo, hi = window(p.t, p.slack, slop.at(t0 + p.t))
                if p.t < until and hi < min(until, cut):
                    sure += 1
                elif _may_cross((until, cut), lo, hi):
                    maybe += 1
            seen = [s for s in record.sent_by(sender, name) if s.t - t0 < cut]
            out.append(
                Check(
                    f"model: {sender} {name} count",
                    sure <= len(seen) <= sure + maybe,
                    sure if not maybe else f"{sure} to {sure + maybe}",
                    len(seen),
                    evidence=describe_segment(seen[-1]) if seen else "",
                )
            )
    return out


def _closest(prediction, record: Record, origins: dict[str, float] | None = None, slop: Slop = Slop()):
    """Where the model foresees a tie the kernel may break either way, judge the run
    against the outcome whose segment counts it matches best, then the one whose
    segment times fall in more of their windows (the first on a draw)."""

    def score(p) -> tuple[int, int, float]:
        counts = sum(
            len(p.of(sender, name)) == len(record.sent_by(sender, name))
            for sender in ("client", "server")
            for name in MODEL_NAMES
        )
        if origins is None:
            return counts, 0, 0.0
        # the answers under other names count too (a challenge ACK to a SYN that found
        # a full socket, or none where it found the request: gen-9278 on 6.18, whose two
        # outcomes send the same SYN-ACKs and differ only in that ACK), each name any
        # outcome predicts, so that predicting none is scored as well
        counts += sum(_other_count(p, sender, name, until) == seen for (sender, name), seen in others.items())
        timed = 0
        for sender in ("client", "server"):
            for name in MODEL_NAMES:
                for want, seen in zip(p.of(sender, name), record.sent_by(sender, name)):
                    lo, hi = window(want.t, want.slack, slop.at(seen.t))
                    timed += lo <= seen.t - origins.get(want.clock, origins["client"]) <= hi
        return counts, timed, -_call_miss(p, record, origins["client"])

    outcomes = [prediction, *prediction.alternatives]
    until = prediction.client_gone_at if prediction.client_gone_at is not None else float("inf")
    others: dict[tuple[str, str], int] = {}
    if origins is not None:
        t0 = origins["client"]
        cut = _hand_over(record, until)
        for p in outcomes:
            for s in p.segments:
                if s.name not in MODEL_NAMES + TEARDOWN_NAMES + ("data",) and not s.injected:
                    seen = [x for x in record.sent_by(s.sender, s.name) if x.t - t0 < cut]
                    others[(s.sender, s.name)] = len(seen)
    return max(outcomes, key=score)


def _may_cross(cuts: tuple[float, float], lo: float, hi: float) -> bool:
    """Whether a segment due in [lo, hi] may go out on either side of the client's first
    data or FIN, whose moment is one of `cuts` (the model's, the record's): its window
    reaches from before the later cut to after the earlier one. Shared by the answers
    counted under another name (_other_answers) and those the client may send under
    one (_renamed_answers), so that both use the same cut."""
    return lo <= max(cuts) and hi >= min(cuts)


def _hand_over(record: Record, until: float) -> float:
    """When the record has the client first send data or a FIN (inputs.client_hand_over,
    since its first SYN), else the model's moment `until`."""
    seen = client_hand_over(record)
    return until if seen is None else seen


def _other_count(p, sender: str, name: str, until: float) -> int:
    return sum(1 for s in p.of(sender, name) if s.t < until and not s.injected)


def _call_miss(p, record: Record, origin: float) -> float:
    """How far the calls' returns are from this outcome's, in all (a tie-break: two
    outcomes may send the same segments at the same times and differ only in when a
    connect() returns, e.g. a SYN-ACK in SYN_RECV answered by a challenge ACK or by the
    ACK that completes the handshake)."""
    miss = 0.0
    for (host, call), (_result, _start, t_end) in p.calls.items():
        ends = [c.t_end for c in record.apps if c.host == host and c.call == call and c.t_end is not None]
        if ends and t_end is not None:
            miss += abs(ends[0] - origin - t_end)
    return miss


def _model_segments(
    pred, record: Record, sender: str, name: str, origins: dict[str, float], slop: Slop
) -> list[Check]:
    want = pred.of(sender, name)
    seen = record.sent_by(sender, name)
    label = f"model: {sender} {name}"
    if not want and not seen:
        return []
    fewer, more = pred.uncertain.get((sender, name), (0, 0))
    fewer += _renamed_answers(pred, record, sender, name, origins, slop)
    count = len(want) if not (fewer or more) else f"{len(want) - fewer} to {len(want) + more}"
    out = [
        Check(
            f"{label} count",
            len(want) - fewer <= len(seen) <= len(want) + more,
            count,
            len(seen),
            evidence=describe_segment(seen[-1]) if seen else "",
        )
    ]
    # an uncertain answer may be missing or extra: the ones after it pair up with
    # another, so only those before it are timed
    pairs = list(zip(want, seen))[: len(want) - fewer - more if len(seen) != len(want) else None]
    for p, s in pairs:
        origin = origins.get(p.clock, origins["client"])
        if s.t == origin:  # the first SYN its clock starts from: 0 by definition
            continue
        lo, hi = window(p.t, p.slack, slop.at(s.t))
        got = round(s.t - origin, 6)
        out.append(segment_at(f"{label} #{p.nth} at", p.t, lo, hi, got, s, slop.at(s.t)))
    return out


def _renamed_answers(
    pred, record: Record, sender: str, name: str, origins: dict[str, float], slop: Slop
) -> int:
    """The client's ACKs answering a SYN-ACK again (a copy, a retransmission) whose
    window holds the moment its first data or FIN left, on the model's clock or the
    record's (_other_answers): sent after it, such an ACK carries what came since and
    the classifier names it `data-ack` (or `fin-ack`), not `ack` (gen-13011 in CI: the
    SYN-ACK answering the router's copy of the SYN, held 10 ms, reached the client
    0.2 ms after its FIN left; 0.4 ms before its data in the first run). An answer
    due between the two cuts may be on either side as well (_may_cross). How many of
    the predicted ones may go by another name."""
    if sender != "client" or name != "ack" or pred.client_gone_at is None:
        return 0
    cuts = (pred.client_gone_at, _hand_over(record, pred.client_gone_at))
    t0 = origins["client"]
    answers = [p for p in pred.of(sender, name) if p.cause == "answer" and p.nth > 1]
    return sum(1 for p in answers if _may_cross(cuts, *window(p.t, p.slack, slop.at(t0 + p.t))))


def _model_connect(pred, record: Record, slop: Slop) -> list[Check]:
    return [
        c
        for host in ("client", "server")  # the server: a simultaneous open
        for c in _model_connect_of(host, pred, record, slop)
    ]


def _model_connect_of(host: str, pred, record: Record, slop: Slop) -> list[Check]:
    want = pred.calls.get((host, "connect"))
    made = [c for c in record.apps if c.host == host and c.call == "connect"]
    if want is None or not made:
        return []
    result, start, end = want
    c = made[0]
    out = [
        Check(
            f"model: {host} connect()",
            c.result == result,
            result,
            c.result or "still blocked",
            evidence=describe_call(c),
        )
    ]
    if c.t_end is not None:
        slack = max((s.slack for s in pred.segments if s.t <= end), default=0.0) + pred.kernel.slack(
            end - max((s.t for s in pred.segments if s.t < end), default=0.0)
        )
        # The model predicts the kernel's moment; the app thread learns it when the
        # scheduler wakes it, tens of milliseconds later on a loaded machine. So when
        # the tracepoint saw the socket leave SYN_SENT, that is what is judged, and the
        # wake-up delay is shown beside it.
        # Likewise at the start: the app stamps the call before Python makes it, and
        # on a loaded machine the socket entered SYN_SENT up to 25 ms later (gen-4123,
        # gen-4172 on 6.18); and the SYN reaches the router up to 27 ms after that in a
        # TCG VM (no-accept on 6.12), a way the model's clock (the router's first SYN,
        # as for every segment) does not count. So the call is timed from its first
        # SYN at the router when there is one, else from the kernel's SYN_SENT.
        kernel, entered = _left_syn_sent(record, c), _entered_syn_sent(record, c)
        first = _first_syn(record, c)
        judged_at = kernel.t if kernel else c.t_end
        began = first.t if first else entered.t if entered else c.t
        lo, hi = window(end - start, slack, slop.at(judged_at))
        got = round(judged_at - began, 6)
        proof = (
            describe_call(c)
            + (
                f"; the kernel: {kernel.old} -> {kernel.new} at "
                f"t={kernel.t:.3f}s, the app woke "
                f"{(c.t_end - kernel.t) * 1000:.1f} ms later"
                if kernel
                else ""
            )
            + (
                f"; SYN_SENT from t={entered.t:.3f}s, {(entered.t - c.t) * 1000:.1f} ms after the app's stamp"
                if entered
                else ""
            )
            + (f"; its first SYN at the router t={first.t:.3f}s" if first else "")
        )
        out.append(
            Check(
                f"model: {host} connect() returns after",
                lo <= got <= hi,
                round(end - start, 4),
                got,
                round(hi - (end - start), 4),
                proof,
                one_sided=True,
                slop=slop.at(judged_at),
            )
        )
    return out


def _left_syn_sent(record: Record, call: AppCalled) -> StateChanged | None:
    """The tracepoint's change that ends connect(): the connecting socket out of
    SYN_SENT (or SYN_RECV, in a simultaneous open) to ESTABLISHED, or to CLOSE when the
    kernel gives up, within the call's time."""
    for e in record.states():
        if (
            e.host == call.host
            and e.source == "tracepoint"
            and e.old in ("SYN_SENT", "SYN_RECV")
            and e.new != "SYN_RECV"
            and call.t_end is not None
            and call.t <= e.t <= call.t_end
            and (call.lport is None or e.lport == call.lport)
        ):
            return e
    return None


def _first_syn(record: Record, call: AppCalled):
    """The call's first SYN as the router saw it (the host's, from the call's port)."""
    if call.lport is None:
        return None
    return next(
        (
            s
            for s in record.segments
            if s.sender == call.host
            and s.name == "syn"
            and not s.injected
            and s.sport == call.lport
            and s.t >= call.t
            and (call.t_end is None or s.t <= call.t_end)
        ),
        None,
    )


def _entered_syn_sent(record: Record, call: AppCalled) -> StateChanged | None:
    """The tracepoint's CLOSE -> SYN_SENT of the connecting socket within the call."""
    return next(
        (
            e
            for e in record.states()
            if e.host == call.host
            and e.source == "tracepoint"
            and e.old == "CLOSE"
            and e.new == "SYN_SENT"
            and call.t <= e.t <= (call.t_end if call.t_end is not None else e.t)
            and (call.lport is None or e.lport == call.lport)
        ),
        None,
    )


def _model_request(pred, record: Record, t0: float, slop: Slop) -> list[Check]:
    """Each request the server dropped, in order, against what the record shows of
    it: inet_diag's SYN_RECV -> CLOSE, or, where a new request took the 4-tuple within
    one poll (the drop was never in a dump), the new request's first SYN-ACK, which
    carries another ISN (tcp_conn_request() picks one per request;
    inet_rtx_syn_ack() resends the same)."""
    want = pred.calls.get(("server", "request"))
    drops = list(pred.request_drops) or ([(want[2], 0.0)] if want else [])
    if not drops:
        return []
    synacks = pred.of("server", "syn-ack")
    last = max((s.t for s in synacks), default=0.0)
    legacy = max((s.slack for s in synacks), default=0.0) + pred.kernel.slack(
        drops[-1][0] - last
    )  # the last drop, as judged before drops were listed
    seen = request_ends(record)
    out = []
    for k, (dropped_at, late) in enumerate(drops):
        name = (
            "model: server drops the request at"
            if len(drops) == 1
            else f"model: server drops request #{k + 1} at"
        )
        slack = max(late, legacy if k == len(drops) - 1 else 0.0) + 0.05  # + a poll, loaded
        if k >= len(seen):
            out.append(Check(name, False, dropped_at, "never seen", slack))
            continue
        t, how = seen[k]
        got = round(t - t0, 6)
        lo, hi = window(dropped_at, slack, slop.at(t))
        out.append(
            Check(
                name,
                lo <= got <= hi,
                dropped_at,
                got,
                round(hi - dropped_at, 4),
                f"t={t:.3f}s {how}",
                one_sided=True,
                slop=slop.at(t),
            )
        )
    return out


def request_ends(record: Record) -> list[tuple[float, str]]:
    """The server's requests' ends as the record shows them, in order: a SYN_RECV ->
    CLOSE, or a server SYN-ACK with another ISN than the one before it with no such
    change between them (the old request was replaced within one inet_diag poll)."""
    ends = [
        (e.t, f"SYN_RECV->CLOSE ({e.source})")
        for e in record.states()
        if e.host == "server" and e.old == "SYN_RECV" and e.new == "CLOSE"
    ]
    synacks = [s for s in record.sent_by("server", "syn-ack") if not s.injected]
    for before, s in zip(synacks, synacks[1:]):
        if s.seq != before.seq and not any(before.t <= t <= s.t for t, _ in ends):
            ends.append(
                (s.t, f"a new request: {describe_segment(s)}, another ISN than syn-ack #{before.nth}'s")
            )
    return sorted(ends)
