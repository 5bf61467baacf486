"""The SYN-flood model (core/model/flood.py) and its judge (core/check/flood.py): what
a listener with backlog 16 and SYN cookies does with 200 spoofed SYNs and a genuine
client, pinned for Linux 6.1 and 6.18; a record built like this lab's runs of
scenarios/handshake/syn-flood-syncookies.yaml on 6.18 passes, and the same record bent
where a kernel breaking a rule would differ fails."""

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest

from tcplab.core.events import AppCalled, SegmentSeen, StateChanged
from tcplab.core.record import Record
from tcplab.format.load import load_scenario
from tcplab.core.check.flood import observe
from tcplab.core.check.model import check_model
from tcplab.core.model.flood import (
    COOKIE,
    DROPPED,
    ListenerParams,
    REQUEST,
    nominal_arrivals,
    predict_flood,
    synack_retries_now,
)
from tcplab.core.model.handshake_params import HostParams
from tcplab.core.model.kernel import Kernel
from tcplab.core.model.predict import predict

K618 = Kernel.from_release("6.18.44-fc-v657")
K61 = Kernel.from_release("6.1.0")
SCENARIO = Path(__file__).resolve().parents[2] / "scenarios/handshake/syn-flood-syncookies.yaml"
SERVER = {
    "net.ipv4.tcp_syncookies": "1",
    "net.ipv4.tcp_max_syn_backlog": "16",
    "net.ipv4.tcp_synack_retries": "5",
    "net.core.somaxconn": "4096",
}


def flood(kernel, server=SERVER, backlog=16, syns=200, until=8.5, genuine_at=0.2):
    params = ListenerParams.from_sysctls(kernel, server, backlog)
    return predict_flood(
        kernel, params, HostParams.from_sysctls(kernel, {}), nominal_arrivals(syns), genuine_at, until=until
    )


def synacks_per_request(fp):
    counts = [len(r.synacks) for r in fp.flood_requests()]
    return {n: counts.count(n) for n in sorted(set(counts))}


# -- the rules -----------------------------------------------------------------------------


def test_618_keeps_backlog_plus_one_requests_then_cookies_for_the_rest():
    fp = flood(K618)
    assert fp.indexes(REQUEST) == list(range(1, 18))  # qlen > 16 is full: 17 requests
    assert fp.indexes(COOKIE) == list(range(18, 201))
    assert fp.peak == 17
    assert fp.genuine == [COOKIE] and fp.connect == ("ok", 0.2, pytest.approx(0.2004))
    # 1 and 3 s for all; at 7 s the first 9 expiries drop (2 * qlen > 16 and no young
    # request left: 2 retries), the last 8 find 2 * 8 <= 16 and retransmit.
    assert synacks_per_request(fp) == {3: 9, 4: 8}
    first = fp.flood_requests()[0]
    assert first.synacks == pytest.approx([0.0, 1.0, 3.0])
    assert first.fate == "dropped" and first.end == pytest.approx(7.0)
    assert fp.counter_totals() == {
        "SyncookiesSent": 184,
        "TCPReqQFullDoCookies": 184,
        "SyncookiesRecv": 1,
        "TCPSynRetrans": 42,
        "TCPTimeouts": 51,
    }


def test_61_keeps_backlog_requests():
    """Before 3479c7549fb1 (6.13) the queue was full at qlen >= backlog: 16 requests,
    and one more cookie."""
    fp = flood(K61)
    assert fp.indexes(REQUEST) == list(range(1, 17))
    assert len(fp.indexes(COOKIE)) == 184
    assert synacks_per_request(fp) == {3: 8, 4: 8}
    assert fp.counter_totals()["SyncookiesSent"] == 185
    assert fp.counter_totals()["TCPTimeouts"] == 48


def test_the_survivors_keep_their_full_retries():
    """Once at most half the queue is old requests, tcp_synack_retries holds again:
    the 8 left get SYN-ACKs at 1, 3, 7, 15, 31 s and die at 63 s."""
    fp = flood(K618, until=70.0)
    assert synacks_per_request(fp) == {3: 9, 6: 8}
    last = fp.flood_requests()[-1]
    assert last.synacks[-1] - last.synacks[0] == pytest.approx(31.0)
    assert last.fate == "dropped" and last.end - last.created == pytest.approx(63.0)


