"""One lost or held data segment in the teardown model (core/model/teardown/data.py):
the tail loss probe, the RTO, Nagle, the FIN collapsed into a retransmitted head, and
what it still declines. Nominal runs (no record) on 6.18 at HZ=250, a 0.5 ms RTT:
R = 0.204 s, a probe for one segment out after 2 srtt + rto_min = 0.204 s (in whole
jiffies, never after the RTO), for more than one after 2 srtt + 2 ms = 0.004 s."""

import pytest

from tcplab.core.faults import Fault
from tcplab.core.model.kernel import Kernel
from tcplab.core.model.teardown.params import TeardownParams, Unsupported
from tcplab.core.model.teardown.predict import predict_teardown
from tcplab.core.scenario import Step

K618 = Kernel.from_release("6.18.44-fc-v657")
R = 0.204


def predict(client, server, faults=(), sysctls=None):
    p = {
        h: TeardownParams.from_sysctls(
            K618, {f"net.ipv4.{k}": str(v) for k, v in (sysctls or {}).get(h, {}).items()}
        )
        for h in ("client", "server")
    }
    return predict_teardown(
        K618,
        p,
        {"client": 0.0005, "server": 0.0005},
        {"client": [Step(*s) for s in client], "server": [Step(*s) for s in server]},
        tuple(faults),
        until=30.0,
    )


def sent(pred, sender, name):
    return [(round(s.t, 4), s.cause, s.fate) for s in pred.of(sender, name)]


SERVER_READS = [("recv", 100), ("sleep", 5.0), ("close",)]


def test_a_lost_segment_alone_is_probed_once_at_the_probe_timeout():
    """tcp_schedule_loss_probe() with packets_out == 1: 2 srtt + rto_min, at most the
    RTO; tcp_send_loss_probe() re-sends the last (only) segment."""
    pred = predict(
        [("sleep", 0.5), ("send", 100), ("recv",)], SERVER_READS, [Fault("drop", "data", nth=(1,))]
    )
    assert sent(pred, "client", "data") == [(0.5, "app", "dropped"), (0.5 + R, "probe", "delivered")]
    # the probe's ACK ends it: no RTO retransmission follows
    assert [s.t for s in pred.of("server", "data-ack")] == pytest.approx([0.5 + R + 0.0002], abs=1e-3)


def test_a_lost_probe_is_followed_by_rtos_restarted_from_the_probe_then_backed_off():
    """The probe re-arms a full RTO from itself ("restart timer from now"), and each
    expiry of tcp_retransmit_timer() doubles it: copies at P + R, P + 3R."""
    pred = predict(
        [("sleep", 0.5), ("send", 100), ("recv",)], SERVER_READS, [Fault("drop", "data", nth=(1, 2, 3))]
    )
    assert sent(pred, "client", "data") == [
        (0.5, "app", "dropped"),
        (0.5 + R, "probe", "dropped"),
        (round(0.5 + 2 * R, 4), "timer", "dropped"),
        (round(0.5 + 4 * R, 4), "timer", "delivered"),
    ]


def test_a_lost_ack_of_data_draws_the_probe_and_an_ack_of_the_duplicate():
    """The receiver has the data: the probe is a duplicate, answered at once (its
    D-SACK ACK, tcp_send_dupack()/tcp_data_queue()), which ends the sender's timer."""
    pred = predict(
        [("sleep", 0.5), ("send", 100), ("recv",)], SERVER_READS, [Fault("drop", "data-ack", nth=(1,))]
    )
    assert sent(pred, "client", "data") == [(0.5, "app", "delivered"), (0.5 + R, "probe", "delivered")]
    assert [s.fate for s in pred.of("server", "data-ack")] == ["dropped", "delivered"]


def test_nagle_holds_a_small_send_until_the_loss_probe_sends_it():
    """tcp_nagle_check()/tcp_minshall_check(): the second byte waits while the first is
    unacknowledged (its ACK lost), and the loss probe sends it: new data first
    (tcp_send_loss_probe(): tcp_send_head() with TCP_NAGLE_OFF), not the first byte
    again (gen-21224 on 6.18: the second 100 bytes left 3 ms after send(), at the
    probe's moment, stamped TSval 205 ms after the first). The server's ACK of both
    ends it: no third segment."""
    pred = predict(
        [("send", 1), ("sleep", 0.05), ("send", 1), ("recv",)],
        [("recv", 2), ("sleep", 5.0), ("close",)],
        [Fault("drop", "data-ack", nth=(1,))],
    )
    assert sent(pred, "client", "data") == [(0.0, "app", "delivered"), (R, "probe", "delivered")]
    assert [s.fate for s in pred.of("server", "data-ack")] == ["dropped", "delivered"]


def test_without_the_lost_ack_the_second_small_send_is_not_held():
    pred = predict(
        [("send", 1), ("sleep", 0.05), ("send", 1), ("recv",)], [("recv", 2), ("sleep", 5.0), ("close",)]
    )
    assert [t for t, _c, _f in sent(pred, "client", "data")] == pytest.approx([0.0, 0.05])


def test_an_rto_resends_the_data_with_the_fin_collapsed_into_it():
    """The FIN after unacknowledged data is its own skb (tcp_send_fin()): the probe
    re-sends it alone (the last skb), the RTO re-sends the head with the FIN merged
    into it (tcp_retrans_try_collapse(); gen-4286 on 6.18: `peer-fin` with 1 byte). So
    the data is never re-sent on its own."""
    pred = predict(
        [("send", 1), ("sleep", 0.01), ("close",), ("sleep", 5.0)],
        [("recv", 1), ("recv",), ("close",)],
        [Fault("drop", "data-ack", nth=(1,)), Fault("drop", "fin", nth=(1, 2))],
    )
    assert sent(pred, "client", "data") == [(0.0, "app", "delivered")]
    fins = sent(pred, "client", "fin")
    # the probe for two segments out: 2 srtt + 2 ms, in jiffies, from the FIN
    assert fins[:2] == [(0.01, "first", "dropped"), (0.014, "probe", "dropped")]
    assert fins[2] == (round(0.014 + R, 4), "timer", "delivered")
    assert [s for _t, s in [(x.t, x.state) for x in pred.states["server"]]][0] == "CLOSE_WAIT"


def test_two_holes_at_once_are_declined():
    """One lost segment beyond which the peer SACKs is RACK's (test_model_teardown_sack.py);
    two holes at once are re-sent as proportional rate reduction allows, not modelled."""
    with pytest.raises(Unsupported, match="in holes at once"):
        predict(
            [("sleep", 0.5), ("send", 3000), ("recv",)],
            [("recv", 3000), ("sleep", 5.0), ("close",)],
            [Fault("drop", "data", nth=(1, 2))],
        )


def test_data_gives_up_after_tcp_retries2_and_the_app_sees_it():
    """tcp_write_timeout() for data while the app holds the socket: tcp_retries2's
    time (tcp_model_timeout: 1.4 s for 2 from the first RTO), checked at each expiry:
    the copies at +2R and +6R are within it, the expiry at +14R is past it: CLOSE
    then, no RST."""
    pred = predict(
        [("sleep", 0.5), ("send", 100), ("recv",)],
        [("sleep", 20.0)],
        [Fault("drop", "data")],
        {"client": {"tcp_retries2": 2}},
    )
    assert [s for _t, s in [(x.t, x.state) for x in pred.states["client"]]] == ["CLOSE"]
    first_rto = 0.5 + 2 * R
    assert pred.states["client"][0].t == pytest.approx(first_rto + 14 * R, abs=1e-3)
    assert not pred.of("client", "rst")
