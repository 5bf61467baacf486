"""The scenario's own expectations (`expect:` per host: calls, retransmit timings,
sends, states, gives_up_after) against a Record. Pure. Each check says expected,
actual, tolerance and the event that proves it, in the manner of packetdrill
("expected 4.000 s, got 4.130 s, tolerance 0.500 s")."""

from __future__ import annotations

import re

from tcplab.core.check.base import (
    MODEL_SLOP,
    Check,
    Slop,
    describe_call,
    describe_segment,
    fin_handover_race,
    machine_too_slow,
    missed_by,
    slow_legs,
)
from tcplab.core.check.states import check_host
from tcplab.core.events import AppCalled
from tcplab.core.kernel_expect import for_kernel
from tcplab.core.model.established import EstParams, jiffies_up
from tcplab.core.model.kernel import Kernel
from tcplab.core.model.teardown.observe import handshake_rtt, kernel_rtt_range
from tcplab.core.record import Record
from tcplab.core.scenario import HostExpect, Scenario, Timing, Tolerance
from tcplab.core.segments import RST


def check_scenario(scenario: Scenario, record: Record, kernel: Kernel | None = None) -> list[Check]:
    """`kernel` picks the expectations for its version (`expect.kernels`) and times
    what one kernel timer ends (its wheel granularity, Kernel.slack); without it, the
    scenario's own expectations and HZ=250."""
    tol = scenario.expect.tolerance
    checks: list[Check] = []
    counts: list[Check] = []  # of segments: what a timer racing a held segment decides
    hosts, _applied = for_kernel(
        scenario.expect.hosts, scenario.expect.by_kernel, kernel.version if kernel else None
    )
    for host, exp in hosts.items():
        checks += _calls(host, exp, record)
        for name, timing in exp.retransmits.items():
            timed = _timing(host, name, timing, record, tol)
            checks += timed
            counts += [c for c in timed if c.tolerance is None and _too_many(c)]
        counted = _sends(host, exp, record) + _resent(host, exp, record)
        checks += counted
        counts += [c for c in counted if _too_many(c)]
        if exp.received is not None:
            checks.append(_received(host, exp, record))
        checks += _largest(host, exp, record)
        if exp.gives_up_after is not None:
            checks.append(_gives_up(host, exp, record, tol, _rto_stretch(host, scenario, record, kernel)))
        if exp.states is not None:
            checks.append(_states(host, exp, record))
        checks += check_host(host, exp, record, tol, kernel)  # lasts, sockets, ...
    return _slow_lab(checks, record, tol, kernel.late if kernel else 0.0, {id(c) for c in counts})


def _too_many(check: Check) -> bool:
    """More segments than expected: what a timer racing a held or slowly handled
    segment draws. Fewer is never the lab's doing."""
    if isinstance(check.actual, int) and isinstance(check.expected, int):
        return check.actual > check.expected
    top = re.fullmatch(r"\d+ to (\d+)", str(check.expected))
    return top is not None and isinstance(check.actual, int) and check.actual > int(top[1])


def _slow_lab(
    checks: list[Check], record: Record, tol: Tolerance, late: float, counts: set[int] | None = None
) -> list[Check]:
    """A scenario's timings are written for a path that adds nothing: when the lab's
    own hop (its slowest forwarding), the machine's way from a host to the router or
    the machine's timers took more than the tolerance's floor, a timing that missed
    may have missed by the lab's doing. So may a count of segments that came out too
    high (`counts`, by id): an ACK held past a retransmission timer draws one more (a FIN
    resent once more on 6.12 in a TCG VM, the hook holding an ACK 40 ms). Such a miss
    is not judged, and the run is an error; a timing or count met stays met."""
    race = fin_handover_race(record)
    if race:
        checks = [
            machine_too_slow(c, race) if id(c) in (counts or ()) and c.judged and not c.passed else c
            for c in checks
        ]
    hook = (Slop.of(record).worst - MODEL_SLOP) / 2
    leg, _proof = slow_legs(record)
    slow = max(hook, late, leg)
    if slow < tol.abs:
        return checks
    why = (
        f"the lab was too slow to judge a timing or count written for a fast path: its "
        f"hook held a segment up to {hook * 1000:.1f} ms, the way between the router and "
        f"a host took up to {leg * 1000:.1f} ms more, and the machine ran "
        f"{late * 1000:.1f} ms late, over the tolerance's {tol.abs * 1000:g} ms floor"
    )
    return [
        machine_too_slow(c, why)
        if (c.tolerance is not None or id(c) in (counts or ())) and c.judged and not c.passed
        else c
        for c in checks
    ]


def _calls(host: str, exp: HostExpect, record: Record) -> list[Check]:
    out = []
    for call, want in exp.calls.items():
        made = [c for c in record.apps if c.host == host and c.call == call]
        if not made:
            out.append(Check(f"{host} {call}()", False, want, "never called", line=exp.lines.get(call, 0)))
            continue
        out.append(_call_results(f"{host} {call}()", want, made, exp.lines.get(call, 0)))
    return out


