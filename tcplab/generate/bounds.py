"""How long a generated scenario can take: when each timer chain a fault can start
gives up, from the sysctls pinned to end it, and the worst case of a whole draw
(`worst`), which the timeout must cover. Bounds, not predictions; generously late.
"""

from __future__ import annotations

from tcplab.generate.vocabulary import (
    CHAINED,
    DEFAULTS,
    FIN_TIMEOUT,
    LATE,
    LINEAR,
    ORPHAN_RETRIES,
    PHASES,
    RETRIES2,
    RTO,
    S,
    SYNACK_RETRIES,
    SYN_RETRIES,
    Fault,
    Plan,
)


# --- how long it can take ------------------------------------------------------------------


def _syn_giveup(retries: int, linear: int) -> float:
    """connect() gives up at the expiry after retries + linear retransmissions; the
    first linear + 1 waits are 1 s, then they double (tcp_write_timeout, 6.5+)."""
    waits = [1.0] * (linear + 1) + [2.0**k for k in range(1, retries + 1)]
    return sum(waits[: retries + linear + 1]) * LATE


def _synack_giveup(retries: int) -> float:
    return (2 ** (retries + 1) - 1) * LATE


def rto_giveup(retries: int) -> float:
    """When an RTO chain from the first transmission ends: the first expiry at which the
    time since the first RTO retransmission reaches tcp_model_timeout(retries, 200 ms);
    expiries at 2^k R (a tail loss probe at R first)."""
    limit, k = (2 ** (retries + 1) - 1) * 0.2, 1
    while (2**k - 2) * RTO < limit:
        k += 1
    return 2**k * RTO * LATE


def worst(
    plan: Plan, faults: list[Fault], pins: dict[str, dict[str, int]], linear: bool
) -> tuple[float, float]:
    """(handshake, body) in seconds: how long the handshake can take, and how long after
    it the modelled activity can go on. Bounds, not predictions."""
    client, server = pins["client"], pins["server"]
    drops = {f.segment for f in faults if f.action == "drop"}
    handshake = 0.0
    if drops & {"syn", "syn-ack"}:
        handshake += _syn_giveup(
            client.get(SYN_RETRIES, DEFAULTS[SYN_RETRIES]), client.get(LINEAR, 4 if linear else 0)
        )
    if drops & {"syn-ack", "ack"}:  # a late SYN can start a new request: both chains
        handshake += _synack_giveup(server.get(SYNACK_RETRIES, DEFAULTS[SYNACK_RETRIES]))
    body = max(plan.busy.values()) / S
    for f in faults:
        lag = (f.by or 0) / S * (1 if f.action == "duplicate" else 3)  # each wait, in turn
        if f.segment in PHASES["handshake"]:
            handshake += lag
        else:
            body += lag
    if any(f.action == "drop" and f.nth is None and f.segment in CHAINED for f in faults):
        body += rto_giveup(
            max(p.get(n, DEFAULTS[n]) for p in (client, server) for n in (RETRIES2, ORPHAN_RETRIES))
        )
    body += max((p.get(FIN_TIMEOUT, 0) for p in (client, server)), default=0) * LATE
    return handshake, body
