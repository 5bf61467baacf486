"""A router without a route to the peer (a link-down host fault): ICMP net or host
unreachable for each segment it cannot forward, rate limited (ip_error(),
icmpv4_xrlim_allow()). The established-connection model (established.py) replays its
buckets along a retransmission chain."""

from __future__ import annotations

ICMP_PEER_CREDIT = 60.0  # inet_getpeer(): rate_last = jiffies - 60 * HZ
ERRNO_OF_UNREACH = {"net": "ENETUNREACH", "host": "EHOSTUNREACH"}


class UnreachableRouter:
    """ip_error() + icmpv4_xrlim_allow(): whether the router answers a segment from one
    source with ICMP net unreachable. Both buckets live in the same inet_peer, so they
    share its tokens and its clock (measured on 6.18: ICMPs for a segment at 0, 0.21,
    3.3, 8.3, 11.6 s of a backing-off retransmission chain, the rest unanswered)."""

    def __init__(
        self,
        ratelimit: float = 1.0,
        error_cost: float = 1.0,
        error_burst: float = 5.0,
        code: str = "net",
        hz: int = 250,
    ):
        self.ratelimit, self.cost, self.burst, self.code = ratelimit, error_cost, error_burst, code
        self.tokens, self.hz = 0.0, hz
        self.last: float | None = None  # when ip_error() last ran: the peer is new until then

    def answers(self, t: float, seen: bool | None = None) -> bool:
        """Whether the segment at t draws an ICMP. `seen`: what a run showed instead
        (replaying a record); the buckets then follow that."""
        return self.step(t, seen)[0]

    def step(self, t: float, seen: bool | None = None) -> tuple[bool, bool]:
        """(answered, too close to call): the kernel counts tokens in jiffies, so a
        bucket within two jiffies of a threshold may go either way."""
        last = t - ICMP_PEER_CREDIT if self.last is None else self.last
        self.tokens = min(self.tokens + (t - last), self.burst)  # ip_error()
        self.last = t
        near = 2.0 / self.hz
        close = abs(self.tokens - self.cost) < near or abs(self.tokens - self.cost - self.ratelimit) < near
        if self.tokens < self.cost - 1e-9 and not seen:
            return False, close
        self.tokens -= self.cost
        answered = self.tokens >= self.ratelimit - 1e-9  # inet_peer_xrlim_allow()
        if seen if seen is not None else answered:
            self.tokens -= self.ratelimit
        self.tokens = max(self.tokens, 0.0)  # (a replayed ICMP the floats did not foresee)
        return answered, close