@pytest.mark.parametrize(
    "qlen, young, retries",
    [
        (8, 0, 5),  # 2 * 8 = 16 is not more than max(8, 16): no pruning
        (17, 17, 5),  # all young: 17 < 34
        (17, 8, 4),  # 16 <= 17 < 32
        (17, 4, 3),
        (17, 2, 2),
        (17, 0, 2),  # never below 2
        (5, 0, 2),  # a small backlog counts as 8: 2 * 5 > 8
    ],
)
def test_reqsk_timer_handler_cuts_retries_while_old_requests_clog_the_queue(qlen, young, retries):
    p = ListenerParams(synack_retries=5, backlog=16 if qlen > 5 else 4)
    assert synack_retries_now(p, qlen, young) == retries


def test_somaxconn_caps_the_backlog():
    fp = flood(K618, server={**SERVER, "net.core.somaxconn": "8"}, backlog=128)
    assert len(fp.indexes(REQUEST)) == 9


def test_without_cookies_a_quarter_of_max_syn_backlog_stays_free_and_the_client_waits():
    """tcp_syncookies=0: SYNs dropped once 16 - qlen < 4 (13 requests); the genuine
    client's SYNs too, until the 7 s pruning leaves 8 requests."""
    fp = flood(K618, server={**SERVER, "net.ipv4.tcp_syncookies": "0"}, until=15.0)
    assert fp.indexes(REQUEST) == list(range(1, 14))
    assert fp.indexes(DROPPED) == list(range(14, 201))
    assert fp.genuine == [DROPPED] * 6 + [REQUEST]
    assert [round(t - 0.2, 3) for t in fp.genuine_syns] == [0, 1, 2, 3, 4, 5, 7]
    assert fp.connect[0] == "ok" and fp.connect[2] - fp.connect[1] == pytest.approx(7.0004)
    assert fp.counter_totals()["ListenDrops"] == 187 + 6
    assert "SyncookiesSent" not in fp.counter_totals()


def test_syncookies_2_keeps_nothing():
    fp = flood(K618, server={**SERVER, "net.ipv4.tcp_syncookies": "2"})
    assert fp.indexes(COOKIE) == list(range(1, 201)) and not fp.requests
    assert fp.counter_totals()["SyncookiesSent"] == 201


# -- the runner's prediction for the scenario ---------------------------------------------


def scenario_prediction(kernel=K618):
    sc = load_scenario(SCENARIO)
    assert sc.expect.model == "linux"
    pred = predict(sc, kernel, {"server": SERVER, "client": {}})  # as the runner judges
    return pred, SimpleNamespace(model=pred.to_json())


def test_the_scenario_gets_the_flood_model_and_a_plain_handshake_for_the_genuine_client():
    pred, res = scenario_prediction()
    assert pred.flood.params.max_ack_backlog == 16 and pred.flood.syns == 200
    assert res.model["flood"]["answers"] == {"request": "#1-#17 (17)", "cookie": "#18-#200 (183)"}
    assert [(s.sender, s.name) for s in pred.segments if s.name in ("syn", "syn-ack", "ack")] == [
        ("client", "syn"),
        ("server", "syn-ack"),
        ("client", "ack"),
    ]
    assert pred.calls[("client", "connect")][0] == "ok"


# -- judging: a record like the lab's runs on 6.18 ---------------------------------------------

C, S, SP, CP = "198.18.7.2", "198.19.7.2", 8080, 40000
DROPPED_FIRST = {7, 8, 9, 10, 12, 14, 15, 16, 17}  # the timer wheel's order, seen on 6.18


def syn_time(i):
    return 0.0029 + 0.0011 * (i - 1)


