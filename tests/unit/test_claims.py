"""The claims report: quantities read from constructed runs, the documents' numbers
compared only where the run keeps the documents' sysctls, verdicts per claim."""

from datetime import datetime, timezone

from tcplab.claims import (BY_ID, CLAIMS, Measure, agrees, build_report, claim_verdict,
                           observe, predict, render_markdown, shortened)


def seg(t, sender, name):
    return {"kind": "segment", "t": t, "from": sender, "name": name}


def state(t, host, old, new, lport=40000):
    return {"kind": "state", "t": t, "host": host, "from": old, "to": new,
            "laddr": "198.18.0.2", "lport": lport, "raddr": "198.19.0.2", "rport": 8080}


def run(name, claims, events, verdict="pass", model=None, kernel="6.18.44"):
    return {"scenario": name, "file": f"scenarios/x/{name}.yaml", "claims": claims,
            "verdict": verdict, "kernel": kernel, "events": events, "model": model,
            "checks": [{"name": "a", "passed": verdict == "pass"}], "errors": [],
            "duration": 1.0}


MODERN = run("syn-lost-modern", ["H2"], [
    {"kind": "app", "host": "client", "call": "connect", "t": 0.001, "t_end": 133.5,
     "result": "ETIMEDOUT"},
    *[seg(t, "client", "syn") for t in (0.0, 1.02, 2.04, 3.06, 4.08, 5.1, 7.12)]],
    model={"segments": [{"t": t, "from": "client", "name": "syn"} for t in (0, 1, 2, 3)],
           "calls": {"client connect": {"result": "ETIMEDOUT", "t_end": 131.0}}})


def test_all_36_claims_are_listed_once():
    ids = [c.id for c in CLAIMS]
    expected = ([f"H{i}" for i in range(1, 17)] + [f"T{i}" for i in range(1, 13)]
                + [f"F{i}" for i in range(1, 9)])
    assert ids == expected and len(BY_ID) == 36


def test_observe_and_predict_a_call_duration_and_offsets():
    give_up, offsets = BY_ID["H2"].measures[1], BY_ID["H2"].measures[0]
    assert observe(give_up, MODERN) == {"value": 133.499, "detail": "ETIMEDOUT"}
    assert predict(give_up, MODERN)["value"] == 130.999  # from the call's observed start
    assert observe(offsets, MODERN)["value"] == [1.02, 2.04, 3.06, 4.08, 5.1, 7.12]
    assert predict(offsets, MODERN)["value"] == [1, 2, 3]


def test_state_duration_follows_one_socket_and_says_when_it_never_ended():
    m = Measure("TIME_WAIT lasts", 60.0, "state", "client", "TIME_WAIT")
    events = [state(1.0, "client", "FIN_WAIT2", "TIME_WAIT"),
              state(2.0, "client", "FIN_WAIT2", "TIME_WAIT", lport=40001),
              state(30.0, "client", "TIME_WAIT", "CLOSE", lport=40001),  # another socket
              state(61.5, "client", "TIME_WAIT", "CLOSE")]
    assert observe(m, {"events": events})["value"] == 60.5
    unfinished = {"events": events[:3]}
    assert observe(m, unfinished) == {"value": 29.0, "detail": "still there when the run ended"}
    assert observe(m, {"events": []}) is None


def test_retransmits_count_the_sends_after_the_first():
    m = Measure("SYN-ACK retransmissions", 5.0, "retransmits", "server", "syn-ack")
    res = {"events": [seg(t, "server", "syn-ack") for t in (0, 1, 3)] + [seg(0, "client", "syn")]}
    assert observe(m, res)["value"] == 2


def test_agreement_allows_timer_lateness_but_not_a_different_schedule():
    assert agrees(63.0, 63.9)  # wheel lateness
    assert not agrees(63.0, 133.5)
    assert agrees((1, 3, 7), [1.01, 3.03, 7.06, 15.2])
    assert not agrees((1, 3, 7, 15, 31), [1.02, 2.04, 3.06])  # linear timeouts
    assert not agrees((1, 3), [1.0])  # fewer than documented


def test_a_fast_variant_is_not_compared_with_the_documents():
    m = BY_ID["H2"].measures[1]
    assert shortened(m, {"client": {"net.ipv4.tcp_syn_retries": "2"}}) == ["tcp_syn_retries=2"]
    assert shortened(m, {"client": {"net.ipv4.tcp_syn_retries": "5",
                                    "net.ipv4.tcp_syn_linear_timeouts": "0"}}) == []
    assert shortened(m, {"server": {"net.ipv4.tcp_fin_timeout": "5"}}) == []


