"""Judging a run against the established-connection model (core/check/established.py), on
constructed records: times as the router saw them in this lab's runs on 6.18, and the
same runs bent where a kernel that broke the rule would differ."""

import dataclasses

from tcplab.core.events import AppCalled, StateChanged
from tcplab.core.faults import HostFault
from tcplab.core.record import Record
from tcplab.core.scenario import Expect, Scenario, Step
from tcplab.core.check.model import check_model
from tcplab.core.model.established import predict as predict_bursts
from tcplab.core.model.established import EstParams, Keepalive
from tcplab.core.model.kernel import Kernel
from tcplab.core.model.prediction import Prediction
from tcplab.core.model.established import with_bursts
from unit.helpers import seen

K618 = Kernel.from_release("6.18.44-fc-v657")
HANDSHAKE = [
    (0.0010, "client", "syn", 0x02),
    (0.0013, "server", "syn-ack", 0x12),
    (0.0016, "client", "ack", 0x10),
]


def seg(t, sender, name, nth=1, flags=0x18, fate="delivered", length=0):
    return seen(t, sender, name, flags, nth, fate, length)


def record(segments, closed_at=None, host="client", call=None, t_stop=30.0):
    r = Record(t0=0.0)
    r.segments = [seg(t, s, n, flags=f) for t, s, n, f in HANDSHAKE] + segments
    r.tracepoint_states = [StateChanged(0.001, "client", "SYN_SENT", "ESTABLISHED", "tracepoint", rport=8080)]
    if closed_at is not None:
        r.tracepoint_states.append(
            StateChanged(closed_at, host, "ESTABLISHED", "CLOSE", "tracepoint", rport=8080)
        )
    if call is not None:
        r.apps.append(call)
    r.t_stop = t_stop
    return r


def chain(times, sender="client", name="data"):
    return [
        seg(t, sender, name, nth=i + 1, fate="dropped", length=100 if name == "data" else 0)
        for i, t in enumerate(times)
    ]


def prediction(fault, client, server, sysctls):
    sc = Scenario(
        "x.yaml",
        "x",
        "",
        (),
        {},
        {"client": tuple(client), "server": tuple(server)},
        (),
        Expect(),
        30.0,
        host_faults=(fault,),
    )
    pred = Prediction(K618)
    pred.calls[("client", "connect")] = ("ok", 0.0, 0.0004)
    return with_bursts(pred, predict_bursts(K618, sc, sysctls, pred))


CLIENT_SENDS = [Step("connect", ("server", 8080)), Step("sleep", 2.0), Step("send", 100), Step("recv")]
SERVER_WAITS = [Step("listen", 8080), Step("accept"), Step("recv")]
RETRIES2_5 = {"client": {"net.ipv4.tcp_retries2": "5"}}
# server-host-crash-fast, run 1 on 6.18: the data, TLP, 5 RTOs; ESTABLISHED->CLOSE.
CRASH = [2.0043, 2.2117, 2.4197, 2.8557, 3.6877, 5.3517, 8.8397]
CRASH_CLOSED = 15.4961
# network-down, run 1 on 6.18: two halved waits after the ICMPs the router let through.
DOWN = [2.0042, 2.2093, 2.4214, 2.8456, 3.6774, 5.3454, 7.0056, 8.6374, 12.1614]
DOWN_CLOSED = 15.4855


def judged(pred, rec):
    return {
        c.name: c
        for c in check_model(pred, rec)
        if "data" in c.name or "keepalive" in c.name or "gives up" in c.name or "recv" in c.name
    }


def recv(result, t_end):
    return AppCalled(t=2.0044, host="client", call="recv", arg=None, result=result, t_end=t_end)


def crash_pred():
    return prediction(HostFault("crash", "server", 1.0), CLIENT_SENDS, SERVER_WAITS, RETRIES2_5)


def test_the_measured_crash_chain_passes():
    checks = judged(crash_pred(), record(chain(CRASH), CRASH_CLOSED, call=recv("ETIMEDOUT", CRASH_CLOSED)))
    assert len(checks) == 8 and all(c.passed for c in checks.values()), [
        c for c in checks.values() if not c.passed
    ]


def test_a_chain_that_does_not_back_off_fails():
    flat = [2.0 + 0.204 * i for i in range(7)]
    checks = judged(crash_pred(), record(chain(flat), flat[-1] + 0.204))
    failed = [n for n, c in checks.items() if not c.passed]
    assert "model: client data #4 after #3 (RTO)" in failed


def test_retransmitting_past_the_limit_fails():
    longer = CRASH + [CRASH[-1] + 6.656]  # one more RTO: 19.3 s after the first, > 12.6
    checks = judged(crash_pred(), record(chain(longer), longer[-1] + 13.1))
    assert not checks["model: client data #8 after #7 (RTO)"].passed


def test_giving_up_early_or_never_fails():
    early = judged(crash_pred(), record(chain(CRASH[:-1]), CRASH[-2] + 3.3))
    assert not early["model: client data count"].passed  # one RTO short of the limit
    never = judged(crash_pred(), record(chain(CRASH), None))
    assert never["model: client gives up after data #7"].actual == "still ESTABLISHED when the run ended"
    assert not never["model: client gives up after data #7"].passed


def test_the_error_must_be_the_one_the_model_says():
    checks = judged(crash_pred(), record(chain(CRASH), CRASH_CLOSED, call=recv("ECONNRESET", CRASH_CLOSED)))
    assert not checks["model: client recv()"].passed


def down_pred():
    return prediction(HostFault("link-down", "server", 1.0), CLIENT_SENDS, SERVER_WAITS, RETRIES2_5)


