"""The judge on real records of a hole in the data (core/model/teardown/sack.py): the
receiver's out-of-order queue and SACK, and the sender's RACK re-sending what fell
into it. Runs of seeds 2000-7299 on Linux 6.18 that the teardown model declined
before ("beyond a hole", "overtakes its data held by the router"), judged now, and
the same records bent the way a kernel doing otherwise would have left them."""

from __future__ import annotations

from tests.unit.retime import moved as retimed
from tests.unit.test_judge_corpus import failed_names, judge


def segment(run: dict, sender: str, name: str, nth: int) -> dict:
    return next(
        e
        for e in run["events"]
        if e.get("kind") == "segment"
        and e.get("from") == sender
        and e.get("name") == name
        and e.get("nth") == nth
    )


def moved(sender: str, name: str, nth: int, by: float):
    """The run with one segment sent `by` later (and released as much later)."""

    def bend(run: dict) -> dict:
        return retimed(run, [segment(run, sender, name, nth)], by)

    return bend


def check(res, name: str):
    return next(c for c in res.checks if c.name == name)


def test_a_fin_beyond_a_hole_waits_for_the_data_and_rack_resends_it():
    """gen-7003: the server's 1448 bytes dropped, its FIN 0.25 ms behind them reached
    the client's FIN_WAIT2 beyond the hole: queued, SACKed at once (the client's
    data-ack); the server re-sent the data on that SACK (RACK, 0.05 ms later); the
    filled hole let the FIN through: one ACK of everything and TIME_WAIT."""
    res = judge("gen-7003")
    assert res.verdict == "pass" and all(c.judged for c in res.checks)
    rack = check(res, "model: server data #2 re-sent by RACK at")
    assert rack.passed
    states = check(res, "model: client states after ESTABLISHED")
    assert states.actual[-1] == "TIME_WAIT"


def test_a_resend_at_the_rto_instead_is_a_failure():
    """gen-3213 with the re-sent 1448 bytes 200 ms later, as if only the RTO had found
    the loss: RACK re-sends them on the SACK of the byte behind them."""
    assert check(judge("gen-3213"), "model: client data #3 re-sent by RACK at").passed
    res = judge("gen-3213", moved("client", "data", 3, 0.2))
    assert failed_names(res) == ["model: client data #3 re-sent by RACK at"]


def test_a_fin_taken_before_the_hole_filled_is_a_failure():
    """gen-3122: the client's 4 bytes dropped, its FIN 0.15 ms behind them; the server
    SACKed the FIN and took it only with the re-sent bytes: one fin-ack, CLOSE_WAIT
    after the hole filled. Bent with an ACK of the FIN right after the FIN came: the
    kernel does not see a FIN queued out of order (tcp_fin() runs from tcp_ofo_queue()),
    so it has nothing to acknowledge it with before the hole fills."""
    res = judge("gen-3122")
    assert res.verdict == "pass" and all(c.judged for c in res.checks)

    def bend(run: dict) -> dict:
        fin = segment(run, "client", "fin", 1)
        ack = segment(run, "server", "fin-ack", 1)
        early = {**ack, "t": fin["t_out"] + 0.0001, "t_out": fin["t_out"] + 0.0002}
        later = {**ack, "nth": 2}
        return {**run, "events": [e for e in run["events"] if e is not ack] + [early, later]}

    assert "model: server fin-ack count" in failed_names(judge("gen-3122", bend))


def test_a_burst_with_its_head_dropped_is_judged():
    """gen-6110: 1448 + 1448 + 104 bytes and the FIN, the first segment dropped; the
    server SACKed each of the rest; RACK re-sent the head, the FIN was taken with the
    hole's filling (CLOSE_WAIT, one fin-ack), and the close ran on."""
    res = judge("gen-6110")
    assert res.verdict == "pass" and all(c.judged for c in res.checks)
    assert check(res, "model: client data #4 re-sent by RACK at").passed


def test_a_held_segment_that_fills_the_hole_first_stops_the_reordering_timer():
    """gen-2056: data #2 held 1 ms, #3 and #4 (sent with it, microseconds apart)
    SACKed: the reordering window was not yet over, so RACK armed its timer, and the
    held segment filled the hole before it fired: nothing re-sent. The model has both
    ways (the window is the kernel's min_rtt/4, which the router cannot measure)."""
    res = judge("gen-2056")
    assert res.verdict == "pass"
    states = check(res, "model: client states after ESTABLISHED")
    assert "RACK waited for its reordering timer" in states.evidence


def test_the_filled_hole_hands_recv_n_only_n_bytes():
    """gen-3213: recv(1448) waited while the 1448 bytes were lost; the 1 byte sent 0.2 s
    later came first (queued), then RACK's resend filled the hole: recv() took its
    1448, the last byte stayed unread, and close() sent an RST (tcp_close())."""
    res = judge("gen-3213")
    assert res.verdict == "pass"
    assert check(res, "model: server rst count").passed


def test_a_sack_of_a_probe_is_not_guessed():
    """gen-7197: the loss probe re-sent the last segment, whose SACK came back 0.3 ms
    later; RACK takes such a SACK only if that RTT is at least min_rtt
    (tcp_rack_advance()), and here it did not (the RTO re-sent the hole 200 ms on).
    The router cannot measure min_rtt that closely: not judged, and said so."""
    res = judge("gen-7197")
    teardown = check(res, "model: not judged: teardown")
    assert "sent more than once" in teardown.actual


def test_the_give_up_after_racks_resend_is_judged():
    """gen-3021: every data segment of the client's dropped, its FIN SACKed; RACK
    re-sent the 14 bytes at once, the RTOs 0.2, 0.6 and 1.5 s later, and with
    tcp_retries2 = 3 the expiry 3.1 s after the RACK resend gave up
    (retrans_stamp from tcp_retransmit_skb()), not one more RTO on."""
    res = judge("gen-3021")
    assert res.verdict == "pass" and all(c.judged for c in res.checks)
    assert check(res, "model: client data #2 re-sent by RACK at").passed


def test_an_rst_at_the_right_edge_of_the_sack_resets():
    """gen-3003: the client's 1448 + 1448 + 104 bytes, the middle segment dropped, then
    close() with SO_LINGER 0: its RST (seq = snd_nxt) reached the server at the right
    edge of the SACK block it held, which resets like one at rcv_nxt
    (tcp_validate_incoming(), RFC 5961 3.2 extended to SACK): no challenge ACK, and the
    client's RSTs answer only the server's two ACKs (the rule's own test, which fails
    without it: test_model_teardown_sack.py)."""
    res = judge("gen-3003")
    assert res.verdict == "pass" and all(c.judged for c in res.checks)


def test_an_rst_beyond_a_hole_draws_a_challenge_ack():
    """gen-6080: the client's 536 bytes held 1.5 s, then its abort's RST (beyond the
    hole, nothing SACKed): the server answered with a challenge ACK at rcv_nxt
    (tcp_send_challenge_ack()), the closed client with an RST there, held 2 s too by
    the router, and so on: 4 RSTs from the client. Without the challenge ACK's RST, 3."""
    res = judge("gen-6080")
    assert res.verdict == "pass" and all(c.judged for c in res.checks)

    def bend(run: dict) -> dict:
        rst = segment(run, "client", "rst", 2)
        return {**run, "events": [e for e in run["events"] if e is not rst]}

    assert "model: client rst count" in failed_names(judge("gen-6080", bend))
