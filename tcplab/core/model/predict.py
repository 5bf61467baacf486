"""The kernel model's one entry point: a scenario, the kernel and the sysctls in force
(and, when judging, the run's record) in; one Prediction out. The runner judges with
it and `tcplab explain` shows it: both call this, so what is shown is what is judged.

The parts each return their piece and this function puts them together:
- handshake.py (or open.py for a simultaneous open): the opening, t = 0 the client's
  first SYN;
- established.py: what a host sends into a peer gone silent;
- flood.py: a SYN flood ahead of the genuine connection;
- teardown/: the close, the FINs, FIN_WAIT2 and TIME_WAIT.
With a record, the teardown follows what the apps really did, and once the client's
connection is gone (teardown.prediction.gone_at), the handshake part stops answering
for it: the opening is predicted again with that moment (client_gone_at).
"""

from __future__ import annotations

import dataclasses

from tcplab.core.model import chance, established, flood
from tcplab.core.model.handshake import predict_handshake
from tcplab.core.model.handshake_params import HostParams
from tcplab.core.model.inputs import HandshakeInputs, client_hand_over, handshake_inputs
from tcplab.core.model.kernel import Kernel
from tcplab.core.model.open import predict_simultaneous_open
from tcplab.core.model.prediction import Prediction
from tcplab.core.model.teardown.observe import handshake_rtt, kernel_rtt_range
from tcplab.core.model.teardown.params import RACE_NOISE
from tcplab.core.model.teardown.predict import teardown_for
from tcplab.core.model.teardown.prediction import TeardownPrediction, gone_at

from tcplab.core.record import Record
from tcplab.core.scenario import Scenario

LISTENER_RST_TO_LIVE_CLIENT = (
    "the server's request was dropped, and a client segment reaching the listener draws "
    "an RST (tcp_rcv_state_process(), LISTEN) that may find the client's connection still "
    "open, which the teardown model does not foresee"
)
NO_SERVER_CONNECTION = (
    "the server's request was dropped before anything completed it (tcp_check_req()), "
    "so it has no connection to close, and the teardown model starts from both"
)


def predict(
    sc: Scenario, kernel: Kernel, sysctls: dict[str, dict[str, str]], record: Record | None = None
) -> Prediction:
    """What this kernel should do in this scenario. `sysctls`: per host, what is in
    force (the agents' report when judging; the scenario's own before a run)."""
    if chance.random_faults(sc.faults):
        return _with_dice(sc, kernel, sysctls, record)
    inputs = handshake_inputs(sc, sysctls, record)
    prediction = _phases(sc, kernel, sysctls, inputs, record, None)
    if record is None or inputs.server_connects:
        return prediction
    teardown = prediction.teardown  # _teardown()'s, below: a TeardownPrediction or None
    gone = gone_at(teardown, "client") if isinstance(teardown, TeardownPrediction) else None
    if gone is None and teardown is not None:  # not judged: the record's
        gone = client_hand_over(record)
    if gone is None:
        return prediction
    # what reaches the client once its connection is gone is the teardown model's:
    # the handshake part stops answering there. The teardown model has the client's
    # first data leave at the app's call; where the record has it leave later (a slow
    # send(): gen-9205 on 6.18, 0.95 ms), what arrived in between may have been
    # answered as a handshake segment still (HandshakeSim.client_gets()).
    seen = client_hand_over(record)
    window = RACE_NOISE + (max(0.0, seen - gone) if seen is not None else 0.0)
    return _phases(sc, kernel, sysctls, inputs, record, gone, window)


def _with_dice(
    sc: Scenario, kernel: Kernel, sysctls: dict[str, dict[str, str]], record: Record | None
) -> Prediction:
    """Random faults (chance.py): the opening alone, with the certain faults, up to
    the client's first data or FIN; or nothing, when the dice can reach the opening."""
    unjudged = chance.unjudged(sc.faults)
    if not chance.opening_judged(sc.faults):
        return Prediction(kernel, notes=[f"not judged: {unjudged[0][1]}"], unjudged=unjudged)
    certain = dataclasses.replace(sc, faults=tuple(f for f in sc.faults if not f.random))
    inputs = handshake_inputs(certain, sysctls, record)
    gone = client_hand_over(record) if record is not None else None
    prediction = _opening(certain, kernel, sysctls, inputs, gone)
    # the client's first data, as the opening model plays it, is the dice's to decide
    rolled = {f.segment for f in chance.random_faults(sc.faults)}

    def without_dice(p: Prediction) -> Prediction:
        return dataclasses.replace(p, segments=[s for s in p.segments if s.name not in rolled])

    return dataclasses.replace(
        without_dice(prediction),
        unjudged=unjudged,
        alternatives=[without_dice(a) for a in prediction.alternatives],
        notes=[*prediction.notes, f"not judged: {unjudged[0][0]}: {unjudged[0][1]}"],
    )


def _phases(
    sc: Scenario,
    kernel: Kernel,
    sysctls: dict[str, dict[str, str]],
    inputs: HandshakeInputs,
    record: Record | None,
    client_gone_at: float | None,
    gone_window: float = 0.0,
) -> Prediction:
    prediction = _opening(sc, kernel, sysctls, inputs, client_gone_at, gone_window)
    ways = (prediction, *prediction.alternatives)
    whole = next((why for p in ways for what, why in p.unjudged if what == "everything"), None)
    if whole is not None:  # an outcome the model cannot tell (handshake_sim.py)
        return Prediction(kernel, notes=[f"not judged: {whole}"], unjudged=[("everything", whole)])
    rtts = handshake_rtt(record) if record is not None else None
    ranges = kernel_rtt_range(record) if record is not None else None
    bursts = established.predict(
        kernel,
        sc,
        sysctls,
        prediction,
        rtts,  # a peer gone silent
        ranges,
    )
    if bursts:
        prediction = established.with_bursts(prediction, bursts)
    if flood.flood_setup(sc) is not None and kernel.accept_queue_full_above is None:
        why = (
            f"whether {kernel.name()} (stable level {kernel.stable or 'unknown'}) holds "
            f"a request more than listen()'s backlog (the stable backport of "
            f"3479c7549fb1, Kernel.accept_queue_full_above) is not known here"
        )
        return Prediction(kernel, notes=[f"not judged: {why}"], unjudged=[("everything", why)])
    fp, note = flood.for_scenario(sc, kernel, sysctls, inputs.client_sysctls)  # H11
    if fp is not None:
        prediction = flood.with_flood(prediction, fp)
    if note:
        prediction = dataclasses.replace(prediction, notes=[*prediction.notes, note])
    return dataclasses.replace(prediction, teardown=_teardown(sc, kernel, sysctls, prediction, record))


def _opening(
    sc: Scenario,
    kernel: Kernel,
    sysctls: dict[str, dict[str, str]],
    inputs: HandshakeInputs,
    client_gone_at: float | None,
    gone_window: float = 0.0,
) -> Prediction:
    client = HostParams.from_sysctls(kernel, inputs.client_sysctls)
    server = HostParams.from_sysctls(kernel, sysctls.get("server", {}))
    if inputs.server_connects:
        return predict_simultaneous_open(
            kernel, client, server, sc.faults, inputs.port, sc.timeout, inputs.server_at
        )
    return predict_handshake(
        kernel,
        client,
        server,
        sc.faults,
        listens=inputs.listens,
        port=inputs.port,
        data_after_connect=inputs.data_after_connect,
        first_segment=inputs.first_segment,
        then=inputs.then,
        copies=inputs.copies,
        until=sc.timeout,
        client_gone_at=client_gone_at,
        gone_window=gone_window,
        stale_syn=inputs.stale_syn,
    )


def _teardown(
    sc: Scenario,
    kernel: Kernel,
    sysctls: dict[str, dict[str, str]],
    prediction: Prediction,
    record: Record | None,
):
    """The teardown part, once connect() succeeded; with the record, from the RTT the
    handshake measured and what the apps did. A peer gone silent that the teardown
    model does not cover is established.py's alone."""

    # Where the handshake has outcomes a tie decides (alternatives), the run is judged
    # against the one it matches (check/handshake.py _closest): where the run's
    # connect() succeeded, as it does in one of them, a teardown is owed, or it would go
    # unjudged without a word whenever the main outcome is a failure (gen-11207,
    # gen-11254 on 6.18, before the hand-over fix in handshake_sim.client_gets(): a
    # pass with the teardown silently left out).
    def connected(p: Prediction) -> bool:
        return p.calls.get(("client", "connect"), ("ok",))[0] == "ok"

    if not connected(prediction) and not (
        record is not None
        and any(c.host == "client" and c.call == "connect" and c.result == "ok" for c in record.apps)
        and any(map(connected, prediction.alternatives))
    ):
        return None
    teardown = teardown_for(sc, kernel, sysctls, record)
    if teardown is not None and teardown.unsupported and prediction.established:
        return None
    if teardown is not None and prediction.request_drops and not prediction.server_connected:
        return _no_server_connection(teardown, prediction)
    return teardown


def _no_server_connection(teardown: TeardownPrediction, opening: Prediction) -> TeardownPrediction:
    """The client's RST (close() with SO_LINGER 0) dropped the server's request
    (tcp_check_req(), embryonic_reset; gen-7144 on 6.18): accept() never returns and
    there is no server connection. The teardown's server part goes where it only
    changes state; where it sends, the teardown is not judged.

    What the client sent that reaches the server after that finds the listener, which
    answers with an RST (HandshakeSim.server_gets()); the opening model has those. They
    are the server's only segments, counted here, where the RSTs are counted, when the
    client's connection is surely gone by then (an RST to no socket draws nothing); one
    that may reach a live client would end its connection, which the teardown model
    does not foresee: not judged."""
    listener = [s for s in opening.segments if s.sender == "server" and s.name == "rst"]
    for p in (teardown, *teardown.alternatives):
        if any(s.sender == "server" for s in p.segments):
            return TeardownPrediction(unsupported=NO_SERVER_CONNECTION)
        if any(not _client_closed_before(p, rst.t) for rst in listener):
            return TeardownPrediction(unsupported=LISTENER_RST_TO_LIVE_CLIENT)
        p.states.pop("server", None)
        p.segments[:] = sorted([*p.segments, *listener], key=lambda s: s.t)
    return teardown


def _client_closed_before(p: TeardownPrediction, t: float) -> bool:
    """Whether the client's connection is surely CLOSE (no socket, no timewait
    minisocket) at `t`, by the latest moment each of its state changes may come."""
    changes = [x for x in p.states.get("client", []) if x.t <= t]
    return (
        bool(changes) and changes[-1].state == "CLOSE" and changes[-1].t + changes[-1].slack + RACE_NOISE < t
    )
