"""The checker: a scenario's `expect` against a Record. Pure.

Each check says expected, actual, tolerance and the event that proves it, in the
manner of packetdrill ("expected 4.000 s, got 4.130 s, tolerance 0.500 s").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tcplab.core import check_states
from tcplab.core.check_opening import check_opening_states
from tcplab.core.check_teardown import check_teardown
from tcplab.core.events import AppCalled, SegmentSeen, StateChanged
from tcplab.core.record import Record
from tcplab.core.scenario import HostExpect, Scenario, Timing, Tolerance
from tcplab.core.segments import flag_string


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    expected: Any
    actual: Any
    tolerance: float | None = None
    evidence: str = ""
    line: int = 0
    one_sided: bool = False  # the model's windows: the kernel may be late, never early
    # False: the lab could not judge this (not modelled, or the run too loaded to
    # order its events): shown as "not judged: why", never a pass and never a fail.
    judged: bool = True

    def to_json(self) -> dict:
        return {"name": self.name, "passed": self.passed, "expected": self.expected,
                "actual": self.actual, "tolerance": self.tolerance,
                "window": "late" if self.one_sided else "both",
                "evidence": self.evidence, "line": self.line, "judged": self.judged}


def not_judged(what: str, why: str, evidence: str = "") -> Check:
    """An abstention: `what` the model leaves unjudged, and why."""
    return Check(f"model: not judged: {what}", True, "", why, evidence=evidence,
                 judged=False)


def describe_segment(s: SegmentSeen) -> str:
    arrow = f"{s.src}:{s.sport} > {s.dst}:{s.dport}"
    text = (f"t={s.t:.3f}s {s.name} #{s.nth} {arrow} [{flag_string(s.flags)}] "
            f"seq={s.seq} ack={s.ack} len={s.length} {s.fate}")
    return text + (" (retransmission)" if s.retransmission else "")


def describe_call(c: AppCalled) -> str:
    end = f"{c.t_end:.3f}s" if c.t_end is not None else "never"
    which = f" #{c.iteration}" if c.iteration is not None else ""
    which += f" port {c.lport}" if c.lport else ""
    return f"{c.host} {c.call}(){which} t={c.t:.3f}s..{end} -> {c.result or 'still blocked'}"


def check_scenario(scenario: Scenario, record: Record) -> list[Check]:
    tol = scenario.expect.tolerance
    checks: list[Check] = []
    for host, exp in scenario.expect.hosts.items():
        checks += _calls(host, exp, record)
        for name, timing in exp.retransmits.items():
            checks += _timing(host, name, timing, record, tol)
        checks += _sends(host, exp, record)
        checks += _largest(host, exp, record)
        if exp.gives_up_after is not None:
            checks.append(_gives_up(host, exp, record, tol))
        if exp.states is not None:
            checks.append(_states(host, exp, record))
        checks += check_states.check_host(host, exp, record, tol)  # lasts, sockets, ...
    return checks


def _calls(host: str, exp: HostExpect, record: Record) -> list[Check]:
    out = []
    for call, want in exp.calls.items():
        made = [c for c in record.apps if c.host == host and c.call == call]
        if not made:
            out.append(Check(f"{host} {call}()", False, want, "never called",
                             line=exp.lines.get(call, 0)))
            continue
        out.append(_call_results(f"{host} {call}()", want, made, exp.lines.get(call, 0)))
    return out


BLOCKED = "still blocked when the run ended"


def _call_results(name: str, want: str | dict[str, int], made: list[AppCalled],
                  line: int) -> Check:
    """`ok` means every such call returned ok (one call, or each iteration of a repeat);
    {ok: 3, EADDRNOTAVAIL: 2} counts how many ended each way."""
    results = [c.result or BLOCKED for c in made]
    counts = {r: results.count(r) for r in dict.fromkeys(results)}
    if isinstance(want, str):
        odd = next((c for c, r in zip(made, results) if r != want), made[0])
        actual = results[0] if len(counts) == 1 else counts
        return Check(name, set(counts) == {want}, want, actual, evidence=describe_call(odd),
                     line=line)
    expected = {r: n for r, n in want.items() if n}
    odd = next((c for c, r in zip(made, results) if r not in expected), made[-1])
    return Check(name, counts == expected, expected, counts, evidence=describe_call(odd),
                 line=line)


def _timing(host: str, name: str, timing: Timing, record: Record,
            tol: Tolerance) -> list[Check]:
    seen = record.sent_by(host, name)
    repeats = seen[1:]
    label = f"{host} {name} repeats"
    out = []
    expected_count = timing.count
    if expected_count is None:
        lists = [x for x in (timing.intervals, timing.offsets) if x is not None]
        expected_count = len(lists[0]) if lists else None
    if expected_count is not None:
        out.append(Check(f"{label}: count", len(repeats) == expected_count, expected_count,
                         len(repeats), evidence=describe_segment(seen[-1]) if seen else
                         f"no {name} from the {host} at all", line=timing.line))
    for kind, wanted in (("interval", timing.intervals), ("offset", timing.offsets)):
        for i, want in enumerate(wanted or ()):
            if i + 1 >= len(seen):
                out.append(Check(f"{label}: {kind} {i + 1}", False, want, "missing",
                                 tol.allowed(want), line=timing.line))
                continue
            base = seen[i] if kind == "interval" else seen[0]
            got = round(seen[i + 1].t - base.t, 6)
            allowed = tol.allowed(want)
            out.append(Check(f"{label}: {kind} {i + 1}", abs(got - want) <= allowed, want,
                             got, allowed, describe_segment(seen[i + 1]), timing.line))
    return out


def _sends(host: str, exp: HostExpect, record: Record) -> list[Check]:
    out = []
    for name, want in exp.sends.items():
        sent = [s for s in record.segments if s.sender == host and s.name == name
                and not s.injected]  # what the router made up is no send of the host's
        proof = describe_segment(sent[want]) if len(sent) > want else (
            describe_segment(sent[-1]) if sent else "")
        out.append(Check(f"{host} sends {name}", len(sent) == want, want, len(sent),
                         evidence=proof, line=exp.lines.get("sends", 0)))
    return out


def _largest(host: str, exp: HostExpect, record: Record) -> list[Check]:
    """The biggest payload among the host's segments of a name (its MSS at work)."""
    out = []
    for name, want in exp.largest.items():
        sent = [s for s in record.segments if s.sender == host and s.name == name
                and not s.injected]
        top = max(sent, key=lambda s: s.length, default=None)
        out.append(Check(f"{host} largest {name}", top is not None and top.length == want,
                         want, top.length if top else f"no {name} from the {host}",
                         evidence=describe_segment(top) if top else "",
                         line=exp.lines.get("largest", 0)))
    return out


