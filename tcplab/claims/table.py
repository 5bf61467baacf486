"""The 36 documented claims, each with what in a run would confirm or refute it.

One table: claim -> comparisons. A comparison names a quantity or behaviour the claim
states (a number, an errno, a state sequence, a segment count, what answers a segment),
the reader that takes it from a run (tcplab.claims.record: the same reader for the
record and for the kernel model's prediction), the documents' value (a constant, or the
documents' rule applied to the run's own settings, e.g. "tcp_fin_timeout"), the rule
that compares them (tcplab.claims.judge) and, for when they differ, why. Nothing here
knows what any kernel did: the verdict is computed from the run, so another kernel can
flip it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from tcplab.claims import record as r
from tcplab.claims.record import Run


@dataclass(frozen=True)
class Comparison:
    label: str
    read: Callable[..., r.Seen | None]
    host: str
    what: str = ""
    nth: int = 0
    # The documents' value, or their rule applied to the observed run (None: the run
    # lacks what the rule needs).
    documented: Any = None
    says: str = ""  # the documents' value in words, when the value alone says too little
    how: str = "equal"  # equal | near | at_least | forever | contains | mss (judge.py)
    # The sysctls the quantity depends on, at the value the documents give ("": the
    # kernel's default). A run that sets one to something else cannot confirm or refute
    # the documents' number: "not tested here".
    setting: tuple[tuple[str, str], ...] = ()
    why: str | Callable[[Run], str] = ""  # the kernel's mechanism, said when they differ
    scenarios: tuple[str, ...] = ()  # the runs that show it (default: the claim's own)
    when: Callable[[Run], bool] | None = None  # ... and only where the run did this
    tolerance: tuple[float, float] | None = None  # (abs s, relative) for "near"; default judge's
    modelled: bool = True  # False where the models do not predict it (data, many sockets)


@dataclass(frozen=True)
class Claim:
    id: str
    seeds: tuple[str, ...]
    text: str
    comparisons: tuple[Comparison, ...]


# --- the documents' rules, applied to a run's own settings ------------------------------

def sysctl(host: str, name: str, zero_means: int | None = None) -> Callable[[Run], int | None]:
    def value(run: Run) -> int | None:
        v = run.sysctl(host, name)
        if v is None:
            return None
        n = int(v.split()[0])
        return zero_means if n == 0 and zero_means is not None else n
    return value


def accept_queue(run: Run) -> int | None:
    """min(backlog, somaxconn): the listen() backlog from the record, somaxconn in force."""
    listens = run.calls_of("server", "listen")
    somaxconn = run.sysctl("server", "net.core.somaxconn")
    if not listens or somaxconn is None:
        return None
    arg = listens[0].get("arg")
    backlog = arg.get("backlog") if isinstance(arg, dict) else None
    return min(int(backlog or 128), int(somaxconn))


def synack_give_up(run: Run) -> float | None:
    """The documents' rule: retransmit after 1, 2, 4 ... s, then wait twice the last."""
    n = sysctl("server", "net.ipv4.tcp_synack_retries")(run)
    return None if n is None else float(2 ** (n + 1) - 1)


def overflow_policy(run: Run) -> str | None:
    v = run.sysctl("server", "net.ipv4.tcp_abort_on_overflow")
    return None if v is None else ("RST" if v.strip() == "1" else "dropped")


def overflow_answer(run: Run, host: str, what: str = "", nth: int = 0) -> r.Seen | None:
    """How the listener met the handshake that found its accept queue full: an RST, or
    nothing (the ACK dropped, the request kept)."""
    if not run.states or run.calls_of("server", "accept"):
        return None  # only a listener that never accepts fills its queue for sure
    return r.Seen("RST" if run.sent(host, "rst") else "dropped")


def port_range(run: Run) -> int | None:
    v = run.sysctl("client", "net.ipv4.ip_local_port_range")
    if not v:
        return None
    low, high = (int(x) for x in v.split())
    return high - low + 1


def mss_or_536(run: Run) -> int | None:
    mss = r.mss_announced(run, "server")
    return None if mss is None else (mss or 536)


def keepalive_limit(run: Run) -> float | None:
    """idle + interval x probes, from the server's keepalive step (else its sysctls)."""
    steps = [c.get("arg") for c in run.calls_of("server", "keepalive")]
    arg = steps[0] if steps and isinstance(steps[0], dict) else None
    if arg is None:
        return None
    return float(arg["idle"] + arg["interval"] * arg["count"])


