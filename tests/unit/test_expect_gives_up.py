"""A scenario's own `gives_up_after` for a call that retransmitted on an established
connection (core/check/expect.py _gives_up): written as a chain of rto_min for a path
that adds nothing, it runs longer on a path with an RTT (a TCG guest's 12-30 ms). A
miss within that path's share is not judged; a bigger one, an early one, or a
connect()'s (SYNs wait a fixed 1 s), stays a fail. Constructed records; the chain's
times are server-host-crash-fast's, run 1 on 6.18, stretched where the path is slow."""

from scapy.layers.inet import IP, TCP

from tcplab.core.check.expect import check_scenario
from tcplab.core.events import AppCalled, StateChanged
from tcplab.core.model.kernel import Kernel
from tcplab.core.record import Record
from tcplab.core.scenario import Expect, HostExpect, Scenario, Step
from unit.helpers import seen

K61 = Kernel.from_release("6.1.0-50-cloud-amd64")
# the data, its tail loss probe and 5 RTOs (server-host-crash-fast on 6.18)
CRASH = [2.0043, 2.2117, 2.4197, 2.8557, 3.6877, 5.3517, 8.8397]


def stamped(flags: str, tsval: int) -> str:
    """A segment's bytes (hex, as the record keeps them) with a TSval."""
    return bytes(
        IP(src="10.0.0.1", dst="10.0.0.2") / TCP(flags=flags, options=[("Timestamp", (tsval, 0))])
    ).hex()


def seg(t, sender, name, flags, nth=1, fate="delivered", length=0, raw=""):
    return seen(t, sender, name, flags, nth, fate, length, raw=raw)


def crash_record(rtt_ms: int, gave_up_after: float, call: str = "recv") -> Record:
    """A handshake whose RTT the client's kernel took as `rtt_ms` (its TSvals; the
    router saw 0.3 ms, as when the client's own way out is the slow part), the data's
    chain dropped, and the call ending ETIMEDOUT `gave_up_after` s after it began."""
    r = Record(t0=0.0)
    r.segments = [
        seg(0.001, "client", "syn", 0x02, raw=stamped("S", 1000)),
        seg(0.0012, "server", "syn-ack", 0x12),
        seg(0.0013, "client", "ack", 0x10, raw=stamped("A", 1000 + rtt_ms)),
    ] + [seg(t, "client", "data", 0x18, i + 1, "dropped", 100) for i, t in enumerate(CRASH)]
    r.tracepoint_states = [StateChanged(0.001, "client", "SYN_SENT", "ESTABLISHED", "tracepoint", rport=8080)]
    start = CRASH[0] - 0.0001
    r.apps.append(
        AppCalled(
            t=start, host="client", call=call, arg=None, result="ETIMEDOUT", t_end=start + gave_up_after
        )
    )
    r.t_stop = 30.0
    return r


def gives_up(rec: Record):
    sc = Scenario(
        "x.yaml",
        "x",
        "",
        (),
        {"client": {"net.ipv4.tcp_retries2": "5"}},
        {"client": (Step("connect", ("server", 8080)), Step("sleep", 2.0), Step("send", 100), Step("recv"))},
        (),
        Expect(hosts={"client": HostExpect(gives_up_after=13.0)}),
        30.0,
    )
    (check,) = [c for c in check_scenario(sc, rec, K61) if c.name == "client gives up after"]
    return check


def test_on_time_passes():
    check = gives_up(crash_record(0, 13.1))
    assert check.passed and check.judged


def test_late_by_a_slow_paths_share_is_not_judged():
    # TSvals 12 ms apart: the sample was up to 13 ms, R up to 216 ms, 8 % over rto_min,
    # up to 1.04 s over 13 s; the window (12.5 % of the 6.8 s after the last
    # retransmission) ends at 13.85 s
    check = gives_up(crash_record(12, 13.9))
    assert not check.judged and check.error, check
    assert "RTO on this path was 216 ms" in str(check.actual) and "seen 13.9" in str(check.actual)


def test_the_same_lateness_on_a_fast_path_is_a_fail():
    # TSvals 0 ms apart: up to 1 ms, R up to 204 ms (a jiffy), up to 0.26 s over; 14.4 s
    # is 0.55 s past the window
    check = gives_up(crash_record(0, 14.4))
    assert check.judged and not check.passed, check


def test_later_than_the_paths_share_is_a_fail():
    check = gives_up(crash_record(12, 15.2))  # 0.31 s past 13.85 + 1.04
    assert check.judged and not check.passed, check


def test_early_is_a_fail_however_slow_the_path():
    check = gives_up(crash_record(30, 11.5))
    assert check.judged and not check.passed, check


def test_a_connect_is_not_stretched():
    check = gives_up(crash_record(12, 13.9, call="connect"))
    assert check.judged and not check.passed, check
