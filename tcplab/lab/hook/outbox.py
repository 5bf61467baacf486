"""Lines to a pipe without the hook ever waiting for its reader.

The runner reads the hook's messages on a thread that shares two cores with the
traffic; when it falls behind, the pipe fills, and a hook writing to it would stop
giving verdicts until the runner caught up: every queued segment would wait for the
runner. The hook's end is non-blocking instead, and what the pipe cannot take yet
waits here until select() says it can (tcplab/lab/hook/__main__.py).
"""

from __future__ import annotations

import os


class Outbox:
    def __init__(self, fd: int, blocking: bool = False):
        self.fd = fd
        self.buf = bytearray()
        os.set_blocking(fd, blocking)

    def write_line(self, line: str) -> None:
        self.buf += line.encode() + b"\n"
        self.send()

    def send(self) -> None:
        while self.buf:
            try:
                n = os.write(self.fd, self.buf)
            except BlockingIOError:
                return
            del self.buf[:n]

    def pending(self) -> bool:
        return bool(self.buf)

    def close(self) -> None:
        """Everything still waiting, waiting for the reader if need be."""
        os.set_blocking(self.fd, True)
        self.send()
