"""The scenario loader: YAML text -> Scenario, or exactly one ScenarioError with file,
line and key. No root needed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcplab.core.faults import Fault
from tcplab.core.scenario import Expect, HostExpect, Scenario, Step, Timing, Tolerance
from tcplab.errors import ScenarioError
from tcplab.format.load import discover, load_scenario, load_text

FULL = """\
$schema: ../schema.json
scenario: syn-lost
summary: The client's SYN is lost every time; it backs off and connect() fails.
claims: [H2, H16]
hosts:
  client:
    sysctls: {net.ipv4.tcp_syn_retries: 5, net.ipv4.tcp_rmem: "4096 87380 6291456"}
  router:
    sysctls: {}
apps:
  server: [listen: 8080, accept, recv, recv: 10, send: hello, shutdown: wr, close]
  client:
    - connect: server:8080
    - send: 1000
    - sleep: 250ms
    - close
faults:
  - drop: handshake-1
    nth: [3, 1]
    from: client
  - delay: syn-ack
    by: 1.5s
  - drop: fin
    nth: all
expect:
  client:
    connect: ETIMEDOUT
    close: ok
    retransmits:
      syn: {intervals: [1, 2, 4], offsets: [1, 3, 7], count: 3}
    sends: {teardown-1: 0}
    gives_up_after: 63
    states: [syn_sent, TCP_ESTABLISHED, FIN_WAIT_1, closed]
  server:
    accept: EAGAIN
    retransmits: {syn-ack: {count: 5}}
  model: linux
  tolerance: {abs: 10ms, rel: 5%}
timeout: 80s
settle: 2
"""

EXPECTED = Scenario(
    path="full.yaml",
    name="syn-lost",
    summary="The client's SYN is lost every time; it backs off and connect() fails.",
    claims=("H2", "H16"),
    sysctls={
        "client": {"net.ipv4.tcp_syn_retries": "5", "net.ipv4.tcp_rmem": "4096 87380 6291456"},
        "router": {},
        "server": {},
    },
    apps={
        "server": (
            Step("listen", 8080, 11),
            Step("accept", None, 11),
            Step("recv", None, 11),
            Step("recv", 10, 11),
            Step("send", "hello", 11),
            Step("shutdown", "wr", 11),
            Step("close", None, 11),
        ),
        "client": (
            Step("connect", ("server", 8080), 13),
            Step("send", 1000, 14),
            Step("sleep", 0.25, 15),
            Step("close", None, 16),
        ),
    },
    faults=(
        Fault("drop", "syn", (1, 3), "client", 0.0, 18),
        Fault("delay", "syn-ack", None, None, 1.5, 21),
        Fault("drop", "fin", None, None, 0.0, 23),
    ),
    expect=Expect(
        hosts={
            "client": HostExpect(
                calls={"connect": "ETIMEDOUT", "close": "ok"},
                retransmits={"syn": Timing((1.0, 2.0, 4.0), (1.0, 3.0, 7.0), 3, 30)},
                sends={"fin": 0},
                gives_up_after=63.0,
                states=("SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSE"),
                lines={
                    "connect": 27,
                    "close": 28,
                    "retransmits": 29,
                    "retransmits.syn": 30,
                    "sends": 31,
                    "sends.fin": 31,
                    "gives_up_after": 32,
                    "states": 33,
                },
            ),
            "server": HostExpect(
                calls={"accept": "EAGAIN"},
                retransmits={"syn-ack": Timing(None, None, 5, 36)},
                lines={"accept": 35, "retransmits": 36, "retransmits.syn-ack": 36},
            ),
        },
        model="linux",
        tolerance=Tolerance(abs=0.01, rel=0.05),
    ),
    timeout=80.0,
    settle=2.0,
)


def test_full_scenario_round_trips_into_the_dataclasses():
    assert load_text(FULL, "full.yaml") == EXPECTED


def test_the_design_sketch_loads(tmp_path):
    sketch = Path(__file__).resolve().parents[3] / "shared" / "docs" / "DESIGN.md"
    if not sketch.exists():
        pytest.skip("design notes not present")
    text = sketch.read_text().split("## Scenario file (sketch)")[1]
    text = text.split("```yaml\n")[1].split("```")[0]
    (tmp_path / "s.yaml").write_text(text)
    scenario = load_scenario(tmp_path / "s.yaml")
    assert scenario.faults == (Fault("drop", "syn", None, None, 0.0, 11),)
    assert scenario.expect.hosts["client"].retransmits["syn"].intervals == (1, 2, 4, 8, 16)


MINIMAL = """\
scenario: t
summary: s
apps:
  server: [listen: 8080, accept, close]
  client: [connect: server:8080, close]
