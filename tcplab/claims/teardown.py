"""The teardown's claims (T1-T12) and what in a run tests each."""

from __future__ import annotations

from tcplab.claims import record as r
from tcplab.claims.claim import Claim, Comparison
from tcplab.claims.documented import active_closer, called, each_copy, left_open, port_range, sysctl
from tcplab.claims.why import TLP_WHY

_FIN_WAIT2_FOREVER = "after shutdown(SHUT_WR): for ever (no timer)"

C = Comparison
TEARDOWN: tuple[Claim, ...] = (
    Claim(
        "T1",
        ("000", "001", "002", "003", "004"),
        "Normal 4-way close: the active closer goes FIN_WAIT_1→FIN_WAIT_2→TIME_WAIT→"
        "CLOSED, the passive closer CLOSE_WAIT→LAST_ACK→CLOSED; each FIN takes one "
        "sequence number.",
        (
            C(
                "active closer's states",
                r.states,
                "client",
                nth=1,
                how="contains",
                documented=["FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"],
            ),
            C(
                "passive closer's states",
                r.states,
                "server",
                nth=1,
                how="contains",
                documented=["CLOSE_WAIT", "LAST_ACK", "CLOSE"],
            ),
            C("sequence numbers the first FIN takes", r.seq_used, "client", "fin", nth=1, documented=1),
            C("sequence numbers the second FIN takes", r.seq_used, "server", "peer-fin", nth=1, documented=1),
        ),
    ),
    Claim(
        "T2",
        ("000", "004"),
        "FIN_WAIT_1 receiving FIN and ACK together goes straight to TIME_WAIT (the "
        "4-way close becomes 3-way).",
        (
            # The end of FIN_WAIT2 may come from inet_diag (an 8 ms poll, up to ~50 ms
            # late on a loaded machine); in a 4-way close it waits for the peer's FIN.
            C(
                "FIN_WAIT2 lasts (s)",
                r.span,
                "client",
                "FIN_WAIT2",
                documented=0.0,
                says="not at all (straight to TIME_WAIT)",
                how="near",
                tolerance=(0.05, 0.0),
            ),
        ),
    ),
    Claim(
        "T3",
        ("003",),
        "A lost first FIN is retransmitted (tcp_orphan_retries times); then the closer "
        "waits twice the last timeout and closes.",
        (
            C(
                "FIN retransmissions (= tcp_orphan_retries; 0 means 8)",
                r.retransmissions,
                "client",
                "fin",
                documented=sysctl("client", "net.ipv4.tcp_orphan_retries", 8),
                why=TLP_WHY,
                when=lambda run: not any(s.get("fate") != "dropped" for s in run.sent("client", "fin")),
            ),
        ),
    ),
    Claim(
        "T4",
        ("003",),
        "A lost ACK of the first FIN: the active closer retransmits its FIN and the server ACKs again.",
        (
            C(
                "active closer's FIN retransmissions",
                r.retransmissions,
                "client",
                "fin",
                documented=1,
                says="at least 1",
                how="at_least",
            ),
            C(
                "server ACKs of the FIN (one per copy)",
                r.count,
                "server",
                "fin-ack",
                documented=each_copy("client", "fin"),
            ),
        ),
    ),
    Claim(
        "T5",
        ("003",),
        "FIN_WAIT_2 after close() lasts at most tcp_fin_timeout (60 s); after "
        "shutdown(SHUT_WR) it lasts for ever.",
        (
            C(
                "FIN_WAIT2 after close() lasts (s) (= tcp_fin_timeout)",
                r.span,
                "client",
                "FIN_WAIT2",
                documented=sysctl("client", "net.ipv4.tcp_fin_timeout"),
                how="near",
                when=called("client", "close"),
            ),
            C(
                "FIN_WAIT2 after shutdown(SHUT_WR) lasts (s)",
                r.span,
                "client",
                "FIN_WAIT2",
                documented=sysctl("client", "net.ipv4.tcp_fin_timeout"),
                says=_FIN_WAIT2_FOREVER,
                how="forever",
                when=lambda run: (
                    bool(run.calls_of("client", "shutdown")) and not run.calls_of("client", "close")
                ),
            ),
        ),
    ),
    Claim(
        "T6",
        ("003",),
        "A lost FIN from the passive closer is retransmitted from LAST_ACK "
        "(tcp_orphan_retries); the active closer's FIN_WAIT_2 times out after "
        "tcp_fin_timeout.",
        (
            C(
                "passive closer's FIN retransmissions",
                r.retransmissions,
                "server",
                "peer-fin",
                documented=1,
                says="at least 1",
                how="at_least",
            ),
            C(
                "active closer's FIN_WAIT2 lasts (s) (= tcp_fin_timeout)",
                r.span,
                "client",
                "FIN_WAIT2",
                documented=sysctl("client", "net.ipv4.tcp_fin_timeout"),
                how="near",
            ),
        ),
    ),
    Claim(
        "T7",
        ("003",),
        "A lost last ACK: the passive closer retransmits its FIN; the active closer in "
        "TIME_WAIT ACKs again and restarts its 2MSL timer.",
        (
            C(
                "active closer's ACKs of the FIN (one per copy)",
                r.count,
                "client",
                "last-ack",
                documented=each_copy("server", "peer-fin"),
            ),
            C(
                "TIME_WAIT lasts after the last FIN copy (s)",
                r.after_last,
                "client",
                "TIME_WAIT",
                documented=60.0,
                how="near",
            ),
        ),
    ),
    Claim(
        "T8",
        ("001", "003"),
        "TIME_WAIT lasts 2MSL; Linux's MSL is 30 s, so 60 s; only the active closer has it.",
        (
            C("TIME_WAIT lasts (s)", r.span, "client", "TIME_WAIT", documented=60.0, how="near"),
            C(
                "hosts with a TIME_WAIT socket",
                r.holders,
                "",
                "TIME_WAIT",
                documented=active_closer,
                says="the active closer only",
                scenarios=("time-wait", "teardown-normal", "server-process-killed"),
            ),
        ),
    ),
    Claim(
        "T9",
        ("003",),
        "Without TIME_WAIT, a retransmitted FIN would be answered with RST.",
        (
            C(
                "a retransmitted FIN is answered by",
                r.answered_by,
                "server",
                "peer-fin",
                nth=2,
                documented="rst",
            ),
        ),
    ),
    Claim(
        "T10",
        ("000", "004"),
        "Simultaneous close: both send FIN and both pass through CLOSING.",
        (
            C(
                "client states",
                r.states,
                "client",
                nth=1,
                how="contains",
                documented=["FIN_WAIT1", "CLOSING", "TIME_WAIT"],
            ),
            C(
                "server states",
                r.states,
                "server",
                nth=1,
                how="contains",
                documented=["FIN_WAIT1", "CLOSING", "TIME_WAIT"],
            ),
        ),
    ),
    Claim(
        "T11",
        ("001", "003", "004"),
        "Many CLOSE_WAIT sockets: the passive side never calls close().",
        (
            C(
                "server sockets in CLOSE_WAIT at once (= connections it never closed)",
                r.at_once,
                "server",
                "CLOSE_WAIT",
                documented=left_open,
            ),
        ),
    ),
    Claim(
        "T12",
        ("003",),
        "Many TIME_WAIT sockets on a client exhaust its local ports for one "
        "destination ip:port (ip_local_port_range).",
        (
            C(
                "connect()s that succeed to one ip:port (= ports in ip_local_port_range)",
                r.succeeded,
                "client",
                "connect",
                documented=port_range,
                modelled=False,
                when=lambda run: len(run.calls_of("client", "connect")) > (port_range(run) or 0),
            ),
            C(
                "client sockets in TIME_WAIT at once",
                r.at_once,
                "client",
                "TIME_WAIT",
                documented=port_range,
                when=lambda run: len(run.calls_of("client", "connect")) > (port_range(run) or 0),
            ),
        ),
    ),
)