def _gives_up(host: str, exp: HostExpect, record: Record, tol: Tolerance) -> Check:
    want = exp.gives_up_after
    failed = [c for c in record.apps if c.host == host and c.result not in ("ok", None)]
    line = exp.lines.get("gives_up_after", 0)
    if not failed:
        blocked = [c for c in record.apps if c.host == host and c.result is None]
        actual = (f"{blocked[0].call}() still blocked when the run ended" if blocked
                  else "no call failed")
        return Check(f"{host} gives up after", False, want, actual, tol.allowed(want),
                     line=line)
    c = failed[0]
    got = round(c.t_end - c.t, 6)
    allowed = tol.allowed(want)
    return Check(f"{host} gives up after", abs(got - want) <= allowed, want, got, allowed,
                 describe_call(c), line)


def _states(host: str, exp: HostExpect, record: Record) -> Check:
    seq, proof = record.state_sequence(host)
    evidence = "; ".join(f"t={e.t:.3f}s {e.old}->{e.new} ({e.source})" for e in proof)
    want = list(exp.states)
    return Check(f"{host} states", seq == want, want, seq, evidence=evidence,
                 line=exp.lines.get("states", 0))


def verdict(checks: list[Check]) -> str:
    """pass, fail, or error when nothing could be judged (no checks, or every one an
    abstention)."""
    judged = [c for c in checks if c.judged]
    if not judged:
        return "error"
    return "pass" if all(c.passed for c in judged) else "fail"


# -- the kernel model ------------------------------------------------------------------

MODEL_NAMES = ("syn", "syn-ack", "ack", "rst")
MODEL_SLOP = 0.010  # scheduling noise on top of the modelled timer lateness


def forwarding_slop(record: Record) -> float:
    """The hook is a userspace hop: under load a segment can wait milliseconds in the
    queue (or a held one be released late), and an answer's time includes its
    question's wait. So the model's window also widens by twice the slowest forwarding
    this run measured: t_out - t, or for a held segment how late its release came."""
    waits = [s.t_out - s.t for s in record.segments
             if s.fate == "delivered" and s.t_out is not None]
    waits += [s.held_late for s in record.segments if s.held_late is not None]
    return MODEL_SLOP + 2 * max(waits, default=0.0)


