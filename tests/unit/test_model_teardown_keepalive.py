"""Keepalive inside the teardown model (core/model/teardown/keepalive.py): the timer
while the connection lives, answered and unanswered probes, and what closing does to
it; then the checks on real records bent so a probe comes at the wrong time."""

from __future__ import annotations

import pytest

from tcplab.core.model.kernel import Kernel
from tcplab.core.model.teardown.predict import teardown_for
from tcplab.format.load import load_text

K618 = Kernel.from_release("6.18.44-fc-v657")

SCENARIO = """\
scenario: x
summary: x
apps:
  server: [listen: 8080, accept, {server}]
  client: [connect: "server:8080", {client}]
{faults}timeout: 20s
"""


def prediction(server: str, client: str, faults: str = "", sysctls=None):
    sc = load_text(SCENARIO.format(server=server, client=client, faults=faults), "x")
    pred = teardown_for(sc, K618, sysctls or {})
    assert pred is not None and not pred.unsupported, pred and pred.unsupported
    return pred


def times(pred, sender: str, name: str) -> list[float]:
    return [round(p.t, 3) for p in pred.of(sender, name)]


def test_answered_probes_restart_the_idle_time():
    """idle 2 s, interval 1 s: the first probe 2 s after the last segment received; its
    answer resets the idle time, so the expiry an interval later re-arms for what is
    left, and the next probe is 2 s after the answer (tcp_keepalive_timer())."""
    pred = prediction("keepalive: {idle: 2, interval: 1, count: 3}, recv, close", "sleep: 5s, close")
    probes = times(pred, "server", "keepalive")
    assert probes == pytest.approx([2.0, 4.0], abs=0.002)
    assert len(pred.of("client", "keepalive-ack")) == 2
    # the client's FIN at 5 s ends the recv(); the server closes: no probe after it
    assert all(p.t < 5.0 for p in pred.of("server", "keepalive"))


def test_unanswered_probes_end_in_an_rst():
    """Every answer dropped: probes at idle, idle + interval; the expiry that finds
    `count` unanswered sends an RST and closes (tcp_send_active_reset, tcp_write_err)."""
    pred = prediction(
        "keepalive: {idle: 1, interval: 1, count: 2}, recv, close",
        "sleep: 8s, close",
        faults="faults:\n  - drop: keepalive-ack\n",
    )
    assert times(pred, "server", "keepalive") == pytest.approx([1.0, 2.0], abs=0.002)
    rst = pred.of("server", "rst")
    assert len(rst) == 1 and rst[0].t == pytest.approx(3.0, abs=0.002)
    assert [x.state for x in pred.states["server"]][0] == "CLOSE"


def test_no_probe_while_the_fin_is_unacknowledged_or_from_an_orphan_in_fin_wait2():
    """After close() the orphan's FIN_WAIT2 timer is the keepalive timer's job
    (tcp_keepalive_timer(): tcp_fin_time()), and a FIN in flight counts as packets_out:
    no probe either way."""
    pred = prediction("keepalive: {idle: 1, interval: 1, count: 3}, sleep: 0.5s, close", "sleep: 10s")
    assert pred.of("server", "keepalive") == []


def test_probes_go_on_after_shutdown_wr():
    """FIN_WAIT2 after shutdown(SHUT_WR) is a full socket with nothing in flight: the
    probes go on, idle counted from the ACK of the FIN, and the peer in CLOSE_WAIT
    answers them."""
    pred = prediction(
        "keepalive: {idle: 1, interval: 1, count: 3}, shutdown: wr, recv, close", "sleep: 3.5s, close"
    )
    assert times(pred, "server", "keepalive") == pytest.approx([1.0, 2.0, 3.0], abs=0.003)
    assert len(pred.of("client", "keepalive-ack")) == 3


def test_the_sysctls_when_the_step_names_no_value():
    pred = prediction(
        "keepalive: on, recv, close",
        "sleep: 4s, close",
        sysctls={"server": {"net.ipv4.tcp_keepalive_time": "3"}},
    )
    assert times(pred, "server", "keepalive") == pytest.approx([3.0], abs=0.003)


