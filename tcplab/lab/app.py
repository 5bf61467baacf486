"""An application agent: a child process in the client or server namespace.

    python -m tcplab.lab.app      (config as one JSON line on stdin)

It sets the host's sysctls, reports the TCP sysctls in force, polls inet_diag, and on
`go` runs the scenario's steps with plain blocking socket calls, reporting each call's
start, end and result or errno. After the last step it keeps its sockets open until
`stop`: what the application did not close, the kernel must not close either.
"""

from __future__ import annotations

import errno
import socket
import sys
import threading
import time

from tcplab.lab import appproc, child, sockets
from tcplab.lab.diag import DEFAULT_INTERVAL

# Sysctls the result records for every host (what the kernel model needs).
REPORTED_SYSCTLS = (
    "net.ipv4.tcp_syn_retries",
    "net.ipv4.tcp_synack_retries",
    "net.ipv4.tcp_syn_linear_timeouts",
    "net.ipv4.tcp_rto_min_us",
    "net.ipv4.tcp_rto_max_ms",
    "net.ipv4.tcp_retries1",
    "net.ipv4.tcp_retries2",
    "net.ipv4.tcp_orphan_retries",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_abort_on_overflow",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_early_retrans",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_max_tw_buckets",
    "net.core.somaxconn",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_ehash_entries",  # > 0: the namespace has a TCP hash of its own
)

_SHUT = {"rd": socket.SHUT_RD, "wr": socket.SHUT_WR, "rdwr": socket.SHUT_RDWR}


class App:
    """The socket calls a scenario step can make. Each returns a short detail string
    and raises OSError when the kernel says no.

    Socket options (linger, keepalive, syncnt, rcvtimeo) apply to the current socket
    (the connection, else the listener), or to the next socket the app creates when it
    has none yet; `bind` fixes the next socket's local port. `repeat` runs its steps on
    a fresh App per iteration that shares the listener, so every iteration has its own
    socket; they all stay open until the run ends unless a step closes them."""

    def __init__(
        self, addr: str, peer_addr: str, listener: socket.socket | None = None, iteration: int | None = None
    ):
        self.addr, self.peer_addr = addr, peer_addr
        self.listener: socket.socket | None = listener
        self.sock: socket.socket | None = None
        self.iteration = iteration
        self.pending: list[sockets.Option] = []  # options for the next socket
        self.bind_port: int | None = None
        self.iterations: list[App] = []  # repeat's apps: their sockets must stay referenced
        self.counters: dict[str, int] | None = None  # what the last `netstat` read

    def _socket(self) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sockets.apply(s, self.pending)
        self.pending = []
        if self.bind_port is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.addr, self.bind_port))
            self.bind_port = None
        return s

    def _option(self, options: list[sockets.Option]) -> str:
        target = self.sock if self.sock is not None else self.listener
        if target is None:
            self.pending += options
            return "for the next socket"
        sockets.apply(target, options)
        return "on the connection" if target is self.sock else "on the listener"

    def listen(self, arg) -> str:
        port, backlog = (arg, 128) if isinstance(arg, int) else (arg["port"], arg["backlog"])
        self.bind_port = None  # listen names its own port
        s = self._socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.addr, port))
        s.listen(backlog)
        self.listener = s
        return f"{self.addr}:{port} backlog {backlog}"

    def accept(self, _arg) -> str:
        self.sock, (raddr, rport) = self.listener.accept()
        return f"from {raddr}:{rport}"

    def connect(self, target) -> str:
        _host, port = target
        self.sock = self._socket()
        self.sock.connect((self.peer_addr, port))
        laddr, lport = self.sock.getsockname()
        return f"{laddr}:{lport} -> {self.peer_addr}:{port}"

    def bind(self, port: int) -> str:
        self.bind_port = port
        return f"next socket on {self.addr}:{port}"

    def send(self, what) -> str:
        data = memoryview(b"x" * what if isinstance(what, int) else str(what).encode())
        sent = 0
        while sent < len(data):
            try:
                # MSG_NOSIGNAL: a write after the peer's RST must fail with EPIPE, never
                # kill the agent with SIGPIPE (Python ignores SIGPIPE too; this does not
                # depend on how the agent process was started).
                sent += self.sock.send(data[sent:], socket.MSG_NOSIGNAL)
            except OSError as e:
                raise OSError(e.errno, f"{e.strerror} after {sent} of {len(data)} bytes") from None
        return f"{len(data)} bytes"

    def recv(self, want) -> str:
        if want is None:
            data = self.sock.recv(65536)
            return f"{len(data)} bytes" if data else "EOF"
        got = 0
        while got < want:
            chunk = self.sock.recv(min(65536, want - got))
            if not chunk:
                return f"{got} bytes, then EOF"
            got += len(chunk)
        return f"{got} bytes"

    def sleep(self, seconds: float) -> str:
        time.sleep(seconds)
        return ""

    def close(self, _arg) -> str:
        target = self.sock if self.sock is not None else self.listener
        target.close()
        return ""

    def shutdown(self, how: str) -> str:
        self.sock.shutdown(_SHUT[how])
        return how

    def linger(self, seconds: int) -> str:
        return f"SO_LINGER on, {seconds} s, " + self._option(sockets.linger(seconds))

    def keepalive(self, arg) -> str:
        return "SO_KEEPALIVE " + self._option(sockets.keepalive(arg))

    def syncnt(self, count: int) -> str:
        return f"TCP_SYNCNT {count} " + self._option(sockets.syncnt(count))

    def rcvtimeo(self, seconds: float) -> str:
        return f"SO_RCVTIMEO {seconds:g} s " + self._option(sockets.rcvtimeo(seconds))

    def flood(self, arg) -> str:
        return sockets.syn_flood(self.addr, self.peer_addr, arg["port"], arg["syns"])

    def netstat(self, _arg) -> str:
        self.counters = sockets.tcp_counters()
        return " ".join(f"{k}={v}" for k, v in sorted(self.counters.items()))

    def repeat(self, arg) -> str:
        apps = [App(self.addr, self.peer_addr, self.listener, i + 1) for i in range(arg["times"])]
        for app in apps:
            app.pending = list(self.pending)  # options given before the repeat: each socket
        self.pending = []
        self.iterations += apps
        steps = [(call, tuple(a) if isinstance(a, list) else a) for call, a in arg["steps"]]
        if not arg.get("parallel"):
            for app in apps:
                for call, a in steps:
                    run_step(app, call, a)
            return f"{len(apps)} iterations, one after another"
        # All at once: each iteration in its own thread, released together, so the
        # connects really overlap (many SYN_SENT, or a full accept queue).
        gate = threading.Barrier(len(apps))

        def iterate(app: App) -> None:
            gate.wait()
            for call, a in steps:
                run_step(app, call, a)

        threads = [threading.Thread(target=iterate, args=(app,), daemon=True) for app in apps]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return f"{len(apps)} iterations in parallel"


