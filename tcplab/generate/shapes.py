"""Shapes: the app schedules a generated scenario is built on, each a function of the
random generator that returns a Plan (the apps' steps, who sends what, how long each
app is busy, and the phrase the summary opens with), and the phases it can serve.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from tcplab.generate.bounds import rto_giveup
from tcplab.generate.vocabulary import (
    ACCEPT,
    CLOSE,
    CONNECT,
    HOSTS,
    HOST_FAULT_ATS,
    LEADS,
    MS,
    RCVTIMEOS,
    RECV,
    REQUESTS,
    RETRIES2,
    S,
    SIZES,
    THINKS,
    Dur,
    Plan,
    draw_closing,
    draw_payload,
    draw_tie,
    opening,
    other_host,
    pick,
    size_words,
    when_words,
    who_sends,
)


# --- shapes: the app schedules ----------------------------------------------------------------


def _send_close(rng: random.Random, fast: bool) -> Plan:
    """A little data and a close; the server reads and closes, reacting to it or on a
    timer of its own that ties with the client's close or not."""
    lead, data = pick(rng, LEADS), draw_payload(rng)
    tie, off = draw_tie(rng, ("reactive", "exact", "near", "gap"))
    closing, words, rst = draw_closing(rng)
    client = [CONNECT, ("sleep", lead), ("send", data), *closing]
    server = [ACCEPT, RECV, CLOSE] if tie == "reactive" else [ACCEPT, ("sleep", Dur(lead + off)), RECV, CLOSE]
    phrase = (
        f"the client sends {size_words(data)} {lead} after the handshake and {words}; the "
        f"server reads and closes {when_words(tie, off, 'client')}"
    )
    return Plan(
        phrase,
        {"client": client, "server": server},
        {"client": lead, "server": lead + off},
        who_sends(("client",), ("client",) * rst),
        tie,
    )


def _http10(rng: random.Random, fast: bool) -> Plan:
    """Request, half-close, reply: HTTP/1.0. The client's FIN_WAIT2 meets the reply."""
    request, reply, think = pick(rng, REQUESTS), pick(rng, SIZES), pick(rng, THINKS)
    client = [CONNECT, ("send", request), ("shutdown", "wr"), ("recv", reply + 1), CLOSE]
    server = [ACCEPT, RECV, *([("sleep", think)] if think else []), ("send", reply), CLOSE]
    later = f"{think} later" if think else "at once"
    phrase = (
        f"HTTP/1.0 style: the client sends {request!r} and half-closes (shutdown: wr); "
        f"the server replies with {size_words(reply)} {later} and closes; the client reads "
        "to the end and closes"
    )
    return Plan(
        phrase,
        {"client": client, "server": server},
        {"client": think, "server": think},
        who_sends(HOSTS),
        "reactive",
    )


def _both_close(rng: random.Random, fast: bool) -> Plan:
    """Both apps close on timers of their own: at once, a hair apart, or clearly apart."""
    lead = pick(rng, LEADS)
    tie, off = draw_tie(rng, ("exact", "exact", "near", "near", "gap"))
    later = pick(rng, HOSTS)
    data = draw_payload(rng) if rng.random() < 0.5 else None
    ends = {h: draw_closing(rng) for h in HOSTS}
    waits = {h: Dur(lead + (off if h == later else 0)) for h in HOSTS}
    client = [
        CONNECT,
        *([("send", data)] if data is not None else []),
        ("sleep", waits["client"]),
        *ends["client"][0],
    ]
    server = [ACCEPT, *([RECV] if data is not None else []), ("sleep", waits["server"]), *ends["server"][0]]
    sent = f"the client sends {size_words(data)}, then " if data is not None else ""
    first = other_host(later)
    phrase = (
        f"{sent}the {first} {ends[first][1]} {lead} after the handshake and the "
        f"{later} {ends[later][1]} {when_words(tie, off, first)}"
    )
    return Plan(
        phrase,
        {"client": client, "server": server},
        dict(waits),
        who_sends(("client",) if data is not None else (), tuple(h for h in HOSTS if ends[h][2])),
        tie,
    )


