"""The established-connection model's predictions, pinned for Linux 6.1 (no
tcp_rto_min_us, no tcp_rto_max_ms) and 6.18 (both), against the kernel source
(tcp_timer.c, tcp_output.c, tcp_ipv4.c) and this lab's measurements on 6.18
(docs/kernel-notes.md, 'An established connection whose peer goes silent')."""

import pytest

from tcplab.core.faults import HostFault
from tcplab.core.model.established import predict as predict_bursts
from tcplab.core.scenario import Expect, Scenario, Step
from tcplab.core.model.established import (
    EstParams,
    Keepalive,
    initial_rto,
    keepalive_probes,
    probe_timeout,
    retransmissions,
    time_limit,
    with_bursts,
)
from tcplab.core.model.kernel import Kernel
from tcplab.core.model.unreachable import UnreachableRouter
from tcplab.core.model.prediction import Prediction

K61, K618 = Kernel.from_release("6.1.0-28-amd64"), Kernel.from_release("6.18.44-fc-v657")
LAN = 0.0004  # a handshake RTT through the router's hook


def params(kernel, **sysctls):
    return EstParams.from_sysctls(kernel, {f"net.ipv4.{k}": str(v) for k, v in sysctls.items()})


def times(kernel, p, rtt=LAN, **kw):
    sent, give_up = retransmissions(kernel, p, rtt, **kw)
    return [round(x.t, 3) for x in sent], give_up


# -- the arithmetic -----------------------------------------------------------------------


def test_rto_after_a_lan_handshake_is_rto_min_plus_srtt_in_whole_jiffies():
    # usecs_to_jiffies(400 + 200000 us) = 51 jiffies at HZ=250: `ss -i` showed rto:204.
    assert initial_rto(K618, params(K618), LAN) == pytest.approx(0.204)
    assert initial_rto(Kernel((6, 18), hz=1000), params(K618), LAN) == pytest.approx(0.201)
    # A slow first sample: rttvar = 2 m wins over rto_min (3 m in all).
    assert initial_rto(K618, params(K618), 0.150) == pytest.approx(0.452)


def test_rto_min_sysctl_counts_from_6_11_only():
    assert initial_rto(K618, params(K618, tcp_rto_min_us=50000), LAN) == pytest.approx(0.052)
    assert initial_rto(K61, params(K61, tcp_rto_min_us=50000), LAN) == pytest.approx(0.204)


def test_loss_probe_waits_no_longer_than_the_rto():
    p = params(K618)
    rto = initial_rto(K618, p, LAN)
    assert probe_timeout(K618, p, LAN, rto) == rto  # 2 srtt + 200 ms is past it
    assert probe_timeout(K618, p, 0.150, 0.6) == pytest.approx(0.5)  # 2 srtt + rto_min


@pytest.mark.parametrize(
    "boundary,rto_max,limit",
    [
        (15, 120, 924.6),  # ip-sysctl.rst's "hypothetical timeout of 924.6 seconds"
        (5, 120, 12.6),
        (3, 120, 3.0),  # tcp_retries1: the route re-check
        (8, 120, 102.2),  # RFC 1122's "at least 100 seconds"
        (9, 120, 204.6),  # the last one below ilog2(120 s / 200 ms) = 9
        (15, 1, 14.4),  # tcp_rto_max_ms=1000: ilog2(5) = 2, then 13 x 1 s
    ],
)
def test_give_up_limit_is_tcp_model_timeout_from_tcp_rto_min(boundary, rto_max, limit):
    assert time_limit(K618, boundary, rto_max) == pytest.approx(limit)


# -- retransmissions into a crashed peer ----------------------------------------------------


def test_retries2_5_on_6_18_matches_the_measured_chain():
    """server-host-crash-fast: TLP at R, RTOs at 2R..32R, ETIMEDOUT at 64R (measured:
    0.207, 0.415, 0.851, 1.683, 3.347, 6.835 s, recv() failing 13.49 s after the send)."""
    sent, give_up = times(K618, params(K618, tcp_retries2=5))
    assert sent == [0, 0.204, 0.408, 0.816, 1.632, 3.264, 6.528]
    assert [x.cause for x in retransmissions(K618, params(K618, tcp_retries2=5), LAN)[0]] == [
        "first",
        "probe",
    ] + ["timer"] * 5
    assert (round(give_up.t, 3), give_up.error, give_up.rto_retransmits) == (13.056, "ETIMEDOUT", 5)
    assert give_up.retries1_at == pytest.approx(6.528)  # 3.0 s after 0.408, at an expiry


@pytest.mark.parametrize("kernel", [K61, K618])
def test_default_retries2_15_gives_up_after_about_929_s_on_both(kernel):
    """Not 15 retransmissions' worth of doubling (which would be 13 - 30 min, tcp(7)):
    the first RTO past 924.6 s after the first RTO retransmission."""
    sent, give_up = times(kernel, params(kernel))
    assert len(sent) == 17  # the data, a tail loss probe and 15 RTO retransmissions
    gaps = [round(b - a, 3) for a, b in zip(sent, sent[1:])]
    assert gaps[:11] == [0.204, 0.204, 0.408, 0.816, 1.632, 3.264, 6.528, 13.056, 26.112, 52.224, 104.448]
    assert gaps[11:] == [120] * 5  # capped at TCP_RTO_MAX
    assert round(give_up.t, 3) == 928.896
    assert give_up.error == "ETIMEDOUT"