def _ends(sock: socket.socket | None) -> dict:
    """The socket's local and remote port, when it has them, to tell iterations apart."""
    out = {}
    for key, name in (("lport", "getsockname"), ("rport", "getpeername")):
        try:
            port = getattr(sock, name)()[1]
        except (OSError, AttributeError):
            continue
        if port:
            out[key] = port
    return out


def run_step(app: App, call: str, arg) -> None:
    start = time.monotonic()
    tag = {} if app.iteration is None else {"iteration": app.iteration}
    child.emit("app-start", mono=start, call=call, arg=arg, **tag)
    app.counters = None
    try:
        detail = getattr(app, call)(arg)
        result = "ok"
    except OSError as e:
        result = errno.errorcode.get(e.errno, f"E{e.errno}") if e.errno else type(e).__name__
        detail = e.strerror or str(e)
    extra = _ends(app.sock) if call in ("connect", "accept", "send", "recv") else {}
    if app.counters is not None:
        extra["counters"] = app.counters
    child.emit(
        "app",
        mono=start,
        mono_end=time.monotonic(),
        call=call,
        arg=arg,
        result=result,
        detail=detail,
        **tag,
        **extra,
    )


def start_diag(interval: float):
    """inet_diag polling for what the tracepoint cannot show (request and timewait
    sockets). Its events go to the runner like everything else."""
    from tcplab.lab.diag import DiagPoller

    poller = DiagPoller(lambda change: child.emit("diag", **change), interval=interval)
    poller.start()
    return poller


def main() -> None:
    config = child.read_config()
    child.enter_netns(config["netns"])
    child.write_sysctls(config.get("sysctls", {}))
    in_force = {name: child.read_sysctl(name) for name in REPORTED_SYSCTLS}
    app = App(config["addr"], config["peer_addr"])
    child.raise_priority(child.APP_NICE)

    def steps() -> None:
        for call, arg in config["steps"]:
            run_step(app, call, tuple(arg) if isinstance(arg, list) else arg)
        child.emit("done")

    # The application runs in a process of its own (tcplab/lab/appproc.py), forked
    # before any thread exists; this agent polls inet_diag and reports whatever becomes
    # of it (kill -9, reboot).
    proc = appproc.AppProcess()
    proc.start(steps)
    threading.Thread(target=proc.relay, daemon=True).start()
    poller = start_diag(config.get("diag_interval", DEFAULT_INTERVAL))
    child.emit("ready", sysctls={k: v for k, v in in_force.items() if v is not None}, app_pid=proc.pid)
    # Only this thread reads commands. `go` starts the application; `go T0` or a later
    # `clock T0` gives the apps' start on CLOCK_MONOTONIC, from which kill and reboot
    # are timed (the server goes first, and the clock starts when the client does).
    scheduled = False
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["go"] and proc.started is None:
            proc.started = time.monotonic()
            proc.go()
        if words[:1] in (["go"], ["clock"]) and len(words) == 2 and not scheduled:
            scheduled = True
            appproc.schedule(config.get("host_faults", []), float(words[1]), proc, config.get("host", ""))
        elif words == ["stop"]:
            break
    poller.stop()
    # Sockets still there at the end: a tracepoint CLOSE on one of them was a handover
    # to a timewait socket, not the end of the connection.
    child.emit("alive", sockets=[list(key) for key in poller.known()])
    proc.end()
    child.emit("stopped")


if __name__ == "__main__":
    main()
