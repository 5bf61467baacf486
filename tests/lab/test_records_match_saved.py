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
from labhelpers import ROOT, SCENARIOS, result

from tcplab.format.load import load_scenario

pytestmark = pytest.mark.root

EVIDENCE = ROOT / "evidence" / platform.release()

# scenario -> the (sender, name) whose count the kernel's own race decides
RACY: dict[str, set[tuple[str, str]]] = {
    # the server's SYN-ACK timer (1 s after its first SYN-ACK) and the client's
    # retransmitted SYN (1 s after its SYN) reach the request within a millisecond:
    # one SYN-ACK or two
    "delay-synack": {("server", "syn-ack")},
    # the server's delayed ACK of the client's FIN and its close() (the scenario's own
    # summary): a pure ACK, dropped by the scenario's fault, or none
    "three-way-close": {("server", "fin-ack")},
}


def signature(res: dict, racy: set) -> list[tuple]:
    return sorted((s["conn"], s["from"], s["name"], s["nth"], s["fate"],
                   s.get("injected", False)) for s in res["events"]
                  if s["kind"] == "segment" and (s["from"], s["name"]) not in racy)


def _saved(name: str) -> dict | None:
    path = EVIDENCE / f"{name}.json.gz"
    return json.loads(gzip.decompress(path.read_bytes())) if path.exists() else None


def _names() -> list[str]:
    return [load_scenario(path).name for path in SCENARIOS]


@pytest.mark.parametrize("name", _names())
def test_record_matches_the_saved_one(catalogue, name):
    saved = _saved(name)
    if saved is None:
        pytest.skip(f"no saved record of {name} for {platform.release()}")
    res = result(catalogue, name)
    racy = RACY.get(name, set())
    assert signature(res, racy) == signature(saved, racy)