def test_rto_max_caps_spacing_and_limit_on_6_18_only():
    sent, give_up = times(K618, params(K618, tcp_rto_max_ms=1000, tcp_retries2=15))
    gaps = [round(b - a, 3) for a, b in zip(sent, sent[1:])]
    assert gaps[:5] == [0.204, 0.204, 0.408, 0.816, 1]
    assert set(gaps[4:]) == {1}
    assert give_up.t - 0.408 >= 14.4 > sent[-1] - 0.408
    # 6.1 has no tcp_rto_max_ms: the sysctl is ignored, as by the kernel.
    assert times(K61, params(K61, tcp_rto_max_ms=1000))[1].t == pytest.approx(928.896)


def test_without_tlp_the_first_repeat_is_an_rto():
    # RTOs at R, 3R, 7R, ...: the limit counts from R, so the give-up comes sooner.
    sent, give_up = times(K618, params(K618, tcp_retries2=5, tcp_early_retrans=0))
    assert sent == [0, 0.204, 0.612, 1.428, 3.06, 6.324]
    assert give_up.rto_retransmits == 5
    assert give_up.t == pytest.approx(12.852)


def test_timer_lateness_adds_up_along_the_chain():
    sent, give_up = retransmissions(K618, params(K618, tcp_retries2=5), LAN)
    assert [round(x.slack, 3) for x in sent] == [0, 0.008, 0.016, 0.052, 0.088, 0.124, 0.384]
    assert give_up.slack == pytest.approx(0.644)


def test_a_restored_path_ends_the_chain_without_a_give_up():
    sent, give_up = times(K618, params(K618), back_at=1.0)
    assert sent == [0, 0.204, 0.408, 0.816, 1.632]  # the one at 1.632 s is answered
    assert give_up is None


# -- the router's ICMP and the soft error -----------------------------------------------------


def test_icmp_rate_limit_of_a_router_without_a_route():
    """ip_error() and icmpv4_xrlim_allow() share one inet_peer's tokens: measured on 6.18
    (no hook, tshark on the client): ICMP for the segments at 0, 0.206, 3.322, 8.314 and
    11.642 s of the chain 0, 0.206, 0.414, 0.826, 1.658, 3.322, 4.954, 8.314, 11.642."""
    router = UnreachableRouter()
    chain = [0, 0.206, 0.414, 0.826, 1.658, 3.322, 4.954, 8.314, 11.642]
    assert [router.answers(t) for t in chain] == [True, True, False, False, False, True, False, True, True]


def test_icmp_is_a_soft_error_that_undoes_a_doubling_and_names_the_errno():
    """network-down: tcp_ld_RTO_revert() halves the wait after an answered RTO
    retransmission; the give-up comes by time, with sk_err_soft = ENETUNREACH."""
    sent, give_up = retransmissions(K618, params(K618, tcp_retries2=5), LAN, router=UnreachableRouter())
    assert [(round(x.t, 3), x.icmp) for x in sent] == [
        (0, True),
        (0.204, True),
        (0.408, False),
        (0.816, False),
        (1.632, False),
        (3.264, True),
        (4.896, False),
        (8.16, True),
        (11.424, True),
    ]
    assert (round(give_up.t, 3), give_up.error) == (14.688, "ENETUNREACH")
    assert give_up.rto_retransmits == 7  # two more than into a crashed host


def test_icmp_close_to_a_threshold_is_flagged_and_a_replay_follows_the_run():
    router = UnreachableRouter()
    router.answers(0)
    router.answers(0.204)
    assert router.step(1.001)[1] is True  # 2.001 s of tokens against 1 s + 1 s
    replay = UnreachableRouter()
    assert replay.step(0, seen=False) == (True, False)  # the bucket said yes; run said no
    assert replay.tokens == pytest.approx(4.0)  # only ip_error()'s second was spent


# -- keepalive -------------------------------------------------------------------------------


def test_keepalive_probes_and_abort():
    ka = Keepalive(idle=2, interval=1, count=3)
    probes, abort, slack = keepalive_probes(K618, ka, silent_from=1)
    assert [t for t, _ in probes] == [2, 3, 4]
    assert abort == 5
    assert slack == pytest.approx(0.036 * 4)


def test_keepalive_defaults_take_7875_s_on_both_kernels():
    """tcp_keepalive_time 7200 + 9 probes x tcp_keepalive_intvl 75: 2 h 11 min 15 s; far
    past any CI limit, so the model says it and the lab scenario uses small values."""
    for k in (K61, K618):
        ka = Keepalive.of(True, EstParams.from_sysctls(k, {}))
        probes, abort, _ = keepalive_probes(k, ka)
        assert (ka.idle, ka.interval, ka.count) == (7200, 75, 9)
        assert [t for t, _ in probes] == [7200 + 75 * i for i in range(9)]
        assert abort == 7875