def test_report_says_where_documents_and_kernel_differ():
    fast = run("syn-lost-fast", ["H2"], [
        {"kind": "app", "host": "client", "call": "connect", "t": 0.0, "t_end": 7.1,
         "result": "ETIMEDOUT"}])
    scenarios = {"syn-lost-modern": (("H2",), {}),
                 "syn-lost-fast": (("H2",), {"client": {"net.ipv4.tcp_syn_retries": "2"}}),
                 "teardown-normal": (("T1",), {})}
    report = build_report([MODERN, fast], scenarios, "6.18.44", 250, "0.1.0",
                          now=datetime(2026, 11, 21, tzinfo=timezone.utc))
    h2 = next(c for c in report["claims"] if c["id"] == "H2")
    modern, fast_row = h2["runs"]
    (offsets, give_up) = modern["measures"]
    assert not give_up["documents_hold"] and give_up["observed"] == 133.499
    assert "63" in give_up["sentence"] and "133.499" in give_up["sentence"]
    assert fast_row["measures"][0]["comparable"] is False
    assert "tcp_syn_retries=2" in fast_row["measures"][0]["sentence"]
    verdicts = {c["id"]: c["verdict"] for c in report["claims"]}
    assert verdicts["H2"] == "pass" and verdicts["T1"] == "not run"
    assert verdicts["F8"] == "no scenario"
    md = render_markdown(report)
    assert "Linux **6.18.44** (HZ=250)" in md
    assert "| H2 | pass |" in md and "| F8 | no scenario |" in md
    assert "Linux 6.18.44 did 133.499 (ETIMEDOUT)" in md


def test_claim_verdict_takes_the_worst_run():
    assert claim_verdict([{"verdict": "pass"}, {"verdict": "fail"}], True) == "fail"
    assert claim_verdict([{"verdict": "fail"}, {"verdict": "error"}], True) == "error"
    assert claim_verdict([], True) == "not run"
    assert claim_verdict([], False) == "no scenario"


def test_claims_and_list_commands_from_saved_results(tmp_path):
    """`tcplab claims --results` builds the report from saved runs (no root), and
    `tcplab list --claims` shows its verdicts next to the claims without a scenario."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    saved = tmp_path / "results"
    saved.mkdir()
    failing = dict(run("syn-lost-modern", ["H2"], MODERN["events"], verdict="fail"),
                   model=MODERN["model"])
    (saved / "syn-lost-modern.json").write_text(json.dumps(failing))
    md, js = tmp_path / "claims.md", tmp_path / "claims.json"

    def tcplab(*args):
        return subprocess.run([sys.executable, "-m", "tcplab", *args, "--no-color"],
                              capture_output=True, text=True, cwd=root, timeout=60,
                              env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})

    proc = tcplab("claims", "--results", str(saved), "--out", str(md), "--json", str(js))
    assert proc.returncode == 1, proc.stdout + proc.stderr  # a claim failed
    report = json.loads(js.read_text())
    assert {c["id"]: c["verdict"] for c in report["claims"]}["H2"] == "fail"
    assert "## H2 — fail" in md.read_text()
    listing = tcplab("list", "--claims", "--report", str(js))
    assert listing.returncode == 0, listing.stderr
    rows = {line.split("│")[1].strip(): line for line in listing.stdout.splitlines()
            if line.count("│") >= 3}
    assert "fail" in rows["H2"] and "syn-lost-modern" in rows["H2"]
    for claim in report["claims"]:  # every claim has a row with the report's verdict
        assert claim["verdict"] in rows[claim["id"]], rows[claim["id"]]


def test_predictions_of_later_phases_are_read_too():
    """The teardown model keeps its own segments and a per-host state sequence."""
    tw = Measure("TIME_WAIT lasts", 60.0, "state", "client", "TIME_WAIT")
    fin = BY_ID["T3"].measures[0]
    res = {"events": [], "model": {"segments": [], "teardown": {
        "segments": [{"t": 0.1, "from": "client", "name": "fin"},
                     {"t": 0.304, "from": "client", "name": "fin"}],
        "states": {"client": [{"t": 0.1, "state": "FIN_WAIT1"},
                              {"t": 0.2, "state": "TIME_WAIT"},
                              {"t": 60.2, "state": "CLOSE"}]}}}}
    assert predict(tw, res)["value"] == 60.0
    assert predict(fin, res)["value"] == [0.204]
    assert predict(Measure("x", 1.0, "state", "server", "LAST_ACK"), res) is None