def _server_first(rng: random.Random, fast: bool) -> Plan:
    """The server closes first; the client, waiting in recv(), closes when it sees the
    end: at once or a clear gap later (the 0.5 s of issue 11)."""
    lead = pick(rng, LEADS)
    tie, off = draw_tie(rng, ("reactive", "gap"))
    closing, words, rst = draw_closing(rng)
    server = [ACCEPT, ("sleep", lead), *closing]
    client = [CONNECT, RECV, *([("sleep", off)] if off else []), CLOSE]
    phrase = (
        f"the server {words} {lead} after the handshake; the client, waiting in recv(), "
        f"closes {when_words(tie, off, 'server') if off else 'as soon as recv() returns'}"
    )
    return Plan(
        phrase,
        {"client": client, "server": server},
        {"server": lead, "client": lead + off},
        who_sends(rst=("server",) * rst),
        tie,
    )


def _unread_close(rng: random.Random, fast: bool) -> Plan:
    """The server closes with data unread: an RST instead of a FIN (RFC 2525 2.17)."""
    first, second = pick(rng, SIZES), pick(rng, SIZES)
    pause = pick(rng, LEADS[:3])
    client = [CONNECT, ("send", first), ("sleep", pause), ("send", second), RECV, CLOSE]
    server = [ACCEPT, ("recv", first), ("sleep", Dur(2 * pause)), CLOSE]
    phrase = (
        f"the client sends {size_words(first)}, then {size_words(second)} more {pause} "
        f"later, and waits in recv(); the server reads only the first {first} and closes "
        f"{Dur(2 * pause)} after the handshake with the rest unread"
    )
    return Plan(
        phrase,
        {"client": client, "server": server},
        {"client": 2 * pause, "server": 2 * pause},
        who_sends(("client",), ("server",)),
        "reactive",
    )


def _rcvtimeo(rng: random.Random, fast: bool) -> Plan:
    """One app gives up waiting (SO_RCVTIMEO, EAGAIN) and closes; the other reacts."""
    waiter, timeout = pick(rng, HOSTS), pick(rng, RCVTIMEOS[:3] if fast else RCVTIMEOS)
    tie, off = draw_tie(rng, ("reactive", "gap"))
    closing, words, rst = draw_closing(rng)
    other = other_host(waiter)
    steps = {
        waiter: [*opening(waiter), ("rcvtimeo", timeout), RECV, CLOSE],
        other: [*opening(other), RECV, *([("sleep", off)] if off else []), *closing],
    }
    phrase = (
        f"the {waiter} sets SO_RCVTIMEO {timeout} and waits in recv() for data that "
        f"never comes, then closes; the {other}, waiting in recv() too, {words} "
        + (when_words(tie, off, waiter) if off else "as soon as it sees the end")
    )
    return Plan(phrase, steps, {waiter: timeout, other: timeout + off}, who_sends(rst=(other,) * rst), tie)


def _keepalive(rng: random.Random, fast: bool) -> Plan:
    """Keepalive on an idle connection: answered by a live peer, or unanswered after the
    peer's host crashed, until the prober gives up (idle + count x interval)."""
    prober = pick(rng, HOSTS)
    peer = other_host(prober)
    idle, interval, count = pick(rng, (1, 2, 3)), pick(rng, (1, 2)), pick(rng, (1, 2, 3))
    if fast:
        idle, count = min(idle, 2), min(count, 2)
    option = ("keepalive", {"idle": idle, "interval": interval, "count": count})
    said = (
        f"the {prober} turns keepalive on (idle {idle} s, interval {interval} s, count "
        f"{count}) and waits in recv() on an idle connection; "
    )
    prober_steps = [*opening(prober), option, RECV, CLOSE]
    if rng.random() < 0.6:
        at = pick(rng, HOST_FAULT_ATS[:2] if idle == 1 else HOST_FAULT_ATS)
        return Plan(
            said + f"the {peer} host crashes at {at}, so no probe is answered",
            {prober: prober_steps, peer: opening(peer)},
            {prober: (idle + count * interval) * S, peer: 0},
            who_sends(rst=(prober,), closes=False, keepalive=(prober,)),
            "gap",
            host_fault=("crash", peer, at),
        )
    probes = pick(rng, (1, 2))
    quiet = Dur(probes * idle * S + 500 * MS)
    closing, words, rst = draw_closing(rng)
    return Plan(
        said + f"the {peer} answers the probes and {words} after {quiet}",
        {prober: prober_steps, peer: [*opening(peer), ("sleep", quiet), *closing]},
        {prober: quiet, peer: quiet},
        who_sends(rst=(peer,) * rst, keepalive=(prober,), keepalive_ack=(peer,)),
        "gap",
    )


