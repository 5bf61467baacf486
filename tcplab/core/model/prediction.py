"""What the model predicts: segments, calls and state changes of a connection."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Protocol

from tcplab.core.model.kernel import Kernel


@dataclass(frozen=True)
class PredictedSegment:
    t: float
    sender: str
    name: str
    nth: int
    fate: str
    cause: str  # "timer", "answer", "first"
    slack: float  # how much later than t the kernel may send it (timer lateness, summed)
    # Whose connect() the chain of causes leading to it starts from: its time counts
    # from that host's first SYN (the server's own only in a simultaneous open).
    clock: str = "client"
    injected: bool = False  # made up by the router (forge: stale-syn), not sent by `sender`


@dataclass(frozen=True)
class PredictedChange:
    """A state change of a host's connection in the handshake (socket or request)."""

    t: float
    state: str
    clock: str = "client"
    # A request socket too short-lived for inet_diag's polling to be sure to see (the
    # tracepoint never does): the changes sharing this label are seen together or not.
    maybe: str = ""


class Part(Protocol):
    """A part's own prediction kept on a Prediction (the teardown's, the flood's),
    typed by what a Prediction needs of it: their modules import this one, not the
    other way."""

    def to_json(self) -> dict: ...


@dataclass
class Prediction:
    kernel: Kernel
    segments: list[PredictedSegment] = field(default_factory=list)
    calls: dict[tuple[str, str], tuple[str, float, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    horizon: float = 0.0  # the model says nothing about what happens after this
    alternatives: list[Prediction] = field(default_factory=list)  # other orders of a tie
    teardown: Part | None = None  # teardown/prediction.py's TeardownPrediction, if any
    established: list = field(default_factory=list)  # established.py's Bursts
    flood: Part | None = None  # flood.py's FloodPrediction: a SYN flood came first
    # host -> its connection's state changes, where the opening is modelled state by
    # state (a simultaneous open, a stale SYN); empty: not predicted
    states: dict[str, list[PredictedChange]] = field(default_factory=dict)
    client_gone_at: float | None = None  # from then on the teardown model answers the client
    # timer expiries a segment raced within their bucket: ("req", k) the request
    # timer's k-th, ("syn", k) the client's SYN timer's (handshake.py)
    races: list[tuple[str, int]] = field(default_factory=list)
    # every request the server dropped, in order: (when, how late it may be)
    request_drops: list[tuple[float, float]] = field(default_factory=list)
    server_connected: bool = False  # a request became the server's connection
    # (sender, name) -> (how many of these may be missing, how many more may come): a
    # rate-limited answer whose gap to the last one was within their lateness of the
    # limit, so the kernel may have decided either way (handshake.py, oow_answer())
    uncertain: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    # (what, why) the model abstains from: random faults (chance.py); ("everything",
    # why): no model check at all
    unjudged: list[tuple[str, str]] = field(default_factory=list)

    def of(self, sender: str, name: str) -> list[PredictedSegment]:
        """What `sender` itself sent of that name (the router's forgeries left out, as
        Record.sent_by leaves them out)."""
        return [s for s in self.segments if s.sender == sender and s.name == name and not s.injected]

    def to_json(self) -> dict:
        """The result JSON's `model`: what was judged, in the runner's units."""
        out = {
            "kernel": self.kernel.name(),
            "segments": [
                {
                    "t": round(p.t, 4),
                    "from": p.sender,
                    "name": p.name,
                    "nth": p.nth,
                    "fate": p.fate,
                    "cause": p.cause,
                    "late_by_up_to": round(p.slack, 4),
                    **({"clock": p.clock} if p.clock != "client" else {}),
                }
                for p in self.segments
            ],
            "calls": {
                f"{h} {c}": {"result": r, "t_end": round(e, 4)} for (h, c), (r, _s, e) in self.calls.items()
            },
        }
        if self.states:  # open.py, the stale SYN: the hosts' states
            out["states"] = {
                host: [
                    {"t": round(c.t, 4), "state": c.state, **({"maybe": c.maybe} if c.maybe else {})}
                    for c in changes
                ]
                for host, changes in self.states.items()
            }
        if self.flood is not None:
            out["flood"] = {
                **self.flood.to_json(),
                "note": (
                    "times from the first flood SYN; the handshake's segments and calls above "
                    "count from the genuine client's first SYN"
                ),
            }
        if self.teardown is not None:
            out["teardown"] = self.teardown.to_json()
        if self.unjudged:
            out["not_judged"] = [{"what": what, "why": why} for what, why in self.unjudged]
        return out


C_ADDR, S_ADDR, C_PORT = "10.0.0.1", "10.0.0.2", 40000  # model-internal, never on a wire
X, Y = 1000, 5000
# forge: stale-syn, as tcplab/lab/hook/faults.py does it (tests/unit/test_model_open.py
# checks the two agree): the old SYN's ISN lies 2^28 behind the real one, and the real
# SYN is held until the client's RST has passed the router, at most 0.5 s.
STALE_ISN_BACK, STALE_HOLD = 0x10000000, 0.5
Y_OLD = Y - 12187  # the server's ISN for the old SYN's request: another, earlier one


def shape(p: Prediction) -> tuple:
    return tuple((s.sender, s.name, s.fate) for s in p.segments), tuple(
        sorted((k, v[0]) for k, v in p.calls.items())
    )


DIAG_SURE = 0.1  # inet_diag polls every 8 ms: a request living this long is surely seen


def surely_seen(changes: list[PredictedChange], until: float) -> list[PredictedChange]:
    """A request marked `maybe` is surely seen, and so is its end, when it lives at
    least DIAG_SURE and no other request of the same 4-tuple follows within DIAG_SURE
    of its end (the poll would see the 4-tuple in SYN_RECV throughout)."""
    out = list(changes)
    for label in {c.maybe for c in changes if c.maybe}:
        mine = [i for i, c in enumerate(changes) if c.maybe == label]
        start, last = changes[mine[0]].t, mine[-1]
        end = changes[last].t if changes[last].state == "CLOSE" else until
        nxt = changes[last + 1].t if last + 1 < len(changes) else None
        if end - start >= DIAG_SURE and (nxt is None or nxt - end >= DIAG_SURE):
            for i in mine:
                out[i] = dataclasses.replace(changes[i], maybe="")
    return out