def check_model(prediction, record: Record) -> list[Check]:
    """The run against the kernel model: the count of every handshake segment each
    side sent, each one's time since the client's first SYN within [nominal, nominal +
    modelled timer lateness], the connect() result and time, and when the server
    dropped a half-open request."""
    from tcplab.core import check_flood  # (it imports this module)
    if check_flood.applies(prediction):  # a SYN flood first (H11): judged apart
        return check_flood.check(prediction, record)
    origin = record.sent_by("client", "syn")
    if not origin:
        return [Check("model: client syn", False, "a SYN", "no SYN seen")]
    t0 = origin[0].t
    # A simultaneous open's segments count from the first SYN of the host whose
    # connect() started their chain (PredictedSegment.clock).
    server_syn = record.sent_by("server", "syn")
    origins = {"client": t0, **({"server": server_syn[0].t} if server_syn else {})}
    slop = forwarding_slop(record)
    teardown = prediction.teardown  # core/model_teardown.py; it counts the RSTs then
    from tcplab.core import check_established  # (it imports this module)
    checks_after = check_established.check(prediction, record, slop)  # a peer gone silent
    prediction = _closest(prediction, record, origins, slop)
    checks: list[Check] = []
    copies = _handshake_copies(record, prediction)
    ended = check_teardown(teardown, record, slop) if teardown is not None else []
    if teardown is not None and (teardown.unsupported_late or (
            teardown.unmodelled_late and any(not c.judged for c in ended))):
        copies = copies or ("a late handshake segment the teardown model cannot follow "
                            "draws answers named as handshake segments")
    if copies:
        checks.append(not_judged("handshake segment counts", copies))
    for sender in ("client", "server"):
        # the RSTs are the teardown model's to count when it runs; nobody's when the
        # established model steps aside (it would have said when one comes)
        unjudged = any(b.unsupported for b in getattr(prediction, "established", ()))
        for name in MODEL_NAMES if teardown is None and not unjudged else MODEL_NAMES[:-1]:
            if copies and name != "rst":
                continue
            checks += _model_segments(prediction, record, sender, name, origins, slop)
    checks += _model_connect(prediction, record, slop)
    checks += _model_request(prediction, record, t0, slop)
    checks += check_opening_states(prediction, record)
    return checks + ended + checks_after


def _handshake_copies(record: Record, prediction) -> str:
    """The router's copy (`duplicate`) of a SYN, SYN-ACK or handshake ACK that landed
    while the handshake model still had the say: what it draws depends on whether the
    handshake had completed (a request's SYN-ACK, or a challenge ACK), which the
    handshake model does not follow. Empty when there is none."""
    gone = getattr(prediction, "client_gone_at", None)
    syns = record.sent_by("client", "syn")
    if not syns:
        return ""
    for s in record.segments:
        if s.injected and (s.fault or "").startswith("duplicate") and \
                s.name in ("syn", "syn-ack", "ack") and s.t_out is not None and (
                gone is None or s.t_out - syns[0].t < gone):
            return (f"the router's copy of the {s.sender}'s {s.name} at t={s.t_out:.3f}s "
                    "lands within the handshake, whose answers to it are not modelled")
    return ""


def _closest(prediction, record: Record, origins: dict[str, float] | None = None,
             slop: float = MODEL_SLOP):
    """Where the model foresees a tie the kernel may break either way, judge the run
    against the outcome whose segment counts it matches best, then the one whose
    segment times fall in more of their windows (the first on a draw)."""
    def score(p) -> tuple[int, int]:
        counts = sum(len(p.of(sender, name)) == len(record.sent_by(sender, name))
                     for sender in ("client", "server") for name in MODEL_NAMES)
        if origins is None:
            return counts, 0
        timed = 0
        for sender in ("client", "server"):
            for name in MODEL_NAMES:
                for want, seen in zip(p.of(sender, name), record.sent_by(sender, name)):
                    lo, hi = _window(want.t, want.slack, slop)
                    timed += lo <= seen.t - origins.get(want.clock, origins["client"]) <= hi
        return counts, timed
    return max([prediction, *prediction.alternatives], key=score)


