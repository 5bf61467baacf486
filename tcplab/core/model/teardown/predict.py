"""The teardown prediction for a scenario: every order of its races simulated."""

from __future__ import annotations

import itertools

from tcplab.core.faults import Fault
from tcplab.core.model.kernel import Kernel
from tcplab.core.model.teardown.observe import first_closer, handshake_rtt, observe
from tcplab.core.model.teardown.params import (
    AFTER_NEXT,
    AFTER_SEND,
    SEND_RACED,
    ENDINGS,
    HOST_FAULT_ENDINGS,
    MAX_RACES,
    SOCKET_OPTIONS,
    AfterArrival,
    TeardownParams,
    Unsupported,
    UnsupportedLate,
    rto_after_handshake,
    rtt_estimate,
)
from tcplab.core.model.teardown.prediction import Observed, Race, TeardownPrediction
from tcplab.core.model.teardown.sim import Sim
from tcplab.core.scenario import Step


def predict_teardown(
    kernel: Kernel,
    params: dict[str, TeardownParams],
    rtt: dict[str, float],
    steps: dict[str, list[Step]],
    faults: tuple[Fault, ...],
    port: int = 8080,
    first_closer: str | None = None,
    until: float = 600.0,
    host_faults: tuple = (),
    observed: Observed | None = None,
) -> TeardownPrediction:
    """Segments and states of the teardown, from the moment the connection exists
    (t = 0, taken as the apps' start: the handshake's millisecond is below what the
    timed faults resolve), given each host's steps after its connect() or accept().

    With `observed` (a run's record), each step happens when the app really made the
    call, and each segment reaches its peer when the router really let it go. Where a
    call and a segment reached a host closer than `observed.race`, the other order is
    simulated too (up to MAX_RACES races, every combination), and the outcomes that
    differ are in `alternatives`. A call that several segments reached within the
    bound has a race with each: the kernel acted on it at one moment, so in each
    outcome it is on one side of each (one race of that call's flipped at a time, or
    none)."""
    rto = {h: rto_after_handshake(kernel, params[h], rtt.get(h, 0.001)) for h in params}
    spread: dict[str, float] = {}
    for h, samples in (observed.rtt_samples if observed is not None else {}).items():
        if samples:  # what the run's ACKs taught the kernel, not only the handshake
            rtt[h], rto[h] = rtt_estimate(kernel, params[h], samples)
            legs = observed.legs.get(h, 0.0) if observed is not None else 0.0
            if legs > 0:
                # own_legs() is the host's turnaround on its first handshake answer: its
                # way in and out, and its own time to make the answer, which the kernel's
                # sample does not hold (a SYN-ACK is timed from its own send,
                # tcp_synack_rtt_meas()). The RTT is somewhere from the router's view
                # to that: the RTO the model runs is the top of its range (gen-1028 in
                # the 6.1 guest: the server's turnaround on the SYN was 8.8 ms, its
                # FIN's RTO after the probe 212 ms for the model's 216)
                low = rtt_estimate(kernel, params[h], [max(samples[0] - legs, 0.0), *samples[1:]])[1]
                spread[h] = max(0.0, 1.0 - low / rto[h])

    def sim(
        shifts=None,
        delack_late=False,
        rack_wait=False,
        backlog_quiet=False,
        giveup_early=False,
        handover_lost=False,
    ) -> TeardownPrediction:
        out = Sim(
            kernel,
            params,
            rto,
            steps,
            faults,
            port,
            first_closer,
            host_faults,
            observed,
            shifts,
            rtt,
            delack_late,
            rack_wait,
            backlog_quiet,
            giveup_early,
            handover_lost,
        ).run(until)
        out.rto_spread = spread
        return out

    def each(
        shifts, delack_late, rack_wait, orders, nested=True, flipped=(), giveup_early=False
    ) -> TeardownPrediction | None:
        """One order's outcome (_try); where an old ACK raced an ACK's leaving
        (Receive.backlog_ack()), the same order with that ACK taken silently too; and
        where this outcome met a race of its own that main did not (a timer whose
        bucket an answer sent only in this outcome reached: gen-9107 on 6.18, the FIN's
        delayed ACK waiting and the server's data landing inside the client's loss
        probe's bucket), each such race flipped once too."""
        flags = {"delack_late": delack_late, "rack_wait": rack_wait, "giveup_early": giveup_early}
        plain = not shifts and not delack_late and not rack_wait and not giveup_early
        out = main if plain else _try(main, lambda: sim(shifts or None, **flags), orders)
        if out is not None and flipped:
            out.flipped = flipped
        if out is not None and out.backlog_choice:
            _try(main, lambda: sim(shifts or None, backlog_quiet=True, **flags), orders)
        if out is not None and out.handover_choice:  # the segment lost to the handover race
            _try(main, lambda: sim(shifts or None, handover_lost=True, **flags), orders)
        if out is not None and nested and out is not main:
            # A race is main's only if the call met the same arrival there: a call
            # that raced a pure ACK in main may meet a FIN in this outcome (gen-7005
            # on 6.18, loaded: the server closed first in this order, and its FIN
            # reached the client 0.8 ms after the client's close() stamp, before the
            # kernel acted on the close).
            known = {(r.host, r.step, r.call, r.what, r.nth) for r in main.races}
            for race in out.races:
                mine = (race.host, race.step, race.call, race.what, race.nth)
                if mine in known or (race.host, race.step) in (shifts or {}):
                    continue
                more = {**(shifts or {}), (race.host, race.step): _other_side(race)[0]}
                inner = each(
                    more,
                    delack_late,
                    rack_wait,
                    orders,
                    nested=False,
                    flipped=(race,),
                    giveup_early=giveup_early,
                )
                if inner is not None and inner.delack_choice and not delack_late:
                    # as the orders of main's races are: the FIN's delayed ACK both ways
                    # (gen-7005: in the flipped order the client's close() came 0.2 ms
                    # after the server's FIN, and its own FIN carried the ACK)
                    each(
                        more,
                        True,
                        rack_wait,
                        orders,
                        nested=False,
                        flipped=(race,),
                        giveup_early=giveup_early,
                    )
        return out

    main = sim()
    choices = (
        main.races,
        main.delack_choice,
        main.rack_choice,
        main.backlog_choice,
        main.giveup_choice,
        main.handover_choice,
    )
    if observed is None or not any(choices):
        return main
    groups, left_out = _chosen(main.races)
    races = [r for g in groups for r in g]
    main.races, main.race_bound = races, observed.race
    main.orders = tuple(r.call_t > r.arrival_t for r in races)
    if left_out:  # their other orders are not simulated: the run may have taken one
        main.unmodelled_orders.append(f"{left_out} more races than the {MAX_RACES} modelled")
    for choice in itertools.product(*[[None, *g] for g in groups]):
        shifts: dict = {}
        at = {}  # where each flipped call acted, on the model's clock
        for race in filter(None, choice):
            key = (race.host, race.step)
            shifts[key], at[key] = _other_side(race)
        orders = tuple(at.get((r.host, r.step), r.call_t) > r.arrival_t for r in races)
        for giveup_early in (False, True):
            out = each(shifts, False, False, orders, giveup_early=giveup_early)
            if out is not None and out.delack_choice:
                each(shifts, True, False, orders, giveup_early=giveup_early)
            if out is not None and out.rack_choice:  # RACK's reordering timer, both ways
                late = each(shifts, False, True, orders, giveup_early=giveup_early)
                if late is not None and late.delack_choice:
                    each(shifts, True, True, orders, giveup_early=giveup_early)
            if out is None or not out.giveup_choice:  # the give-up limit in a timer's slack
                break
    return main


