"""Why the kernel differs from the documents: the mechanism, said only when a run
shows it does (Comparison.why)."""

from __future__ import annotations

from tcplab.claims.record import Run


def syn_why(run: Run) -> str:
    retries = run.sysctl("client", "net.ipv4.tcp_syn_retries")
    linear = run.sysctl("client", "net.ipv4.tcp_syn_linear_timeouts")
    parts = []
    if retries not in (None, "5"):
        parts.append(
            f"tcp_syn_retries is {retries} here (the default since Linux 3.7 is 6), not the documents' 5"
        )
    if linear not in (None, "0"):
        parts.append(
            f"since Linux 6.5 the first tcp_syn_linear_timeouts={linear} SYN "
            "retransmissions wait a fixed 1 s before the doubling starts"
        )
    if not parts:
        return ""
    n, k = int(retries or 5), int(linear or 0)
    return (
        "; ".join(parts) + f": connect() gives up after {k} + 2^{n + 1} - 1 = "
        f"{k + 2 ** (n + 1) - 1} s, with {k + n} retransmissions."
    ).capitalize()


QUEUE_WHY = (
    "sk_acceptq_is_full() compares the queue with its limit by `>`, not `>=`: "
    "Linux queues min(backlog, somaxconn) + 1 connections before it refuses one."
)
TLP_WHY = (
    "Linux sends a tail loss probe one RTO after the last segment (since 3.10, "
    "tcp_early_retrans=3) before the first RTO retransmission, and turns the retry "
    "limit into a time (tcp_model_timeout(): (2^(N+1) - 1) x 200 ms after the "
    "first RTO retransmission for N <= 9, checked only when a timer fires), so "
    "it sends more copies than the sysctl says."
)
ICMP_ERR_WHY = (
    "tcp_v4_err() keeps an ICMP unreachable on an established connection as "
    "a soft error (sk_err_soft) and reports it when the retransmissions give "
    "up: recv() fails with the ICMP's errno, not ETIMEDOUT."
)
ICMP_RTO_WHY = (
    "An ICMP unreachable answering an RTO retransmission undoes one backoff "
    "doubling (RFC 6069, tcp_ld_RTO_revert()): the ICMP is acted on, and more "
    "retransmissions fit in the limit."
)