def keepalive_probes(run: Run) -> int | None:
    steps = [c.get("arg") for c in run.calls_of("server", "keepalive")]
    return steps[0]["count"] if steps and isinstance(steps[0], dict) else None


def parallel_connects(run: Run) -> int | None:
    """The most client connect() calls in progress at one moment."""
    calls = [c for c in run.calls_of("client", "connect") if c.get("t_end") is not None]
    if not calls:
        return None
    return max(sum(1 for d in calls if d["t"] <= c["t"] < d["t_end"]) for c in calls)


def left_open(run: Run) -> int | None:
    """Connections the server accepted and never closed."""
    accepted = [c for c in run.calls_of("server", "accept") if c.get("result") == "ok"]
    return len(accepted) - len(run.calls_of("server", "close")) if accepted else None


def each_copy(host: str, what: str) -> Callable[[Run], int]:
    return lambda run: len(run.sent(host, what))


def active_closer(run: Run) -> list[str] | None:
    """The sender of the first FIN (the classifier names the first closer's FIN "fin")."""
    fins = sorted(run.segments, key=lambda s: s["t"])
    first = next((s for s in fins if s.get("name") == "fin"), None)
    return [first["from"]] if first else None


def called(host: str, call: str) -> Callable[[Run], bool]:
    return lambda run: bool(run.calls_of(host, call))


def not_called(host: str, call: str) -> Callable[[Run], bool]:
    return lambda run: not run.calls_of(host, call)


# --- why the kernel differs (said only when it does) -----------------------------------

def syn_why(run: Run) -> str:
    retries = run.sysctl("client", "net.ipv4.tcp_syn_retries")
    linear = run.sysctl("client", "net.ipv4.tcp_syn_linear_timeouts")
    parts = []
    if retries not in (None, "5"):
        parts.append(f"tcp_syn_retries is {retries} here (the default since Linux 3.7 is 6), "
                     "not the documents' 5")
    if linear not in (None, "0"):
        parts.append(f"since Linux 6.5 the first tcp_syn_linear_timeouts={linear} SYN "
                     "retransmissions wait a fixed 1 s before the doubling starts")
    if not parts:
        return ""
    n, k = int(retries or 5), int(linear or 0)
    return ("; ".join(parts) + f": connect() gives up after {k} + 2^{n + 1} - 1 = "
            f"{k + 2 ** (n + 1) - 1} s, with {k + n} retransmissions.").capitalize()


_SYN = (("net.ipv4.tcp_syn_retries", "5"), ("net.ipv4.tcp_syn_linear_timeouts", ""))
_SYNACK = (("net.ipv4.tcp_synack_retries", "5"),)
_QUEUE_WHY = ("sk_acceptq_is_full() compares the queue with its limit by `>`, not `>=`: "
              "Linux queues min(backlog, somaxconn) + 1 connections before it refuses one.")
_TLP_WHY = ("Linux sends a tail loss probe one RTO after the last segment (since 3.10, "
            "tcp_early_retrans=3) before the first RTO retransmission, and turns the retry "
            "limit into a time (tcp_model_timeout(): (2^(N+1) - 1) x 200 ms after the "
            "first RTO retransmission for N <= 9, checked only when a timer fires), so "
            "it sends more copies than the sysctl says.")
_ICMP_ERR_WHY = ("tcp_v4_err() keeps an ICMP unreachable on an established connection as "
                 "a soft error (sk_err_soft) and reports it when the retransmissions give "
                 "up: recv() fails with the ICMP's errno, not ETIMEDOUT.")
_ICMP_RTO_WHY = ("An ICMP unreachable answering an RTO retransmission undoes one backoff "
                 "doubling (RFC 6069, tcp_ld_RTO_revert()): the ICMP is acted on, and more "
                 "retransmissions fit in the limit.")
_FIN_WAIT2_FOREVER = "after shutdown(SHUT_WR): for ever (no timer)"

