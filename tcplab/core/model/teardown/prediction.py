"""What the teardown model predicts, and what it reads from a record (Observed)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tcplab.core.model.prediction import PredictedSegment


@dataclass
class PredictedState:
    t: float
    state: str
    slack: float  # how much later than t the kernel may get there
    cause: str  # "segment", "app", "timer"


@dataclass(frozen=True)
class Observed:
    """What a run's record says the applications did and when the network delivered,
    on the model's clock (t = 0: the client's first SYN at the router). With it the
    model predicts the kernels' answers to the calls the apps really made, at the
    moments they made them (the apps' sleeps are Python's and their start follows the
    handshake, which faults move), instead of to the steps' nominal schedule.

    steps: per host, for each step the simulator runs, (start, end) of that call as the
      app stamped it, or None for a socket option set before the connection existed;
      a host's list stops where its app stopped (killed, or blocked at the end).
    arrivals: (sender, name, nth) -> when that segment left the router (t_out).
    race: two events at one host closer than this cannot be ordered from the stamps
      (the app stamps a call just before making it; see RACE_NOISE)."""

    steps: dict[str, list[tuple[float, float | None] | None]]
    arrivals: dict[tuple[str, str, int], float]
    race: float
    # Handshake segments that reached a host after its call returned (a delayed or
    # retransmitted SYN-ACK at the client, the handshake's ACK at the server), as
    # (t_out, receiver, flags, sent: its TSval, as a send time): the handshake model's
    # part while the connection is ESTABLISHED, the teardown's once it is not.
    late: tuple[tuple[float, str, int, float], ...] = ()
    # (sender, name) -> when the router sent each duplicate's copy, in order, and
    # whether it was cut short (observe.truncated())
    copies: dict[tuple[str, str], tuple[tuple[float, bool], ...]] = field(default_factory=dict)
    # host -> the RTT samples its kernel took before its first FIN (rtt_samples())
    rtt_samples: dict[str, list[float]] = field(default_factory=dict)
    # (sender, name, nth) -> when the router took that segment in (its own copies
    # aside): which segment a fault's `nth` hit in the run
    sent: dict[tuple[str, str, int], float] = field(default_factory=dict)
    # (sender, name, nth) -> (t, TSval, TSecr, ack relative to the peer's ISN): the
    # timestamps the record's bytes carry (paws.py)
    stamps: dict[tuple[str, str, int], tuple] = field(default_factory=dict)
    # host -> its SYNs (client) or SYN-ACKs (server) sent more than once in the
    # handshake: more than one starts it with a congestion window of one (cwnd_one())
    handshake_retrans: dict[str, int] = field(default_factory=dict)
    # (sender, name, nth) -> (seq, ack) relative to the ISNs: which segment it is
    # (numbering.py)
    contents: dict[tuple[str, str, int], tuple[int, int]] = field(default_factory=dict)
    # the run's segments that answered a handshake segment (numbering.handshake_answers)
    answers: frozenset[tuple[str, str, int]] = frozenset()
    # host -> the part of its first RTT sample (the handshake's, in rtt_samples) that
    # the router cannot see and own_legs() bounds from above
    legs: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Race:
    """An app call and a segment arriving at the same host within the race bound."""

    host: str
    step: int  # index into that host's simulated steps
    call: str
    call_t: float
    arrival_t: float
    what: str  # the arriving segment, e.g. "the client's fin"
    # which arrival of that kind since the call's stamp (AfterArrival), for one after it
    nth: int = 1
    matters: bool = True  # a FIN, data or an RST: it changes what the call does


@dataclass
class TeardownPrediction:
    segments: list[PredictedSegment] = field(default_factory=list)
    states: dict[str, list[PredictedState]] = field(default_factory=dict)
    rto: dict[str, float] = field(default_factory=dict)
    # host -> how much shorter, as a share of it, the kernel's RTO may be than `rto`:
    # the host's own way to the router and back lies between none and own_legs()
    # (predict.py); its retransmissions may come that much earlier (check/teardown.py)
    rto_spread: dict[str, float] = field(default_factory=dict)
    horizon: float = 0.0
    # Segments the kernel may or may not send: a delayed ACK racing the app's close()
    # right after recv() returned EOF (seen both ways on 6.18 under load).
    maybe: list[PredictedSegment] = field(default_factory=list)
    # Why the model cannot judge this teardown (a step or segment it does not cover);
    # empty when it can.
    unsupported: str = ""
    unsupported_late: bool = False  # ... because of a late handshake segment
    unmodelled_late: bool = False  # an order not modelled for that reason
    # Calls and segments that raced (Observed.race), and the other orders' outcomes
    # (each with `orders` saying which way each race went there).
    races: list[Race] = field(default_factory=list)
    orders: tuple[bool, ...] = ()  # per race: True when the call came after the arrival
    # races met only in this outcome, not in main, and flipped here (predict.py each())
    flipped: tuple[Race, ...] = ()
    race_bound: float = 0.0  # Observed.race of the run
    # A delayed ACK of the peer's FIN was sent: this prediction has it leave at once,
    # an alternative as late as the kernel may hold it (delayed_ack()).
    delack_choice: bool = False
    delack_late: bool = False  # this prediction is the one where it waited
    # RACK found a hole whose retransmission may be at once or on the reordering
    # timer (core/model/teardown/sack.py): this prediction has it at once, an
    # alternative waits for the timer (which the hole's filling may stop).
    rack_choice: bool = False
    rack_wait: bool = False  # this prediction is the one where it waited
    # An old ACK arrived within the race bound of the ACK that made it old
    # (Receive.backlog_ack()): this prediction answers it with a duplicate ACK, an
    # alternative takes it silently.
    backlog_choice: bool = False
    # An RTO expiry where the give-up limit fell within what the timers since the first
    # RTO may have run late (Timers.fin_timer): this prediction goes on retransmitting,
    # an alternative gives up there.
    giveup_choice: bool = False
    giveup_early: bool = False  # this prediction is the one that gave up
    # A segment reached a host within the race bound after another closed its full
    # socket (Races.lost_in_handover()): (host, which, how long after). This prediction
    # has it taken by what replaced the socket, an alternative lost.
    handover_choice: tuple[str, str, float] | None = None
    handover_lost: bool = False  # this prediction is the one where it was lost
    unmodelled_orders: list[str] = field(default_factory=list)  # why, for each
    alternatives: list[TeardownPrediction] = field(default_factory=list)

    def of(self, sender: str, name: str) -> list[PredictedSegment]:
        return [s for s in self.segments if s.sender == sender and s.name == name]

    def to_json(self) -> dict:
        if self.unsupported:
            return {"not_judged": self.unsupported}
        return {
            "rto": {h: round(r, 4) for h, r in self.rto.items()},
            "segments": [
                {
                    "t": round(s.t, 4),
                    "from": s.sender,
                    "name": s.name,
                    "nth": s.nth,
                    "fate": s.fate,
                    "cause": s.cause,
                    "late_by_up_to": round(s.slack, 4),
                }
                for s in self.segments
            ],
            "may_also_send": [{"from": s.sender, "name": s.name, "fate": s.fate} for s in self.maybe],
            "states": {
                h: [
                    {
                        "t": round(s.t, 4),
                        "state": s.state,
                        "cause": s.cause,
                        "late_by_up_to": round(s.slack, 4),
                    }
                    for s in v
                ]
                for h, v in self.states.items()
            },
        }


def gone_at(pred: TeardownPrediction | None, host: str) -> float | None:
    """When the host first sends data or a FIN or leaves ESTABLISHED (Sim.hand_over),
    if it does: from then on what a late handshake segment draws is this model's to
    say (and named as the teardown names it)."""
    if pred is None or pred.unsupported:
        return None
    times = [p.t for p in pred.segments if p.sender == host and p.name in ("data", "fin", "peer-fin")]
    times += [x.t for x in pred.states.get(host, [])]
    return min(times, default=None)


def teardown_hints(pred: TeardownPrediction | None, origin: float, now: float) -> list[tuple[float, str]]:
    """What the teardown model expects next, for the live status line: segments and
    state changes (the model's t = 0 is about the client's first SYN)."""
    if pred is None:
        return []
    out = [(origin + p.t, f"{p.sender} {p.name} #{p.nth}") for p in pred.segments]
    out += [(origin + s.t, f"{host} {s.state}") for host, states in pred.states.items() for s in states]
    return [(t, what) for t, what in out if t > now]