def test_probes_from_close_wait_meet_the_orphans_fin_wait2_then_nothing():
    """The prober got the FIN and never closes: CLOSE_WAIT probes like ESTABLISHED. The
    closer's orphan answers from its FIN_WAIT2 minisocket (out of the window, its own
    rate limit); once tcp_fin_time() is over nothing owns the connection, the next probe
    draws an RST (tcp_v4_send_reset()) and the prober closes."""
    pred = prediction(
        "keepalive: {idle: 2, interval: 1, count: 5}, recv, sleep: 10s",
        "sleep: 0.3s, close",
        sysctls={"client": {"net.ipv4.tcp_fin_timeout": "3"}},
    )
    assert times(pred, "server", "keepalive") == pytest.approx([2.3, 4.3], abs=0.003)
    assert len(pred.of("client", "keepalive-ack")) == 1
    rst = pred.of("client", "rst")
    assert len(rst) == 1 and rst[0].t == pytest.approx(4.3, abs=0.003)
    assert [x.state for x in pred.states["server"]] == ["CLOSE_WAIT", "CLOSE"]


# -- the checks, on real records (tests/corpus/generated/) ------------------------------

from tests.unit.test_judge_corpus import failed_names, judge  # noqa: E402


def moved(sender: str, name: str, nth: int, by: float):
    def bend(run):
        def later(e):
            if (
                e.get("kind") == "segment"
                and e.get("from") == sender
                and e.get("name") == name
                and e.get("nth") == nth
                and not e.get("injected")
            ):
                return {**e, "t": e["t"] + by, "t_out": e["t_out"] + by}
            return e

        return {**run, "events": [later(e) for e in run["events"]]}

    return bend


def test_probes_in_a_run_that_closes_are_judged():
    """gen-7044 on 6.18: keepalive idle 2 s, interval 2 s on the client, every answer
    held 10 ms by the router; the second probe came 2 s after the first answer, not
    the first probe (the expiry re-armed for what was left), then the server closed."""
    res = judge("gen-7044")
    probes = [c for c in res.checks if c.name.startswith("model: client keepalive")]
    assert res.verdict == "pass" and all(c.judged for c in res.checks)
    assert [c.name for c in probes] == [
        "model: client keepalive count",
        "model: client keepalive #1 at",
        "model: client keepalive #2 at",
    ]


def test_a_probe_at_the_wrong_time_is_a_failure():
    failed = failed_names(judge("gen-7044", moved("client", "keepalive", 2, 0.2)))
    assert "model: client keepalive #2 at" in failed
    early = failed_names(judge("gen-7044", moved("client", "keepalive", 2, -0.05)))
    assert "model: client keepalive #2 at" in early


def test_a_missing_probe_is_a_failure():
    def drop(run):
        return {
            **run,
            "events": [
                e
                for e in run["events"]
                if not (
                    e.get("kind") == "segment"
                    and e.get("name") in ("keepalive", "keepalive-ack")
                    and e.get("nth") == 2
                )
            ],
        }

    failed = failed_names(judge("gen-7044", drop))
    assert "model: client keepalive count" in failed


@pytest.mark.parametrize("name", ["gen-7227", "gen-2064"])
def test_an_answer_within_the_expiry_s_bucket_may_come_first(name):
    """The answer to a probe the router held reached the prober a few ms after its next
    expiry was due, inside the timer's bucket: the kernel took the answer first (no
    RST in gen-7227, count 1; no second probe in gen-2064). Both orders are modelled."""
    res = judge(name)
    assert res.verdict == "pass" and all(c.judged for c in res.checks)
    states = next(c for c in res.checks if c.name == "model: client states after ESTABLISHED")
    assert "timer after the ACK of its keepalive probe" in states.evidence


def test_the_idle_time_counts_from_the_handshake_the_server_took():
    """gen-7165: the SYN dropped, the connection existed 1 s late; the server's first
    probe came 3 s (its idle) after the handshake's ACK reached it, not 3 s after t = 0."""
    res = judge("gen-7165")
    probe = next(c for c in res.checks if c.name == "model: server keepalive #1 at")
    assert res.verdict == "pass" and probe.judged and probe.expected > 3.9
