"""The hook's watch on the kernel (tcplab/lab/hook/watch.py): with a fault on FINs
only, the SYNs pass the router without waiting for the hook, and the hook still
numbers the connections its FINs belong to as the observer, which sees every segment,
does. On one reused 4-tuple only the SYNs tell the connections apart: a hook blind
to them would take the second connection's FIN for the first one's FIN #2 and let it
pass."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from labhelpers import SLOW_MACHINE, run_cli, timeline

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, NFQUEUE)"),
    pytest.mark.skipif(shutil.which("iptables") is None, reason="needs iptables"),
]

SCENARIO = """\
scenario: watch-one-four-tuple
summary: >-
  Three connections on one 4-tuple (the client has a single local port; the server
  closes first, so its TIME_WAIT takes the next SYN), each server FIN #1 held 30 ms.
hosts:
  client:
    sysctls: {net.ipv4.ip_local_port_range: "40000 40000"}
apps:
  server:
    - listen: 8080
    - repeat: {times: 3, steps: [accept, recv, close]}
  client:
    - repeat: {times: 3, steps: [connect: "server:8080", send: 10, sleep: 80ms, close, sleep: 100ms]}
faults:
  - delay: fin
    from: server
    nth: [1]
    by: 30ms
expect:
  client:
    connect: ok
timeout: 10s
"""


def test_syns_pass_unheld_and_the_held_fins_belong_to_their_connections(tmp_path):
    path = tmp_path / "watch-one-four-tuple.yaml"
    path.write_text(SCENARIO)
    out = tmp_path / "r.json"
    proc = run_cli(["run", "--json", str(out), str(path)], 60)
    assert out.exists(), proc.stderr
    res = json.loads(out.read_text())
    assert not res["errors"], res["errors"]
    segs = [e for e in res["events"] if e["kind"] == "segment"]
    syns = [s for s in segs if s["name"] == "syn"]
    fins = [s for s in segs if s["name"] == "fin"]
    assert len(syns) == 3 and len(fins) == 3, timeline(res)
    # not queued: recorded by the observer as they passed (t_out = t)
    assert all(s["t_out"] == s["t"] for s in syns), syns
    assert len({(s["sport"], s["dport"]) for s in syns}) == 1  # one 4-tuple, three connections
    assert [s["conn"] for s in syns] == [1, 2, 3]
    # queued: each the FIN #1 of its own connection, so each held
    assert [(f["from"], f["conn"], f["nth"], f["fate"]) for f in fins] == [
        ("server", n, 1, "delayed") for n in (1, 2, 3)
    ], timeline(res)
    for fin in fins:
        assert 0.03 <= fin["t_out"] - fin["t"] <= 0.03 + 0.02 * SLOW_MACHINE, fin
    assert res["lab"]["hook"]["watch_drops"] == 0