def _window(nominal: float, slack: float, slop: float) -> tuple[float, float]:
    return nominal - MODEL_SLOP, nominal + slack + slop


def _model_segments(pred, record: Record, sender: str, name: str,
                    origins: dict[str, float], slop: float) -> list[Check]:
    want = pred.of(sender, name)
    seen = record.sent_by(sender, name)
    label = f"model: {sender} {name}"
    if not want and not seen:
        return []
    out = [Check(f"{label} count", len(seen) == len(want), len(want), len(seen),
                 evidence=describe_segment(seen[-1]) if seen else "")]
    for p, s in zip(want, seen):
        lo, hi = _window(p.t, p.slack, slop)
        got = round(s.t - origins.get(p.clock, origins["client"]), 6)
        out.append(Check(f"{label} #{p.nth} at", lo <= got <= hi, round(p.t, 4), got,
                         round(hi - p.t, 4), describe_segment(s), one_sided=True))
    return out


def _model_connect(pred, record: Record, slop: float) -> list[Check]:
    return [c for host in ("client", "server")  # the server: a simultaneous open
            for c in _model_connect_of(host, pred, record, slop)]


def _model_connect_of(host: str, pred, record: Record, slop: float) -> list[Check]:
    want = pred.calls.get((host, "connect"))
    made = [c for c in record.apps if c.host == host and c.call == "connect"]
    if want is None or not made:
        return []
    result, start, end = want
    c = made[0]
    out = [Check(f"model: {host} connect()", c.result == result, result,
                 c.result or "still blocked", evidence=describe_call(c))]
    if c.t_end is not None:
        slack = max((s.slack for s in pred.segments if s.t <= end), default=0.0) + \
            pred.kernel.slack(end - max((s.t for s in pred.segments if s.t < end),
                                        default=0.0))
        lo, hi = _window(end - start, slack, slop)
        # The model predicts the kernel's moment; the app thread learns it when the
        # scheduler wakes it, tens of milliseconds later on a loaded machine. So when
        # the tracepoint saw the socket leave SYN_SENT, that is what is judged, and the
        # wake-up delay is shown beside it.
        kernel = _left_syn_sent(record, c)
        got = round((kernel.t if kernel else c.t_end) - c.t, 6)
        proof = describe_call(c) + (f"; the kernel: {kernel.old} -> {kernel.new} at "
                                    f"t={kernel.t:.3f}s, the app woke "
                                    f"{(c.t_end - kernel.t) * 1000:.1f} ms later"
                                    if kernel else "")
        out.append(Check(f"model: {host} connect() returns after", lo <= got <= hi,
                         round(end - start, 4), got, round(hi - (end - start), 4),
                         proof, one_sided=True))
    return out


def _left_syn_sent(record: Record, call: AppCalled) -> StateChanged | None:
    """The tracepoint's change that ends connect(): the connecting socket out of
    SYN_SENT (or SYN_RECV, in a simultaneous open) to ESTABLISHED, or to CLOSE when the
    kernel gives up, within the call's time."""
    for e in record.states():
        if (e.host == call.host and e.source == "tracepoint"
                and e.old in ("SYN_SENT", "SYN_RECV") and e.new != "SYN_RECV"
                and call.t <= e.t <= call.t_end
                and (call.lport is None or e.lport == call.lport)):
            return e
    return None


def _model_request(pred, record: Record, t0: float, slop: float) -> list[Check]:
    want = pred.calls.get(("server", "request"))
    if want is None:
        return []
    dropped_at = want[2]
    gone = [e for e in record.states() if e.host == "server" and e.old == "SYN_RECV"
            and e.new == "CLOSE"]
    synacks = pred.of("server", "syn-ack")
    last = max((s.t for s in synacks), default=0.0)
    slack = max((s.slack for s in synacks), default=0.0) + \
        pred.kernel.slack(dropped_at - last) + 0.05  # + one inet_diag poll, loaded
    if not gone:
        return [Check("model: server drops the request at", False, dropped_at,
                      "never seen", slack)]
    got = round(gone[0].t - t0, 6)
    lo, hi = _window(dropped_at, slack, slop)
    return [Check("model: server drops the request at", lo <= got <= hi, dropped_at, got,
                  round(hi - dropped_at, 4),
                  f"t={gone[0].t:.3f}s SYN_RECV->CLOSE ({gone[0].source})", one_sided=True)]
