"""Starting lab children (hook, app agents) and hearing from them.

Every child speaks JSON lines on stdout; a reader thread per child puts
(role, message) on one queue the runner drains. A child that dies says so on the
same queue (kind 'exited'), so the runner notices a dead hook at once.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time


class Child:
    def __init__(self, role: str, module: str, config: dict, inbox: queue.Queue):
        self.role = role
        self.inbox = inbox
        self.stderr_lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            # Own process group: a Ctrl-C at the terminal reaches the runner only, and
            # the runner stops children in order (hook last, so nothing is unhooked early).
            start_new_session=True,
        )
        self.send(json.dumps(config))
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            try:
                self.inbox.put((self.role, json.loads(line)))
            except json.JSONDecodeError:
                self.stderr_lines.append(line.rstrip())
        code = self.proc.wait()
        self.inbox.put((self.role, {"kind": "exited", "code": code, "mono": time.monotonic()}))

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr_lines.append(line.rstrip())

    def send(self, line: str) -> None:
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def why_dead(self) -> str:
        tail = " | ".join(self.stderr_lines[-3:])
        return f"{self.role} exited with code {self.proc.returncode}" + (f": {tail}" if tail else "")

    def stop(self, grace: float = 2.0) -> None:
        """Ask politely (`stop` on stdin), then SIGTERM, then SIGKILL the group."""
        if not self.alive:
            return
        self.send("stop")
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    return
            try:
                self.proc.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue
