"""Turning what the lab's processes reported into one Record, and reading it back.

Pure: messages come in as dicts with a CLOCK_MONOTONIC `mono`; the Record holds
events with `t` relative to the scenario start t0.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import overload

from tcplab.core.fin_order import agree_on_fin_order
from tcplab.core.events import (
    AppCalled,
    Event,
    FaultActed,
    KernelNoted,
    SegmentSeen,
    StateChanged,
    event_from_json,
)

# States the sock:inet_sock_set_state tracepoint never reports (request sockets and
# timewait minisockets); inet_diag polling fills them in (LINUX-TCP.md section 9).
TRACEPOINT_BLIND = frozenset({"SYN_RECV", "TIME_WAIT"})
# A full socket handing over to a timewait minisocket shows FIN_WAIT2->CLOSE or
# CLOSING->CLOSE on the tracepoint although the connection lives on.
HANDOVER_FROM = frozenset({"FIN_WAIT2", "CLOSING"})


@dataclass
class Record:
    t0: float
    wall0: float = 0.0  # wall-clock time at t0 (pcap timestamps need one)
    segments: list[SegmentSeen] = field(default_factory=list)
    apps: list[AppCalled] = field(default_factory=list)
    kernel: list[KernelNoted] = field(default_factory=list)
    tracepoint_states: list[StateChanged] = field(default_factory=list)
    diag_states: list[StateChanged] = field(default_factory=list)
    faults: list[FaultActed] = field(default_factory=list)  # link-down, crash, kill, ...
    have_tracepoint: bool = True
    alive_at_end: set = field(default_factory=set)  # (host, 4-tuple) diag saw at the end
    t_stop: float | None = None  # when observation stopped: a state still held then lasts on
    merged: list[StateChanged] = field(default_factory=list)  # a saved run's states()
    # The machine's TCP timers that ran late (lab/tracefs.py timer_lateness): [t, jiffies
    # past the wheel's clock, handler]; None when they were not traced.
    timer_late: list | None = None
    # When each of those TCP timers ran at all (lab/tracefs.py timer_expiries): [t,
    # handler]; what a retransmission's way to the router is measured from.
    timer_fired: list | None = None
    # (CLOCK_MONOTONIC seconds, jiffies) at the start and end of observation
    # (lab/jiffies.py): how fast the kernel's tick ran against the lab's clock.
    jiffies: list = field(default_factory=list)
    _delayed: dict[int, int] = field(default_factory=dict)  # hook id -> index in segments
    _ids: dict[int, int] = field(default_factory=dict)  # hook id -> index, every segment
    # (host, repeat iteration or None) -> (mono, call, arg): parallel iterations each
    # have a call open at the same time.
    _open_calls: dict[tuple, tuple[float, str, object]] = field(default_factory=dict)

    def observation(self) -> dict:
        """What the result JSON keeps besides the events, so that a saved run can be
        judged again (Record.from_json)."""
        return {
            "have_tracepoint": self.have_tracepoint,
            "t_stop": self.t_stop,
            "alive_at_end": sorted([host, list(four)] for host, four in self.alive_at_end),
            # both sources before merging (events hold the merged history, which
            # has dropped the tracepoint's handovers that judging reads)
            "tracepoint_states": [e.to_json() for e in self.tracepoint_states],
            "diag_states": [e.to_json() for e in self.diag_states],
            **({"timer_late": self.timer_late} if self.timer_late is not None else {}),
            **({"timer_fired": self.timer_fired} if self.timer_fired is not None else {}),
            **({"jiffies": self.jiffies} if self.jiffies else {}),
        }

    @classmethod
    def from_json(cls, saved: dict) -> Record:
        """The Record of a saved run (its result JSON). Runs saved before the
        `observation` key existed stop observing at their last event."""
        obs = saved.get("observation") or {}
        rec = cls(
            t0=0.0,
            wall0=saved.get("started") or 0.0,
            have_tracepoint=obs.get("have_tracepoint", True),
            t_stop=obs.get("t_stop"),
            timer_late=obs.get("timer_late"),
            timer_fired=obs.get("timer_fired"),
            jiffies=[tuple(x) for x in obs.get("jiffies", [])],
            alive_at_end={(h, tuple(f)) for h, f in obs.get("alive_at_end", [])},
        )
        for d in saved.get("events", []):
            ev = event_from_json(d)
            if isinstance(ev, SegmentSeen):
                rec.segments.append(ev)
            elif isinstance(ev, AppCalled):
                rec.apps.append(ev)
            elif isinstance(ev, KernelNoted):
                rec.kernel.append(ev)
            elif isinstance(ev, FaultActed):
                rec.faults.append(ev)
            elif isinstance(ev, StateChanged) and "tracepoint_states" not in obs:
                rec.merged.append(ev)  # saved merged: merging again would lose handovers
        rec.segments = agree_on_fin_order(rec.segments)  # saved before it was done at the run
        rec.tracepoint_states = _states_from_json(obs.get("tracepoint_states", []))
        rec.diag_states = _states_from_json(obs.get("diag_states", []))
        return rec

    @overload
    def t(self, mono: float) -> float: ...
    @overload
    def t(self, mono: None) -> None: ...
    def t(self, mono: float | None) -> float | None:
        """Seconds since t0 of a CLOCK_MONOTONIC time, to the microsecond; None stays None."""
        return None if mono is None else round(mono - self.t0, 6)

    # -- feeding ------------------------------------------------------------------
    def add_segment(self, m: dict) -> SegmentSeen:
        seg = SegmentSeen(
            t=self.t(m["mono"]),
            name=m["name"],
            nth=m["nth"],
            sender=m["sender"],
            flags=m["flags"],
            seq=m["seq"],
            ack=m["ack"],
            length=m["length"],
            fate=m["fate"],
            retransmission=m["retransmission"],
            conn=m["conn"],
            t_out=self.t(m["mono_out"]),
            src=m["src"],
            dst=m["dst"],
            sport=m["sport"],
            dport=m["dport"],
            fault=m.get("fault"),
            raw=m.get("raw", ""),
            wire_len=m.get("wire_len", 0),
            injected=m.get("injected", False),
            raw_out=m.get("raw_out", ""),
            roll=m.get("roll"),
            sent_len=m.get("sent_len"),
        )
        if seg.fate in ("delayed", "held"):  # held: for the presenter (core/step.py)
            self._delayed[m["id"]] = len(self.segments)
        if "id" in m:
            self._ids[m["id"]] = len(self.segments)
        self.segments.append(seg)
        return seg

    def add_segments(self, m: dict, until: float | None = None) -> list[SegmentSeen]:
        """A batch of the hook's (tcplab/lab/hook/log.py): rows of `fields`; with
        `until`, only the segments the router received by then (monotonic)."""
        rows = (dict(zip(m["fields"], row)) for row in m["rows"])
        return [self.add_segment(r) for r in rows if until is None or r["mono"] <= until]

    def attach_raw(self, raws: dict[int, dict[str, bytes]]) -> None:
        """The segments' bytes, which the hook keeps apart from its messages
        (tcplab/lab/rawstore.py): hook id -> {"raw": ..., "raw_out": ...}."""
        for ident, i in self._ids.items():
            got = raws.get(ident)
            if got:
                self.segments[i] = dataclasses.replace(
                    self.segments[i], raw=got.get("raw", b"").hex(), raw_out=got.get("raw_out", b"").hex()
                )

    def sort_segments(self) -> None:
        """In the order the router received them, once nothing refers to them by
        position any more: the hook's queued segments and the observer's passing ones
        arrive through two processes (tcplab/lab/hook/observer.py)."""
        self.segments = agree_on_fin_order(sorted(self.segments, key=lambda s: s.t))
        self._delayed.clear()
        self._ids.clear()

    def release(self, m: dict) -> SegmentSeen | None:
        i = self._delayed.pop(m["id"], None)
        if i is None:
            return None
        due = self.segments[i].t_out
        released = self.t(m["mono"])
        self.segments[i] = dataclasses.replace(
            self.segments[i], t_out=released, held_late=round(released - due, 6) if due is not None else None
        )
        return self.segments[i]

    def decide(self, m: dict) -> SegmentSeen | None:
        """Step mode: the presenter's decision on a held segment (the hook's `decided`):
        its fate, when it left (delivered) and who decided, in `fault`."""
        i = self._delayed.pop(m["id"], None)
        if i is None:
            return None
        self.segments[i] = dataclasses.replace(
            self.segments[i],
            fate=m["fate"],
            fault=m["fault"],
            t_out=self.t(m["mono"]) if m["fate"] != "dropped" else None,
        )
        return self.segments[i]

    def held_id(self, seg: SegmentSeen) -> int | None:
        """The hook's id of a segment still held for the presenter."""
        return next(
            (ident for ident, i in self._delayed.items() if self.segments[i] is seg and seg.fate == "held"),
            None,
        )

    def app_started(self, host: str, m: dict) -> None:
        self._open_calls[(host, m.get("iteration"))] = (m["mono"], m["call"], m.get("arg"))

    def app_finished(self, host: str, m: dict) -> AppCalled:
        self._open_calls.pop((host, m.get("iteration")), None)
        call = AppCalled(
            t=self.t(m["mono"]),
            host=host,
            call=m["call"],
            arg=m.get("arg"),
            result=m["result"],
            t_end=self.t(m["mono_end"]),
            detail=m.get("detail", ""),
            iteration=m.get("iteration"),
            lport=m.get("lport"),
            rport=m.get("rport"),
            counters=m.get("counters"),
        )
        self.apps.append(call)
        return call

    def open_calls(self) -> list[tuple[str, str, float]]:
        """(host, call, t started) of every call still blocked."""
        return [
            (host, call, self.t(mono))
            for (host, _i), (mono, call, _arg) in sorted(self._open_calls.items(), key=_open_key)
        ]

    def close_open_calls(self) -> None:
        """Calls still blocked when the run ended are recorded with no result."""
        for (host, i), (mono, call, arg) in sorted(self._open_calls.items(), key=_open_key):
            self.apps.append(
                AppCalled(
                    t=self.t(mono),
                    host=host,
                    call=call,
                    arg=arg,
                    result=None,
                    t_end=None,
                    detail="still blocked",
                    iteration=i,
                )
            )
        self._open_calls.clear()

    def add_fault(self, who: str, m: dict) -> FaultActed:
        """A fault acted (the hook or an agent says so), or an application ended."""
        if m["kind"] == "app-exit":
            ev = FaultActed(self.t(m["mono"]), who, "app-exit", f"app ended: {m['how']}")
        else:
            ev = FaultActed(self.t(m["mono"]), m.get("host", who), m["action"], m["what"], m.get("fault", ""))
        self.faults.append(ev)
        return ev

    def add_diag(self, host: str, m: dict) -> StateChanged:
        ev = StateChanged(
            t=self.t(m["mono"]),
            host=host,
            old=m["old"],
            new=m["new"],
            source="inet_diag",
            laddr=m["laddr"],
            lport=m["lport"],
            raddr=m["raddr"],
            rport=m["rport"],
            after=self.t(m["after"]) if m.get("after") is not None else None,
        )
        self.diag_states.append(ev)
        return ev

    # -- reading ------------------------------------------------------------------
    def states(self) -> list[StateChanged]:
        if self.merged:
            return list(self.merged)
        return merge_states(self.tracepoint_states, self.diag_states, self.have_tracepoint, self.alive_at_end)

    def events(self) -> list[Event]:
        return sorted(
            [*self.segments, *self.apps, *self.kernel, *self.states(), *self.faults], key=lambda e: e.t
        )

    def sent_by(self, host: str, name: str) -> list[SegmentSeen]:
        """Occurrences of `name` from `host` on the first connection that has any."""
        mine = [
            s for s in self.segments if s.sender == host and s.name == name and not s.injected
        ]  # the router's copies and forgeries are not the host's
        if not mine:
            return []
        first = mine[0].conn
        return [s for s in mine if s.conn == first]

    def state_sequence(self, host: str) -> tuple[list[str], list[StateChanged]]:
        """States of the host's first connection socket (listeners left out), in
        order, repeats folded: e.g. [SYN_SENT, ESTABLISHED, FIN_WAIT1, ...]."""
        evs = [e for e in self.states() if e.host == host and e.rport != 0]
        if not evs:
            return [], []
        key = _tuple(evs[0])
        seq: list[str] = []
        proof: list[StateChanged] = []
        for e in evs:
            if _tuple(e) == key and (not seq or seq[-1] != e.new):
                seq.append(e.new)
                proof.append(e)
        return seq, proof


