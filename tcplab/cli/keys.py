"""The presenter's keyboard for `--step`: the terminal in cbreak mode (each key as it is
pressed, no echo; Ctrl-C still a signal) while a run is stepped, read by a thread onto
a queue the runner drains (tcplab/stepping.py). The terminal's mode is restored on
every way out: the run's end, an error, Ctrl-C (which only sets the runner's flag, so
the run tears down and this block's `finally` follows), a second Ctrl-C (a
KeyboardInterrupt through the same `finally`)."""

from __future__ import annotations

import os
import queue
import select
import sys
import termios
import threading
import tty
from contextlib import contextmanager

import click

POLL = 0.1  # how often the reader looks whether it should stop


def require_terminal(stream=None) -> None:
    """--step reads single keys from a terminal: refuse it (usage, exit 2) without one,
    before anything is set up."""
    stream = stream or sys.stdin
    try:
        ok = stream.isatty()
    except (AttributeError, ValueError):
        ok = False
    if not ok:
        raise click.UsageError(
            "--step needs a terminal on stdin to read the presenter's "
            "keys (d/Enter deliver, x drop, h hold); stdin is not one"
        )


@contextmanager
def presenter_keys(stream=None):
    """Yields a queue of the keys pressed (one character each) while the block runs."""
    fd = (stream or sys.stdin).fileno()
    saved = termios.tcgetattr(fd)
    keys: queue.Queue = queue.Queue()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], POLL)
            if not ready:
                continue
            data = os.read(fd, 64)
            if not data:
                return
            for ch in data.decode(errors="ignore"):
                keys.put(ch)

    reader = threading.Thread(target=read, name="presenter-keys", daemon=True)
    try:
        tty.setcbreak(fd, termios.TCSANOW)
        reader.start()
        yield keys
    finally:
        stop.set()
        if reader.is_alive():
            reader.join(2 * POLL)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