def _into_silence(rng: random.Random, fast: bool) -> Plan:
    """Data sent to a peer whose host crashed or whose link is down: retransmissions
    until tcp_retries2 gives up (ETIMEDOUT, or ENETUNREACH from the router's ICMP)."""
    sender = pick(rng, HOSTS)
    silent = other_host(sender)
    how, at = pick(rng, ("crash", "link-down")), pick(rng, HOST_FAULT_ATS)
    wait, data = pick(rng, LEADS[1:4]), draw_payload(rng)
    retries = pick(rng, (3,) if fast else (3, 4, 5))
    giveup = rto_giveup(retries) * (1.25 if how == "link-down" else 1.0)  # ICMP reverts backoff
    went = (
        f"the {silent} host crashes at {at}"
        if how == "crash"
        else f"the router's link to the {silent} goes down at {at}"
    )
    phrase = (
        f"{went}; {wait} later the {sender} sends {size_words(data)} into the silence and "
        f"waits in recv() until tcp_retries2={retries} gives up, then closes"
    )
    steps = {
        sender: [*opening(sender), ("sleep", Dur(at + wait)), ("send", data), RECV, CLOSE],
        silent: opening(silent),
    }
    plan = Plan(
        phrase,
        steps,
        {sender: at + wait + int(giveup * S), silent: 0},
        who_sends((sender,), closes=False),
        "gap",
        host_fault=(how, silent, at),
    )
    plan.pins[sender][RETRIES2] = retries
    return plan


def _kill_idle(rng: random.Random, fast: bool) -> Plan:
    """An application killed while its connection is idle: its kernel sends the FIN."""
    victim, at = pick(rng, HOSTS), pick(rng, HOST_FAULT_ATS)
    other = other_host(victim)
    tie, off = draw_tie(rng, ("reactive", "gap"))
    closing, words, rst = draw_closing(rng)
    steps = {
        victim: opening(victim),
        other: [*opening(other), RECV, *([("sleep", off)] if off else []), *closing],
    }
    phrase = (
        f"the {victim}'s application is killed (SIGKILL) at {at} on an idle "
        f"connection, so its kernel closes the socket; the {other}, waiting in "
        f"recv(), {words} "
        + (when_words(tie, off, victim + "'s FIN") if off else "as soon as it sees the FIN")
    )
    sends = who_sends(
        rst=(other,) * rst, fin=(victim,), fin_ack=(other,), peer_fin=(other,), last_ack=(victim,)
    )
    # The victim is busy 0: its final sleep then outlasts `at` (it must still run then).
    return Plan(phrase, steps, {victim: 0, other: at + off}, sends, tie, host_fault=("kill", victim, at))


# shape -> (function, the kinds it serves). Handshake faults go only with shapes that
# have no host fault: a host fault's `at` must find the connection established and idle.
SHAPES: dict[str, tuple[Callable[[random.Random, bool], Plan], tuple[str, ...]]] = {
    "send-close": (_send_close, ("handshake", "teardown", "established")),
    "http10": (_http10, ("handshake", "teardown", "established")),
    "both-close": (_both_close, ("handshake", "teardown")),
    "server-first": (_server_first, ("handshake", "teardown")),
    "unread-close": (_unread_close, ("handshake", "teardown", "established")),
    "rcvtimeo": (_rcvtimeo, ("handshake", "teardown")),
    "keepalive": (_keepalive, ("established",)),
    "into-silence": (_into_silence, ("established",)),
    "kill-idle": (_kill_idle, ("teardown",)),
}