"""  # five lines: text appended to it starts on line 6


def test_defaults():
    s = load_text(MINIMAL, "m.yaml")
    assert s.claims == () and s.faults == ()
    assert s.sysctls == {"client": {}, "router": {}, "server": {}}
    assert s.expect == Expect() and s.expect.tolerance == Tolerance()
    assert s.timeout == 60.0 and s.settle == 1.0
    assert s.path == "m.yaml"


@pytest.mark.parametrize(
    "alias, name",
    [
        ("handshake-1", "syn"),
        ("handshake-2", "syn-ack"),
        ("handshake-3", "ack"),
        ("teardown-1", "fin"),
        ("teardown-2", "fin-ack"),
        ("teardown-3", "peer-fin"),
        ("teardown-4", "last-ack"),
        ("data-ack", "data-ack"),
        ("rst", "rst"),
    ],
)
def test_segment_aliases(alias, name):
    s = load_text(MINIMAL + f"faults: [drop: {alias}]\n", "a.yaml")
    assert s.faults[0].segment == name


@pytest.mark.parametrize(
    "written, state",
    [
        ("CLOSED", "CLOSE"),
        ("SYN_RCVD", "SYN_RECV"),
        ("fin_wait_2", "FIN_WAIT2"),
        ("TCP_TIME_WAIT", "TIME_WAIT"),
        ("tcp_listen", "LISTEN"),
        ("CLOSE-WAIT", "CLOSE_WAIT"),
        ("last_ack", "LAST_ACK"),
        ("CLOSING", "CLOSING"),
    ],
)
def test_state_aliases(written, state):
    s = load_text(MINIMAL + f"expect:\n  server:\n    states: [{written}]\n", "a.yaml")
    assert s.expect.hosts["server"].states == (state,)


@pytest.mark.parametrize(
    "written, seconds",
    [
        ("1.5s", 1.5),
        ("200ms", 0.2),
        ("3", 3.0),
        ("0.25", 0.25),
        ("2m", 120.0),
        ("500us", 5e-4),
        ("1h", 3600.0),
        ('"90"', 90.0),
    ],
)
def test_durations(written, seconds):
    s = load_text(MINIMAL + f"timeout: {written}\n", "d.yaml")
    assert s.timeout == pytest.approx(seconds)


def test_anchors_and_aliases():
    text = """\
scenario: t
summary: s
hosts:
  client: {sysctls: &textbook {net.ipv4.tcp_syn_retries: 5}}
  server: {sysctls: *textbook}
apps:
  server: &steps [listen: 8080, accept, close]
  client: [connect: server:8080, close]
