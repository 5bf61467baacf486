"""Ctrl-C and SIGTERM, from the first line of the process to its exit.

A run stops on a flag (runner.CANCEL) at its next loop turn and tears down in its own
`finally`. Before that flag's handler exists, a signal would meet Python's default:
SIGINT raises KeyboardInterrupt wherever the interpreter happens to be, and while
modules are being imported that can be inside an import-lock callback, where Python
prints "Exception ignored" and drops it: the run then goes on as if never
interrupted. So the process holds both signals (blocked: the kernel keeps them
pending) from its first line, `hold()`, until the handler is installed, `catch()`;
a signal that came meanwhile is delivered then, and only sets the flag.
Commands that run no lab give Python its defaults back instead (`release()`).
"""

from __future__ import annotations

import signal

SIGNALS = {signal.SIGINT, signal.SIGTERM}
EXIT_INTERRUPTED = 130


def hold() -> None:
    """Keep SIGINT and SIGTERM pending until catch() or release()."""
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)


def catch() -> None:
    """Install the flag handler, then let a held signal through to it."""
    from tcplab.runner import CANCEL

    def handler(signum, _frame):
        if CANCEL.is_set():  # a second Ctrl-C: the user really means it
            raise KeyboardInterrupt
        CANCEL.set()

    for sig in SIGNALS:
        signal.signal(sig, handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)  # after the handler: none is lost


def release() -> None:
    """Python's defaults from here on: a held Ctrl-C is a KeyboardInterrupt now."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
