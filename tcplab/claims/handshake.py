"""The handshake's claims (H1-H16) and what in a run tests each."""

from __future__ import annotations

from tcplab.claims import record as r
from tcplab.claims.claim import Claim, Comparison
from tcplab.claims.documented import (
    accept_queue,
    mss_or_536,
    not_called,
    overflow_answer,
    overflow_policy,
    parallel_connects,
    synack_give_up,
    sysctl,
)
from tcplab.claims.why import QUEUE_WHY, syn_why

_SYN = (("net.ipv4.tcp_syn_retries", "5"), ("net.ipv4.tcp_syn_linear_timeouts", ""))
_SYNACK = (("net.ipv4.tcp_synack_retries", "5"),)

C = Comparison
HANDSHAKE: tuple[Claim, ...] = (
    Claim(
        "H1",
        ("000", "001", "002", "003", "004"),
        "Normal 3-way handshake: client CLOSED→SYN_SENT→ESTABLISHED, server "
        "LISTEN→SYN_RECV→ESTABLISHED; SYN seq=x, SYN-ACK seq=y ack=x+1, ACK ack=y+1.",
        (
            C(
                "client states",
                r.states,
                "client",
                nth=1,
                how="contains",
                documented=["SYN_SENT", "ESTABLISHED"],
            ),
            C(
                "server states",
                r.states,
                "server",
                nth=1,
                how="contains",
                documented=["SYN_RECV", "ESTABLISHED"],
            ),
            C(
                "sequence numbers the SYN takes (SYN-ACK's ack - x)",
                r.seq_used,
                "client",
                "syn",
                nth=1,
                documented=1,
            ),
            C(
                "sequence numbers the SYN-ACK takes (ACK's ack - y)",
                r.seq_used,
                "server",
                "syn-ack",
                nth=1,
                documented=1,
            ),
        ),
    ),
    Claim(
        "H2",
        ("003",),
        "A lost SYN is retransmitted with the same sequence number, the timeout doubling "
        "1, 2, 4, 8, 16 s; after 32 s more the client gives up (tcp_syn_retries=5, 63 s) "
        "and connect() fails.",
        (
            C("retransmitted SYNs' sequence number", r.same_seq, "client", "syn", documented="same"),
            C(
                "SYN retransmits at (s after the first)",
                r.offsets,
                "client",
                "syn",
                documented=(1, 3, 7, 15, 31),
                how="near",
                setting=_SYN,
                why=syn_why,
            ),
            C(
                "connect() fails after (s)",
                r.call_duration,
                "client",
                "connect",
                nth=1,
                documented=63.0,
                how="near",
                setting=_SYN,
                why=syn_why,
            ),
        ),
    ),
    Claim(
        "H3",
        ("001",),
        "An unanswered SYN-ACK: Linux retries 5 times, waiting 1+2+4+8+16+32 = 63 s in all (server side).",
        (
            C(
                "SYN-ACK retransmits at (s after the first)",
                r.offsets,
                "server",
                "syn-ack",
                documented=(1, 3, 7, 15, 31),
                how="near",
                setting=_SYNACK,
            ),
            C(
                "SYN-ACK retransmissions",
                r.retransmissions,
                "server",
                "syn-ack",
                documented=5,
                setting=_SYNACK,
            ),
            C(
                "the request is dropped after (s)",
                r.span,
                "server",
                "SYN_RECV",
                documented=63.0,
                how="near",
                setting=_SYNACK,
            ),
        ),
    ),
    Claim(
        "H4",
        ("003",),
        "A lost SYN-ACK makes both sides retransmit: the client its SYN "
        "(tcp_syn_retries), the server its SYN-ACK (tcp_synack_retries).",
        (
            C(
                "client SYN retransmissions",
                r.retransmissions,
                "client",
                "syn",
                documented=1,
                says="at least 1",
                how="at_least",
            ),
            C(
                "server SYN-ACK retransmissions",
                r.retransmissions,
                "server",
                "syn-ack",
                documented=1,
                says="at least 1",
                how="at_least",
            ),
        ),
    ),
    Claim(
        "H5",
        ("003",),
        "A lost third ACK: the server retransmits the SYN-ACK until tcp_synack_retries "
        "is used up, waits twice the last timeout and drops the half-open connection; "
        "the ACK itself is never retransmitted.",
        (
            C(
                "SYN-ACK retransmissions (= tcp_synack_retries)",
                r.retransmissions,
                "server",
                "syn-ack",
                documented=sysctl("server", "net.ipv4.tcp_synack_retries"),
            ),
            C(
                "half-open connection dropped after (s) (2^(tcp_synack_retries+1) - 1)",
                r.span,
                "server",
                "SYN_RECV",
                how="near",
                documented=synack_give_up,
            ),
            C("client ACKs sent with no new SYN-ACK to answer", r.unprompted, "client", "ack", documented=0),
        ),
    ),
    Claim(
        "H6",
        ("000", "004"),
        "SYN_RCVD is only visible when the final handshake ACK is withheld.",
        (
            # Visible: longer than one of the lab's 8 ms inet_diag polls (`ss` is slower).
            C(
                "server SYN_RECV lasts, the ACK withheld (s)",
                r.span,
                "server",
                "SYN_RECV",
                documented=0.008,
                says="visible (longer than an 8 ms poll)",
                how="at_least",
            ),
            C(
                "server SYN_RECV lasts, nothing withheld (s)",
                r.span,
                "server",
                "SYN_RECV",
                documented=0.0,
                says="not visible (under an 8 ms poll)",
                how="near",
                tolerance=(0.008, 0.0),
                scenarios=("handshake-normal",),
            ),
        ),
    ),
    Claim(
        "H7",
        ("003",),
        "The third handshake segment may carry data; the client is ESTABLISHED after "
        "sending it; if it is lost and the client sends data, the server becomes "
        "ESTABLISHED on that data segment.",
        (
            C(
                "client states",
                r.states,
                "client",
                nth=1,
                how="contains",
                documented=["SYN_SENT", "ESTABLISHED"],
            ),
            C("the server is ESTABLISHED on", r.state_on, "server", "ESTABLISHED", nth=1, documented="data"),
        ),
    ),
    Claim(
        "H8",
        ("003",),
        "connect() returns after the 2nd handshake segment; accept() returns after the 3rd.",
        (
            C("connect() returns on", r.returns_on, "client", "connect", nth=1, documented="syn-ack"),
            C("accept() returns on", r.returns_on, "server", "accept", nth=1, documented="ack"),
        ),
    ),
    Claim(
        "H9",
        ("003",),
        "Without accept() the connection is still established (it waits in the accept queue).",
        (
            C(
                "server states, no accept()",
                r.states,
                "server",
                nth=1,
                how="contains",
                documented=["SYN_RECV", "ESTABLISHED"],
                when=not_called("server", "accept"),
            ),
            C(
                "server ACKs of the client's data, no accept()",
                r.count,
                "server",
                "data-ack",
                documented=1,
                says="at least 1",
                how="at_least",
                modelled=False,
                when=not_called("server", "accept"),
            ),
        ),
    ),
    Claim(
        "H10",
        ("003",),
        "The accept queue holds min(backlog, somaxconn); when it is full, "
        "tcp_abort_on_overflow decides between dropping and RST.",
        (
            C(
                "connections queued, never accepted (min(backlog, somaxconn))",
                r.at_once,
                "server",
                "ESTABLISHED",
                documented=accept_queue,
                why=QUEUE_WHY,
                when=not_called("server", "accept"),
            ),
            C(
                "the handshake that finds the queue full gets",
                overflow_answer,
                "server",
                documented=overflow_policy,
                says="tcp_abort_on_overflow=1: RST; 0: dropped",
            ),
        ),
    ),
    Claim(
        "H11",
        ("001", "004"),
        "A SYN flood fills the half-open queue; with tcp_syncookies the server answers "
        "with SYN cookies and a genuine client still connects.",
        (
            C(
                "SYN cookies sent (TcpExt SyncookiesSent)",
                r.counter,
                "server",
                "SyncookiesSent",
                documented=1,
                says="some (at least 1)",
                how="at_least",
            ),
            C("the genuine client's connect()", r.call_result, "client", "connect", documented="ok"),
        ),
    ),
    Claim(
        "H12",
        ("003",),
        "No listener: the SYN is answered by RST and connect() fails with ECONNREFUSED.",
        (
            C("the SYN is answered by", r.answered_by, "client", "syn", nth=1, documented="rst"),
            C("connect()", r.call_result, "client", "connect", documented="ECONNREFUSED"),
        ),
    ),
    Claim(
        "H13",
        ("003",),
        "Without listen(), a simultaneous open still establishes a connection.",
        (
            C(
                "client states",
                r.states,
                "client",
                nth=1,
                how="contains",
                documented=["SYN_SENT", "SYN_RECV", "ESTABLISHED"],
            ),
            C(
                "server states",
                r.states,
                "server",
                nth=1,
                how="contains",
                documented=["SYN_SENT", "SYN_RECV", "ESTABLISHED"],
            ),
            C("client connect()", r.call_result, "client", "connect", documented="ok"),
            C("server connect()", r.call_result, "server", "connect", documented="ok"),
        ),
    ),
    Claim(
        "H14",
        ("003",),
        "A stale SYN reaching the server first gets a SYN-ACK the client rejects with "
        "RST; the genuine handshake then succeeds.",
        (
            C(
                "the client answers the stale SYN's SYN-ACK with",
                r.answered_by,
                "server",
                "syn-ack",
                nth=1,
                documented="rst",
            ),
            C("connect()", r.call_result, "client", "connect", documented="ok"),
        ),
    ),
    Claim(
        "H15",
        ("003", "004"),
        "The MSS is negotiated in the SYN options; 536 if absent.",
        (
            C(
                "server's largest data segment (bytes): the client's MSS option, else 536",
                r.largest,
                "server",
                "data",
                documented=mss_or_536,
                how="mss",
            ),
        ),
    ),
    Claim(
        "H16",
        ("004",),
        "Many SYN_SENT sockets on a client mean the server's network drops SYNs or never answers.",
        (
            C(
                "client sockets in SYN_SENT at once (= connects in progress)",
                r.at_once,
                "client",
                "SYN_SENT",
                documented=parallel_connects,
            ),
            C("server answers (SYN-ACKs)", r.count, "server", "syn-ack", documented=0),
        ),
    ),
)
