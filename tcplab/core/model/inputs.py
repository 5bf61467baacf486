"""What the handshake model needs from a scenario (and, when judging, from the record):
the connection's port, who listens, the client's first segment after its handshake,
TCP_SYNCNT, a simultaneous open's start. Pure: the scenario, sysctls and record in."""

from __future__ import annotations

from dataclasses import dataclass

from tcplab.core.record import Record
from tcplab.core.scenario import Scenario, all_steps
from tcplab.core.segments import ACK, FIN, RST

DEFAULT_PORT = 8080  # the format's default, for a client that never connects


@dataclass(frozen=True)
class HandshakeInputs:
    port: int
    listens: bool
    client_sysctls: dict[str, str]  # TCP_SYNCNT folded in as tcp_syn_retries
    server_connects: bool  # a simultaneous open (open.py)
    stale_syn: bool  # forge: stale-syn
    data_after_connect: float | None  # when the client's first segment follows connect()
    first_segment: tuple[int, int] = (ACK, 1)  # its (flags, length)
    # the client's next segments (after the first, t from it; flags, length) up to the
    # first that reached the server: what completes a request whose ACK was lost
    then: tuple[tuple[float, int, int], ...] = ()
    # with a record: when the router sent each duplicate's copy, (sender, name, nth,
    # t from the client's first SYN, t from its original's leaving, whether it left
    # before the sender's next segment did): copies_sent() (its raw socket follows the
    # hook's own timing: a copy `by: 0` left 1.5 ms after the original in gen-2055)
    copies: tuple[tuple[str, str, int, float, float, bool], ...] = ()
    server_at: float | None = None  # a simultaneous open: the server's first SYN, from the client's


def handshake_inputs(
    sc: Scenario, sysctls: dict[str, dict[str, str]], record: Record | None = None
) -> HandshakeInputs:
    client_steps = sc.apps["client"]
    return HandshakeInputs(
        port=next((s.arg[1] for s in all_steps(client_steps) if s.call == "connect"), DEFAULT_PORT),
        listens=any(s.call == "listen" for s in sc.apps["server"]),
        client_sysctls=with_syncnt(sysctls.get("client", {}), client_steps),
        server_connects=server_connects(sc),
        stale_syn=any(f.kind == "stale-syn" for f in sc.forges),
        server_at=server_start(sc, record) if record is not None else None,
        copies=copies_sent(record) if record is not None else (),
        **first_after_connect(client_steps, record),
    )


def copies_sent(record: Record) -> tuple[tuple[str, str, int, float, float, bool], ...]:
    """Each duplicate's copy: (sender, name, nth, when the router sent it from the
    client's first SYN, how long after its original, ahead). The handshake model runs
    its own clock, which may be off the record's by the lateness of the original (a
    SYN timer 25 ms late), so the copy's place among the model's own events is known
    only between the two: from the first SYN, it may fall after the model's data where
    it came before (gen-10074 on 6.18: the SYN-ACK's copy reached the client 0.5 ms
    before its send() and drew an ACK); from its original, before a request timer it
    came after (gen-18115 on 6.18: a SYN retransmission's copy 2 ms after it, the
    request's own retransmission 1 ms before it). handshake.py runs both.
    `ahead`: it left the router before the sender's next segment of its own (the
    client's handshake ACK after its SYN), so it reached the receiver first: the
    handshake model times its own segments on an idle path, and on a slow machine the
    record's order says where the copy fell (gen-4156-ci in the 6.1 guest: the SYN's
    copy left 3 ms after the SYN, the server answered both 5 ms after it, and the
    client's ACK came 8 ms after it: the copy met the request and drew a second
    SYN-ACK, where the model had it meet the finished handshake)."""
    syns = record.sent_by("client", "syn")
    if not syns:
        return ()
    out = []
    for s in record.segments:
        if not (s.injected and (s.fault or "").startswith("duplicate")):
            continue
        same = record.sent_by(s.sender, s.name)
        original = next((o for o in same if o.nth == s.nth and not o.injected), None)
        if original is None:
            continue
        nxt = next(
            (
                o
                for o in record.segments
                if o.conn == original.conn
                and o.sender == s.sender
                and not o.injected
                and o.name != s.name
                and o.t > original.t
            ),
            None,
        )
        ahead = nxt is not None and s.left < nxt.left
        out.append((s.sender, s.name, s.nth, s.left - syns[0].t, s.left - original.left, ahead))
    return tuple(out)


