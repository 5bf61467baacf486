"""`tcplab new` (flags, prompts, what it refuses), `tcplab explain CLAIM`, the shipped
catalogue found by name, and the --json of list and doctor. No root: the file `new`
writes is run for real by tests/lab (and was, for the README)."""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcplab import catalogue
from tcplab.cli import new as new_command
from tcplab.cli.main import cli
from tcplab.errors import ScenarioError
from tcplab.format.load import load_scenario

ROOT = Path(__file__).resolve().parents[2]


def invoke(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_new_from_flags_writes_a_commented_file_that_loads(tmp_path):
    path = tmp_path / "sub" / "lost-synack.yaml"
    res = invoke(
        "new",
        str(path),
        "--segment",
        "syn-ack",
        "--fault",
        "drop",
        "--nth",
        "1,2",
        "--sysctl",
        "server:net.ipv4.tcp_synack_retries=3",
        "--client",
        "send",
        "--claim",
        "h3",
    )
    assert res.exit_code == 0, res.output
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0].startswith("# H3: ") and "yaml-language-server: $schema=" in lines[1]
    schema = (path.parent / lines[1].split("$schema=")[1]).resolve()
    assert schema == (ROOT / "schema" / "scenario.schema.json").resolve()
    sc = load_scenario(path)
    assert sc.name == "lost-synack" and sc.claims == ("H3",)
    assert [(f.action, f.segment, f.nth) for f in sc.faults] == [("drop", "syn-ack", (1, 2))]
    assert sc.sysctls["server"] == {"net.ipv4.tcp_synack_retries": "3"}
    assert [s.call for s in sc.apps["client"]] == ["connect", "send", "sleep", "close"]
    assert sc.expect.model == "linux"
    assert sum(line.lstrip().startswith("#") or " # " in line for line in lines) >= 10


def test_the_timeout_comes_from_the_model(tmp_path):
    """Every SYN dropped with the defaults takes the kernel minutes to give up (6 SYN
    retries, 127 s or more): the timeout must let the run see that."""
    quick, slow = tmp_path / "quick.yaml", tmp_path / "slow.yaml"
    assert invoke("new", str(quick)).exit_code == 0
    assert invoke("new", str(slow), "--nth", "all").exit_code == 0
    assert load_scenario(quick).timeout == 15
    assert load_scenario(slow).timeout > 130


def test_new_asks_on_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(new_command, "interactive", lambda: True)
    path = tmp_path / "asked.yaml"
    # segment, fault, nth, by (asked: a delay), sysctls, client, server, claim
    answers = "fin\ndelay\nall\n300ms\nclient:net.ipv4.tcp_fin_timeout=3\nconnect\naccept\n\n"
    res = invoke("new", str(path), input=answers)
    assert res.exit_code == 0, res.output
    assert "Which segment does the router break" in res.output
    sc = load_scenario(path)
    assert [(f.action, f.segment, f.nth, f.by) for f in sc.faults] == [("delay", "fin", None, 0.3)]
    assert sc.sysctls["client"] == {"net.ipv4.tcp_fin_timeout": "3"} and sc.claims == ()


def test_new_asks_nothing_off_a_terminal_and_skips_by_for_a_drop(tmp_path, monkeypatch):
    monkeypatch.setattr(new_command, "interactive", lambda: True)
    path = tmp_path / "partly.yaml"
    res = invoke(
        "new",
        str(path),
        "--segment",
        "syn",
        "--fault",
        "drop",
        "--nth",
        "2",
        "--client",
        "connect",
        "--server",
        "listen",
        "--claim",
        "",
        "--sysctl",
        "client:net.ipv4.tcp_syn_retries=2",
    )
    assert res.exit_code == 0 and "?" not in res.output and ":" in res.output
    assert "by:" not in path.read_text()