def _states_from_json(saved: list[dict]) -> list[StateChanged]:
    out = []
    for d in saved:
        e = event_from_json(d)
        assert isinstance(e, StateChanged), d  # observation() saves state changes only
        out.append(e)
    return out


def _open_key(item) -> tuple:
    (host, iteration), _call = item
    return (host, iteration or 0)


def _tuple(e: StateChanged) -> tuple:
    return (e.laddr, e.lport, e.raddr, e.rport)


def merge_states(
    tracepoint: list[StateChanged],
    diag: list[StateChanged],
    have_tracepoint: bool,
    alive_at_end: set | frozenset = frozenset(),
) -> list[StateChanged]:
    """One state history from two sources. The tracepoint is exact for full sockets;
    inet_diag adds what it cannot see. Without tracefs, inet_diag is all there is."""
    if not have_tracepoint:
        return sorted(diag, key=lambda e: e.t)
    handovers = set()
    kept = []
    for e in tracepoint:
        if e.old == "LISTEN" and e.new != "CLOSE" and e.rport == 0:
            # A listener never leaves LISTEN but to close. This is a child's clone
            # (inet_csk_clone_lock() sets TCP_SYN_RECV) reported before its addresses
            # were set, with the listener's: 6.1 does so. The child's own events follow.
            continue
        if e.new == "CLOSE" and e.old in HANDOVER_FROM and _lives_on(e, diag, alive_at_end):
            handovers.add((e.host, _tuple(e)))
            continue
        kept.append(e)
    # When the tracepoint saw a request's child leave SYN_RECV (the handshake's last
    # ACK), the request existed before that moment, however late the poll that saw
    # it was stamped: a loaded poller thread can take the time well after its dump
    # returned, and the record must not show SYN_RECV after ESTABLISHED.
    established: dict[tuple[str, tuple], float] = {}
    for e in tracepoint:
        if e.old == "SYN_RECV":
            established.setdefault((e.host, _tuple(e)), e.t)
    for e in diag:
        if blind_spot(e) or (e.new == "CLOSE" and (e.host, _tuple(e)) in handovers):
            child = established.get((e.host, _tuple(e)))
            if e.new == "SYN_RECV" and child is not None and e.t > child:
                e = dataclasses.replace(e, t=child)
            kept.append(e)
    kept += _requests_seen_leaving(tracepoint, kept)
    # Sorted by time; at a tie a request's SYN_RECV comes before its child's change.
    return sorted(kept, key=lambda e: (e.t, e.new != "SYN_RECV"))


