"""One run, as the claims report reads it: what was observed, or what the model predicted.

`Run.observed(result)` and `Run.predicted(result)` give the same shape (segments, socket
states, app calls, sysctls), so each quantity below is read by one function from both
the record and the kernel model's prediction: the model column and the observed column
of the report can never measure different things.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Seen:
    """A quantity read from a run. `ended` is False for a state the socket was still in
    when the run stopped: then `value` is a lower bound."""

    value: Any
    detail: str = ""
    ended: bool = True


@dataclass
class Run:
    segments: list[dict]  # {t, from, name, fate, t_out?, seq?, ack?, len?, raw?, raw_out?}
    states: list[dict]  # {t, host, key, from, to}
    calls: list[dict]  # {t, t_end, host, call, arg, result, counters?}
    sysctls: dict[str, dict[str, str]] = field(default_factory=dict)
    end: float = 0.0
    model: bool = False

    @classmethod
    def observed(cls, res: dict) -> Run:
        events = res.get("events") or []
        states = [dict(e, key=_socket(e)) for e in events if e.get("kind") == "state"]
        segments = [e for e in events if e.get("kind") == "segment"]
        stop = (res.get("observation") or {}).get("t_stop")
        end = stop if stop is not None else max((e.get("t", 0.0) for e in events), default=0.0)
        return cls(
            segments, states, [e for e in events if e.get("kind") == "app"], res.get("sysctls") or {}, end
        )

    @classmethod
    def predicted(cls, res: dict) -> Run | None:
        """The model's prediction on the record's clock (the model counts from the
        client's first SYN), or None when the run was not judged by a model."""
        model = res.get("model") or {}
        if not model:
            return None
        shift = _first_syn(res)
        parts = [model] + [v for v in model.values() if isinstance(v, dict)]
        segments = sorted(
            (dict(s, t=s["t"] + shift) for p in parts for s in p.get("segments") or [] if "t" in s),
            key=lambda s: s["t"],
        )
        states = [ev for p in parts for ev in _model_states(p.get("states"), shift)]
        started = {
            (e["host"], e["call"]): e["t"]
            for e in reversed(res.get("events") or [])
            if e.get("kind") == "app"
        }
        calls = []
        for name, call in sorted((model.get("calls") or {}).items()):
            host, _, what = name.partition(" ")
            if call.get("t_end") is not None:
                calls.append(
                    {
                        "host": host,
                        "call": what,
                        "result": call.get("result"),
                        "t": started.get((host, what), shift),
                        "t_end": call["t_end"] + shift,
                    }
                )
        flood = model.get("flood") or {}
        if flood.get("counters"):  # the flood model predicts the server's TcpExt deltas
            calls.append(
                {
                    "host": "server",
                    "call": "netstat",
                    "result": "ok",
                    "t": 0.0,
                    "t_end": 0.0,
                    "counters": flood["counters"],
                }
            )
        return cls(segments, states, calls, res.get("sysctls") or {}, 0.0, model=True)

    # --- what the readers share ---

    def sent(self, host: str, name: str) -> list[dict]:
        return [s for s in self.segments if s.get("from") == host and s.get("name") == name]

    def calls_of(self, host: str, call: str) -> list[dict]:
        return [c for c in self.calls if c.get("host") == host and c.get("call") == call]

    def sysctl(self, host: str, name: str) -> str | None:
        return (self.sysctls.get(host) or {}).get(name)


def _socket(e: dict) -> tuple:
    return (e.get("host"), e.get("laddr"), e.get("lport"), e.get("raddr"), e.get("rport"))


def _first_syn(res: dict) -> float:
    for e in res.get("events") or []:
        if e.get("kind") == "segment" and e.get("name") == "syn" and e.get("from") == "client":
            return e["t"]
    return 0.0


def _model_states(states, shift: float) -> list[dict]:
    """{host: [{t, state}, ...]} -> transitions of one socket per host. Entries marked
    "maybe" (an alternative the model allows) are not the prediction's own path."""
    out = []
    for host, seq in sorted((states or {}).items()) if isinstance(states, dict) else []:
        prev = "CLOSE"
        for st in seq:
            if st.get("maybe"):
                continue
            out.append(
                {
                    "t": st["t"] + shift,
                    "host": host,
                    "key": (host, "model", 0, "model", 0),
                    "from": prev,
                    "to": st["state"],
                }
            )
            prev = st["state"]
    return out


def _peer(host: str) -> str:
    return "server" if host == "client" else "client"


def _delivered_at(s: dict) -> float | None:
    """When a segment reached its receiver (the router released it), None if never."""
    if s.get("fate") == "dropped":
        return None
    return s.get("t_out") if s.get("t_out") is not None else s["t"]


def _connection_sockets(run: Run, host: str) -> list[tuple]:
    """The host's connection sockets (not a listener) in the order they appeared."""
    keys = []
    for e in run.states:
        if (
            e.get("host") == host
            and e["key"] not in keys
            and e.get("to") != "LISTEN"
            and e["key"][3] not in ("0.0.0.0", "::")
        ):
            keys.append(e["key"])
    return keys


# --- the readers: each takes (run, host, what, nth) and returns Seen or None -------------


def call_duration(run: Run, host: str, what: str, nth: int = 1) -> Seen | None:
    found = [c for c in run.calls_of(host, what) if c.get("t_end") is not None]
    if len(found) < nth:
        return None
    c = found[nth - 1]
    return Seen(round(c["t_end"] - c["t"], 3), c.get("result") or "")


def call_result(run: Run, host: str, what: str, nth: int = 0) -> Seen | None:
    """The result of the host's last `what` call (nth=0) or of its nth; a call still
    blocked when the run ended has no result."""
    found = [c for c in run.calls_of(host, what) if c.get("result") is not None]
    if not found or len(found) < nth:
        return None
    return Seen(found[nth - 1 if nth else -1]["result"])


def offsets(run: Run, host: str, what: str, nth: int = 0) -> Seen | None:
    times = sorted(s["t"] for s in run.sent(host, what))
    return Seen([round(t - times[0], 3) for t in times[1:]]) if times else None


def count(run: Run, host: str, what: str, nth: int = 0) -> Seen:
    return Seen(len(run.sent(host, what)))


def retransmissions(run: Run, host: str, what: str, nth: int = 0) -> Seen | None:
    n = len(run.sent(host, what))
    return Seen(n - 1) if n else None


def span(run: Run, host: str, what: str, nth: int = 0) -> Seen | None:
    """How long the host's first socket to enter state `what` stayed in it."""
    key = start = None
    for e in sorted(run.states, key=lambda e: e["t"]):
        if e.get("host") != host:
            continue
        if key is None and e.get("to") == what:
            key, start = e["key"], e["t"]
        elif key is not None and e["key"] == key and e.get("to") != what:
            # Left it, whatever `from` says: inet_diag reports the change since its last
            # poll (ESTABLISHED -> TIME_WAIT), which may pass over the state.
            return Seen(round(e["t"] - start, 3))
    if key is None:
        return None
    if run.model:  # a predicted state with no successor: the model's horizon, not a run's end
        return Seen("no end", "the model predicts no end", ended=False)
    return Seen(round(run.end - start, 3), "still in it when the run ended", ended=False)


def states(run: Run, host: str, what: str = "", nth: int = 1) -> Seen | None:
    """The states of the host's nth connection socket, in order, each once."""
    keys = _connection_sockets(run, host)
    if len(keys) < nth:
        return None
    seq: list[str] = []
    for e in sorted(run.states, key=lambda e: e["t"]):
        if e["key"] == keys[nth - 1] and (not seq or seq[-1] != e["to"]):
            seq.append(e["to"])
    return Seen(seq)


def at_once(run: Run, host: str, what: str, nth: int = 0) -> Seen | None:
    """The most connection sockets of the host in state `what` at one moment."""
    if run.model or not run.states:
        return None  # the models predict one connection, not a socket table
    now: dict[tuple, str] = {}
    most = 0
    for e in sorted(run.states, key=lambda e: e["t"]):
        if e.get("host") == host and e["key"][3] not in ("0.0.0.0", "::"):
            now[e["key"]] = e["to"]
            most = max(most, sum(1 for v in now.values() if v == what))
    return Seen(most)


def answered_by(run: Run, host: str, what: str, nth: int = 1) -> Seen | None:
    """What the peer sent first after the host's nth `what` segment reached it."""
    sent = [s for s in run.sent(host, what) if _delivered_at(s) is not None]
    if len(sent) < nth:
        return None
    at = _delivered_at(sent[nth - 1])
    later = [s for s in run.segments if s.get("from") == _peer(host) and s["t"] >= at]
    if not later:
        return Seen("nothing")
    return Seen(min(later, key=lambda s: s["t"])["name"])


def returns_on(run: Run, host: str, what: str, nth: int = 1) -> Seen | None:
    """The last segment from the peer that reached the host before its `what` call
    returned: the segment the call waited for."""
    calls = [c for c in run.calls_of(host, what) if c.get("t_end") is not None]
    if len(calls) < nth:
        return None
    return _last_arrival(run, host, calls[nth - 1]["t_end"])


def state_on(run: Run, host: str, what: str, nth: int = 1) -> Seen | None:
    """The last segment from the peer that reached the host before its nth connection
    socket entered state `what`."""
    keys = _connection_sockets(run, host)
    if len(keys) < nth:
        return None
    moments = [e["t"] for e in run.states if e["key"] == keys[nth - 1] and e.get("to") == what]
    return _last_arrival(run, host, min(moments)) if moments else None


def _last_arrival(run: Run, host: str, before: float) -> Seen | None:
    arrived = [
        (at, s["name"])
        for s in run.segments
        if s.get("from") == _peer(host)
        for at in [_delivered_at(s)]
        if at is not None and at <= before + 1e-4
    ]
    return Seen(max(arrived)[1]) if arrived else None


def largest(run: Run, host: str, what: str = "data", nth: int = 0) -> Seen | None:
    sizes = [s["len"] for s in run.sent(host, what) if s.get("len") is not None]
    return Seen(max(sizes)) if sizes else None


def backoffs_undone(run: Run, host: str, what: str, nth: int = 0) -> Seen | None:
    """Retransmission gaps that did not double. The first two gaps are left out (a tail
    loss probe and the first RTO are both one RTO), and so are gaps at the RTO's cap."""
    times = sorted(s["t"] for s in run.sent(host, what))
    gaps = [b - a for a, b in zip(times, times[1:])]
    if len(gaps) < 3:
        return None
    cap = float(run.sysctl(host, "net.ipv4.tcp_rto_max_ms") or 120000) / 1000
    undone = sum(1 for prev, gap in zip(gaps[1:], gaps[2:]) if gap < 1.5 * prev and gap < 0.9 * cap)
    return Seen(undone, "gaps " + ", ".join(f"{g:.3g}" for g in gaps))


def counter(run: Run, host: str, what: str, nth: int = 0) -> Seen | None:
    """A TcpExt counter's change, from the host's last netstat step."""
    found = [c for c in run.calls_of(host, "netstat") if c.get("counters") is not None]
    return Seen(found[-1]["counters"].get(what, 0)) if found else None


def unprompted(run: Run, host: str, what: str, nth: int = 0) -> Seen | None:
    """How many of the host's `what` segments after the first went out with nothing new
    from the peer since the one before: retransmissions, as opposed to answers."""
    mine = sorted(s["t"] for s in run.sent(host, what))
    if not mine:
        return None
    arrivals = [
        at
        for s in run.segments
        if s.get("from") == _peer(host)
        for at in [_delivered_at(s)]
        if at is not None
    ]
    return Seen(sum(1 for a, b in zip(mine, mine[1:]) if not any(a < at <= b + 1e-4 for at in arrivals)))


def holders(run: Run, host: str = "", what: str = "TIME_WAIT", nth: int = 0) -> Seen | None:
    """Which hosts had a socket in state `what`."""
    found = sorted({e["host"] for e in run.states if e.get("to") == what})
    return Seen(found) if run.states else None


def after_last(run: Run, host: str, what: str, nth: int = 0) -> Seen | None:
    """How long the host's socket stayed in state `what` after the peer's last segment
    reached it (a timer restarted by each segment runs from the last one)."""
    whole = span(run, host, what)
    enter = [e["t"] for e in run.states if e.get("host") == host and e.get("to") == what]
    if whole is None or not whole.ended or not enter:
        return None
    leave = min(enter) + whole.value
    arrived = [
        at
        for s in run.segments
        if s.get("from") == _peer(host)
        for at in [_delivered_at(s)]
        if at is not None and at <= leave
    ]
    return Seen(round(leave - max(arrived), 3)) if arrived else None


def mss_announced(run: Run, host: str) -> int | None:
    """The MSS option in the SYN (or SYN-ACK) that reached `host`, as the router let it
    go; 0 when it carried none; None when the record has no raw bytes."""
    for s in run.segments:
        if (
            s.get("from") == _peer(host)
            and s.get("name") in ("syn", "syn-ack")
            and not s.get("injected")
            and _delivered_at(s) is not None
        ):
            raw = s.get("raw_out") or s.get("raw")
            return _mss_option(bytes.fromhex(raw)) if raw else None
    return None


def _mss_option(packet: bytes) -> int:
    ihl = (packet[0] & 0x0F) * 4
    tcp = packet[ihl:]
    options, i = tcp[20 : (tcp[12] >> 4) * 4], 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if kind == 2 and i + 3 < len(options):
            return int.from_bytes(options[i + 2 : i + 4], "big")
        i += max(options[i + 1], 2) if i + 1 < len(options) else len(options)
    return 0


def seq_used(run: Run, host: str, what: str, nth: int = 1) -> Seen | None:
    """How many sequence numbers the host's nth `what` segment took: the peer's first
    acknowledgment past it, less its sequence number and payload."""
    if run.model:
        return None  # the models predict segments, not sequence numbers
    sent = run.sent(host, what)
    if len(sent) < nth or sent[nth - 1].get("seq") is None:
        return None
    s = sent[nth - 1]
    for p in run.segments:
        if (
            p.get("from") == _peer(host)
            and p["t"] >= s["t"]
            and "A" in (p.get("flags") or "")
            and (p.get("ack", 0) - s["seq"]) % 2**32 > s.get("len", 0)
        ):
            return Seen((p["ack"] - s["seq"] - s.get("len", 0)) % 2**32)
    return None


def succeeded(run: Run, host: str, what: str, nth: int = 0) -> Seen | None:
    """How many of the host's `what` calls returned ok."""
    found = [c for c in run.calls_of(host, what) if c.get("result") is not None]
    return Seen(sum(1 for c in found if c["result"] == "ok")) if found else None


def same_seq(run: Run, host: str, what: str, nth: int = 0) -> Seen | None:
    """Whether the host's copies of a segment all carry the first one's sequence number."""
    seqs = [s.get("seq") for s in run.sent(host, what) if not s.get("injected")]
    if run.model or len(seqs) < 2 or None in seqs:
        return None
    return Seen(
        "same" if len(set(seqs)) == 1 else "changed",
        f"{len(seqs)} copies, {len(set(seqs))} sequence number(s)",
    )
