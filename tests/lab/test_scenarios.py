"""Every handshake (and teardown) scenario, run for real (root, namespaces, NFQUEUE, tracefs), side by
side through the CLI exactly as a user runs it. Beyond each scenario's own verdict,
these tests read the result JSON for what the kernel actually did, with tolerances
stated here, and check that the run left nothing behind.
"""

from __future__ import annotations

import pytest
from labhelpers import (
    ALL,
    SLOW_MACHINE,
    calls,
    failure_report,
    lab_processes,
    passes_here,
    result,
    segments,
    states,
    strip_counters,
)
from tcplab.core.model.kernel import Kernel

pytestmark = pytest.mark.root


def _names():
    from tcplab.format.load import load_scenario

    return [load_scenario(path).name for path in ALL]


@pytest.mark.parametrize("name", _names())
def test_scenario_passes_on_this_kernel(catalogue, name):
    """Every scenario file, each claim's evidence: the verdict of its own checks (and
    the model's) on this kernel."""
    res = result(catalogue, name)
    assert passes_here(res), failure_report(res)
    # a pass needs checks; an honest "not judged" error in a VM may have none (the
    # observer's loss is found before any check runs: 6.1 guest, session 13)
    assert res["checks"] or res["verdict"] != "pass", "a pass needs checks"


def test_cli_exit_code_and_summary(catalogue):
    proc = catalogue["proc"]
    # 0: every run passed; in a kernel VM also 3 (could not judge), where every run
    # that did not pass said why (passes_here): exit 3 outranks 1, so that is checked
    allowed = {0} if SLOW_MACHINE == 1 else {0, 3}
    assert proc.returncode in allowed, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert all(map(passes_here, catalogue["results"].values())), proc.stdout[-3000:]
    assert "tcplab summary" in proc.stdout
    assert "\x1b[" not in proc.stdout, "--no-color output must hold no control codes"


def test_normal_handshake_numbers(catalogue):
    """H1 in absolute sequence numbers: SYN-ACK ack = x+1, ACK ack = y+1."""
    res = result(catalogue, "handshake-normal")
    (syn,), (synack,), (ack,) = (segments(res, n) for n in ("syn", "syn-ack", "ack"))
    assert synack["ack"] == (syn["seq"] + 1) % 2**32
    assert ack["ack"] == (synack["seq"] + 1) % 2**32 and ack["seq"] == synack["ack"]
    assert [s["flags"] for s in (syn, synack, ack)] == ["S", "SA", "A"]
    assert all(s["fate"] == "delivered" for s in (syn, synack, ack))


def test_syn_lost_retransmits_same_sequence_number(catalogue):
    """H2: the same ISN every time; the tracepoint saw the kernel's own retransmits."""
    res = result(catalogue, "syn-lost")
    syns = segments(res, "syn", "client")
    assert len(syns) == 6 and len({s["seq"] for s in syns}) == 1
    assert [s["retransmission"] for s in syns] == [False] + [True] * 5
    assert {s["fate"] for s in syns} == {"dropped"}
    assert res["sysctls"]["client"]["net.ipv4.tcp_syn_linear_timeouts"] == "0"
    if "no tracepoints" not in " ".join(res["notes"]):
        rtx = [
            e
            for e in res["events"]
            if e["kind"] == "kernel" and e["event"] == "tcp_retransmit_skb" and e["host"] == "client"
        ]
        assert len(rtx) == 5


def test_modern_defaults_give_up_near_131s(catalogue):
    """LINUX-TCP.md row 1: 6 retries + 4 linear ones, a time-based abort at 131 s.
    The timer wheel (HZ=250) fires 16-131 s timers up to 2.048 s late, so allow
    131 s to 131 + 2 * 2.048 + 1 s."""
    res = result(catalogue, "syn-lost-modern")
    assert res["sysctls"]["client"]["net.ipv4.tcp_syn_retries"] == "6"
    assert res["sysctls"]["client"]["net.ipv4.tcp_syn_linear_timeouts"] == "4"
    (connect,) = calls(res, "client", "connect")
    took = connect["t_end"] - connect["t"]
    assert connect["result"] == "ETIMEDOUT" and 131.0 <= took <= 136.1, took
    assert len(segments(res, "syn", "client")) == 11