BLOCKED = "still blocked when the run ended"


def _call_results(name: str, want: str | dict[str, int], made: list[AppCalled], line: int) -> Check:
    """`ok` means every such call returned ok (one call, or each iteration of a repeat);
    {ok: 3, EADDRNOTAVAIL: 2} counts how many ended each way."""
    results = [c.result or BLOCKED for c in made]
    counts = {r: results.count(r) for r in dict.fromkeys(results)}
    if isinstance(want, str):
        odd = next((c for c, r in zip(made, results) if r != want), made[0])
        actual = results[0] if len(counts) == 1 else counts
        return Check(name, set(counts) == {want}, want, actual, evidence=describe_call(odd), line=line)
    expected = {r: n for r, n in want.items() if n}
    odd = next((c for c, r in zip(made, results) if r not in expected), made[-1])
    return Check(name, counts == expected, expected, counts, evidence=describe_call(odd), line=line)


def _timing(host: str, name: str, timing: Timing, record: Record, tol: Tolerance) -> list[Check]:
    seen = record.sent_by(host, name)
    repeats = seen[1:]
    label = f"{host} {name} repeats"
    out = []
    expected_count = timing.count
    if expected_count is None:
        lists = [x for x in (timing.intervals, timing.offsets) if x is not None]
        expected_count = len(lists[0]) if lists else None
    if expected_count is not None:
        out.append(
            Check(
                f"{label}: count",
                len(repeats) == expected_count,
                expected_count,
                len(repeats),
                evidence=describe_segment(seen[-1]) if seen else f"no {name} from the {host} at all",
                line=timing.line,
            )
        )
    for kind, wanted in (("interval", timing.intervals), ("offset", timing.offsets)):
        for i, want in enumerate(wanted or ()):
            if i + 1 >= len(seen):
                out.append(
                    Check(
                        f"{label}: {kind} {i + 1}",
                        False,
                        want,
                        "missing",
                        tol.allowed(want),
                        line=timing.line,
                    )
                )
                continue
            out.append(_repeat(f"{label}: {kind} {i + 1}", kind, want, wanted, i, seen, tol, timing.line))
    return out


def _repeat(name: str, kind: str, want: float, wanted, i: int, seen, tol: Tolerance, line: int) -> Check:
    """Repeat i+1 against the one before it as it happened, with the tolerance of that
    gap (packetdrill's way): an offset is shown from the first, but judged on its gap
    from the previous, so neither the earlier repeats' lateness nor the length of the
    whole chain widens it."""
    gap_want = want - wanted[i - 1] if kind == "offset" and i else want
    gap = seen[i + 1].t - seen[i].t
    allowed = tol.allowed(gap_want)
    got = round(seen[i + 1].t - (seen[i] if kind == "interval" else seen[0]).t, 6)
    proof = describe_segment(seen[i + 1])
    if kind == "offset" and i:
        proof += f"; judged on the gap from #{seen[i].nth}: {gap_want:g} s expected, {gap:.6f} s seen"
    return Check(name, abs(gap - gap_want) <= allowed, want, got, allowed, proof, line)


def _sends(host: str, exp: HostExpect, record: Record) -> list[Check]:
    out = []
    for name, want in exp.sends.items():
        sent = [
            s for s in record.segments if s.sender == host and s.name == name and not s.injected
        ]  # what the router made up is no send of the host's
        proof = (
            describe_segment(sent[want]) if len(sent) > want else (describe_segment(sent[-1]) if sent else "")
        )
        out.append(
            Check(
                f"{host} sends {name}",
                len(sent) == want,
                want,
                len(sent),
                evidence=proof,
                line=exp.lines.get("sends", 0),
            )
        )
    return out


def _largest(host: str, exp: HostExpect, record: Record) -> list[Check]:
    """The biggest payload among the host's segments of a name (its MSS at work)."""
    out = []
    for name, want in exp.largest.items():
        sent = [s for s in record.segments if s.sender == host and s.name == name and not s.injected]
        top = max(sent, key=lambda s: s.length, default=None)
        out.append(
            Check(
                f"{host} largest {name}",
                top is not None and top.length == want,
                want,
                top.length if top else f"no {name} from the {host}",
                evidence=describe_segment(top) if top else "",
                line=exp.lines.get("largest", 0),
            )
        )
    return out


