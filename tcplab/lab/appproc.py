"""The application as a process of its own, under its app agent (tcplab/lab/app.py).

The agent forks the application before it starts any thread (so the copy inherits no
lock another thread held) and after it entered the host's namespace (so the copy is
in it too). The application waits for `go`, runs the steps and reports on a pipe the
agent relays line by line; the agent goes on polling inet_diag whatever happens to it.
That split is what `kill` needs: SIGKILL ends the application, the kernel closes its
sockets as for any dead process (a FIN on each connection), and the agent reports the
death. `reboot` kills it too and then destroys every TCP socket of the namespace
(SOCK_DESTROY, CONFIG_INET_DIAG_DESTROY), so no socket is left to answer for it.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

from tcplab.lab import child
from tcplab.lab.diag import dump_tcp, open_diag_socket

PR_SET_PDEATHSIG = 1
SOCK_DESTROY = 21  # include/uapi/linux/sock_diag.h
NLM_F_REQUEST, NLM_F_ACK, NLMSG_ERROR = 0x1, 0x4, 0x2
# After the hook silenced a rebooting host, its agent waits this long before killing
# the application, so the FIN and RST of the way down are surely dropped.
REBOOT_MARGIN = 0.02


class AppProcess:
    """The forked application: start(run) forks, go() releases it, kill() ends it."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.open_call: dict | None = None  # the app-start not yet answered by an app
        self.done = False
        self.started: float | None = None  # when the agent got `go`
        self.stopping = False  # the run is over: its end is the lab's doing, not news
        self.exit: str | None = None  # how it ended: "exit 0", "SIGKILL", ...
        self._go_w = -1
        self._out_r = -1
        self._lock = threading.Lock()

    def start(self, run) -> None:
        """Fork; the child runs run() once go() was called and exits."""
        go_r, self._go_w = os.pipe()
        self._out_r, out_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the application
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the agent gone: so is it
                os.close(self._go_w)
                os.close(self._out_r)
                os.dup2(out_w, 1)  # child.emit writes to stdout: now the agent's pipe
                os.close(out_w)
                sys.stdin = open(os.devnull)  # commands are the agent's
                os.read(go_r, 64)
                run()
                sys.stdout.flush()
                while True:  # what the application did not close stays open until the
                    signal.pause()  # agent ends it at `stop`
            except BaseException:  # a bug, not a kernel answer: say so on stderr
                import traceback

                traceback.print_exc()
                sys.stderr.flush()
                os._exit(1)
            finally:
                os._exit(0)
        os.close(go_r)
        os.close(out_w)
        self.pid = pid

    def relay(self) -> None:
        """In the agent: pass the application's lines on; when it is gone, say how it
        ended. Runs in a thread of its own."""
        with os.fdopen(self._out_r, "r", errors="replace") as out:
            for line in out:
                self._note(line)
                child.emit_line(line.rstrip("\n"))
        _pid, status = os.waitpid(self.pid, 0)
        if self.stopping:  # a call still blocked now is recorded as such by the runner
            return
        self.exit = (
            f"exit {os.waitstatus_to_exitcode(status)}"
            if os.WIFEXITED(status)
            else signal.Signals(os.WTERMSIG(status)).name
        )
        now = time.monotonic()
        if self.open_call is not None:  # the call it was blocked in never returns
            c = self.open_call
            child.emit(
                "app",
                mono=c["mono"],
                mono_end=now,
                call=c["call"],
                arg=c.get("arg"),
                result=self.exit if self.exit.startswith("SIG") else "exited",
                detail=f"the application process ended ({self.exit})",
            )
        child.emit("app-exit", how=self.exit)
        if not self.done:
            child.emit("done")

    def _note(self, line: str) -> None:
        try:
            msg = json.loads(line)
        except ValueError:
            return
        kind = msg.get("kind")
        if kind == "app-start" and "iteration" not in msg:
            self.open_call = msg
        elif kind == "app" and "iteration" not in msg:
            self.open_call = None
        elif kind == "done":
            self.done = True

    def go(self) -> None:
        if self._go_w >= 0:
            os.write(self._go_w, b"go")
            os.close(self._go_w)
            self._go_w = -1

    def end(self) -> None:
        """At the run's end: the application's sockets close as they always did, when
        the agent ends; nothing about it is reported."""
        self.stopping = True
        self.kill()

    def kill(self) -> bool:
        """SIGKILL, as `kill -9`; False if it had already ended."""
        try:
            os.kill(self.pid, signal.SIGKILL)
            return True
        except ProcessLookupError:
            return False


def destroy_request(s: tuple, seq: int) -> bytes:
    """SOCK_DESTROY for one IPv4 TCP socket (struct inet_diag_req_v2); the cookie
    INET_DIAG_NOCOOKIE makes the kernel find it by its addresses and ports."""
    laddr, lport, raddr, rport, _state = s
    body = struct.pack("=BBBxI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0xFFFFFFFF)
    body += struct.pack("!HH", lport, rport)
    body += socket.inet_aton(laddr) + bytes(12) + socket.inet_aton(raddr) + bytes(12)
    body += struct.pack("=III", 0, 0xFFFFFFFF, 0xFFFFFFFF)
    return struct.pack("=IHHII", 16 + len(body), SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body


def destroy_all() -> list[str]:
    """Destroy every TCP socket of this namespace (tcp_abort(): no FIN; an RST where
    the state calls for one). Returns what it could not destroy, with why."""
    failed = []
    with open_diag_socket() as nl:
        for i, s in enumerate(dump_tcp(nl), 1):
            nl.send(destroy_request(s, 0x7D000000 + i))
            reply = nl.recv(65536)
            kind = struct.unpack_from("=H", reply, 4)[0]
            code = struct.unpack_from("=i", reply, 16)[0] if kind == NLMSG_ERROR else 0
            if code < 0 and -code != errno.ENOENT:  # ENOENT: gone meanwhile, as wanted
                failed.append(f"{s[0]}:{s[1]}->{s[2]}:{s[3]} {s[4]}: {os.strerror(-code)}")
    return failed


def schedule(faults: list[dict], t0: float, app: AppProcess, host: str) -> None:
    """kill and reboot of this host, at their times since the apps started."""

    def act(fault: dict) -> None:
        margin = REBOOT_MARGIN if fault["action"] == "reboot" else 0.0
        time.sleep(max(0.0, t0 + fault["at"] + margin - time.monotonic()))
        mono = time.monotonic()
        what = "app killed (kill -9)" if app.kill() else "app had ended already"
        if fault["action"] == "reboot":
            _wait_dead(app.pid)  # its files are closed once it is a zombie
            try:
                failed = destroy_all()
            except OSError as e:
                failed = [f"inet_diag: {e.strerror or e}"]
            what = "app killed, sockets gone" + (f" but {'; '.join(failed)}" if failed else "")
            if failed:  # e.g. no CONFIG_INET_DIAG_DESTROY: the lab could not do the fault
                child.emit(
                    "lab-error", message=f"reboot of the {host}: could not destroy " + "; ".join(failed)
                )
        child.emit("fault", mono=mono, action=fault["action"], host=host, what=what, fault=_describe(fault))

    for fault in faults:
        threading.Thread(target=act, args=(fault,), daemon=True).start()


def _wait_dead(pid: int, limit: float = 2.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except (OSError, IndexError):
            return  # reaped already
        time.sleep(0.001)


def _describe(f: dict) -> str:
    from tcplab.core.faults import HostFault
    from tcplab.lab.fault_config import from_json

    return from_json(HostFault, f).describe()