def _requests_seen_leaving(tracepoint: list[StateChanged], kept: list[StateChanged]) -> list[StateChanged]:
    """A request the poller never saw, whose child the tracepoint saw leave SYN_RECV:
    it was in SYN_RECV until then (the tracepoint's oldstate says so). A request lives
    one RTT, less than a poll period on a fast path, so on a slow machine the poll can
    miss it, and on 6.1 the child's clone reports no change into SYN_RECV (6.18's
    tracepoint also shows LISTEN->SYN_RECV). Stamped at the change that proves it,
    source "inferred": the moment it began is not known."""
    entered = {(e.host, _tuple(e)) for e in kept if e.new == "SYN_RECV"}
    out = []
    for e in tracepoint:
        key = (e.host, _tuple(e))
        if e.old == "SYN_RECV" and e.rport != 0 and key not in entered:
            entered.add(key)
            out.append(dataclasses.replace(e, old="LISTEN", new="SYN_RECV", source="inferred"))
    return out


def blind_spot(e: StateChanged) -> bool:
    """A diag change the tracepoint cannot report: into or out of a request or
    timewait socket's state."""
    return e.new in TRACEPOINT_BLIND or (e.new == "CLOSE" and e.old in TRACEPOINT_BLIND)


def _lives_on(e: StateChanged, diag: list[StateChanged], alive_at_end: set | frozenset) -> bool:
    """Did the connection outlive the tracepoint's CLOSE as a timewait socket? Then
    diag shows it in TIME_WAIT afterwards, or sees it vanish well after (an RST'd
    socket vanishes within a poll or two), or it was still there when the run ended."""
    if (e.host, _tuple(e)) in alive_at_end:
        return True
    for d in diag:
        if d.host != e.host or _tuple(d) != _tuple(e):
            continue
        if d.new == "TIME_WAIT" and d.t >= e.t - 0.001:
            return True
        if d.new == "CLOSE" and d.old in ("FIN_WAIT2", "TIME_WAIT") and d.t > e.t + 0.2:
            return True
    return False