def server_connects(sc: Scenario) -> bool:
    """Nobody listens; both apps connect(): a simultaneous open (open.py)."""
    return any(s.call == "connect" for s in all_steps(sc.apps["server"]))


def server_start(sc: Scenario, record: Record) -> float | None:
    """In a simultaneous open, when the server's first SYN left relative to the
    client's, as the router saw them: the apps' start, not the kernel's doing."""
    if not server_connects(sc):
        return None
    client, server = record.sent_by("client", "syn"), record.sent_by("server", "syn")
    return server[0].t - client[0].t if client and server else None


def with_syncnt(sysctls: dict[str, str], steps) -> dict[str, str]:
    """TCP_SYNCNT set before the first connect is that socket's tcp_syn_retries."""
    syncnt = None
    for step in all_steps(steps):
        if step.call == "connect":
            break
        if step.call == "syncnt":
            syncnt = step.arg
    return sysctls if syncnt is None else {**sysctls, "net.ipv4.tcp_syn_retries": str(syncnt)}


def first_after_connect(steps, record: Record | None) -> dict:
    """The client's first segment after its handshake, for the handshake model (it
    completes a request whose ACK was lost): with a record, the one the client really
    sent (data, or a FIN) and how long after the SYN-ACK reached it; else what the
    steps say plainly."""
    if record is not None:
        # in the order they reached the client: the first to arrive made the
        # connection, not the first sent (gen-11191 on 6.18: SYN-ACK #1 held 2 s came
        # after #2, the FIN 0.5 s after #2; timed from #1 the FIN left at connect())
        answers = sorted(
            (s for s in record.sent_by("server", "syn-ack") if s.t_out is not None),
            key=lambda s: s.t_out or 0.0,
        )
        # an RST too (close() with SO_LINGER 0): at the request's rcv_nxt it drops the
        # request (tcp_check_req(), embryonic_reset; gen-7144 on 6.18)
        after = client_data_or_fin(record, rst=True)
        if answers and after:
            # up to the first that got through: a dropped first data segment leaves
            # the request to the FIN right behind it (gen-4074 on 6.18)
            reached = next((i for i, s in enumerate(after) if s.t_out is not None), len(after) - 1)
            chain = after[: reached + 1]
            return {
                "data_after_connect": max(0.0, after[0].t - answers[0].t_out),
                "first_segment": (after[0].flags, after[0].length),
                "then": tuple((s.t - after[0].t, s.flags, s.length) for s in chain[1:]),
            }
    return {"data_after_connect": data_after_connect(steps)}


def client_data_or_fin(record: Record, rst: bool = False) -> list:
    """What the client sent on its first connection that carries data or a FIN (or,
    with `rst`, is an RST)."""
    syns = record.sent_by("client", "syn")
    return [
        s
        for s in record.segments
        if syns
        and s.conn == syns[0].conn
        and s.sender == "client"
        and not s.injected
        and (s.length > 0 or s.flags & FIN or (rst and s.flags & RST))
    ]


def data_after_connect(steps) -> float | None:
    """How long after connect() returns the client sends its first data, if its steps
    say so plainly (connect, then sleeps, then send)."""
    after, started = 0.0, False
    for step in steps:
        if step.call == "connect":
            started = True
        elif started and step.call == "sleep":
            after += step.arg
        elif started and step.call == "send":
            return after
        elif started:
            return None
    return None


def client_hand_over(record: Record) -> float | None:
    """When the client first sent data or a FIN, on the model's clock (t = 0 its first
    SYN): after it, the handshake model's names for the client's answers are wrong."""
    after = client_data_or_fin(record)
    return after[0].t - record.sent_by("client", "syn")[0].t if after else None