def measured(
    requests=17,
    dropped=DROPPED_FIRST,
    gaps=(1.02, 2.018),
    third=4.14,
    drop_after=4.16,
    cookie_again=(),
    counters=None,
    genuine_synacks=(0.0001,),
):
    """Flood SYN i at syn_time(i); the first `requests` keep a request whose SYN-ACK
    is retransmitted after `gaps`; then those in `dropped` die `drop_after` their last
    SYN-ACK, the others send a third retransmission `third` later."""
    segs, diag = [], []
    conn = 0

    def seg(t, sender, name, nth, flags, src, sport, dst, dport, c):
        return SegmentSeen(
            t=round(t, 6),
            name=name,
            nth=nth,
            sender=sender,
            flags=flags,
            seq=1,
            ack=1,
            length=5 if name == "data" else 0,
            fate="delivered",
            retransmission=nth > 1,
            conn=c,
            t_out=round(t + 0.0001, 6),
            src=src,
            dst=dst,
            sport=sport,
            dport=dport,
        )

    for i in range(1, 201):
        conn += 1
        src, sport, t = f"198.18.7.{9 + i}", 1024 + i, syn_time(i)
        segs.append(seg(t, "client", "syn", 1, 0x02, src, sport, S, SP, conn))
        times = [t + 0.0001]
        if i <= requests:
            times += [times[0] + gaps[0], times[0] + gaps[0] + gaps[1]]
            if i not in dropped:
                times.append(times[-1] + third)
            diag.append(
                StateChanged(t + 0.006, "server", "CLOSE", "SYN_RECV", "inet_diag", S, SP, src, sport)
            )
            if i in dropped:
                diag.append(
                    StateChanged(
                        times[-1] + drop_after, "server", "SYN_RECV", "CLOSE", "inet_diag", S, SP, src, sport
                    )
                )
        elif i in cookie_again:
            times.append(times[0] + 1.0)
        segs += [
            seg(a, "server", "syn-ack", n + 1, 0x12, S, SP, src, sport, conn) for n, a in enumerate(times)
        ]
    conn += 1
    g = 0.2240
    segs.append(seg(g, "client", "syn", 1, 0x02, C, CP, S, SP, conn))
    segs += [
        seg(g + a, "server", "syn-ack", n + 1, 0x12, S, SP, C, CP, conn)
        for n, a in enumerate(genuine_synacks)
    ]
    segs += [
        seg(g + 0.0002, "client", "ack", 1, 0x10, C, CP, S, SP, conn),
        seg(g + 0.0008, "client", "data", 1, 0x18, C, CP, S, SP, conn),
    ]
    r = Record(t0=0.0)
    r.segments = sorted(segs, key=lambda s: s.t)
    r.diag_states = diag
    r.tracepoint_states = [
        StateChanged(g - 0.0001, "client", "CLOSE", "SYN_SENT", "tracepoint", C, CP, S, SP),
        StateChanged(g + 0.0002, "client", "SYN_SENT", "ESTABLISHED", "tracepoint", C, CP, S, SP),
    ]
    after = {
        "SyncookiesSent": 184,
        "SyncookiesRecv": 1,
        "TCPReqQFullDoCookies": 184,
        "TCPSynRetrans": 42,
        "TCPTimeouts": 51,
        "TCPPureAcks": 1,
    }
    r.apps = [
        AppCalled(0.0005, "server", "netstat", None, "ok", 0.0007, counters={}),
        AppCalled(0.0010, "client", "flood", {"syns": 200, "port": SP}, "ok", 0.2238),
        AppCalled(0.2239, "client", "connect", ("server", SP), "ok", 0.2244, lport=CP, rport=SP),
        AppCalled(8.2300, "server", "netstat", None, "ok", 8.2303, counters={**after, **(counters or {})}),
    ]
    r.t_stop = 8.54
    return r


def failed(checks):
    return {c.name: (c.expected, c.actual) for c in checks if not c.passed}


def test_the_measured_run_passes_and_the_handshake_part_judges_the_genuine_connection():
    pred, _res = scenario_prediction()
    checks = check_model(pred, measured())
    assert failed(checks) == {}
    by_name = {c.name: c for c in checks}
    assert by_name["model: flood SYN-ACKs per request"].actual == "9 x 3, 8 x 4"
    assert by_name["model: flood requests dropped"].actual == 9
    assert by_name["model: flood requests held at once"].actual == 17
    assert by_name["model: server TcpExt SyncookiesSent"].expected == 184
    # The genuine connection, from its own SYN: not the first flood SYN's.
    assert by_name["model: client syn count"].actual == 1
    assert by_name["model: server syn-ack count"].actual == 1
    assert by_name["model: server syn-ack #1 at"].actual == pytest.approx(0.0001)
    assert by_name["model: client connect()"].actual == "ok"


def test_observe_tells_the_flood_from_the_genuine_connection():
    obs = observe(measured())
    assert len(obs.flood) == 200 and obs.genuine.src == C
    assert [c.answer for c in obs.flood[:18]] == [REQUEST] * 17 + [COOKIE]


