"""Random faults and the judging (issue 16): the model never rolls dice; it judges the
opening when no random fault can reach it and says what it leaves unjudged; the
scenario's own `resent` and `received` are judged on constructed records."""

import dataclasses

from tcplab.core.check.base import verdict
from tcplab.core.check.expect import check_scenario
from tcplab.core.check.model import check_model
from tcplab.core.faults import DROP, Fault
from tcplab.core.model.kernel import Kernel
from tcplab.core.model.predict import predict
from tcplab.core.record import Record
from tcplab.core.scenario import Expect, HostExpect, Scenario, Step
from tcplab.core.segments import Classifier
from unit.helpers import ACK, C, X, Y, c2s, handshake, s2c

K618 = Kernel.from_release("6.18.44", 250)
T0 = 1000.0
DATA_LOSS = Fault(DROP, "data", sender="client", probability=0.3, seed=16)


def scenario(faults, client=None, server=None) -> Scenario:
    client, server = client or HostExpect(), server or HostExpect()
    return Scenario(
        path="x.yaml",
        name="x",
        summary="",
        claims=(),
        sysctls={},
        apps={
            "client": (Step("connect", ("server", 8080)), Step("send", 3000)),
            "server": (Step("listen", 8080), Step("accept"), Step("recv", 3000)),
        },
        faults=tuple(faults),
        expect=Expect(hosts={"client": client, "server": server}, model="linux"),
        timeout=30,
        seed=16,
    )


def record(segs, fates=None) -> Record:
    """The segments at 1 ms apart, connect() and the server's recv() as they went."""
    rec, clf = Record(t0=T0), Classifier({C})
    for i, seg in enumerate(segs):
        seen, t = clf.classify(seg), T0 + i * 0.001
        fate = (fates or {}).get(i, "delivered")
        rec.add_segment(
            {
                "mono": t,
                "id": i,
                "name": seen.name,
                "nth": seen.nth,
                "sender": seen.sender,
                "flags": seg.flags,
                "seq": seg.seq,
                "ack": seg.ack,
                "length": seg.length,
                "fate": fate,
                "retransmission": seen.retransmission,
                "conn": seen.conn,
                "mono_out": None if fate == "dropped" else t,
                "src": seg.src,
                "dst": seg.dst,
                "sport": seg.sport,
                "dport": seg.dport,
                "roll": 0.1 if fate == "dropped" else None,
            }
        )
    connect = {"call": "connect", "arg": ["server", 8080]}
    rec.app_started("client", {"mono": T0, **connect})
    rec.app_finished("client", {"mono": T0, "mono_end": T0 + 0.0015, **connect, "result": "ok"})
    recv = {"call": "recv", "arg": 3000}
    rec.app_started("server", {"mono": T0, **recv})
    rec.app_finished(
        "server", {"mono": T0, "mono_end": T0 + 0.02, **recv, "result": "ok", "detail": "3000 bytes"}
    )
    return rec


def transfer():
    """The handshake, then 3 data segments of 1000 bytes, the second lost once."""
    x, y = X + 1, Y + 1
    return [
        *handshake(),
        c2s(ACK, x, y, 1000),
        c2s(ACK, x + 1000, y, 1000),
        c2s(ACK, x + 2000, y, 1000),
        s2c(ACK, y, x + 1000),
        c2s(ACK, x + 1000, y, 1000),
        s2c(ACK, y, x + 3000),
    ], {4: "dropped"}


def test_dice_on_the_opening_leave_the_model_nothing_to_judge():
    sc = scenario([Fault(DROP, "syn", probability=0.5, seed=16)])
    pred = predict(sc, K618, {})
    assert pred.segments == [] and pred.unjudged[0][0] == "everything"
    assert "drop syn nth=all probability=50% seed=16" in pred.unjudged[0][1]
    checks = check_model(pred, record(*transfer()))
    assert [c.name for c in checks] == ["model: not judged: everything"]
    assert verdict(checks) == "error"  # nothing judged: never a pass, never a fail
    assert pred.to_json()["not_judged"][0]["what"] == "everything"


def test_a_certain_fault_on_the_ack_makes_the_datas_dice_reach_the_opening():
    pred = predict(scenario([Fault(DROP, "ack", nth=(1,)), DATA_LOSS]), K618, {})
    assert pred.unjudged[0][0] == "everything"


def test_dice_on_the_data_the_opening_is_judged_the_rest_is_not():
    sc = scenario([DATA_LOSS])
    segs, fates = transfer()
    rec = record(segs, fates)
    pred = predict(sc, K618, {}, rec)
    assert pred.teardown is None and pred.established == []
    assert {(p.sender, p.name) for p in pred.segments} == {
        ("client", "syn"),
        ("server", "syn-ack"),
        ("client", "ack"),
    }
    checks = check_model(pred, rec)
    names = [c.name for c in checks]
    assert names[0].startswith("model: not judged: the teardown, the RST count")
    assert "model: client syn count" in names and "model: client connect()" in names
    assert not any(" rst " in n for n in names)  # the RSTs are nobody's to count
    assert verdict(checks) == "pass", [c for c in checks if not c.passed]


def test_the_opening_judged_can_fail():
    """Judged means it could have failed: a second SYN the model did not foresee."""
    segs, fates = transfer()
    segs = [segs[0], *segs]
    rec = record(segs, {k + 1: v for k, v in fates.items()})
    checks = check_model(predict(scenario([DATA_LOSS]), K618, {}, rec), rec)
    assert verdict(checks) == "fail"


def test_resent_and_received():
    segs, fates = transfer()
    rec = record(segs, fates)
    sc = scenario(
        [DATA_LOSS], client=HostExpect(resent={"data": (1, None)}), server=HostExpect(received=3000)
    )
    got = {c.name: c for c in check_scenario(sc, rec)}
    assert got["client resends data"].passed and got["client resends data"].actual == 1
    assert got["server received"].passed and got["server received"].actual == 3000
    strict = dataclasses.replace(
        sc,
        expect=Expect(
            hosts={"client": HostExpect(resent={"data": (2, 5)}), "server": HostExpect(received=4000)}
        ),
    )
    got = {c.name: c for c in check_scenario(strict, rec)}
    assert not got["client resends data"].passed and got["client resends data"].expected == "2 to 5"
    assert not got["server received"].passed
