"""A hole in the data (core/model/teardown/sack.py): the receiver's out-of-order queue
and SACK, and RACK at the sender. Nominal runs (no record) on 6.18 at HZ=250 with a
0.5 ms RTT: one way takes 0.2 ms, so a SACK is back 0.4 ms after the segment it
answers left; RACK's window is min_rtt/4 = 0.125 ms (+ the router's margin, 0.2 ms)."""

import pytest

from tcplab.core.faults import Fault
from tcplab.core.model.kernel import Kernel
from tcplab.core.model.teardown.params import TeardownParams
from tcplab.core.model.teardown.sim import Sim
from tcplab.core.scenario import Step
from tests.unit.test_model_teardown_data import predict, sent

K618 = Kernel.from_release("6.18.44-fc-v657")
R = 0.204
JIFFY = 0.004


def states(pred, host):
    return [(round(x.t, 4), x.state) for x in pred.states[host]]


def test_a_fin_beyond_a_hole_waits_for_the_data_rack_resends():
    """The client's 100 bytes dropped, its FIN 10 ms later reaches the server beyond
    the hole: queued and SACKed at once (tcp_data_queue_ofo(), __tcp_ack_snd_check()),
    not CLOSE_WAIT. The SACK marks the data lost at once (sent 10 ms before the FIN,
    beyond the reordering window: tcp_rack_detect_loss()), and its resend fills the
    hole: the FIN is taken then (tcp_ofo_queue() -> tcp_fin()), with one immediate ACK
    of everything. No loss probe, no RTO."""
    pred = predict(
        [("sleep", 0.5), ("send", 100), ("sleep", 0.01), ("close",), ("sleep", 5.0)],
        [("recv", 100), ("recv",), ("sleep", 1.0), ("close",)],
        [Fault("drop", "data", nth=(1,))],
    )
    assert sent(pred, "client", "data") == [(0.5, "app", "dropped"), (0.5104, "rack", "delivered")]
    assert pred.of("client", "data")[1].slack == 0.0  # beyond the window: at once
    assert [round(s.t, 4) for s in pred.of("server", "data-ack")] == [0.5102]
    assert [round(s.t, 4) for s in pred.of("server", "fin-ack")] == [0.5106]
    assert states(pred, "server")[0] == (0.5106, "CLOSE_WAIT")