def _other_side(race: Race) -> tuple:
    """The shift that puts the call (or timer) on the other side of the arrival it
    raced, and about when it then acts: moved before an arrival that came before its
    stamp; held for one that came after it (AfterArrival; for a timer, the next ACK)."""
    if race.call_t > race.arrival_t:
        return race.arrival_t - 1e-6, race.arrival_t - 1e-6
    if race.call == "timer":
        return AFTER_SEND if race.what == SEND_RACED else AFTER_NEXT, race.arrival_t + 1e-9
    return AfterArrival(race.what, race.nth), race.arrival_t + 1e-9


def _try(main: TeardownPrediction, run, orders) -> TeardownPrediction | None:
    """One more order's outcome among main's alternatives (if it differs from all
    so far); an order the model cannot follow is noted instead."""
    try:
        other = run()
    except Unsupported as e:  # that order is not modelled: the run may have taken it
        main.unmodelled_orders.append(str(e))
        main.unmodelled_late |= isinstance(e, UnsupportedLate)
        return None
    other.orders = orders
    if other is not main and _shape(other) not in {_shape(main)} | {_shape(a) for a in main.alternatives}:
        main.alternatives.append(other)
    return other


def _chosen(races: list[Race]) -> tuple[list[list[Race]], int]:
    """The races to simulate, grouped by call (or timer expiry), and how many are left
    out beyond MAX_RACES. Within a call, a segment that changes what the call does (a
    FIN, data, an RST) before a pure ACK, then the nearest; across calls, each call's
    first race before any call's second. A timer has one race: the ACK that may beat
    it."""
    groups: dict[tuple[str, int], list[Race]] = {}
    seen = set()
    for r in races:
        key = (r.host, r.step, r.arrival_t, r.what)
        if key in seen or (r.call == "timer" and (r.host, r.step) in groups):
            continue
        seen.add(key)
        groups.setdefault((r.host, r.step), []).append(r)
    ranked = [sorted(g, key=lambda r: (not r.matters, abs(r.call_t - r.arrival_t))) for g in groups.values()]
    order = [g[rank] for rank in range(max(map(len, ranked), default=0)) for g in ranked if rank < len(g)][
        :MAX_RACES
    ]
    picked = {id(r) for r in order}
    chosen = [[r for r in g if id(r) in picked] for g in ranked]
    return [g for g in chosen if g], len(seen) - len(order)