@pytest.mark.parametrize(
    "args, says",
    [
        (("--nth", "0"), ":16: faults[0].nth: expected all, an occurrence number"),
        (
            ("--sysctl", "client:kernel.pid_max=5"),
            ": hosts.client.sysctls.kernel.pid_max: expected a per-namespace sysctl name",
        ),
        (("--sysctl", "nohost=1"), "--sysctl: expected HOST:NAME=VALUE"),
        (("--claim", "H99"), "H99: no such claim"),
        (("--fault", "delay", "--by", "soon"), "faults[0].by: expected a duration"),
    ],
)
def test_bad_answers_are_one_line_exit_2_and_nothing_written(tmp_path, args, says):
    path = tmp_path / "bad.yaml"
    res = CliRunner().invoke(cli, ["new", str(path), *args])
    assert res.exit_code != 0 and isinstance(res.exception, ScenarioError)
    assert says in str(res.exception) and not path.exists()


def test_new_does_not_overwrite(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("mine")
    res = CliRunner().invoke(cli, ["new", str(path)])
    assert isinstance(res.exception, ScenarioError) and path.read_text() == "mine"
    assert invoke("new", "--force", str(path)).exit_code == 0 and path.read_text() != "mine"


def test_explain_a_claim_lists_its_scenarios():
    res = invoke("explain", "--no-color", "H2")
    assert res.exit_code == 0
    assert res.output.startswith("H2: A lost SYN is retransmitted")
    for name in ("syn-lost-fast", "syn-lost-modern", "syn-lost "):
        assert name in res.output
    assert "3 scenarios citing H2" in res.output
    bad = CliRunner().invoke(cli, ["explain", "H99"])
    assert isinstance(bad.exception, ScenarioError) and "no such claim" in str(bad.exception)


@pytest.mark.parametrize(
    "name, found",
    [
        ("syn-lost-fast", "handshake/syn-lost-fast.yaml"),
        ("handshake/normal", "handshake/normal.yaml"),
        ("teardown/normal.yaml", "teardown/normal.yaml"),
        ("handshake-normal", "handshake/normal.yaml"),  # its scenario: name
    ],
)
def test_a_shipped_scenario_by_name(name, found):
    assert catalogue.resolve(name).as_posix().endswith("scenarios/" + found)


def test_a_name_two_files_have_or_none_has():
    with pytest.raises(ScenarioError, match="handshake/normal, teardown/normal"):
        catalogue.resolve("normal")
    with pytest.raises(ScenarioError, match="nor a shipped scenario"):
        catalogue.resolve("no-such-scenario")
    # a path that is plainly a path is a missing file, not a name
    assert catalogue.resolve_all(["./nope.yaml", "a/b/c.yaml"]) == ["./nope.yaml", "a/b/c.yaml"]


def test_the_catalogue_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = catalogue.scenarios_dir()
    assert shipped.is_absolute() and (shipped / "handshake" / "normal.yaml").is_file()
    res = invoke("list", "--json")
    listed = json.loads(res.output)
    assert len(listed) == len(list((ROOT / "scenarios").rglob("*.yaml")))
    assert all(os.path.isfile(row["file"]) for row in listed)


def test_list_json_in_the_checkout():
    listed = json.loads(invoke("list", "--json").output)
    normal = next(r for r in listed if r["scenario"] == "handshake-normal")
    assert normal == {
        "scenario": "handshake-normal",
        "file": "scenarios/handshake/normal.yaml",
        "claims": ["H1"],
        "timeout": normal["timeout"],
        "model": "linux",
    }
    claims = json.loads(invoke("list", "--claims", "--json").output)
    assert {c["claim"] for c in claims} >= {"H1", "H2", "T1", "F8"}
    assert next(c for c in claims if c["claim"] == "H2")["scenarios"] == [
        "syn-lost-fast",
        "syn-lost-modern",
        "syn-lost",
    ]


def test_doctor_json():
    res = CliRunner().invoke(cli, ["doctor", "--json"])
    report = json.loads(res.output)
    assert res.exit_code == (0 if report["ok"] else 3)
    names = [f["name"] for f in report["findings"]]
    assert "root" in names and "kernel" in names
    assert all(set(f) == {"name", "ok", "fatal", "detail", "fix"} for f in report["findings"])
