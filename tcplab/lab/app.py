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

from tcplab.lab import child
from tcplab.lab.diag import DEFAULT_INTERVAL

# Sysctls the result records for every host (what the kernel model needs).
REPORTED_SYSCTLS = (
    "net.ipv4.tcp_syn_retries", "net.ipv4.tcp_synack_retries",
    "net.ipv4.tcp_syn_linear_timeouts", "net.ipv4.tcp_rto_min_us", "net.ipv4.tcp_rto_max_ms",
    "net.ipv4.tcp_retries1", "net.ipv4.tcp_retries2", "net.ipv4.tcp_orphan_retries",
    "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_syncookies", "net.ipv4.tcp_abort_on_overflow",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_early_retrans", "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_max_syn_backlog", "net.core.somaxconn", "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_ehash_entries",  # > 0: the namespace has a TCP hash of its own
)

_SHUT = {"rd": socket.SHUT_RD, "wr": socket.SHUT_WR, "rdwr": socket.SHUT_RDWR}


class App:
    """The socket calls a scenario step can make. Each returns a short detail string
    and raises OSError when the kernel says no."""

    def __init__(self, addr: str, peer_addr: str):
        self.addr, self.peer_addr = addr, peer_addr
        self.listener: socket.socket | None = None
        self.sock: socket.socket | None = None

    def listen(self, port: int) -> str:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.addr, port))
        s.listen(128)
        self.listener = s
        return f"{self.addr}:{port}"

    def accept(self, _arg) -> str:
        self.sock, (raddr, rport) = self.listener.accept()
        return f"from {raddr}:{rport}"

    def connect(self, target) -> str:
        _host, port = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.connect((self.peer_addr, port))
        laddr, lport = self.sock.getsockname()
        return f"{laddr}:{lport} -> {self.peer_addr}:{port}"

    def send(self, what) -> str:
        data = b"x" * what if isinstance(what, int) else str(what).encode()
        self.sock.sendall(data)
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


def run_step(app: App, call: str, arg) -> None:
    start = time.monotonic()
    child.emit("app-start", mono=start, call=call, arg=arg)
    try:
        detail = getattr(app, call)(arg)
        result = "ok"
    except OSError as e:
        result = errno.errorcode.get(e.errno, f"E{e.errno}") if e.errno else type(e).__name__
        detail = e.strerror or str(e)
    child.emit("app", mono=start, mono_end=time.monotonic(), call=call, arg=arg,
               result=result, detail=detail)


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
    poller = start_diag(config.get("diag_interval", DEFAULT_INTERVAL))
    child.emit("ready", sysctls={k: v for k, v in in_force.items() if v is not None})
    app = App(config["addr"], config["peer_addr"])
    go = threading.Event()

    def steps() -> None:
        go.wait()
        for call, arg in config["steps"]:
            run_step(app, call, tuple(arg) if isinstance(arg, list) else arg)
        child.emit("done")

    threading.Thread(target=steps, daemon=True).start()
    # Only this thread reads commands; the steps run in their own thread because
    # their calls block for as long as the kernel makes them (131 s for a SYN).
    for line in sys.stdin:
        command = line.strip()
        if command == "go":
            go.set()
        elif command == "stop":
            break
    poller.stop()
    # Sockets still there at the end: a tracepoint CLOSE on one of them was a handover
    # to a timewait socket, not the end of the connection.
    child.emit("alive", sockets=[list(key) for key in poller.known()])
    child.emit("stopped")


if __name__ == "__main__":
    main()