def test_a_fin_beyond_a_hole_in_fin_wait2_ends_in_time_wait_with_one_ack():
    """After shutdown(SHUT_WR) the client queues the server's FIN that overtook its
    lost data; the resend fills the hole: tcp_fin() in FIN_WAIT2 sends the one ACK and
    starts TIME_WAIT."""
    pred = predict(
        [("shutdown", "wr"), ("recv",), ("close",), ("sleep", 5.0)],
        [("recv",), ("send", 100), ("sleep", 0.01), ("close",), ("sleep", 5.0)],
        [Fault("drop", "data", nth=(1,))],
    )
    assert [x.state for x in pred.states["client"]] == ["FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]
    resend = pred.of("server", "data")[1]
    assert resend.cause == "rack"
    acks = pred.of("client", "last-ack")
    assert len(acks) == 1 and acks[0].t == pytest.approx(resend.t + 0.0002, abs=1e-6)
    assert states(pred, "client")[2][0] == round(acks[0].t, 4)


def test_after_close_data_beyond_a_hole_draws_an_rst():
    """close() shut the receiving side: anything past rcv_nxt, in order or not, aborts
    the connection (tcp_rcv_state_process(): `end_seq - fin` after rcv_nxt)."""
    pred = predict(
        [("close",), ("sleep", 5.0)],
        [("recv",), ("send", 100), ("sleep", 0.01), ("send", 100), ("sleep", 5.0), ("close",)],
        [Fault("drop", "data", nth=(1,))],
    )
    rst = pred.of("client", "rst")
    second = pred.of("server", "data")[1]
    assert len(rst) == 1 and rst[0].t == pytest.approx(second.t + 0.0002, abs=1e-6)
    assert states(pred, "client")[-1][1] == "CLOSE"


BURST = ([("sleep", 0.5), ("send", 3000), ("recv",)], [("recv", 3000), ("sleep", 5.0), ("close",)])


def test_a_burst_with_its_head_lost_is_resent_on_the_first_sack():
    """Three segments of one burst, the first dropped: the others are SACKed at 0.5002
    and back at 0.5004. Sent microseconds apart, within the reordering window, the
    head is lost at once or when the reordering timer fires (usecs_to_jiffies(
    remaining + TCP_TIMEOUT_MIN_US): one jiffy, plus its bucket): the resend is
    predicted at the SACK, as late as that timer's latest."""
    pred = predict(*BURST, [Fault("drop", "data", nth=(1,))])
    resend = pred.of("client", "data")[3]
    assert (round(resend.t, 4), resend.cause) == (0.5004, "rack")
    assert resend.slack == pytest.approx(JIFFY + K618.slack(JIFFY))
    assert pred.rack_choice
    # no loss probe (2 srtt + 2 ms = 0.504): RACK's resend put the RTO in its place
    assert len(pred.of("client", "data")) == 4


def waiting(faults) -> Sim:
    """The other branch: RACK's reordering timer armed (rack_wait)."""
    p = {h: TeardownParams.from_sysctls(K618, {}) for h in ("client", "server")}
    steps = {h: [Step(*s) for s in BURST[i]] for i, h in enumerate(("client", "server"))}
    return Sim(
        K618,
        p,
        {"client": R, "server": R},
        steps,
        tuple(faults),
        8080,
        None,
        rtt={"client": 0.0005, "server": 0.0005},
        rack_wait=True,
    ).run(30.0)


def test_the_reordering_timer_resends_the_hole_one_jiffy_on():
    pred = waiting([Fault("drop", "data", nth=(1,))])
    resend = pred.of("client", "data")[3]
    assert (round(resend.t, 4), resend.cause) == (0.5044, "rack")
    assert resend.slack == pytest.approx(K618.slack(JIFFY))


def test_a_held_head_that_fills_the_hole_first_stops_the_reordering_timer():
    """Held 1 ms by the router, the head arrives before the timer fires: the ACK of
    everything stops it, nothing is resent (seen on 6.18: gen-2056)."""
    pred = waiting([Fault("delay", "data", nth=(1,), by=0.001)])
    assert [s.cause for s in pred.of("client", "data")] == ["app", "app", "app"]


def test_the_give_up_counts_from_racks_resend():
    """tcp_retransmit_skb() sets retrans_stamp at the first retransmission, RACK's
    included (the loss probe's does not), and tcp_write_timeout() counts tcp_retries2's
    time from it: with 3 (3.0 s) and every data segment dropped, the RTOs after the
    resend at tR come at tR + R, + 3R, + 7R, and the expiry at tR + 15R (3.06 s on) gives
    up; counted from the first RTO it would be tR + 31R (gen-3021 on 6.18)."""
    pred = predict(
        [("sleep", 0.5), ("send", 100), ("sleep", 0.01), ("shutdown", "wr"), ("recv",)],
        [("recv",), ("sleep", 20.0)],
        [Fault("drop", "data", sender="client")],
        {"client": {"tcp_retries2": 3}},
    )
    t_r = 0.5104
    assert [(round(s.t, 4), s.cause) for s in pred.of("client", "data")] == [
        (0.5, "app"),
        (t_r, "rack"),
        (round(t_r + R, 4), "timer"),
        (round(t_r + 3 * R, 4), "timer"),
        (round(t_r + 7 * R, 4), "timer"),
    ]
    assert states(pred, "client")[-1] == (round(t_r + 15 * R, 4), "CLOSE")


def test_an_rst_at_the_sack_edge_resets_one_inside_draws_a_challenge_ack():
    """An abort's RST (SO_LINGER 0, seq = snd_nxt) beyond a hole: at the right edge of
    the highest SACK block it resets (tcp_validate_incoming(), RFC 5961 3.2 with SACK:
    gen-3003 on 6.18); with nothing SACKed beyond the hole it draws a challenge ACK at
    rcv_nxt, which the closed peer answers with an RST there, and that one resets
    (gen-6080)."""
    client = [("sleep", 0.5), ("send", 3000), ("linger", 0), ("close",), ("sleep", 1.0)]
    server = [("recv", 3000), ("sleep", 2.0), ("close",)]
    edge = predict(client, server, [Fault("drop", "data", nth=(2,))])
    assert states(edge, "server") == [(0.5002, "CLOSE")]
    assert len(edge.of("client", "rst")) == 3  # the abort, and one per ACK of the server's
    assert len(edge.of("server", "data-ack")) == 2
    inside = predict(client, server, [Fault("drop", "data", nth=(3,))])
    assert len(inside.of("server", "data-ack")) == 3  # data #1, #2; the challenge ACK
    assert len(inside.of("client", "rst")) == 4  # ... and its answer, which resets
    assert states(inside, "server") == [(0.5006, "CLOSE")]