def test_keepalive_step_overrides_the_sysctls_key_by_key():
    p = params(K618, tcp_keepalive_time=600, tcp_keepalive_intvl=10, tcp_keepalive_probes=4)
    assert Keepalive.of({"idle": 2, "interval": None, "count": 3}, p) == Keepalive(2, 10, 3)
    assert Keepalive.of(True, p) == Keepalive(600, 10, 4)


def test_answered_probes_restart_the_idle_time():
    probes, abort, _ = keepalive_probes(K618, Keepalive(2, 1, 2), silent_from=4.5)
    assert [t for t, _ in probes] == [2, 4, 6, 7]  # 2 and 4 answered; 6, 7 not
    assert abort == 8


# -- a scenario ---------------------------------------------------------------------------


def scenario(faults, client, server):
    return Scenario(
        "x.yaml",
        "x",
        "",
        (),
        {},
        {"client": tuple(client), "server": tuple(server)},
        (),
        Expect(),
        30.0,
        host_faults=tuple(faults),
    )


def handshake_done(kernel):
    pred = Prediction(kernel)
    pred.calls[("client", "connect")] = ("ok", 0.0, 0.0004)
    return pred


def extended(pred: Prediction, kernel: Kernel, sc, sysctls: dict) -> Prediction:
    return with_bursts(pred, predict_bursts(kernel, sc, sysctls, pred))


def test_extend_predicts_the_clients_data_into_a_crashed_server():
    sc = scenario(
        [HostFault("crash", "server", 1.0)],
        [Step("connect", ("server", 8080)), Step("sleep", 2.0), Step("send", 100), Step("recv")],
        [Step("listen", 8080), Step("accept"), Step("recv")],
    )
    pred = handshake_done(K618)
    pred = extended(pred, K618, sc, {"client": {"net.ipv4.tcp_retries2": "5"}})
    data = pred.of("client", "data")
    assert [round(s.t, 3) for s in data] == [2.0, 2.204, 2.408, 2.816, 3.632, 5.264, 8.528]
    assert {s.fate for s in data} == {"dropped"}
    assert pred.calls[("client", "recv")][0] == "ETIMEDOUT"
    assert pred.calls[("client", "recv")][2] == pytest.approx(15.0564)


def test_extend_predicts_keepalive_and_its_rst_for_a_crashed_client():
    sc = scenario(
        [HostFault("crash", "client", 1.0)],
        [Step("connect", ("server", 8080)), Step("sleep", 8.0)],
        [
            Step("listen", 8080),
            Step("accept"),
            Step("keepalive", {"idle": 2, "interval": 1, "count": 3}),
            Step("recv"),
        ],
    )
    pred = handshake_done(K618)
    pred = extended(pred, K618, sc, {})
    assert [round(s.t, 2) for s in pred.of("server", "keepalive")] == [2.0, 3.0, 4.0]
    assert [round(s.t, 2) for s in pred.of("server", "rst")] == [5.0]
    assert pred.calls[("server", "recv")][0] == "ETIMEDOUT"


def test_extend_without_keepalive_predicts_nothing_more():
    """F7's other half: without keepalive nothing ever tells the server; no segment, no
    abort (the connection stays ESTABLISHED)."""
    sc = scenario(
        [HostFault("crash", "client", 1.0)],
        [Step("connect", ("server", 8080)), Step("sleep", 8.0)],
        [Step("listen", 8080), Step("accept"), Step("recv")],
    )
    pred = handshake_done(K618)
    pred = extended(pred, K618, sc, {})
    (quiet,) = pred.established
    assert (quiet.host, quiet.name, quiet.abort) == ("server", "quiet", None)
    assert pred.segments == [] and "stays ESTABLISHED" in pred.notes[0]


def test_data_sent_after_the_link_is_back_is_not_into_the_silence():
    """network-restored: down 1-3 s, the client sends at 4 s: an ordinary send; while it
    was down nothing was sent, so the model only says the client stayed quiet."""
    sc = scenario(
        [HostFault("link-down", "server", 1.0, until=3.0)],
        [Step("connect", ("server", 8080)), Step("sleep", 4.0), Step("send", 100), Step("recv")],
        [Step("listen", 8080), Step("accept"), Step("recv")],
    )
    pred = handshake_done(K618)
    pred = extended(pred, K618, sc, {})
    assert [b.name for b in pred.established] == ["quiet"]
    assert pred.of("client", "data") == []


def test_data_into_a_link_that_comes_back_is_answered_and_nothing_gives_up():
    sc = scenario(
        [HostFault("link-down", "server", 1.0, until=3.0)],
        [Step("connect", ("server", 8080)), Step("sleep", 2.0), Step("send", 100), Step("recv")],
        [Step("listen", 8080), Step("accept"), Step("recv")],
    )
    pred = handshake_done(K618)
    pred = extended(pred, K618, sc, {})
    data = pred.of("client", "data")
    assert [round(s.t, 3) for s in data] == [2.0, 2.204, 2.408, 2.816, 3.632]
    assert [s.fate for s in data][-2:] == ["dropped", "delivered"]
    assert ("client", "recv") not in pred.calls
