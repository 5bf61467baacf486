"""Failures after the connection is established (scenarios/failure: server-host-crash,
server-host-crash-fast, network-down, client-crash-keepalive, client-crash-no-keepalive),
run for real through the session's catalogue (conftest.py). Beyond each verdict, these
tests read the result JSON for what the kernel did, with the tolerances stated here: R
is the RTO after a LAN handshake (0.2 s + the RTT in whole jiffies: 0.204-0.212 s at
HZ=250); a timer of d seconds fires late by up to its timer-wheel level (8 ms below
0.25 s, 36 ms to 2 s, 260 ms to 16 s, 2.05 s to 130 s); the router's hook adds up to FWD
on a loaded machine.
"""

from __future__ import annotations

import pytest
from labhelpers import LATENCY, calls, failure_report, passes_here, result, segments, states

pytestmark = pytest.mark.root

ESTABLISHED = [
    "server-host-crash-fast",
    "server-host-crash",
    "network-down",
    "client-crash-keepalive",
    "client-crash-no-keepalive",
]
R_LO, R_HI = 0.204, 0.2 + 0.012 * LATENCY  # 0.2 s + the RTT, this host's speed
FWD = 0.02 * LATENCY  # the hook's forwarding and scheduling, both ends of a gap


def late(d: float) -> float:
    return 0.008 if d < 0.252 else 0.036 if d < 2.016 else 0.26 if d < 16.128 else 2.052


def limit(retries2: int) -> float:
    """tcp_model_timeout(retries2, TCP_RTO_MIN) with rto_max 120 s (ip-sysctl.rst)."""
    return (2 ** (retries2 + 1) - 1) * 0.2 if retries2 <= 9 else 1023 * 0.2 + (retries2 - 9) * 120


@pytest.mark.parametrize("name", ESTABLISHED)
def test_passes_on_this_kernel(catalogue, name):
    res = result(catalogue, name)
    assert passes_here(res), failure_report(res)
    assert any(c["name"].startswith("model: ") for c in res["checks"]), "model: linux"


def data_into_silence(res, after=1.0):
    data = [s for s in segments(res, "data", "client") if s["t"] >= after]
    assert data and all(s["fate"] == "dropped" for s in data)
    assert len({s["seq"] for s in data}) == 1  # one segment, sent again and again
    return data


def gaps(items):
    return [b["t"] - a["t"] for a, b in zip(items, items[1:])]


def closed(res, host):
    return [e for e in states(res, host) if e["from"] == "ESTABLISHED" and e["to"] == "CLOSE"]


def check_gives_up_by_time(res, data, retries2):
    """The abort comes at the first expiry once `limit` has passed since the first RTO
    retransmission (data #3, after the tail loss probe): not after a count."""
    (gone,) = closed(res, "client")
    first_rto = data[2]["t"]
    assert data[-1]["t"] - first_rto < limit(retries2)
    assert gone["t"] - first_rto >= limit(retries2)
    (recv,) = calls(res, "client", "recv")
    assert abs(recv["t_end"] - gone["t"]) < 0.1  # the app agent wakes up; loaded: ~40 ms
    # tcp_write_err() closes without an RST; the server never hears of it.
    assert segments(res, "rst") == []
    assert closed(res, "server") == []
    return recv


def test_crash_fast_tail_loss_probe_then_doubling_rtos(catalogue):
    res = result(catalogue, "server-host-crash-fast")
    data = data_into_silence(res)
    g = gaps(data)
    assert len(data) == 7  # the data, a TLP and 5 RTOs within 12.6 s
    assert R_LO - 0.001 <= g[0] <= R_HI + late(R_HI) + FWD  # TLP: min(2 srtt + 200 ms, RTO)
    assert R_LO - 0.001 <= g[1] <= R_HI + late(R_HI) + FWD  # RTO re-armed at the probe
    for k in range(2, len(g)):  # each RTO doubles icsk_rto, not the late gap before it
        lo, hi = R_LO * 2 ** (k - 1), R_HI * 2 ** (k - 1)
        assert lo - 0.01 <= g[k] <= hi + late(hi) + FWD
    assert check_gives_up_by_time(res, data, 5)["result"] == "ETIMEDOUT"


def test_crash_default_retries2_is_a_time_not_fifteen_doublings(catalogue):
    res = result(catalogue, "server-host-crash")
    data = data_into_silence(res)
    g = gaps(data)
    assert len(data) == 17  # a TLP and 15 RTOs: the last 5 at TCP_RTO_MAX
    assert all(120 <= x <= 120 + late(120) + FWD for x in g[-5:])
    recv = check_gives_up_by_time(res, data, 15)
    assert recv["result"] == "ETIMEDOUT"
    # 924.6 s is a lower bound: ip-sysctl.rst's "hypothetical timeout".
    assert 924.6 <= recv["t_end"] - data[2]["t"] < 924.6 + 120


def test_network_down_icmp_is_a_soft_error_that_undoes_backoff(catalogue):
    res = result(catalogue, "network-down")
    data = data_into_silence(res)
    assert all("link-down" in s["fault"] for s in data)
    g = gaps(data)
    # RFC 6069: an ICMP for an RTO retransmission halves the next wait back, so at least
    # one RTO gap does not double the one before (into a crashed host every one does).
    assert any(b < 1.5 * a for a, b in zip(g[2:], g[3:]))
    recv = check_gives_up_by_time(res, data, 5)
    assert recv["result"] == "ENETUNREACH"  # sk_err_soft, not ETIMEDOUT


def test_network_down_fits_more_retransmissions_than_a_crash(catalogue):
    down = data_into_silence(result(catalogue, "network-down"))
    crash = data_into_silence(result(catalogue, "server-host-crash-fast"))
    assert len(down) > len(crash)


def test_keepalive_probes_then_rst_and_etimedout(catalogue):
    res = result(catalogue, "client-crash-keepalive")
    (synack,) = segments(res, "syn-ack")
    (ack,) = segments(res, "ack")
    probes = segments(res, "keepalive", "server")
    assert len(probes) == 3
    # tcp_xmit_probe_skb(): a bare ACK one below snd_nxt; nothing was sent, so the ISN.
    assert all(
        p["flags"] == "A" and p["len"] == 0 and p["seq"] == synack["seq"] and p["fate"] == "dropped"
        for p in probes
    )
    idle = probes[0]["t"] - ack["t_out"]
    assert 2 - 0.01 <= idle <= 2 + late(2) + FWD
    assert all(1 - 0.01 <= x <= 1 + late(1) + FWD for x in gaps(probes))
    (rst,) = segments(res, "rst", "server")
    assert "R" in rst["flags"] and 1 - 0.01 <= rst["t"] - probes[-1]["t"] <= 1 + late(1) + FWD
    (gone,) = closed(res, "server")
    assert abs(gone["t"] - rst["t"]) < 0.01 * LATENCY
    (recv,) = calls(res, "server", "recv")
    assert recv["result"] == "ETIMEDOUT"
    # The crashed client's socket never learns anything: still ESTABLISHED at the end.
    assert closed(res, "client") == []


def test_without_keepalive_the_server_never_finds_out(catalogue):
    res = result(catalogue, "client-crash-no-keepalive")
    assert [s for s in segments(res) if s["t"] >= 1.0] == []  # nothing crossed the router
    assert closed(res, "server") == [] and closed(res, "client") == []
    (recv,) = calls(res, "server", "recv")
    assert recv["result"] is None  # still blocked when the run ended, 20 s later