"""
    s = load_text(text, "a.yaml")
    assert s.sysctls["client"] == s.sysctls["server"] == {"net.ipv4.tcp_syn_retries": "5"}


def test_bare_form_with_empty_value_means_no_argument():
    s = load_text(MINIMAL.replace("accept, close]", "accept:, recv:, close:]"), "b.yaml")
    assert [(st.call, st.arg) for st in s.apps["server"]] == [
        ("listen", 8080),
        ("accept", None),
        ("recv", None),
        ("close", None),
    ]


def test_send_string_and_zero_bytes():
    s = load_text(
        MINIMAL.replace(
            "[connect: server:8080, close]", '[connect: server:8080, send: "100", send: 0, close]'
        ),
        "x",
    )
    assert [st.arg for st in s.apps["client"]][1:3] == ["100", 0]


# --- malformed input: (what, text, line, key, words in the message) ---------------------

M = MINIMAL
BAD = [
    ("top-level list", "- a\n- b\n", 1, "", "found a list"),
    ("top-level scalar", "hello\n", 1, "", "found the string 'hello'"),
    ("yaml syntax", "scenario: t\nsummary: [a, b\napps: x\n", 3, "", "expected ',' or ']'"),
    ("tab indentation", "scenario: t\n\tsummary: s\n", 2, "", "invalid YAML"),
    ("two documents", M + "---\nscenario: u\n", 6, "", "single document"),
    ("undefined alias", M + "claims: *nope\n", 6, "", "undefined alias"),
    ("NUL character", M + "claims: [H1]\x00\n", 6, "", "not allowed"),
    ("unknown top key", M + "sumary: x\n", 6, "sumary", "did you mean 'summary'"),
    ("duplicate key", M + "scenario: again\n", 6, "scenario", "duplicate key (first given at line 1)"),
    ("missing scenario", "summary: s\napps: {}\n", 1, "scenario", "missing"),
    ("missing apps", "scenario: t\nsummary: s\n", 1, "apps", "missing"),
    ("empty name", M.replace("scenario: t", 'scenario: ""'), 1, "scenario", "one-line scenario name"),
    ("name is a number", M.replace("scenario: t", "scenario: 12"), 1, "scenario", "found the number 12"),
    (
        "empty summary",
        M.replace("summary: s", "summary: ' '"),
        2,
        "summary",
        "expected a summary, found the string ' '",
    ),
    ("claims not a list", M + "claims: H2\n", 6, "claims", "expected a list"),
    ("bad claim id", M + "claims: [H2, X9]\n", 6, "claims[1]", "claim ID"),
    ("claim with newline", M + 'claims: ["H2\\n"]\n', 6, "claims[0]", "claim ID"),
    ("duplicate claim", M + "claims:\n  - H2\n  - H2\n", 8, "claims[1]", "listed twice"),
    ("unknown host", M + "hosts:\n  routr: {}\n", 7, "hosts.routr", "did you mean 'router'"),
    (
        "host without sysctls key",
        M + "hosts:\n  client: {sysctl: {}}\n",
        7,
        "hosts.client.sysctl",
        "did you mean 'sysctls'",
    ),
    (
        "non-net sysctl",
        M + "hosts:\n  client:\n    sysctls:\n      kernel.pid_max: 5\n",
        9,
        "hosts.client.sysctls.kernel.pid_max",
        "net.*",
    ),
    (
        "bool sysctl",
        M + "hosts:\n  client:\n    sysctls:\n      net.ipv4.tcp_sack: yes\n",
        9,
        "hosts.client.sysctls.net.ipv4.tcp_sack",
        "found the boolean yes",
    ),
    (
        "float sysctl",
        M + "hosts:\n  client:\n    sysctls:\n      net.ipv4.tcp_syn_retries: 1.5\n",
        9,
        "hosts.client.sysctls.net.ipv4.tcp_syn_retries",
        "found the number 1.5",
    ),
    (
        "nested duplicate key",
        M + "faults:\n  - drop: syn\n    drop: fin\n",
        8,
        "faults[0].drop",
        "duplicate key (first given at line 7)",
    ),
    (
        "connect argument",
        M.replace("[connect: server:8080, close]", "[connect: server:1, send: 1, connect: 8080]"),
        5,
        "apps.client[2].connect",
        "expected server:PORT",
    ),
    (
        "list sysctl",
        M + "hosts:\n  server:\n    sysctls:\n\n      net.ipv4.x: [1]\n",
        10,
        "hosts.server.sysctls.net.ipv4.x",
        "found a list",
    ),
    (
        "apps missing server",
        "scenario: t\nsummary: s\napps:\n  client: [connect: server:1]\n",
        4,
        "apps.server",
        "missing",
    ),
    (
        "apps unknown side",
        M.replace("  client:", "  router: [close]\n  client:"),
        5,
        "apps.router",
        "expected one of: client, server",
    ),
    ("empty step list", M.replace("[listen: 8080, accept, close]", "[]"), 4, "apps.server", "non-empty"),
    (
        "unknown call",
        M.replace("accept, close]", "acept, close]"),
        4,
        "apps.server[1]",
        "did you mean 'accept'",
    ),
    (
        "two calls in one step",
        "scenario: t\nsummary: s\napps:\n  server:\n    - listen: 1\n"
        "      accept: x\n  client: [connect: server:1]\n",
        5,
        "apps.server[0]",
        "one call per step",
    ),
    (
        "listen without port",
        M.replace("listen: 8080", "listen"),
        4,
        "apps.server[0].listen",
        "needs an argument",
    ),
    (
        "port as string",
        M.replace("listen: 8080", 'listen: "8080"'),
        4,
        "apps.server[0].listen",
        "remove the quotes",
    ),
    (
        "port out of range",
        M.replace("listen: 8080", "listen: 70000"),
        4,
        "apps.server[0].listen",
        "1 to 65535",
    ),
    ("port is a bool", M.replace("listen: 8080", "listen: true"), 4, "apps.server[0].listen", "boolean"),
    (
        "accept with argument",
        M.replace("accept,", "accept: 3,"),
        4,
        "apps.server[1].accept",
        "takes no argument",
    ),
    (
        "connect to the client",
        M.replace("server:8080, close", "client:8080, close"),
        5,
        "apps.client[0].connect",
        "cannot connect to itself",
    ),
    (
        "connect garbage",
        M.replace("server:8080, close", "8080, close"),
        5,
        "apps.client[0].connect",
        "server:PORT",
    ),
    (
        "connect on server",
        M.replace("[listen: 8080,", "[connect: server:1, listen: 8080,"),
        4,
        "apps.server[0].connect",
        "cannot connect to itself",
    ),
    (
        "listen on client",
        M.replace("[connect: server:8080,", "[listen: 1, connect: server:8080,"),
        5,
        "apps.client[0].listen",
        "only the server",
    ),
    (
        "no connect",
        M.replace("[connect: server:8080, close]", "[sleep: 1]"),
        5,
        "apps.client",
        "needs a connect",
    ),
    (
        "accept before listen",
        M.replace("[listen: 8080, accept,", "[accept, listen: 8080,"),
        4,
        "apps.server[0].accept",
        "earlier listen",
    ),
    (
        "send before connect",
        M.replace("[connect:", "[send: 1, connect:"),
        5,
        "apps.client[0].send",
        "needs a connection",
    ),
    (
        "send too big",
        M.replace("accept, close", "accept, send: 16777217"),
        4,
        "apps.server[2].send",
        "byte count",
    ),
    ("recv zero", M.replace("accept, close", "accept, recv: 0"), 4, "apps.server[2].recv", ">= 1"),
    (
        "bad shutdown",
        M.replace("accept, close", "accept, shutdown: write"),
        4,
        "apps.server[2].shutdown",
        "wr or rd or rdwr",
    ),
    (
        "negative sleep",
        M.replace("[connect: server:8080, close]", "[connect: server:1, sleep: -1]"),
        5,
        "apps.client[1].sleep",
        "duration",
    ),
    ("fault not a mapping", M + "faults:\n  - syn\n", 7, "faults[0]", "expected a mapping"),
    ("unknown segment", M + "faults:\n  - drop: synack\n", 7, "faults[0].drop", "did you mean 'syn-ack'"),
    ("drop and delay", M + "faults:\n  - {drop: syn, delay: syn, by: 1}\n", 7, "faults[0]", "both"),
    ("neither action", M + "faults:\n  - {nth: 1}\n", 7, "faults[0]", "neither"),
    ("nth zero", M + "faults:\n  - drop: syn\n    nth: 0\n", 8, "faults[0].nth", "from 1"),
    ("nth as string", M + "faults:\n  - drop: syn\n    nth: '2'\n", 8, "faults[0].nth", "remove the quotes"),
    ("nth too big", M + "faults:\n  - drop: syn\n    nth: [1, 1001]\n", 8, "faults[0].nth[1]", "1 to 1000"),
    (
        "nth repeated",
        M + "faults:\n  - drop: syn\n    nth:\n      - 2\n      - 2\n",
        10,
        "faults[0].nth[1]",
        "listed twice",
    ),
    ("nth empty list", M + "faults:\n  - drop: syn\n    nth: []\n", 8, "faults[0].nth", "non-empty"),
    ("nth bool", M + "faults:\n  - drop: syn\n    nth: yes\n", 8, "faults[0].nth", "boolean"),
    (
        "from a side that never sends it",
        M + "faults:\n  - drop: syn-ack\n    from: client\n",
        8,
        "faults[0].from",
        "only sent by the server",
    ),
    (
        "from router",
        M + "faults:\n  - drop: fin\n    from: router\n",
        8,
        "faults[0].from",
        "client or server",
    ),
    ("by on a drop", M + "faults:\n  - drop: syn\n    by: 1s\n", 8, "faults[0].by", "delay only"),
    ("delay without by", M + "faults:\n  - delay: syn\n", 7, "faults[0].by", "missing"),
    ("delay by zero", M + "faults:\n  - delay: syn\n    by: 0s\n", 8, "faults[0].by", "above 0"),
    (
        "delay longer than timeout",
        M + "timeout: 10s\nfaults:\n  - delay: syn\n    by: 10s\n",
        9,
        "faults[0].by",
        "below 10s",
    ),
    (
        "shadowed fault",
        M + "faults:\n  - drop: fin\n  - delay: teardown-1\n    nth: 2\n    by: 1\n",
        8,
        "faults[1]",
        "the fault at line 7 (drop fin nth=all)",
    ),
    (
        "shadowed by nth list",
        M + "faults:\n  - {drop: syn, nth: [1, 2]}\n  - {drop: syn, nth: 2}\n",
        8,
        "faults[1]",
        "never match",
    ),
    (
        "identical fault",
        M + "faults:\n  - {delay: syn, by: 1}\n  - {delay: syn, by: 1s}\n",
        8,
        "faults[1]",
        "same fault as the one at line 7",
    ),
    ("expect unknown key", M + "expect:\n  clinet: {}\n", 7, "expect.clinet", "did you mean 'client'"),
    ("model not linux", M + "expect:\n  model: bsd\n", 7, "expect.model", "linux"),
    (
        "bad errno",
        M + "expect:\n  client:\n    connect: ETIMEOUT\n",
        8,
        "expect.client.connect",
        "did you mean 'ETIMEDOUT'",
    ),
    (
        "errno alias",
        M + "expect:\n  client:\n    connect: EWOULDBLOCK\n",
        8,
        "expect.client.connect",
        "EAGAIN",
    ),
    ("call not in steps", M + "expect:\n  client:\n    send: ok\n", 8, "expect.client.send", "no send step"),
    (
        "sleep is not expectable",
        M + "expect:\n  client:\n    sleep: ok\n",
        8,
        "expect.client.sleep",
        "unknown key",
    ),
    (
        "retransmit of a segment the host never sends",
        M + "expect:\n  client:\n    retransmits:\n      syn-ack: {count: 1}\n",
        9,
        "expect.client.retransmits.syn-ack",
        "never sends syn-ack",
    ),
    (
        "retransmit empty timing",
        M + "expect:\n  client:\n    retransmits:\n      syn: {}\n",
        9,
        "expect.client.retransmits.syn",
        "at least one",
    ),
    (
        "retransmit interval garbage",
        M + "expect:\n  client:\n    retransmits:\n      syn:\n        intervals: [1, soon]\n",
        10,
        "expect.client.retransmits.syn.intervals[1]",
        "duration",
    ),
    (
        "offsets decreasing",
        M + "expect:\n  client:\n    retransmits:\n      syn:\n        offsets:\n          - 1\n"
        "          - 0.5\n",
        12,
        "expect.client.retransmits.syn.offsets[1]",
        "cannot decrease",
    ),
    (
        "count disagrees",
        M + "expect:\n  client:\n    retransmits:\n      syn:\n        intervals: [1, 2]\n        count: 3\n",
        11,
        "expect.client.retransmits.syn.count",
        "must agree",
    ),
    (
        "alias given twice",
        M + "expect:\n  client:\n    sends:\n      syn: 1\n      handshake-1: 2\n",
        10,
        "expect.client.sends.handshake-1",
        "given at line 9",
    ),
    (
        "sends negative",
        M + "expect:\n  server:\n    sends: {syn-ack: -1}\n",
        8,
        "expect.server.sends.syn-ack",
        ">= 0",
    ),
    (
        "unknown state",
        M + "expect:\n  client:\n    states: [SYN_SENT, ESTABLISH]\n",
        8,
        "expect.client.states[1]",
        "did you mean 'ESTABLISHED'",
    ),
    ("empty states", M + "expect:\n  client:\n    states: []\n", 8, "expect.client.states", "non-empty"),
    (
        "gives up after timeout",
        M + "expect:\n  client:\n    gives_up_after: 63\n",
        8,
        "expect.client.gives_up_after",
        "below 60s",
    ),
    (
        "tolerance unknown key",
        M + "expect:\n  tolerance: {abs: 1ms, rels: 5%}\n",
        7,
        "expect.tolerance.rels",
        "did you mean 'rel'",
    ),
    (
        "tolerance rel garbage",
        M + "expect:\n  tolerance: {rel: lots}\n",
        7,
        "expect.tolerance.rel",
        "percentage",
    ),
    ("timeout zero", M + "timeout: 0\n", 6, "timeout", "above 0"),
    ("timeout too long", M + "timeout: 2h\n", 6, "timeout", "at most 3600s"),
    ("timeout huge integer", M + "timeout: " + "9" * 400 + "\n", 6, "timeout", "duration"),
    ("settle too long", M + "settle: 11m\n", 6, "settle", "at most 600s"),
    ("settle null", M + "settle:\n", 6, "settle", "found nothing (null)"),
    ("odd tag", M + "timeout: !!binary aGVsbG8=\n", 6, "timeout", "the binary 'aGVsbG8='"),
    (
        "bad explicit int",
        M.replace("listen: 8080", "listen: !!int eighty"),
        4,
        "apps.server[0].listen",
        "port",
    ),
    ("date as name", M.replace("scenario: t", "scenario: 2024-01-01"), 1, "scenario", "timestamp"),
    (
        "merge key",
        M + "hosts:\n  client: &c {sysctls: {}}\n  server: {<<: *c}\n",
        8,
        "hosts.server",
        "merge keys (<<) are not supported",
    ),
    ("alias loop", M + "hosts: &h {client: *h}\n", 6, "hosts.client.client", "unknown key"),
    ("non-scalar key", M + "hosts:\n  ? [a]\n  : 1\n", 7, "hosts", "expected a name as key"),
]


@pytest.mark.parametrize("what, text, line, key, words", BAD, ids=[c[0] for c in BAD])
def test_malformed_input_names_file_line_and_key(what, text, line, key, words):
    with pytest.raises(ScenarioError) as caught:
        load_text(text, "bad.yaml")
    err = caught.value
    assert (err.line, err.key) == (line, key), str(err)
    assert words in err.message, str(err)
    assert "\n" not in str(err)
    where = f"bad.yaml:{line}: " + (f"{key}: " if key else "")
    assert str(err).startswith(where)


def test_enough_malformed_cases():
    assert len(BAD) >= 40


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n", "~\n"])
def test_empty_documents(text):
    with pytest.raises(ScenarioError) as caught:
        load_text(text, "e.yaml")
    assert "e.yaml" in str(caught.value)


def test_errors_from_files(tmp_path):
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(tmp_path / "absent.yaml")
    with pytest.raises(ScenarioError, match="is a directory"):
        load_scenario(tmp_path)
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(MINIMAL.encode() + "summary: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(bad)
    assert caught.value.line == 6 and "UTF-8" in caught.value.message
    (tmp_path / "bin.yaml").write_bytes(bytes(range(256)))
    with pytest.raises(ScenarioError):
        load_scenario(tmp_path / "bin.yaml")


def test_load_scenario_reads_a_file(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("\ufeff" + MINIMAL)  # a BOM is fine
    assert load_scenario(path).path == str(path)


def test_discover(tmp_path):
    for name in ["b/two.yaml", "a/one.yml", "a/notes.txt", "top.yaml", ".git/x.yaml", "a/.hidden.yaml"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(MINIMAL)
    extra = tmp_path / "a" / "notes.txt"
    found = discover([tmp_path, extra, tmp_path / "top.yaml"])
    assert found == [tmp_path / "a/one.yml", tmp_path / "b/two.yaml", tmp_path / "top.yaml", extra]
    with pytest.raises(ScenarioError, match="no such file or directory") as caught:
        discover([tmp_path / "missing"])
    assert caught.value.line is None


# --- fuzz: nothing but ScenarioError, whatever the input ---------------------------------


def _loads_or_scenario_error(text: str) -> None:
    try:
        assert isinstance(load_text(text, "fuzz.yaml"), Scenario)
    except ScenarioError as err:
        assert "\n" not in str(err)


@settings(max_examples=300, deadline=None, database=None)
@given(st.text())
def test_fuzz_text(text):
    _loads_or_scenario_error(text)


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary())
def test_fuzz_binary(data):
    _loads_or_scenario_error(data.decode("utf-8", errors="replace"))
    _loads_or_scenario_error(data.decode("latin-1"))


_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(
        ["all", "syn", "server:80", "1s", "ETIMEDOUT", "ok", "wr", "client", "linux", "12%", "net.ipv4.x"]
    )
)
_keys = st.sampled_from(
    [
        "scenario",
        "summary",
        "claims",
        "hosts",
        "apps",
        "faults",
        "expect",
        "timeout",
        "settle",
        "client",
        "server",
        "router",
        "sysctls",
        "drop",
        "delay",
        "nth",
        "from",
        "by",
        "listen",
        "connect",
        "retransmits",
        "intervals",
        "states",
        "sends",
        "tolerance",
    ]
) | st.text(max_size=8)
_trees = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(_trees)
def test_fuzz_random_structures(tree):
    _loads_or_scenario_error(yaml.safe_dump(tree))


VALID = yaml.safe_load(FULL)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


@settings(max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(_paths(VALID))[1:]), _trees)
def test_fuzz_one_part_of_a_valid_scenario(path, replacement):
    """Replacing any one subtree of a valid file reaches the deep checks."""
    doc = yaml.safe_load(FULL)
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = replacement
    _loads_or_scenario_error(yaml.safe_dump(doc, default_flow_style=False))


@pytest.mark.parametrize(
    "text",
    [
        "a: &a [*a, *a]\n",
        "a: &a {b: *a}\nscenario: *a\n",
        "[" * 5000 + "]" * 5000,
        "lol: &a [x, x, x]\nl2: &b [*a, *a, *a]\nl3: &c [*b, *b, *b]\napps: {client: *c, server: *c}\n",
    ],
)
def test_pathological_yaml(text):
    _loads_or_scenario_error(textwrap.dedent(text))


RANDOM = """scenario: r
summary: random loss
seed: 7
apps:
  server: [listen: 8080, accept, recv: 10000]
  client: [connect: "server:8080", send: 10000]
faults:
  - drop: data
    probability: {p}
  - delay: data-ack
    by: 20ms
    jitter: 5ms
  - drop: data
    nth: 3
"""


@pytest.mark.parametrize("p", ["30%", "0.3", "30.0 %"])
def test_random_faults_carry_probability_jitter_and_the_seed(p):
    sc = load_text(RANDOM.format(p=p), "r.yaml")
    loss, hold, third = sc.faults
    assert (sc.seed, loss.probability, loss.seed, loss.random) == (7, 0.3, 7, True)
    assert (hold.by, hold.jitter, hold.probability, hold.seed) == (0.02, 0.005, 1.0, 7)
    # a deterministic fault carries no seed; a random one shadows nothing after it
    assert (third.random, third.seed) == (False, None)


def test_one_hundred_percent_rolls_nothing_so_the_seed_is_a_mistake():
    with pytest.raises(ScenarioError) as e:
        load_text(
            RANDOM.format(p="100%")
            .replace("    jitter: 5ms\n", "")
            .replace("  - drop: data\n    nth: 3\n", ""),
            "r.yaml",
        )
    assert (e.value.line, e.value.key) == (3, "seed")
