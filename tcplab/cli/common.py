"""What the commands share: the console, loading scenario files, running several
things side by side, and one exit code for several runs."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor

from rich.console import Console

from tcplab.errors import ScenarioError


def make_console(no_color: bool, stderr: bool = False) -> Console:
    # --no-color means plain text: no colours, no bold, no spinner, no cursor moves.
    plain = {"color_system": None, "force_terminal": False} if no_color else {}
    console = Console(stderr=stderr, highlight=False, soft_wrap=False, **plain)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 110  # a pipe or a CI log: room for the whole ladder
    return console


def load_all(paths) -> list:
    """The scenarios of these files and folders, or of the shipped ones by name (run
    syn-lost-fast); no paths: the whole shipped catalogue."""
    from tcplab.catalogue import resolve_all
    from tcplab.format.load import discover, load_scenario

    files = discover(resolve_all(paths))
    if not files:
        raise ScenarioError(" ".join(map(str, paths)), None, "", "no scenario files found")
    return [load_scenario(f) for f in files]


def severity(code: int) -> int:
    """The rank of a run's exit code, for max() over several runs: pass < fail < could
    not judge < anything else."""
    return {0: 0, 1: 1, 3: 2}.get(code, 3)


def side_by_side(fn, items: list, jobs: int, length) -> list:
    """fn over items, `jobs` at a time, results in the items' order. The longest
    (by `length`, the scenario's timeout) start first: a catalogue then takes about as
    long as its longest scenario, instead of that one starting last behind the rest."""
    with ThreadPoolExecutor(max_workers=jobs, initializer=_signals_to_the_main_thread) as pool:
        futures = {
            i: pool.submit(fn, items[i]) for i in sorted(range(len(items)), key=lambda i: -length(items[i]))
        }
        return [_patiently(futures[i]) for i in range(len(items))]


def _signals_to_the_main_thread() -> None:
    """A run's thread (and every thread it starts) blocks SIGINT and SIGTERM, so the
    kernel delivers them to the main thread, whose wait they interrupt. Python runs a
    signal's handler (which sets runner.CANCEL) only in the main thread, and only when
    it next executes bytecode: a signal taken by a run's thread while the main thread
    slept in an untimed wait was handled only once every run was over. A `--jobs 2`
    run interrupted 0.3 s in ran both scenarios to PASS and then exited 130, twice in
    CI this session (test_a_signal_during_start_up_is_never_lost); this is the one way
    to that found, not a reproduction of it."""
    from tcplab.cli import signals

    signal.pthread_sigmask(signal.SIG_BLOCK, signals.SIGNALS)


def _patiently(future):
    """The future's result, waited for in short slices: the main thread runs a pending
    signal's handler within one slice, however the signal reached the process."""
    while True:
        try:
            return future.result(timeout=0.1)
        except TimeoutError:
            continue
