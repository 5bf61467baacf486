"""The documents' rules, applied to a run's own settings: a claim's documented value
where it depends on the run (Comparison.documented), and when a comparison applies
(Comparison.when)."""

from __future__ import annotations

from collections.abc import Callable

from tcplab.claims import record as r
from tcplab.claims.record import Run


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