def _rto_stretch(host: str, scenario: Scenario, record: Record, kernel: Kernel | None) -> tuple[float, str]:
    """How much longer than rto_min this path makes each retransmission timeout of an
    established connection, and the proof. The kernel's first RTO is srtt + max(2 srtt,
    rto_min) in whole jiffies (tcp_set_rto() after tcp_rtt_estimator()), so a chain of
    them, written as multiples of rto_min for a path that adds nothing (13 s for
    tcp_retries2=5), runs (R - rto_min) / rto_min longer on a path whose RTT is not
    nothing: a TCG guest's 12-30 ms (docs/kernel-vms.md). The RTT is the kernel's own
    sample where its timestamps bound it (the top of kernel_rtt_range: the router does
    not see the host's way out), else as the router saw the handshake. (0, "") without
    a sample."""
    rng = kernel_rtt_range(record).get(host)
    rtt = rng[1] if rng else handshake_rtt(record).get(host)
    if rtt is None:
        return 0.0, ""
    kernel = kernel or Kernel((0, 0))  # no version known: rto_min 200 ms, HZ=250
    p = EstParams.from_sysctls(kernel, scenario.sysctls.get(host, {}))
    rto = min(jiffies_up(kernel, rtt + max(2 * rtt, p.rto_min)), p.rto_max)
    per = (rto - p.rto_min) / p.rto_min
    return per, (
        f"the {host}'s RTO on this path was {rto * 1000:.0f} ms (its handshake RTT "
        f"{rtt * 1000:.1f} ms over rto_min {p.rto_min * 1000:.0f} ms), {per * 100:.1f} % "
        f"longer than a chain of rto_min written for a path that adds nothing"
    )


def _gives_up(
    host: str, exp: HostExpect, record: Record, tol: Tolerance, stretch: tuple[float, str] = (0.0, "")
) -> Check:
    want = exp.gives_up_after
    assert want is not None  # check_expect() asks only when it is set
    failed = [c for c in record.apps if c.host == host and c.result not in ("ok", None)]
    line = exp.lines.get("gives_up_after", 0)
    if not failed:
        blocked = [c for c in record.apps if c.host == host and c.result is None]
        actual = f"{blocked[0].call}() still blocked when the run ended" if blocked else "no call failed"
        return Check(f"{host} gives up after", False, want, actual, tol.allowed(want), line=line)
    c = failed[0]
    assert c.t_end is not None  # a call with a result returned (AppCalled: None if it never did)
    got = round(c.t_end - c.t, 6)
    # The tolerance of the gap checked: from the host's last segment of the call's time
    # (its last retransmission or probe: the timer that ended it ran from there), not
    # of the whole call, whose length is the sum of every earlier wait. (The RST an
    # abort sends, tcp_send_active_reset(), is the end itself.)
    last = [
        s
        for s in record.segments
        if s.sender == host and not s.injected and not s.flags & RST and c.t <= s.t <= c.t_end
    ]
    since = last[-1].t - c.t if last else 0.0
    allowed = tol.allowed(want - since)
    proof = describe_call(c) + (
        f"; the tolerance of the {want - since:.3f} s after its last segment, {describe_segment(last[-1])}"
        if last
        else ""
    )
    check = Check(f"{host} gives up after", abs(got - want) <= allowed, want, got, allowed, proof, line)
    # A call that gave up after retransmitting on an established connection (not a
    # connect(): SYNs wait a fixed 1 s, tcp_timeout_init()) waited a chain of RTOs.
    # Late by no more than the path's share of that chain: this machine's doing, not
    # judged. Later than that, or early, stays a fail.
    per, why = stretch
    miss = missed_by(check)
    if c.call != "connect" and miss is not None and miss <= want * per:
        return machine_too_slow(check, f"{why}: up to {want * per:.3f} s over {want:g} s")
    return check


def _states(host: str, exp: HostExpect, record: Record) -> Check:
    seq, proof = record.state_sequence(host)
    evidence = "; ".join(f"t={e.t:.3f}s {e.old}->{e.new} ({e.source})" for e in proof)
    assert exp.states is not None  # check_expect() asks only when it is set
    want = list(exp.states)
    return Check(f"{host} states", seq == want, want, seq, evidence=evidence, line=exp.lines.get("states", 0))


def _resent(host: str, exp: HostExpect, record: Record) -> list[Check]:
    """How many of the host's segments of a name were retransmissions (the same
    sequence number as an earlier one of that name, on any connection)."""
    out = []
    for name, (lo, hi) in exp.resent.items():
        again = [
            s
            for s in record.segments
            if s.sender == host and s.name == name and s.retransmission and not s.injected
        ]
        want = lo if hi == lo else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
        out.append(
            Check(
                f"{host} resends {name}",
                lo <= len(again) and (hi is None or len(again) <= hi),
                want,
                len(again),
                evidence=describe_segment(again[-1]) if again else f"no {name} sent again",
                line=exp.lines.get("resent", 0),
            )
        )
    return out


_BYTES = re.compile(r"(\d+) bytes")


def _received(host: str, exp: HostExpect, record: Record) -> Check:
    """The bytes the host's recv calls returned, in all (the agent says how many in
    each call's detail: "N bytes", "N bytes, then EOF")."""
    calls = [c for c in record.apps if c.host == host and c.call == "recv"]
    got = sum(int(m[1]) for c in calls if (m := _BYTES.match(c.detail or "")))
    last = next((c for c in reversed(calls) if c.t_end is not None), None)
    return Check(
        f"{host} received",
        got == exp.received,
        exp.received,
        got,
        evidence=describe_call(last) + f": {last.detail}" if last else "no recv",
        line=exp.lines.get("received", 0),
    )
