"""`tcplab demo` without root: how --slow turns into holds (read back through the same
decide() the router's hook uses), which scenarios it must not slow (the kernel model
and the RTO rules), the tour's order and its usage errors."""

import subprocess
import sys
import textwrap
from pathlib import Path

from tcplab.core.faults import DELAY, DROP
from tcplab.core.rules import decide
from tcplab.core.segments import Classifier, Segment
from tcplab.demo import connect_shift, not_slowable, runnable, slowed, tour_order
from tcplab.format.load import load_scenario

ROOT = Path(__file__).resolve().parents[2]
C, S = "198.18.7.2", "198.19.7.2"


def scenario(tmp_path, body, name="s"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(body))
    return load_scenario(path)


HANDSHAKE_DELAYED = """\
    # a claim
    scenario: held
    summary: The SYN is dropped once and the SYN-ACK held 300 ms.
    apps:
      server: [listen: 8080, accept]
      client: [connect: "server:8080"]
    faults:
      - drop: syn
        nth: 1
      - delay: syn-ack
        by: 300ms
    expect:
      client:
        connect: ok
    timeout: 10s
    settle: 200ms
"""


def classify(*segments):
    clf = Classifier({C})
    return [clf.classify(s) for s in segments]


def test_slow_holds_every_segment_and_adds_to_the_scenarios_own_delay(tmp_path):
    sc = slowed(scenario(tmp_path, HANDSHAKE_DELAYED), 0.2)
    syn1, syn2, synack, ack, data = classify(
        Segment(C, 40000, S, 8080, 0x02, 1000, 0, 0),
        Segment(C, 40000, S, 8080, 0x02, 1000, 0, 0),
        Segment(S, 8080, C, 40000, 0x12, 5000, 1001, 0),
        Segment(C, 40000, S, 8080, 0x10, 1001, 5001, 0),
        Segment(C, 40000, S, 8080, 0x18, 1001, 5001, 5),
    )
    first = decide(sc.faults, syn1)
    assert first.action == DROP  # the scenario's own fault still decides first
    for seen, held in ((syn2, 0.2), (synack, 0.5), (ack, 0.2), (data, 0.2)):
        verdict = decide(sc.faults, seen)
        assert (verdict.action, round(verdict.delay, 6)) == (DELAY, held), seen.name
    # Held segments released after the apps finish still belong to the run.
    assert sc.settle > 0.2 + 2 * 0.2 and sc.timeout > 10


def test_a_refused_connect_is_expected_one_slowed_round_trip_later(tmp_path):
    sc = scenario(
        tmp_path,
        """\
        # refused
        scenario: refused
        summary: Nobody listens.
        apps:
          server: [sleep: 500ms]
          client: [connect: "server:8080"]
        expect:
          client:
            connect: ECONNREFUSED
            gives_up_after: 0s
          tolerance: {abs: 50ms}
        timeout: 10s
    """,
    )
    shift, why = connect_shift(sc, 0.2)
    assert abs(shift - 0.4) < 0.01 and "ECONNREFUSED" in why  # SYN held, then the RST
    moved = slowed(sc, 0.2, shift)
    assert abs(moved.expect.hosts["client"].gives_up_after - 0.4) < 0.01
    assert not_slowable(sc, 0.2) is None


def test_a_timed_out_connect_is_not_moved(tmp_path):
    sc = scenario(
        tmp_path,
        """\
        # lost
        scenario: lost
        summary: Every SYN is lost.
        hosts:
          client:
            sysctls: {net.ipv4.tcp_syn_retries: 2}
        apps:
          server: [listen: 8080]
          client: [connect: "server:8080"]
        faults:
          - drop: syn
        expect:
          client:
            connect: ETIMEDOUT
        timeout: 15s
    """,
    )
    assert connect_shift(sc, 0.3)[0] == 0.0  # dropped segments are never held


def test_rto_and_round_trip_timings_are_not_slowed(tmp_path):
    fin = scenario(
        tmp_path,
        """\
        # fin
        scenario: fin
        summary: FINs are lost.
        apps:
          server: [listen: 8080, accept, sleep: 3s]
          client: [connect: "server:8080", close, sleep: 3s]
        faults:
          - drop: fin
        expect:
          client:
            retransmits:
              fin: {offsets: [204ms]}
        timeout: 10s
    """,
    )
    assert "RTO" in not_slowable(fin, 0.1)


def test_the_model_refuses_holds_that_would_change_the_handshake(tmp_path):
    # The ACK is held 500 ms: it reaches the server at 0.8 s, before its SYN-ACK timer
    # (1 s). Held 0.1 s more at every hop it arrives just as that timer fires (1.1 s).
    sc = scenario(
        tmp_path,
        """\
        # late ack
        scenario: late-ack
        summary: The SYN-ACK is held 300 ms and the ACK 500 ms.
        apps:
          server: [listen: 8080, accept, sleep: 1s]
          client: [connect: "server:8080", sleep: 1s]
        faults:
          - delay: syn-ack
            by: 300ms
          - delay: ack
            by: 500ms
        expect:
          client:
            connect: ok
        timeout: 10s
    """,
    )
    assert not_slowable(sc, 0.05) is None
    assert "model" in not_slowable(sc, 0.15)


def test_tour_shows_each_folders_normal_case_first_and_skips_long_ones():
    paths = [ROOT / "scenarios" / "handshake" / f for f in ("no-listener.yaml", "normal.yaml")]
    paths.append(ROOT / "scenarios" / "teardown" / "normal.yaml")
    loaded = [load_scenario(p) for p in paths]
    assert [Path(sc.path).stem for sc in tour_order(loaded)] == ["normal", "no-listener", "normal"]
    long = load_scenario(ROOT / "scenarios" / "handshake" / "syn-lost.yaml")
    assert "--all" in runnable(long, all_=False)


def test_slow_beyond_the_initial_rto_is_a_usage_error():
    proc = subprocess.run(
        [sys.executable, "-m", "tcplab", "demo", "--slow", "5", "scenarios/handshake/normal.yaml"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 2 and "--slow" in proc.stderr


def test_pause_waits_for_enter_and_q_stops(monkeypatch):
    import builtins
    import io

    from rich.console import Console

    from tcplab.demo import pause

    console = Console(file=io.StringIO())
    answers = iter(["", "q"])
    monkeypatch.setattr(builtins, "input", lambda *a: next(answers))
    assert pause(console, last=False) is True
    assert pause(console, last=False) is False

    def eof(*a):
        raise EOFError

    monkeypatch.setattr(builtins, "input", eof)
    assert pause(console, last=False) is True  # no keyboard (a pipe): go on
    assert pause(console, last=True) is True  # never waits after the last one
