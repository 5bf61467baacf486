"""What a listener does under a SYN flood: the request queue, SYN cookies and the
request timer's pruning, as pure code (claim H11; scenarios/handshake/
syn-flood-syncookies.yaml). Checked on 6.18 (docs/kernel-notes.md has the numbers).

Rules (net/ipv4/tcp_input.c tcp_conn_request(), tcp_syn_flood_action();
net/ipv4/inet_connection_sock.c reqsk_timer_handler(), syn_ack_recalc();
net/ipv4/syncookies.c cookie_v4_check(); include/net/tcp.h cookie_init_sequence()):

- The listener's backlog B is min(listen()'s backlog, net.core.somaxconn)
  (__sys_listen). The request queue is full when it holds more than B requests
  (inet_csk_reqsk_queue_is_full(): `qlen > B` since 6.13, commit 3479c7549fb1, and in
  the stable trees that took it in January 2025; `qlen >= B` before).
- A SYN that finds the queue full, or any SYN when tcp_syncookies=2, goes to
  tcp_syn_flood_action(): with tcp_syncookies 1 or 2 it is answered with a cookie
  SYN-ACK (TcpExt TCPReqQFullDoCookies and SyncookiesSent +1) and nothing is kept; with
  0 it is dropped (TCPReqQFullDrop, ListenDrops +1). Otherwise, with tcp_syncookies=0
  only, a SYN is also dropped (ListenDrops +1) once tcp_max_syn_backlog - qlen <
  tcp_max_syn_backlog / 4, unless its peer is "proven" (tcp_peer_is_proven(); the lab's
  peers never are). With cookies on, tcp_max_syn_backlog limits nothing.
- Any other SYN creates a request (SYN_RECV, "young" until its timer first fires),
  answered with a SYN-ACK, its timer armed for TCP_TIMEOUT_INIT (1 s).
- reqsk_timer_handler(), at each expiry: TcpExt TCPTimeouts +1. max =
  tcp_synack_retries; if 2 * qlen > max(8, B), the young requests are counted: y =
  2 * young; while max > 2 and qlen >= y: max -= 1, y *= 2 (so with no young request
  left, max drops to 2). If num_timeout >= max the request is dropped silently;
  else its SYN-ACK is retransmitted (TCPSynRetrans +1), num_timeout += 1 (the first
  time, young -= 1) and the timer re-armed for min(2^num_timeout s, TCP_RTO_MAX).
  Under a flood the oldest requests therefore get 2 retransmissions (1 and 3 s), and
  die at their third expiry (7 s) while more than half the queue is taken.
- A cookie SYN-ACK has no request and no timer: it is never retransmitted. The ACK
  that brings a valid cookie back creates the connection (SyncookiesRecv +1).
- The genuine client is the handshake model's client: its SYN gets a cookie, a request
  or nothing by the rules above; a dropped SYN is retransmitted on its own timer
  (core/model/handshake.py syn_wait) until one gets an answer or connect() gives up.

Not modelled: the accept queue filling (the lab's server accepts), faults on the
flood's segments, ICMP errors about the flood's SYN-ACKs (tcp_req_err() drops a
request on a host or net unreachable; the scenario silences the router's ICMP).
Timer lateness is core/model/handshake.py's Kernel.slack: each request timer may fire up to its
wheel granularity plus one jiffy late.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections import Counter
from dataclasses import dataclass, field

from tcplab.core.scenario import all_steps
from tcplab.core.model.kernel import sysctl_int
from tcplab.core.model.handshake_params import HostParams, syn_gives_up, syn_wait
from tcplab.core.model.kernel import Kernel, TCP_RTO_MAX, TCP_TIMEOUT_INIT, TRANSIT
from tcplab.core.model.prediction import PredictedSegment, Prediction

FLOOD_GAP = 0.001  # tcplab/lab/sockets.py syn_flood(): one spoofed SYN per millisecond
REQUEST, COOKIE, DROPPED = "request", "cookie", "dropped"


@dataclass(frozen=True)
class ListenerParams:
    """What the server's answer to a SYN depends on: its sysctls and listen()."""

    syncookies: int = 1
    synack_retries: int = 5
    somaxconn: int = 4096
    max_syn_backlog: int = 128
    backlog: int = 128  # listen()'s argument
    full_above: bool = True  # inet_csk_reqsk_queue_is_full() is `>` (else `>=`)

    @classmethod
    def from_sysctls(cls, kernel: Kernel, s: dict[str, str], backlog: int) -> ListenerParams:
        return cls(
            syncookies=sysctl_int(s, "net.ipv4.tcp_syncookies", 1),
            synack_retries=sysctl_int(s, "net.ipv4.tcp_synack_retries", 5),
            somaxconn=sysctl_int(s, "net.core.somaxconn", 4096),
            max_syn_backlog=sysctl_int(s, "net.ipv4.tcp_max_syn_backlog", 128),
            backlog=backlog,
            # not known (None): `>=`, as before 6.13; predict() judges no flood then
            full_above=kernel.accept_queue_full_above is True,
        )

    @property
    def max_ack_backlog(self) -> int:
        return max(0, min(self.backlog, self.somaxconn))

    def queue_full(self, qlen: int) -> bool:
        b = self.max_ack_backlog
        return qlen > b if self.full_above else qlen >= b


