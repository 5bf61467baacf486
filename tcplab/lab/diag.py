"""TCP states by inet_diag polling, for what the tracepoint cannot see.

sock:inet_sock_set_state covers full sockets only: a listener's request sock (SYN_RECV)
and the timewait minisocket (TIME_WAIT, or its FIN_WAIT2 substate) never produce an
event. inet_diag dumps both, so each namespace is polled and the differences between
dumps become state changes. Polling also stands in for the tracepoint where tracefs is
missing. The dump runs in the network namespace of the process that opens the socket.

`DiagTracker` is pure (now is passed in); `DiagPoller` is the thread around it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from pyroute2 import DiagSocket

from tcplab.errors import LabError

Sock = tuple[str, int, str, int, str]  # laddr, lport, raddr, rport, state name

# Kernel TCP state numbers (include/net/tcp_states.h), named as the Record names them.
# inet_diag reports a request sock as SYN_RECV (3) and a timewait minisocket by its
# substate, TIME_WAIT (6) or FIN_WAIT2 (5); NEW_SYN_RECV (12) is listed for safety.
STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
          6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
          11: "CLOSING", 12: "SYN_RECV"}

# Every state bit but TCP_BOUND_INACTIVE (13): that pseudo-state asks for sockets that
# are only bound (before connect() or listen()); they are in no TCP state, would show as
# CLOSE, and would turn every bind() into noise. The SYN_RECV bit makes the kernel dump
# request socks too (it adds NEW_SYN_RECV itself), and TIME_WAIT/FIN_WAIT2 include
# timewait minisockets.
REQUEST_STATES = 0xFFFFFFFF & ~(1 << 13)


def dump_tcp(diag_socket: DiagSocket) -> list[Sock]:
    """All IPv4 TCP sockets of this network namespace, in every state."""
    msgs = diag_socket.get_sock_stats(family=socket.AF_INET, protocol=socket.IPPROTO_TCP,
                                      states=REQUEST_STATES)
    return [(m["idiag_src"], m["idiag_sport"], m["idiag_dst"], m["idiag_dport"],
             STATES.get(m["idiag_state"], str(m["idiag_state"]))) for m in msgs]


class DiagTracker:
    """Turns successive dumps into state changes. A socket is known by its 4-tuple, so a
    request sock and the child that replaces it, or a full socket and the timewait
    minisocket that replaces it, read as one socket changing state."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int, str, int], str] = {}

    def update(self, now: float, sockets: Iterable[Sock]) -> list[dict[str, Any]]:
        current = {(la, lp, ra, rp): state for la, lp, ra, rp, state in sockets}
        changes = [self._change(now, key, self._known.get(key, "CLOSE"), state)
                   for key, state in current.items() if self._known.get(key) != state]
        changes += [self._change(now, key, state, "CLOSE")
                    for key, state in self._known.items() if key not in current]
        self._known = current
        return changes

    def known(self) -> list[tuple[str, int, str, int]]:
        return list(self._known)

    @staticmethod
    def _change(now: float, key: tuple[str, int, str, int], old: str, new: str) -> dict:
        laddr, lport, raddr, rport = key
        return {"mono": now, "old": old, "new": new, "laddr": laddr, "lport": lport,
                "raddr": raddr, "rport": rport}


class DiagPoller:
    """Polls inet_diag every `interval` seconds in a thread and passes each change to
    `callback`. "mono" is time.monotonic() when the dump returned: the change happened
    at most one interval plus one dump earlier."""

    def __init__(self, callback: Callable[[dict[str, Any]], None], interval: float = 0.005):
        self.callback, self.interval = callback, interval
        self.error: BaseException | None = None
        self._tracker = DiagTracker()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._socket: DiagSocket | None = None

    def start(self) -> None:
        # Opened here, not in the thread, so a failure is raised to the caller; the
        # socket belongs to the namespace of the process that opens it.
        try:
            self._socket = DiagSocket()
            self._socket.bind()
            dump_tcp(self._socket)
        except Exception as e:
            if self._socket is not None:
                self._socket.close()
                self._socket = None
            raise LabError(f"inet_diag is not usable: {e}",
                           "needs CONFIG_INET_DIAG and CONFIG_INET_TCP_DIAG") from e
        self._thread = threading.Thread(target=self._run, daemon=True, name="diag-poller")
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                final = self._stopping.is_set()  # one last dump after stop() was asked
                sockets = dump_tcp(self._socket)
                for change in self._tracker.update(time.monotonic(), sockets):
                    self.callback(change)
                if final:
                    return
                self._stopping.wait(self.interval)
        except BaseException as e:  # reported by stop(); the thread must not die silently
            self.error = e

    def stop(self) -> None:
        """Stop polling (after one last dump) and close the socket. Idempotent. Raises
        LabError if the polling thread failed."""
        if self._thread is None:
            return
        self._stopping.set()
        self._thread.join()
        self._thread = None
        self._socket.close()
        if self.error is not None:
            raise LabError(f"inet_diag polling failed: {self.error}")

    def known(self) -> list[tuple[str, int, str, int]]:
        """The 4-tuples of the sockets the last dump showed."""
        return list(self._tracker.known())

    def __enter__(self) -> DiagPoller:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
