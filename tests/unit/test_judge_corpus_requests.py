"""The server's requests on real records (seeds 7004, 7144 on 6.18), bent so that the
kernel would have done something else, which the judge must call a failure."""

from __future__ import annotations

from tests.unit.test_judge_corpus import drop_events, judge


def failed(res) -> list[str]:
    return [c.name for c in res.checks if c.judged and not c.passed]


def test_a_request_replaced_within_one_poll_is_seen_through_its_new_isn():
    res = judge("gen-7004")
    drops = [c for c in res.checks if c.name.startswith("model: server drops request")]
    assert res.verdict == "pass" and len(drops) == 3
    assert "a new request" in drops[0].evidence


def test_a_request_kept_where_the_model_replaces_it_is_a_failure():
    """SYN-ACKs #5 and #6 with the first request's ISN: the SYN reached the old request
    (inet_rtx_syn_ack()), so its first end seen is the drop at 7.1 s, not 4.07 s."""

    def keep(run):
        first = next(e["seq"] for e in run["events"] if e.get("name") == "syn-ack")
        events = [
            {**e, "seq": first} if e.get("name") == "syn-ack" and e.get("nth") in (5, 6) else e
            for e in run["events"]
        ]
        return {**run, "events": events}

    res = judge("gen-7004", keep)
    assert res.verdict == "fail"
    assert "model: server drops request #1 at" in failed(res)


def test_a_request_the_rst_did_not_drop_is_a_failure():
    """gen-7144: the client's RST (SO_LINGER 0) at the request's rcv_nxt drops it
    (tcp_check_req()); a record where it lived on must fail."""

    def lived(run):
        return drop_events(run, lambda e: not (e.get("from") == "SYN_RECV" and e.get("to") == "CLOSE"))

    assert judge("gen-7144").verdict == "pass"
    res = judge("gen-7144", lived)
    assert res.verdict == "fail"
    assert "model: server drops the request at" in failed(res)