def synack_retries_now(p: ListenerParams, qlen: int, young: int) -> int:
    """reqsk_timer_handler()'s max_syn_ack_retries for this expiry."""
    retries = p.synack_retries
    if qlen << 1 > max(8, p.max_ack_backlog):
        y = young << 1
        while retries > 2:
            if qlen < y:
                break
            retries -= 1
            y <<= 1
    return retries


def request_wait(num_timeout: int) -> float:
    """reqsk_timeout(): the request timer's wait after num_timeout expiries."""
    return min(TCP_TIMEOUT_INIT * (1 << num_timeout), TCP_RTO_MAX)


@dataclass
class Request:
    """One request socket: who made it, its SYN-ACKs and its end. Times are absolute
    (the caller's clock: the record's, or the nominal one from the first flood SYN)."""

    who: int  # flood SYN number, 1-based in arrival order; 0 = the genuine client
    created: float
    synacks: list[float] = field(default_factory=list)
    slacks: list[float] = field(default_factory=list)  # how late each may be (summed)
    num_timeout: int = 0
    end: float | None = None
    end_slack: float = 0.0
    fate: str = "waiting"  # "dropped" by its timer, "completed" by the ACK, or "waiting"


@dataclass
class FloodPrediction:
    kernel: Kernel
    params: ListenerParams
    client: HostParams
    syns: int
    arrivals: list[float]  # when each flood SYN reached the server
    answers: list[str] = field(default_factory=list)  # per flood SYN: REQUEST/COOKIE/DROPPED
    requests: list[Request] = field(default_factory=list)
    genuine_syns: list[float] = field(default_factory=list)  # sent by the genuine client
    genuine_slacks: list[float] = field(default_factory=list)
    genuine: list[str] = field(default_factory=list)  # the answer to each of those SYNs
    connect: tuple[str, float, float] | None = None  # result, start, end (absolute)
    counters: list[tuple[float, float, str]] = field(default_factory=list)  # (t, slack, name)
    peak: int = 0  # most flood requests held at once
    until: float = 0.0
    notes: list[str] = field(default_factory=list)

    def indexes(self, answer: str) -> list[int]:
        return [i + 1 for i, a in enumerate(self.answers) if a == answer]

    def flood_requests(self) -> list[Request]:
        return [r for r in self.requests if r.who > 0]

    def counter_totals(self, since: float = float("-inf"), until: float = float("inf")) -> Counter:
        return Counter(name for t, _s, name in self.counters if since <= t <= until)

    def to_json(self, origin: float = 0.0) -> dict:
        """The prediction for the result JSON, times from `origin`."""

        def rel(t):
            return round(t - origin, 4)

        reqs = self.flood_requests()
        by_count = Counter(len(r.synacks) for r in reqs)
        return {
            "syns": self.syns,
            "backlog": self.params.max_ack_backlog,
            "queue_full_when": ("qlen > backlog" if self.params.full_above else "qlen >= backlog"),
            "answers": {a: ranges(self.indexes(a)) for a in (REQUEST, COOKIE, DROPPED) if self.indexes(a)},
            "requests_at_most": self.peak,
            "request_synacks": {str(n): c for n, c in sorted(by_count.items())},
            "requests": [
                {
                    "syn": r.who,
                    "synacks": [rel(t) for t in r.synacks],
                    "late_by_up_to": [round(s, 4) for s in r.slacks],
                    "fate": r.fate,
                    "end": None if r.end is None else rel(r.end),
                }
                for r in reqs
            ],
            "genuine": {
                "syns": [rel(t) for t in self.genuine_syns],
                "answers": self.genuine,
                "connect": None
                if self.connect is None
                else {"result": self.connect[0], "after": round(self.connect[2] - self.connect[1], 4)},
            },
            "counters": dict(sorted(self.counter_totals().items())),
            "horizon": rel(self.until),
            "notes": self.notes,
        }


