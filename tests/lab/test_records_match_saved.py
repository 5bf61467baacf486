"""The record against saved results (issue 15): since the hook queues only what a
fault can touch and an observer records the rest, every catalogue scenario must still
record the same segments as when the hook queued everything. The saved records are
the claims report's raw results (evidence/<kernel release>/, made with the old hook):
per connection, the same segments with the same names, counts and fates.

Where the kernel itself races (two timers due within a millisecond of each other),
the saved run is one outcome of several; those scenarios are listed in RACY with the
race, and compared on the segments outside it.
"""

from __future__ import annotations

import gzip
import json
import platform

import pytest
from labhelpers import ROOT, SCENARIOS, SLOW_MACHINE, result, timeline

from tcplab.format.load import load_scenario

pytestmark = pytest.mark.root


def _evidence_dir():
    """The saved records of this kernel: its release's directory, or else one of the
    same upstream version with another build tag (this machine's 6.18.44 was
    `-fc-v1147` when the evidence was made, `-fc-v1252` later: the same kernel source,
    and without this every comparison here was skipped)."""
    exact = ROOT / "evidence" / platform.release()
    if exact.exists():
        return exact
    upstream = platform.release().split("-")[0]
    same = sorted(p for p in (ROOT / "evidence").glob(f"{upstream}-*") if p.is_dir())
    return same[0] if same else exact


EVIDENCE = _evidence_dir()

# scenario -> the (sender, name) whose count the kernel's own race decides
RACY: dict[str, set[tuple[str, str]]] = {
    # the server's SYN-ACK timer (1 s after its first SYN-ACK) and the client's
    # retransmitted SYN (1 s after its SYN) reach the request within a millisecond:
    # one SYN-ACK or two
    "delay-synack": {("server", "syn-ack")},
    # the server's delayed ACK of the client's FIN and its close() (the scenario's own
    # summary): a pure ACK, dropped by the scenario's fault, or none
    "three-way-close": {("server", "fin-ack")},
    # the same race on each of its connections
    "time-wait-port-exhaustion": {("server", "fin-ack")},
    # which 9 of the 17 half-open requests reqsk_timer_handler() drops at 7 s and which
    # 8 get a third SYN-ACK is the order their timers expire in: timers in one timer
    # wheel bucket (256 ms wide at HZ=250 for a 4 s timeout, kernel/time/timer.c
    # calc_wheel_index) run in the bucket's list order, and a loaded machine arms them
    # across a bucket edge (CI, 3c4aadc: connection 1 dropped, always kept before).
    # How many get which count is compared in COUNTS_ONLY: the kernel's, or the one the
    # model's two-CPU race gives (core/model/flood.py _Sim._stale_read), which the
    # run's own check then names.
    "syn-flood-syncookies": {("server", "syn-ack")},
    # tcp_fin() puts the client in pingpong mode, so the ACK of the server's FIN waits
    # for the delayed-ACK timer (TCP_ATO_MIN, 40 ms) and rides on the client's own FIN
    # when its recv() -> close() is quicker; on the loaded CI of 9316f63 it was not,
    # and the ACK went alone (a client `fin-ack`). The scenario's checks hold either way.
    "server-process-killed": {("client", "fin-ack")},
    # the same on the server: the client's FIN reached it as its accept() returned, and
    # its ACK went alone 0.4 ms later (CI of 83a560c) where the saved run's rode on the
    # server's FIN
    "no-time-wait": {("server", "fin-ack")},
}
# scenario -> the (sender, name) of RACY whose per-connection counts, taken together
# regardless of which connection has which, are still the kernel's and compared
COUNTS_ONLY: dict[str, tuple[str, str]] = {"syn-flood-syncookies": ("server", "syn-ack")}
# Both sides close at the same moment: whose FIN reaches the router first (and is
# named `fin`, the other `peer-fin`) is the race itself; compared without the sender.
EITHER_SIDE = {"simultaneous-close"}


def signature(res: dict, racy: set, sides: bool = True) -> list[tuple]:
    return sorted(
        (s["conn"], s["from"] if sides else "", s["name"], s["nth"], s["fate"], s.get("injected", False))
        for s in res["events"]
        if s["kind"] == "segment" and (s["from"], s["name"]) not in racy
    )


def counts(res: dict, key: tuple[str, str]) -> list[int]:
    """How many segments `key` each connection had, sorted: who had them is a race."""
    per: dict[int, int] = {}
    for s in res["events"]:
        if s["kind"] == "segment" and (s["from"], s["name"]) == key:
            per[s["conn"]] = per.get(s["conn"], 0) + 1
    return sorted(per.values())


def _saved(name: str) -> dict | None:
    path = EVIDENCE / f"{name}.json.gz"
    return json.loads(gzip.decompress(path.read_bytes())) if path.exists() else None


def _names() -> list[str]:
    return [load_scenario(path).name for path in SCENARIOS]


def _random(name: str) -> bool:
    """Faults with dice (`probability`, `jitter`): a segment's fate is a function of
    which segment it is, but which segments the kernel sends after a loss (SACK
    recovery, RACK, the congestion window) depends on timing, so no two runs record
    the same stream (data-loss-30: the 81st data segment dropped in one run, never
    sent in another)."""
    sc = next(s for s in map(load_scenario, SCENARIOS) if s.name == name)
    return any(f.random for f in sc.faults)


@pytest.mark.parametrize("name", _names())
def test_record_matches_the_saved_one(catalogue, name):
    saved = _saved(name)
    if saved is None:
        pytest.skip(f"no saved record of {name} for {platform.release()}")
    if _random(name):
        pytest.skip(f"{name} rolls dice: its segment stream differs run to run")
    if SLOW_MACHINE > 1:
        # A kernel VM's saved records are one run under TCG, whose slowness opens races
        # this host's runs do not have (6.1, session 10: one more data segment and its
        # ACK in mss, one fewer FIN in fin-lost-fast, the client's data recorded behind
        # a link change the hook took 1.7 s over): no reference for the hook's effect.
        pytest.skip("in a kernel VM: its saved records are one TCG run, not a reference")
    res = result(catalogue, name)
    racy, sides = RACY.get(name, set()), name not in EITHER_SIDE
    assert signature(res, racy, sides) == signature(saved, racy, sides), timeline(res)
    if name in COUNTS_ONLY:
        got, want = counts(res, COUNTS_ONLY[name]), counts(saved, COUNTS_ONLY[name])
        if got != want:
            per = next(c for c in res["checks"] if c["name"] == "model: flood SYN-ACKs per request")
            assert per["passed"] and "race: request timers on two CPUs" in per["evidence"], (
                got,
                want,
                per,
            )
