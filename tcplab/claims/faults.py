"""The claims about failures (F1-F8): crashes, outages, killed processes, closed ports."""

from __future__ import annotations

from tcplab.claims import record as r
from tcplab.claims.claim import Claim, Comparison
from tcplab.claims.documented import called, keepalive_limit, keepalive_probes, not_called, sysctl
from tcplab.claims.why import ICMP_ERR_WHY, ICMP_RTO_WHY, TLP_WHY

C = Comparison
FAULTS: tuple[Claim, ...] = (
    Claim(
        "F1",
        ("002",),
        "Server host crash: the client retransmits its data until the retry limit "
        "(tcp_retries2), then closes.",
        (
            C(
                "data retransmissions (= tcp_retries2)",
                r.retransmissions,
                "client",
                "data",
                documented=sysctl("client", "net.ipv4.tcp_retries2"),
                why=TLP_WHY,
            ),
            C(
                "client states",
                r.states,
                "client",
                nth=1,
                how="contains",
                documented=["ESTABLISHED", "CLOSE"],
            ),
        ),
    ),
    Claim(
        "F2",
        ("002",),
        "Server host crash and reboot: the client's next segment is answered by RST and the client closes.",
        (
            C("the client's data is answered by", r.answered_by, "client", "data", nth=1, documented="rst"),
            C(
                "client states",
                r.states,
                "client",
                nth=1,
                how="contains",
                documented=["ESTABLISHED", "CLOSE"],
            ),
        ),
    ),
    Claim(
        "F3",
        ("002",),
        "Network down between them: the client retransmits (ICMP unreachable is ignored) until the limit.",
        (
            C(
                "recv() fails with",
                r.call_result,
                "client",
                "recv",
                documented="ETIMEDOUT",
                says="ETIMEDOUT (ICMP ignored: the limit ends it)",
                why=ICMP_ERR_WHY,
            ),
            C(
                "retransmission backoffs undone",
                r.backoffs_undone,
                "client",
                "data",
                documented=0,
                says="0 (ICMP ignored)",
                why=ICMP_RTO_WHY,
            ),
        ),
    ),
    Claim(
        "F4",
        ("002",),
        "Network restored before anyone sent: the connection survives; if the client "
        "gave up meanwhile, the server's next segment gets RST.",
        (
            C(
                "the client's recv() after the outage",
                r.call_result,
                "client",
                "recv",
                documented="ok",
                scenarios=("network-restored",),
            ),
            C(
                "the server's data after the client gave up is answered by",
                r.answered_by,
                "server",
                "data",
                nth=1,
                documented="rst",
                scenarios=("network-restored-client-gave-up",),
            ),
        ),
    ),
    Claim(
        "F5",
        ("002", "003"),
        "Server process killed (kill -9): the kernel sends FIN and completes the 4-way close.",
        (
            C(
                "killed side's states",
                r.states,
                "server",
                nth=1,
                how="contains",
                documented=["FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"],
            ),
            C(
                "other side's states",
                r.states,
                "client",
                nth=1,
                how="contains",
                documented=["CLOSE_WAIT", "LAST_ACK", "CLOSE"],
            ),
        ),
    ),
    Claim(
        "F6",
        ("002",),
        "Server port closed (no listener any more): the next segment is answered by RST.",
        (C("the client's data is answered by", r.answered_by, "client", "data", nth=1, documented="rst"),),
    ),
    Claim(
        "F7",
        ("001", "003"),
        "Client host crash: the server stays ESTABLISHED for ever unless keepalive "
        "probes detect it (keepalive time, interval, probes).",
        (
            C(
                "without keepalive, the server's ESTABLISHED lasts (s)",
                r.span,
                "server",
                "ESTABLISHED",
                documented=0.0,
                says="for ever",
                how="forever",
                when=not_called("server", "keepalive"),
            ),
            C(
                "keepalive probes sent (= TCP_KEEPCNT)",
                r.count,
                "server",
                "keepalive",
                documented=keepalive_probes,
                when=called("server", "keepalive"),
            ),
            C(
                "keepalive ends recv() after (s) (idle + interval x probes)",
                r.call_duration,
                "server",
                "recv",
                nth=1,
                documented=keepalive_limit,
                how="near",
                when=called("server", "keepalive"),
            ),
        ),
    ),
    Claim(
        "F8",
        ("000",),
        "Broken pipe: the client gives up reading and closes; the server later writes "
        "a large response, gets RST, and its next write fails with EPIPE.",
        (
            C("the server's data is answered by", r.answered_by, "server", "data", nth=1, documented="rst"),
            C("the server's last write fails with", r.call_result, "server", "send", documented="EPIPE"),
        ),
    ),
)
