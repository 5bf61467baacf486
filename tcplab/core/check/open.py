"""The hosts' states in the handshake against the kernel model. Pure; core/check/'s
check_model calls `check_opening_states`.

The model predicts them where it models the opening state by state (Prediction.states:
core/model/open.py's simultaneous open, core/model/handshake.py's stale SYN); elsewhere there is
nothing to judge. For each host, the record's states of its connection
(Record.state_sequence: tracepoint and inet_diag merged, repeats folded) must be the
predicted sequence, up to ESTABLISHED when the prediction ends there (what follows is
the teardown's). A request socket that lives a fraction of a millisecond (the old SYN's
request, dropped by the client's RST) is seen only if an inet_diag poll falls into its
life, so its changes (PredictedChange.maybe) may be there or not, together.
"""

from __future__ import annotations

import itertools

from tcplab.core.check.base import Check
from tcplab.core.record import Record


def fold(states: list[str]) -> list[str]:
    """Repeats folded, as Record.state_sequence folds them."""
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]


def candidates(changes) -> list[list[str]]:
    """The sequences the record may show: first with every maybe-seen stay unseen (what
    is likely), then with some or all of them seen."""
    labels = sorted({c.maybe for c in changes if c.maybe})
    out: list[list[str]] = []
    for n in range(len(labels), -1, -1):
        for hidden in itertools.combinations(labels, n):
            seq = fold([c.state for c in changes if not c.maybe or c.maybe not in hidden])
            if seq not in out:
                out.append(seq)
    return out


def matches(seen: list[str], want: list[str]) -> bool:
    return seen == want or (bool(want) and want[-1] == "ESTABLISHED" and seen[: len(want)] == want)


def check_opening_states(pred, record: Record) -> list:

    out = []
    for host, changes in pred.states.items():
        seen, proof = record.state_sequence(host)
        cands = candidates(changes)
        expected = cands[0] if len(cands) == 1 else " or ".join(map(str, cands))
        model = ", ".join(
            f"{c.state} at {c.t:.4f}s" + (f" ({c.maybe}: maybe seen)" if c.maybe else "") for c in changes
        )
        evidence = "; ".join(f"t={e.t:.3f}s {e.old}->{e.new} ({e.source})" for e in proof)
        out.append(
            Check(
                f"model: {host} states",
                any(matches(seen, c) for c in cands),
                expected,
                seen,
                evidence=f"{evidence or 'no states seen'} | model: {model}",
            )
        )
    return out