def test_the_measured_link_down_chain_passes_with_the_icmp_replayed():
    checks = judged(down_pred(), record(chain(DOWN), DOWN_CLOSED, call=recv("ENETUNREACH", DOWN_CLOSED)))
    assert all(c.passed for c in checks.values()), [c for c in checks.values() if not c.passed]
    assert "after an ICMP" in next(n for n in checks if n.startswith("model: client data #7"))


def test_a_soft_error_must_surface_and_etimedout_is_wrong_after_icmp():
    checks = judged(down_pred(), record(chain(DOWN), DOWN_CLOSED, call=recv("ETIMEDOUT", DOWN_CLOSED)))
    assert not checks["model: client recv()"].passed


def test_a_halved_wait_the_rate_limit_cannot_explain_fails():
    # The same chain into a crashed host: no router answers, so no revert is possible.
    checks = judged(crash_pred(), record(chain(DOWN), DOWN_CLOSED))
    assert not checks["model: client data #7 after #6 (RTO)"].passed


def test_ignoring_the_icmp_entirely_fails_too():
    # After #9 the router had 4 s of tokens saved: its ICMP surely came back, so the wait
    # to the give-up is halved (3.264 s). An ICMP-deaf kernel would double it.
    closed = DOWN[-1] + 6.528
    checks = judged(down_pred(), record(chain(DOWN), closed, call=recv("ENETUNREACH", closed)))
    give_up = checks["model: client gives up after data #9"]
    assert not give_up.passed and give_up.expected == 6.528  # judged as doubled: no ICMP
    assert give_up.actual == 6.528  # the gap fits; the rate limit is what it breaks


# -- keepalive ----------------------------------------------------------------------------

CLIENT_SLEEPS = [Step("connect", ("server", 8080)), Step("sleep", 8.0)]
SERVER_PROBES = [
    Step("listen", 8080),
    Step("accept"),
    Step("keepalive", {"idle": 2, "interval": 1, "count": 3}),
    Step("recv"),
]
# client-crash-keepalive on 6.18: probes 2.028, 1.020, 1.028 s apart, RST 1.024 s later.
PROBES = [2.0299, 3.0499, 4.0779]


def keepalive_pred():
    return prediction(HostFault("crash", "client", 1.0), CLIENT_SLEEPS, SERVER_PROBES, {})


def server_recv(result, t_end):
    return AppCalled(t=0.003, host="server", call="recv", arg=None, result=result, t_end=t_end)


def keepalive_record(probes, closed_at):
    segs = chain(probes, "server", "keepalive")
    if closed_at is not None:
        segs.append(
            dataclasses.replace(seg(closed_at, "server", "rst", flags=0x14), fate="dropped", t_out=None)
        )
    return record(
        segs, closed_at, host="server", call=server_recv("ETIMEDOUT" if closed_at else None, closed_at)
    )


def test_the_measured_keepalive_run_passes():
    checks = judged(keepalive_pred(), keepalive_record(PROBES, 5.1019))
    assert len(checks) == 6 and all(c.passed for c in checks.values()), checks


def test_a_fourth_probe_or_a_late_first_one_fails():
    more = judged(keepalive_pred(), keepalive_record(PROBES + [5.1], 6.12))
    assert not more["model: server keepalive #4 after #3"].passed
    late = judged(keepalive_pred(), keepalive_record([p + 0.5 for p in PROBES], 5.6))
    assert not late["model: server keepalive #1 after the last segment received"].passed


def test_an_answered_probe_restarts_the_idle_time():
    answered = keepalive_record([2.03, 4.06, 5.08, 6.10], 7.12)
    answered.segments.insert(4, seg(2.0305, "client", "keepalive-ack", flags=0x10))
    pred = keepalive_pred()
    checks = judged(pred, answered)
    assert checks["model: server keepalive #2 after #1"].expected == 2.0
    assert checks["model: server keepalive #2 after #1"].passed


def test_keepalive_params_come_from_the_step():
    (b,) = keepalive_pred().established
    assert b.keepalive == Keepalive(2, 1, 3)
    assert b.params == EstParams()


def test_a_quiet_survivor_must_send_nothing_and_stay_established():
    pred = prediction(HostFault("crash", "client", 1.0), CLIENT_SLEEPS, SERVER_WAITS, {})
    quiet = {c.name: c for c in check_model(pred, record([]))}
    assert quiet["model: server sends nothing after t=1s"].passed
    assert quiet["model: server stays ESTABLISHED"].passed
    noisy = {c.name: c for c in check_model(pred, keepalive_record(PROBES, 5.1019))}
    assert not noisy["model: server sends nothing after t=1s"].passed
    assert not noisy["model: server stays ESTABLISHED"].passed


def test_a_hook_that_acted_a_fault_late_makes_a_failure_not_judged():
    """The 6.1 TCG guest, network-down: the hook set the link down 1.78 s after its
    time, and what it held meanwhile met the router's kernel that late. A failed check
    of such a run is not judged; the same failure with the link down on time stays."""
    from tcplab.core.events import FaultActed

    fault = HostFault("crash", "server", 1.0)
    flat = [2.0 + 0.204 * i for i in range(7)]  # no back-off: a failure on its own
    for acted, judged in ((1.004, True), (2.78, False)):
        rec = record(chain(flat), flat[-1] + 0.204)
        rec.faults.append(FaultActed(acted, "server", "crash", "crashed: silent", fault.describe()))
        failed = [c for c in check_model(crash_pred(), rec, (fault,)) if not c.passed]
        assert failed and all(c.judged == judged for c in failed), failed
        if not judged:
            assert "done at t=2.780s, 1780 ms after t=1s, with 4 segments waiting" in failed[0].actual