C = Comparison
CLAIMS: tuple[Claim, ...] = (
    Claim("H1", ("000", "001", "002", "003", "004"),
          "Normal 3-way handshake: client CLOSED→SYN_SENT→ESTABLISHED, server "
          "LISTEN→SYN_RECV→ESTABLISHED; SYN seq=x, SYN-ACK seq=y ack=x+1, ACK ack=y+1.", (
              C("client states", r.states, "client", nth=1, how="contains",
                documented=["SYN_SENT", "ESTABLISHED"]),
              C("server states", r.states, "server", nth=1, how="contains",
                documented=["SYN_RECV", "ESTABLISHED"]),
              C("sequence numbers the SYN takes (SYN-ACK's ack - x)", r.seq_used, "client",
                "syn", nth=1, documented=1),
              C("sequence numbers the SYN-ACK takes (ACK's ack - y)", r.seq_used, "server",
                "syn-ack", nth=1, documented=1))),
    Claim("H2", ("003",),
          "A lost SYN is retransmitted with the same sequence number, the timeout doubling "
          "1, 2, 4, 8, 16 s; after 32 s more the client gives up (tcp_syn_retries=5, 63 s) "
          "and connect() fails.", (
              C("retransmitted SYNs' sequence number", r.same_seq, "client", "syn",
                documented="same"),
              C("SYN retransmits at (s after the first)", r.offsets, "client", "syn",
                documented=(1, 3, 7, 15, 31), how="near", setting=_SYN, why=syn_why),
              C("connect() fails after (s)", r.call_duration, "client", "connect", nth=1,
                documented=63.0, how="near", setting=_SYN, why=syn_why))),
    Claim("H3", ("001",),
          "An unanswered SYN-ACK: Linux retries 5 times, waiting 1+2+4+8+16+32 = 63 s "
          "in all (server side).", (
              C("SYN-ACK retransmits at (s after the first)", r.offsets, "server", "syn-ack",
                documented=(1, 3, 7, 15, 31), how="near", setting=_SYNACK),
              C("SYN-ACK retransmissions", r.retransmissions, "server", "syn-ack",
                documented=5, setting=_SYNACK),
              C("the request is dropped after (s)", r.span, "server", "SYN_RECV",
                documented=63.0, how="near", setting=_SYNACK))),
    Claim("H4", ("003",),
          "A lost SYN-ACK makes both sides retransmit: the client its SYN "
          "(tcp_syn_retries), the server its SYN-ACK (tcp_synack_retries).", (
              C("client SYN retransmissions", r.retransmissions, "client", "syn",
                documented=1, says="at least 1", how="at_least"),
              C("server SYN-ACK retransmissions", r.retransmissions, "server", "syn-ack",
                documented=1, says="at least 1", how="at_least"))),
    Claim("H5", ("003",),
          "A lost third ACK: the server retransmits the SYN-ACK until tcp_synack_retries "
          "is used up, waits twice the last timeout and drops the half-open connection; "
          "the ACK itself is never retransmitted.", (
              C("SYN-ACK retransmissions (= tcp_synack_retries)", r.retransmissions, "server",
                "syn-ack", documented=sysctl("server", "net.ipv4.tcp_synack_retries")),
              C("half-open connection dropped after (s) (2^(tcp_synack_retries+1) - 1)",
                r.span, "server", "SYN_RECV", how="near",
                documented=synack_give_up),
              C("client ACKs sent with no new SYN-ACK to answer", r.unprompted, "client",
                "ack", documented=0))),
    Claim("H6", ("000", "004"),
          "SYN_RCVD is only visible when the final handshake ACK is withheld.", (
              # Visible: longer than one of the lab's 8 ms inet_diag polls (`ss` is slower).
              C("server SYN_RECV lasts, the ACK withheld (s)", r.span, "server", "SYN_RECV",
                documented=0.008, says="visible (longer than an 8 ms poll)", how="at_least"),
              C("server SYN_RECV lasts, nothing withheld (s)", r.span, "server", "SYN_RECV",
                documented=0.0, says="not visible (under an 8 ms poll)", how="near",
                tolerance=(0.008, 0.0), scenarios=("handshake-normal",)))),
    Claim("H7", ("003",),
          "The third handshake segment may carry data; the client is ESTABLISHED after "
          "sending it; if it is lost and the client sends data, the server becomes "
          "ESTABLISHED on that data segment.", (
              C("client states", r.states, "client", nth=1, how="contains",
                documented=["SYN_SENT", "ESTABLISHED"]),
              C("the server is ESTABLISHED on", r.state_on, "server", "ESTABLISHED", nth=1,
                documented="data"))),
    Claim("H8", ("003",),
          "connect() returns after the 2nd handshake segment; accept() returns after "
          "the 3rd.", (
              C("connect() returns on", r.returns_on, "client", "connect", nth=1,
                documented="syn-ack"),
              C("accept() returns on", r.returns_on, "server", "accept", nth=1,
                documented="ack"))),
    Claim("H9", ("003",),
          "Without accept() the connection is still established (it waits in the accept "
          "queue).", (
              C("server states, no accept()", r.states, "server", nth=1, how="contains",
                documented=["SYN_RECV", "ESTABLISHED"], when=not_called("server", "accept")),
              C("server ACKs of the client's data, no accept()", r.count, "server",
                "data-ack", documented=1, says="at least 1", how="at_least", modelled=False,
                when=not_called("server", "accept")))),
    Claim("H10", ("003",),
          "The accept queue holds min(backlog, somaxconn); when it is full, "
          "tcp_abort_on_overflow decides between dropping and RST.", (
              C("connections queued, never accepted (min(backlog, somaxconn))", r.at_once,
                "server", "ESTABLISHED", documented=accept_queue, why=_QUEUE_WHY,
                when=not_called("server", "accept")),
              C("the handshake that finds the queue full gets", overflow_answer, "server",
                documented=overflow_policy, says="tcp_abort_on_overflow=1: RST; 0: dropped"))),
    Claim("H11", ("001", "004"),
          "A SYN flood fills the half-open queue; with tcp_syncookies the server answers "
          "with SYN cookies and a genuine client still connects.", (
              C("SYN cookies sent (TcpExt SyncookiesSent)", r.counter, "server",
                "SyncookiesSent", documented=1, says="some (at least 1)", how="at_least"),
              C("the genuine client's connect()", r.call_result, "client", "connect",
                documented="ok"))),
    Claim("H12", ("003",),
          "No listener: the SYN is answered by RST and connect() fails with "
          "ECONNREFUSED.", (
              C("the SYN is answered by", r.answered_by, "client", "syn", nth=1,
                documented="rst"),
              C("connect()", r.call_result, "client", "connect", documented="ECONNREFUSED"))),
    Claim("H13", ("003",),
          "Without listen(), a simultaneous open still establishes a connection.", (
              C("client states", r.states, "client", nth=1, how="contains",
                documented=["SYN_SENT", "SYN_RECV", "ESTABLISHED"]),
              C("server states", r.states, "server", nth=1, how="contains",
                documented=["SYN_SENT", "SYN_RECV", "ESTABLISHED"]),
              C("client connect()", r.call_result, "client", "connect", documented="ok"),
              C("server connect()", r.call_result, "server", "connect", documented="ok"))),
    Claim("H14", ("003",),
          "A stale SYN reaching the server first gets a SYN-ACK the client rejects with "
          "RST; the genuine handshake then succeeds.", (
              C("the client answers the stale SYN's SYN-ACK with", r.answered_by, "server",
                "syn-ack", nth=1, documented="rst"),
              C("connect()", r.call_result, "client", "connect", documented="ok"))),
    Claim("H15", ("003", "004"),
          "The MSS is negotiated in the SYN options; 536 if absent.", (
              C("server's largest data segment (bytes): the client's MSS option, else 536",
                r.largest, "server", "data", documented=mss_or_536, how="mss"),)),
    Claim("H16", ("004",),
          "Many SYN_SENT sockets on a client mean the server's network drops SYNs or "
          "never answers.", (
              C("client sockets in SYN_SENT at once (= connects in progress)", r.at_once,
                "client", "SYN_SENT", documented=parallel_connects),
              C("server answers (SYN-ACKs)", r.count, "server", "syn-ack", documented=0))),
    Claim("T1", ("000", "001", "002", "003", "004"),
          "Normal 4-way close: the active closer goes FIN_WAIT_1→FIN_WAIT_2→TIME_WAIT→"
          "CLOSED, the passive closer CLOSE_WAIT→LAST_ACK→CLOSED; each FIN takes one "
          "sequence number.", (
              C("active closer's states", r.states, "client", nth=1, how="contains",
                documented=["FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]),
              C("passive closer's states", r.states, "server", nth=1, how="contains",
                documented=["CLOSE_WAIT", "LAST_ACK", "CLOSE"]),
              C("sequence numbers the first FIN takes", r.seq_used, "client", "fin", nth=1,
                documented=1),
              C("sequence numbers the second FIN takes", r.seq_used, "server", "peer-fin",
                nth=1, documented=1))),
    Claim("T2", ("000", "004"),
          "FIN_WAIT_1 receiving FIN and ACK together goes straight to TIME_WAIT (the "
          "4-way close becomes 3-way).", (
              # The end of FIN_WAIT2 may come from inet_diag (an 8 ms poll, up to ~50 ms
              # late on a loaded machine); in a 4-way close it waits for the peer's FIN.
              C("FIN_WAIT2 lasts (s)", r.span, "client", "FIN_WAIT2", documented=0.0,
                says="not at all (straight to TIME_WAIT)", how="near",
                tolerance=(0.05, 0.0)),)),
    Claim("T3", ("003",),
          "A lost first FIN is retransmitted (tcp_orphan_retries times); then the closer "
          "waits twice the last timeout and closes.", (
              C("FIN retransmissions (= tcp_orphan_retries; 0 means 8)", r.retransmissions,
                "client", "fin", documented=sysctl("client", "net.ipv4.tcp_orphan_retries", 8),
                why=_TLP_WHY, when=lambda run: not any(
                    s.get("fate") != "dropped" for s in run.sent("client", "fin"))),)),
    Claim("T4", ("003",),
          "A lost ACK of the first FIN: the active closer retransmits its FIN and the "
          "server ACKs again.", (
              C("active closer's FIN retransmissions", r.retransmissions, "client", "fin",
                documented=1, says="at least 1", how="at_least"),
              C("server ACKs of the FIN (one per copy)", r.count, "server", "fin-ack",
                documented=each_copy("client", "fin")))),
    Claim("T5", ("003",),
          "FIN_WAIT_2 after close() lasts at most tcp_fin_timeout (60 s); after "
          "shutdown(SHUT_WR) it lasts for ever.", (
              C("FIN_WAIT2 after close() lasts (s) (= tcp_fin_timeout)", r.span, "client",
                "FIN_WAIT2", documented=sysctl("client", "net.ipv4.tcp_fin_timeout"),
                how="near", when=called("client", "close")),
              C("FIN_WAIT2 after shutdown(SHUT_WR) lasts (s)", r.span, "client", "FIN_WAIT2",
                documented=sysctl("client", "net.ipv4.tcp_fin_timeout"),
                says=_FIN_WAIT2_FOREVER, how="forever",
                when=lambda run: bool(run.calls_of("client", "shutdown"))
                and not run.calls_of("client", "close")))),
    Claim("T6", ("003",),
          "A lost FIN from the passive closer is retransmitted from LAST_ACK "
          "(tcp_orphan_retries); the active closer's FIN_WAIT_2 times out after "
          "tcp_fin_timeout.", (
              C("passive closer's FIN retransmissions", r.retransmissions, "server",
                "peer-fin", documented=1, says="at least 1", how="at_least"),
              C("active closer's FIN_WAIT2 lasts (s) (= tcp_fin_timeout)", r.span, "client",
                "FIN_WAIT2", documented=sysctl("client", "net.ipv4.tcp_fin_timeout"),
                how="near"))),
    Claim("T7", ("003",),
          "A lost last ACK: the passive closer retransmits its FIN; the active closer in "
          "TIME_WAIT ACKs again and restarts its 2MSL timer.", (
              C("active closer's ACKs of the FIN (one per copy)", r.count, "client",
                "last-ack", documented=each_copy("server", "peer-fin")),
              C("TIME_WAIT lasts after the last FIN copy (s)", r.after_last, "client",
                "TIME_WAIT", documented=60.0, how="near"))),
    Claim("T8", ("001", "003"),
          "TIME_WAIT lasts 2MSL; Linux's MSL is 30 s, so 60 s; only the active closer "
          "has it.", (
              C("TIME_WAIT lasts (s)", r.span, "client", "TIME_WAIT", documented=60.0,
                how="near"),
              C("hosts with a TIME_WAIT socket", r.holders, "", "TIME_WAIT",
                documented=active_closer, says="the active closer only",
                scenarios=("time-wait", "teardown-normal", "server-process-killed")))),
    Claim("T9", ("003",),
          "Without TIME_WAIT, a retransmitted FIN would be answered with RST.", (
              C("a retransmitted FIN is answered by", r.answered_by, "server", "peer-fin",
                nth=2, documented="rst"),)),
    Claim("T10", ("000", "004"),
          "Simultaneous close: both send FIN and both pass through CLOSING.", (
              C("client states", r.states, "client", nth=1, how="contains",
                documented=["FIN_WAIT1", "CLOSING", "TIME_WAIT"]),
              C("server states", r.states, "server", nth=1, how="contains",
                documented=["FIN_WAIT1", "CLOSING", "TIME_WAIT"]))),
    Claim("T11", ("001", "003", "004"),
          "Many CLOSE_WAIT sockets: the passive side never calls close().", (
              C("server sockets in CLOSE_WAIT at once (= connections it never closed)",
                r.at_once, "server", "CLOSE_WAIT", documented=left_open),)),
    Claim("T12", ("003",),
          "Many TIME_WAIT sockets on a client exhaust its local ports for one "
          "destination ip:port (ip_local_port_range).", (
              C("connect()s that succeed to one ip:port (= ports in ip_local_port_range)",
                r.succeeded, "client", "connect", documented=port_range, modelled=False,
                when=lambda run: len(run.calls_of("client", "connect")) > (port_range(run) or 0)),
              C("client sockets in TIME_WAIT at once", r.at_once, "client", "TIME_WAIT",
                documented=port_range,
                when=lambda run: len(run.calls_of("client", "connect")) > (port_range(run) or 0)))),
    Claim("F1", ("002",),
          "Server host crash: the client retransmits its data until the retry limit "
          "(tcp_retries2), then closes.", (
              C("data retransmissions (= tcp_retries2)", r.retransmissions, "client", "data",
                documented=sysctl("client", "net.ipv4.tcp_retries2"), why=_TLP_WHY),
              C("client states", r.states, "client", nth=1, how="contains",
                documented=["ESTABLISHED", "CLOSE"]))),
    Claim("F2", ("002",),
          "Server host crash and reboot: the client's next segment is answered by RST and "
          "the client closes.", (
              C("the client's data is answered by", r.answered_by, "client", "data", nth=1,
                documented="rst"),
              C("client states", r.states, "client", nth=1, how="contains",
                documented=["ESTABLISHED", "CLOSE"]))),
    Claim("F3", ("002",),
          "Network down between them: the client retransmits (ICMP unreachable is "
          "ignored) until the limit.", (
              C("recv() fails with", r.call_result, "client", "recv",
                documented="ETIMEDOUT", says="ETIMEDOUT (ICMP ignored: the limit ends it)",
                why=_ICMP_ERR_WHY),
              C("retransmission backoffs undone", r.backoffs_undone, "client", "data",
                documented=0, says="0 (ICMP ignored)", why=_ICMP_RTO_WHY))),
    Claim("F4", ("002",),
          "Network restored before anyone sent: the connection survives; if the client "
          "gave up meanwhile, the server's next segment gets RST.", (
              C("the client's recv() after the outage", r.call_result, "client", "recv",
                documented="ok", scenarios=("network-restored",)),
              C("the server's data after the client gave up is answered by", r.answered_by,
                "server", "data", nth=1, documented="rst",
                scenarios=("network-restored-client-gave-up",)))),
    Claim("F5", ("002", "003"),
          "Server process killed (kill -9): the kernel sends FIN and completes the 4-way "
          "close.", (
              C("killed side's states", r.states, "server", nth=1, how="contains",
                documented=["FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]),
              C("other side's states", r.states, "client", nth=1, how="contains",
                documented=["CLOSE_WAIT", "LAST_ACK", "CLOSE"]))),
    Claim("F6", ("002",),
          "Server port closed (no listener any more): the next segment is answered by "
          "RST.", (
              C("the client's data is answered by", r.answered_by, "client", "data", nth=1,
                documented="rst"),)),
    Claim("F7", ("001", "003"),
          "Client host crash: the server stays ESTABLISHED for ever unless keepalive "
          "probes detect it (keepalive time, interval, probes).", (
              C("without keepalive, the server's ESTABLISHED lasts (s)", r.span, "server",
                "ESTABLISHED", documented=0.0, says="for ever", how="forever",
                when=not_called("server", "keepalive")),
              C("keepalive probes sent (= TCP_KEEPCNT)", r.count, "server", "keepalive",
                documented=keepalive_probes, when=called("server", "keepalive")),
              C("keepalive ends recv() after (s) (idle + interval x probes)",
                r.call_duration, "server", "recv", nth=1, documented=keepalive_limit,
                how="near", when=called("server", "keepalive")))),
    Claim("F8", ("000",),
          "Broken pipe: the client gives up reading and closes; the server later writes "
          "a large response, gets RST, and its next write fails with EPIPE.", (
              C("the server's data is answered by", r.answered_by, "server", "data", nth=1,
                documented="rst"),
              C("the server's last write fails with", r.call_result, "server", "send",
                documented="EPIPE"))),
)

BY_ID = {c.id: c for c in CLAIMS}