def _shape(p: TeardownPrediction) -> tuple:
    return (
        tuple((s.sender, s.name, s.fate) for s in p.segments),
        tuple((h, tuple(x.state for x in v)) for h, v in sorted(p.states.items())),
    )


# -- from a scenario --------------------------------------------------------------------


def steps_after_connection(steps: tuple[Step, ...], opener: str) -> list[Step] | None:
    """The steps after the connection exists (after connect or accept), with the socket
    options set before it, or None when there is no such step, or more than one
    connection."""
    calls = [s.call for s in steps]
    if calls.count(opener) != 1 or any(not isinstance(s.call, str) or s.call == "repeat" for s in steps):
        return None
    at = calls.index(opener)
    return [s for s in steps[:at] if s.call in SOCKET_OPTIONS] + list(steps[at + 1 :])


def teardown_for(
    sc, kernel: Kernel, sysctls: dict[str, dict[str, str]], record=None
) -> TeardownPrediction | None:
    """The teardown prediction for a scenario whose apps close a connection, or whose
    host faults could end it (a killed app, a rebooted or cut-off host), or None when
    neither happens. When the apps do something the model does not cover, the
    prediction says so (`unsupported`) and judges nothing.

    With the run's record the model is driven by what the apps really did and when
    (Observed), on the handshake model's clock (t = 0: the client's first SYN)."""
    client = steps_after_connection(sc.apps["client"], "connect")
    server = steps_after_connection(sc.apps["server"], "accept")
    faults = sc.host_faults
    if (
        client is None
        or server is None
        or not (
            any(s.call in ENDINGS for s in client + server)
            or any(f.action in HOST_FAULT_ENDINGS for f in faults)
        )
    ):
        return None
    port = next(s.arg[1] for s in sc.apps["client"] if s.call == "connect")
    params = {h: TeardownParams.from_sysctls(kernel, sysctls.get(h, {})) for h in ("client", "server")}
    rtt = handshake_rtt(record) if record is not None else {}
    try:
        observed = None
        if record is not None:
            observed, faults = observe(sc, record, faults)
        return predict_teardown(
            kernel,
            params,
            rtt,
            {"client": client, "server": server},
            sc.faults,
            port,
            first_closer(record) if record and not observed else None,
            until=sc.timeout + (0 if observed is None else 1),
            host_faults=faults,
            observed=observed,
        )
    except Unsupported as e:
        return TeardownPrediction(unsupported=str(e), unsupported_late=isinstance(e, UnsupportedLate))


# The stamp an app takes just before a call and the kernel's act differ by the Python
# between them, and a segment's t_out at the router and its arrival by the last hop:
# 0.1-0.2 ms and 0.05 ms on this machine when idle (tie.yaml of the generated
# scenarios: close() stamped 0.303775 s, the tracepoint's ESTABLISHED->FIN_WAIT1
# 0.303918 s). One millisecond more than the run's own worst stamp-to-kernel lag is
# the bound within which an app call and an arriving segment cannot be ordered.