def test_ack_lost_request_dies_silently_at_63s(catalogue):
    """H5/H6: SYN_RECV is seen by inet_diag only, and the request vanishes 63 s
    after the first SYN-ACK without an RST. Each of the six request timers (1 ... 32 s)
    is re-armed when the one before fires, so the timer wheel's lateness adds up:
    Kernel.slack() of each (2.9 s at HZ=250), plus 0.1 s for a poll on a loaded machine
    (a 65.63 s vanish was seen with 50 runs side by side)."""
    from tcplab.lab.preflight import kernel_hz

    res = result(catalogue, "ack-lost")
    server = states(res, "server")
    recv = [e for e in server if e["to"] == "SYN_RECV"]
    assert recv and recv[0]["source"] in ("inet_diag", "tracepoint")
    gone = [e for e in server if e["from"] == "SYN_RECV" and e["to"] == "CLOSE"]
    first = segments(res, "syn-ack", "server")[0]["t"]
    kernel = Kernel.from_release(res["kernel"], kernel_hz() or 250)
    late = sum(kernel.slack(t) for t in (1, 2, 4, 8, 16, 32)) + 0.1
    assert gone and 63.0 <= gone[0]["t"] - first <= 63.0 + late, (gone, first, late)
    assert not segments(res, "rst")
    # The client's ACKs answer the SYN-ACKs: each follows one (both times are the
    # router kernel's receive stamps) within 100 ms, however loaded the machine.
    synacks = [s["t"] for s in segments(res, "syn-ack", "server")]
    for ack in segments(res, "ack", "client"):
        assert any(0 <= ack["t"] - t <= 0.1 for t in synacks), ack


def test_ack_lost_then_data_server_established_on_data(catalogue):
    """H7: the server's child socket is created when the data segment arrives."""
    res = result(catalogue, "ack-lost-then-data")
    (data,) = segments(res, "data", "client")
    est = [e for e in states(res, "server") if e["to"] == "ESTABLISHED"]
    assert est and 0 <= est[0]["t"] - data["t"] <= 0.02


def test_no_listener_rst(catalogue):
    res = result(catalogue, "no-listener")
    (rst,) = segments(res, "rst", "server")
    assert rst["flags"] == "RA"
    (connect,) = calls(res, "client", "connect")
    assert connect["result"] == "ECONNREFUSED" and connect["t_end"] - connect["t"] < 0.05


def test_delay_synack_connect_takes_the_delay(catalogue):
    res = result(catalogue, "delay-synack")
    first = segments(res, "syn-ack", "server")[0]
    assert first["fate"] == "delayed" and abs(first["t_out"] - first["t"] - 1.5) < 0.02
    (connect,) = calls(res, "client", "connect")
    assert abs(connect["t_end"] - connect["t"] - 1.5) < 0.05


def test_lab_hosts_have_their_own_tcp_hash(catalogue):
    """tcplab.lab.mkns gives each namespace a small TCP hash (a negative value would
    mean it shares the root namespace's)."""
    res = result(catalogue, "handshake-normal")
    for host in ("client", "server"):
        assert 0 < int(res["sysctls"][host]["net.ipv4.tcp_ehash_entries"]) <= 1024


def test_teardown_each_fin_takes_one_sequence_number(catalogue):
    """T1: the FIN's ACK acknowledges fin.seq + 1, and the last ACK peer_fin.seq + 1."""
    res = result(catalogue, "teardown-normal")
    (fin,), (fin_ack,) = segments(res, "fin", "client"), segments(res, "fin-ack", "server")
    (peer_fin,), (last,) = segments(res, "peer-fin", "server"), segments(res, "last-ack", "client")
    assert fin_ack["ack"] == (fin["seq"] + 1) % 2**32
    assert last["ack"] == (peer_fin["seq"] + 1) % 2**32 and last["seq"] == fin_ack["ack"]
    tw = [e for e in states(res, "client") if e["to"] == "TIME_WAIT"]
    assert tw and tw[0]["source"] == "inet_diag"  # the tracepoint never shows TIME_WAIT


def test_json_contract(catalogue):
    res = result(catalogue, "syn-lost-fast")
    assert {"scenario", "verdict", "kernel", "sysctls", "checks", "events"} <= res.keys()
    for c in res["checks"]:
        assert {"name", "passed", "expected", "actual", "tolerance"} <= c.keys()
    kinds = {e["kind"] for e in res["events"]}
    assert {"segment", "state", "app"} <= kinds
    for e in res["events"]:
        assert isinstance(e["t"], float) or isinstance(e["t"], int)
    seg = segments(res)[0]
    assert {"name", "nth", "from", "flags", "seq", "ack", "len", "fate", "retransmission"} <= seg.keys()
    st = states(res, "client")[0]
    assert {"host", "from", "to", "source"} <= st.keys()


def test_nothing_left_behind(catalogue):
    before, after = catalogue["before"], catalogue["after"]
    assert strip_counters(after["iptables"]) == strip_counters(before["iptables"])
    assert after["nft"] == before["nft"]
    assert after["links"] == before["links"]
    assert [n for n in after["netns"].split() if n.startswith("tl-")] == [
        n for n in before["netns"].split() if n.startswith("tl-")
    ]
    for res in catalogue["results"].values():  # this catalogue's own instances; other
        # runs on the machine (another checkout, a chroot) may have theirs
        assert res["lab"]["tracefs_instance"] not in after["tracefs"].split()
        assert not set(res["lab"]["namespaces"]) & set(after["netns"].split())
    assert lab_processes() == []