@pytest.mark.parametrize(
    "bend, check",
    [
        # A cookie SYN-ACK sent again, as if it had kept a request.
        ({"cookie_again": (50,)}, "model: flood cookie SYN-ACKs sent again"),
        # 16 requests, as 6.1.0's `qlen >= backlog` would keep.
        ({"requests": 16}, "model: flood SYNs answered with a request (SYN_RECV)"),
        # No pruning at 7 s: every request retransmits, none is dropped.
        ({"dropped": set()}, "model: flood SYN-ACKs per request"),
        ({"dropped": set()}, "model: flood requests dropped"),
        # All pruned: the 8 that find the queue half empty would not be.
        ({"dropped": set(range(1, 18))}, "model: flood SYN-ACKs per request"),
        # The first retransmission 80 ms late: more than the timer wheel's 36 ms.
        ({"gaps": (1.08, 2.018)}, "model: flood request SYN-ACK #2 after #1"),
        # The second one early: a 1.5 s wait, not 2 s.
        ({"gaps": (1.02, 1.5)}, "model: flood request SYN-ACK #3 after #2"),
        # Dropped a second after the last SYN-ACK, not at the 4 s timer.
        ({"drop_after": 1.0}, "model: flood request dropped 4 s after its last SYN-ACK"),
        # A counter the model does not add up to.
        ({"counters": {"SyncookiesSent": 183}}, "model: server TcpExt SyncookiesSent"),
        ({"counters": {"ListenDrops": 2}}, "model: server TcpExt ListenDrops"),
        # The genuine SYN-ACK retransmitted, as if the genuine SYN had kept a request.
        ({"genuine_synacks": (0.0001, 1.02)}, "model: server syn-ack count"),
    ],
)
def test_a_record_that_disagrees_fails(bend, check):
    pred, _res = scenario_prediction()
    bad = failed(check_model(pred, measured(**bend)))
    assert check in bad, bad


def test_a_run_that_ends_before_the_7s_expiry_expects_no_drop_yet():
    """Nothing the model cannot know: a request timer whose window straddles the end of
    the run may or may not have fired."""
    pred, _res = scenario_prediction()
    r = measured()
    r = dataclasses.replace(
        r,
        t_stop=7.1,
        segments=[s for s in r.segments if s.t < 7.1],
        diag_states=[e for e in r.diag_states if e.t < 7.1],
    )
    r.apps[-1] = dataclasses.replace(r.apps[-1], t=7.0, t_end=7.0003)
    checks = {c.name: c for c in check_model(pred, r)}
    assert checks["model: flood requests dropped"].passed
    assert checks["model: flood SYN-ACKs per request"].expected == "9 x 3, 8 x 3-4"


# -- two CPUs' request timers at once ----------------------------------------------------


def test_an_expiry_that_reads_the_queue_before_another_cpus_drop_counted_drops_one_more():
    """reqsk_timer_handler() reads qlen without a lock and the drop counts later: at
    7 s an expiry on the other CPU may still see 9 requests after the 9th drop, and
    drop a 10th (CI on a loaded host and the 6.1 TCG guest: "10 x 3, 7 x 4",
    TCPSynRetrans 41). With one stale read the model says so; with none, as before."""
    params = ListenerParams.from_sysctls(K618, SERVER, 16)
    client = HostParams.from_sysctls(K618, {})
    arrivals = nominal_arrivals(200)
    in_order = predict_flood(K618, params, client, arrivals, 0.2, until=8.5)
    raced = predict_flood(K618, params, client, arrivals, 0.2, until=8.5, stale=1)
    assert synacks_per_request(in_order) == {3: 9, 4: 8}
    assert synacks_per_request(raced) == {3: 10, 4: 7}
    assert raced.counter_totals()["TCPSynRetrans"] == 41
    assert raced.counter_totals()["TCPTimeouts"] == in_order.counter_totals()["TCPTimeouts"]
    # the race is at the edge of the pruning only: the 1 s and 3 s expiries drop none
    assert all(len(r.synacks) >= 3 for r in raced.flood_requests())


def test_a_tenth_drop_passes_on_two_cpus_and_fails_on_one_and_an_eleventh_fails_on_both():
    ten = measured(dropped=DROPPED_FIRST | {11}, counters={"TCPSynRetrans": 41})
    one_cpu, _ = scenario_prediction(K618)
    assert "model: flood requests dropped" in failed(check_model(one_cpu, ten))
    two_cpus, _ = scenario_prediction(dataclasses.replace(K618, cpus=2))
    checks = check_model(two_cpus, ten)
    assert failed(checks) == {}
    by_name = {c.name: c for c in checks}
    assert by_name["model: flood SYN-ACKs per request"].actual == "10 x 3, 7 x 4"
    assert "race: request timers on two CPUs" in by_name["model: flood requests dropped"].evidence
    assert "race" not in by_name["model: flood requests held at once"].evidence
    eleven = measured(dropped=DROPPED_FIRST | {11, 13}, counters={"TCPSynRetrans": 40})
    assert "model: flood requests dropped" in failed(check_model(two_cpus, eleven))