def ranges(nums: list[int]) -> str:
    """[1, 2, 3, 7] -> '#1-#3, #7 (4)'."""
    if not nums:
        return "none"
    parts, start, prev = [], nums[0], nums[0]
    for n in nums[1:] + [None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(f"#{start}" if start == prev else f"#{start}-#{prev}")
        if n is not None:
            start = prev = n
    return f"{', '.join(parts)} ({len(nums)})"


class _Sim:
    def __init__(self, kernel: Kernel, p: ListenerParams, client: HostParams, stale: int = 0):
        self.k, self.p, self.cp = kernel, p, client
        self.q: list = []
        self.seq = itertools.count()
        self.queue: list[Request] = []  # the listener's request queue
        self.connected = False
        # Expiries that read qlen before the drops of expiries running at the same time
        # on other CPUs were counted (see timer()): at most `stale` after a drop.
        self.stale = stale
        self.last_drop: float | None = None
        self.stale_spent = 0

    def at(self, t: float, what: str, *args) -> None:
        heapq.heappush(self.q, (round(t, 9), next(self.seq), what, args))

    def count(self, t: float, name: str, slack: float = 0.0) -> None:
        self.fp.counters.append((t, slack, name))

    def young(self) -> int:
        return sum(1 for r in self.queue if r.num_timeout == 0)

    def answer(self, t: float, who: int, slack: float) -> str:
        """tcp_conn_request() for a SYN reaching the listener at t."""
        p, qlen = self.p, len(self.queue)
        if p.syncookies == 2 or p.queue_full(qlen):
            if p.syncookies:
                self.count(t, "TCPReqQFullDoCookies", slack)
                self.count(t, "SyncookiesSent", slack)
                return COOKIE
            self.count(t, "TCPReqQFullDrop", slack)
            self.count(t, "ListenDrops", slack)
            return DROPPED
        if not p.syncookies and p.max_syn_backlog - qlen < p.max_syn_backlog >> 2:
            self.count(t, "ListenDrops", slack)
            return DROPPED
        req = Request(who, t, [t], [slack])
        self.queue.append(req)
        self.fp.requests.append(req)
        self.fp.peak = max(self.fp.peak, sum(1 for r in self.queue if r.who > 0))
        self.at(t + request_wait(0), "timer", req)
        return REQUEST

    def timer(self, t: float, req: Request) -> None:
        if req.fate != "waiting":
            return
        wait = request_wait(req.num_timeout)
        slack = req.slacks[-1] + self.k.slack(wait)
        self.count(t, "TCPTimeouts", slack)
        retries = synack_retries_now(self.p, len(self.queue), self.young())
        if req.num_timeout < retries and self._stale_read(t, wait, req):
            self.stale_spent += 1
            retries = req.num_timeout  # it read the length before a drop was counted
        if req.num_timeout >= retries:
            req.fate, req.end, req.end_slack = "dropped", t, slack
            self.queue.remove(req)
            if self.last_drop is None or t - self.last_drop > self.k.slack(wait):
                self.stale_spent = 0  # a new batch of expiries
            self.last_drop = t
            return
        self.count(t, "TCPSynRetrans", slack)
        req.synacks.append(t)
        req.slacks.append(slack)
        req.num_timeout += 1
        self.at(t + request_wait(req.num_timeout), "timer", req)

    def _stale_read(self, t: float, wait: float, req: Request) -> bool:
        """The request timer is TIMER_PINNED (reqsk_queue_hash_req()): each request's
        expiries run on the CPU that took its SYN. reqsk_timer_handler() reads qlen
        (reqsk_queue_len(), an atomic read, no lock) before it decides, and a drop
        counts only later (inet_csk_reqsk_queue_drop_and_put()). So an expiry on one
        CPU may read the length before the drop another CPU is making at the same
        time: it sees one request more, and may drop where the model, counting drops
        in order, keeps and retransmits. At most one unseen drop per other CPU: after
        that each CPU reads its own drops. Expiries within the expiry's slack of the
        last drop may run at once (the same wheel bucket, or a late tick); the
        variant with `stale` such reads is one the check accepts (check/flood.py)."""
        if self.stale_spent >= self.stale or self.last_drop is None:
            return False
        if t - self.last_drop > self.k.slack(wait):
            return False
        qlen = len(self.queue) + 1
        return req.num_timeout >= synack_retries_now(self.p, qlen, self.young())

    def genuine_syn(self, t: float, k: int, slack: float) -> None:
        """The genuine client's SYN #k+1 (k retransmissions before it), sent at t."""
        if self.connected:
            return
        self.fp.genuine_syns.append(t)
        self.fp.genuine_slacks.append(slack)
        got = self.answer(t + TRANSIT, 0, slack)
        self.fp.genuine.append(got)
        if got != DROPPED:
            self.at(t + 2 * TRANSIT, "synack_back", got, slack)
            return
        wait = syn_wait(self.cp, k + 1)
        self.at(t + wait, "syn_timer", k, slack + self.k.slack(wait))

    def syn_timer(self, t: float, k: int, slack: float) -> None:
        if self.connected:
            return
        start = self.fp.genuine_syns[0]
        if syn_gives_up(self.cp, k, t - start):
            self.fp.connect = ("ETIMEDOUT", start, t)
            return
        self.genuine_syn(t, k + 1, slack)

    def synack_back(self, t: float, how: str, slack: float) -> None:
        """The genuine client got its SYN-ACK: connect() returns, its ACK goes out."""
        if self.connected:
            return
        self.connected = True
        self.fp.connect = ("ok", self.fp.genuine_syns[0], t)
        if how == COOKIE:
            self.count(t + TRANSIT, "SyncookiesRecv", slack)
        else:  # the ACK turns the request into a child (reqsk_queue_removed)
            req = next(r for r in self.queue if r.who == 0)
            req.fate, req.end = "completed", t + TRANSIT
            self.queue.remove(req)

    def run(self, fp: FloodPrediction, genuine_at: float | None, until: float) -> FloodPrediction:
        self.fp = fp
        for i, t in enumerate(fp.arrivals):
            self.at(t, "flood_syn", i + 1)
        if genuine_at is not None:
            self.at(genuine_at, "genuine_syn", 0, 0.0)
        while self.q:
            t, _, what, args = heapq.heappop(self.q)
            if t > until:
                break
            if what == "flood_syn":
                fp.answers.append(self.answer(t, args[0], 0.0))
            elif what == "timer":
                self.timer(t, *args)
            elif what == "genuine_syn":
                self.genuine_syn(t, *args)
            elif what == "syn_timer":
                self.syn_timer(t, *args)
            elif what == "synack_back":
                self.synack_back(t, *args)
        fp.until = until
        return fp


def predict_flood(
    kernel: Kernel,
    params: ListenerParams,
    client: HostParams,
    arrivals: list[float],
    genuine_at: float | None,
    until: float = 600.0,
    stale: int = 0,
) -> FloodPrediction:
    """Every flood SYN's answer, each request's SYN-ACKs and end, the genuine client's
    SYNs and connect(), and the server's TcpExt counter increments, for flood SYNs
    reaching the listener at `arrivals` and the genuine client's first SYN sent at
    `genuine_at` (None: no genuine client). Up to `until`. `stale`: how many request
    expiries after a drop read the queue's length before that drop counted (the
    two-CPU race of _Sim._stale_read; 0: each CPU's expiries in turn)."""
    fp = FloodPrediction(kernel, params, client, len(arrivals), sorted(arrivals))
    return _Sim(kernel, params, client, stale).run(fp, genuine_at, until)


def nominal_arrivals(syns: int, gap: float = FLOOD_GAP) -> list[float]:
    return [i * gap for i in range(syns)]


# -- the runner's hook --------------------------------------------------------------------


def flood_setup(sc) -> tuple[dict, int, bool] | None:
    """The scenario's flood step, the server's listen backlog and whether the model
    covers the scenario; None when the client sends no flood."""
    floods = [s for s in all_steps(sc.apps["client"]) if s.call == "flood"]
    if not floods:
        return None
    listen = next((s for s in all_steps(sc.apps["server"]) if s.call == "listen"), None)
    arg = None if listen is None else listen.arg
    port, backlog = (
        (arg, 128) if isinstance(arg, int) else ((arg or {}).get("port"), (arg or {}).get("backlog", 128))
    )
    covered = (
        len(floods) == 1
        and listen is not None
        and floods[0].arg["port"] == port
        and not sc.faults
        and not sc.host_faults
        and not sc.forges
    )
    return floods[0].arg, backlog, covered


def for_scenario(
    sc, kernel: Kernel, sysctls: dict[str, dict[str, str]], client_sysctls: dict[str, str]
) -> tuple[FloodPrediction | None, str]:
    """For a scenario whose client floods the listener first: the flood's prediction
    (None when there is no flood, or one the model does not cover, with a note why)."""
    setup = flood_setup(sc)
    if setup is None:
        return None, ""
    flood, backlog, covered = setup
    if not covered:
        return None, (
            "the flood model covers one flood at the listener's port "
            "without faults; this scenario is judged without it"
        )
    params = ListenerParams.from_sysctls(kernel, sysctls.get("server", {}), backlog)
    client = HostParams.from_sysctls(kernel, client_sysctls)
    arrivals = nominal_arrivals(flood["syns"])
    genuine_at = flood["syns"] * FLOOD_GAP if _connects(sc) else None
    return predict_flood(kernel, params, client, arrivals, genuine_at, until=sc.timeout), ""


def with_flood(prediction: Prediction, fp: FloodPrediction) -> Prediction:
    """The handshake prediction as the flood leaves the genuine connection's handshake
    (its SYN answered with a cookie, a request, or dropped): a new Prediction."""
    out = dataclasses.replace(
        prediction,
        segments=list(prediction.segments),
        calls=dict(prediction.calls),
        notes=list(prediction.notes),
        alternatives=list(prediction.alternatives),
        flood=fp,
    )
    adopt_genuine(out, fp)
    return out


def adopt_genuine(prediction: Prediction, fp: FloodPrediction) -> None:
    """(On with_flood's own copy.) The handshake model assumed a listener with room:
    where the flood changes the genuine client's handshake, its segments and connect()
    follow the flood model (times from the genuine client's first SYN, as the handshake
    model's are)."""
    if not fp.genuine_syns:
        return
    t0 = fp.genuine_syns[0]
    if fp.genuine[0] != DROPPED:
        # A cookie keeps no request: no request timer, nothing for it to drop.
        if fp.genuine[0] == COOKIE:
            prediction.segments[:] = [
                s
                for s in prediction.segments
                if not (s.sender == "server" and s.name == "syn-ack" and s.cause == "timer")
            ]
            prediction.calls.pop(("server", "request"), None)
        return
    segs = [
        PredictedSegment(t - t0, "client", "syn", i + 1, "delivered", "first" if i == 0 else "timer", slack)
        for i, (t, slack) in enumerate(zip(fp.genuine_syns, fp.genuine_slacks))
    ]
    later = []
    if fp.connect is not None and fp.connect[0] == "ok":
        end, slack = fp.connect[2] - t0, fp.genuine_slacks[-1]
        segs += [
            PredictedSegment(end - TRANSIT, "server", "syn-ack", 1, "delivered", "answer", slack),
            PredictedSegment(end, "client", "ack", 1, "delivered", "answer", slack),
        ]
        # What followed the connect (the first data) follows it still.
        shift = end - 2 * TRANSIT
        later = [
            dataclasses.replace(s, t=s.t + shift, slack=s.slack + slack)
            for s in prediction.segments
            if s.name not in ("syn", "syn-ack", "ack")
        ]
    prediction.segments[:] = sorted(segs + later, key=lambda s: s.t)
    prediction.alternatives.clear()  # the handshake model's ties are not this handshake's
    prediction.calls.pop(("server", "request"), None)
    if fp.connect is not None:
        result, _start, end = fp.connect
        prediction.calls[("client", "connect")] = (result, 0.0, end - t0)
    prediction.notes.append(f"the flood drops the genuine client's first {fp.genuine.count(DROPPED)} SYN(s)")


def _connects(sc) -> bool:
    """Does the client connect() after its flood?"""
    steps = [s.call for s in all_steps(sc.apps["client"])]
    return "connect" in steps[steps.index("flood") :]
