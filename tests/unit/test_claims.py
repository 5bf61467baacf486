"""The claims report: each comparison yields `differs` on a constructed run where the
kernel disagrees with the documents and `holds` where it agrees; fast variants are not
tested; kernels side by side; the committed report regenerates byte for byte from the
committed evidence."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tcplab.claims import BY_ID, CLAIMS, build_report, render_markdown
from tcplab.claims.evidence import load, pack
from tcplab.claims.judge import DIFFERS, HOLDS, UNTESTED, agree, judge_claim, judge_run
from tcplab.claims.record import Run, Seen, _mss_option
from tcplab.claims.claim import Comparison

ROOT = Path(__file__).resolve().parents[2]
CLIENT, SERVER = "198.18.0.2", "198.19.0.2"


# --- constructing runs --------------------------------------------------------------------


def seg(t, sender, name, fate="delivered", **kw):
    return {"kind": "segment", "t": t, "from": sender, "name": name, "fate": fate, **kw}


def st(t, host, old, new, port=40000, source="tracepoint"):
    local, remote = (CLIENT, SERVER) if host == "client" else (SERVER, CLIENT)
    lport, rport = (port, 8080) if host == "client" else (8080, port)
    return {
        "kind": "state",
        "t": t,
        "host": host,
        "source": source,
        "laddr": local,
        "lport": lport,
        "raddr": remote,
        "rport": rport,
        "from": old,
        "to": new,
    }


def app(t, host, call, result="ok", t_end=None, arg=None, counters=None):
    return {
        "kind": "app",
        "t": t,
        "host": host,
        "call": call,
        "arg": arg,
        "result": result,
        "t_end": t if t_end is None else t_end,
        "counters": counters,
    }


def result(
    name, claims, events, sysctls=None, model=None, verdict="pass", kernel="6.18.44", started=1796300000.0
):
    return {
        "scenario": name,
        "file": f"scenarios/x/{name}.yaml",
        "claims": claims,
        "verdict": verdict,
        "kernel": kernel,
        "sysctls": sysctls or {},
        "events": sorted(events, key=lambda e: e["t"]),
        "model": model,
        "checks": [{"name": "a", "passed": verdict == "pass"}],
        "errors": [],
        "notes": [],
        "duration": 10.0,
        "started": started,
    }


def row(claim_id, label, res, pins=None):
    """The one row of comparison `label` for this run."""
    c = next(c for c in BY_ID[claim_id].comparisons if c.label.startswith(label))
    return judge_run(c, res, pins or {})


def outcome(claim_id, label, res, pins=None):
    found = row(claim_id, label, res, pins)
    return found and found["outcome"]


SYN_DEFAULTS_618 = {"client": {"net.ipv4.tcp_syn_retries": "6", "net.ipv4.tcp_syn_linear_timeouts": "4"}}


def syn_lost(times, give_up, sysctls, kernel="6.18.44"):
    return result(
        "syn-lost-modern",
        ["H2"],
        [
            app(0.0, "client", "connect", "ETIMEDOUT", give_up),
            *[seg(t, "client", "syn", "dropped", seq=7) for t in times],
        ],
        sysctls=sysctls,
        kernel=kernel,
    )


MODERN = syn_lost((0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67), 133.5, SYN_DEFAULTS_618)
TEXTBOOK = syn_lost(
    (0, 1, 3, 7, 15.1, 31.2), 63.9, {"client": {"net.ipv4.tcp_syn_retries": "5"}}, kernel="5.4.0"
)


# --- the table ---------------------------------------------------------------------------


def test_all_36_claims_each_with_a_comparison():
    ids = [c.id for c in CLAIMS]
    assert ids == (
        [f"H{i}" for i in range(1, 17)] + [f"T{i}" for i in range(1, 13)] + [f"F{i}" for i in range(1, 9)]
    )
    assert all(c.comparisons for c in CLAIMS)
    hows = {cmp.how for c in CLAIMS for cmp in c.comparisons}
    assert hows == {"equal", "near", "at_least", "forever", "contains", "mss"}


# --- each kind of comparison, both ways ----------------------------------------------------


def test_near_a_schedule_and_a_give_up_time_H2():
    """63 s and 1, 3, 7, 15, 31 s: Linux 6.18's defaults differ, and the reason names
    the mechanisms and versions; a kernel doing the textbook holds."""
    give_up = row("H2", "connect() fails after", MODERN)
    assert give_up["outcome"] == DIFFERS and give_up["observed"] == 133.5
    assert "6.5" in give_up["note"] and "3.7" in give_up["note"]
    assert "4 + 2^7 - 1 = 131 s" in give_up["note"]
    assert outcome("H2", "SYN retransmits at", MODERN) == DIFFERS
    assert outcome("H2", "connect() fails after", TEXTBOOK) == HOLDS
    assert outcome("H2", "SYN retransmits at", TEXTBOOK) == HOLDS
    # One retransmission more than documented is a difference, not a pass.
    longer = syn_lost((0, 1, 3, 7, 15, 31, 63), 127.0, {"client": {}})
    assert outcome("H2", "SYN retransmits at", longer) == DIFFERS


def test_equal_retransmitted_SYNs_keep_their_sequence_number_H2():
    assert outcome("H2", "retransmitted SYNs' sequence", MODERN) == HOLDS
    changed = dict(MODERN, events=MODERN["events"] + [seg(90.0, "client", "syn", seq=8)])
    assert outcome("H2", "retransmitted SYNs' sequence", changed) == DIFFERS


def test_a_fast_variant_or_a_TCP_SYNCNT_step_does_not_test_the_documents_number():
    pins = {"client": {"net.ipv4.tcp_syn_retries": "2", "net.ipv4.tcp_syn_linear_timeouts": "0"}}
    fast = row("H2", "connect() fails after", syn_lost((0, 1, 3), 7.05, pins), pins)
    assert fast["outcome"] == UNTESTED and "tcp_syn_retries=2" in fast["note"]
    # Pinning the documents' own value (5) is fine; pinning linear timeouts away is not.
    ok = {"client": {"net.ipv4.tcp_syn_retries": "5"}}
    assert outcome("H2", "connect() fails after", TEXTBOOK, ok) == HOLDS
    syncnt = dict(MODERN, events=MODERN["events"] + [app(0.0, "client", "syncnt", arg=1)])
    assert outcome("H2", "connect() fails after", syncnt) == UNTESTED


def test_equal_an_errno_F3():
    def down(errno, times):
        return result(
            "network-down",
            ["F3"],
            [
                app(2.0, "client", "recv", errno, 16.9),
                *[seg(2.0 + t, "client", "data", "dropped") for t in times],
            ],
            sysctls={"client": {"net.ipv4.tcp_retries2": "5"}},
        )

    reverted = (0, 0.206, 0.414, 0.84, 1.67, 3.33, 4.96, 8.28, 11.6)
    doubling = (0, 0.206, 0.414, 0.84, 1.67, 3.33, 6.6, 13.2)
    assert outcome("F3", "recv() fails with", down("ENETUNREACH", reverted)) == DIFFERS
    assert "sk_err_soft" in row("F3", "recv()", down("ENETUNREACH", reverted))["note"]
    assert outcome("F3", "recv() fails with", down("ETIMEDOUT", doubling)) == HOLDS
    # "ignored" against "acted on": a backoff undone is the ICMP acted on.
    assert row("F3", "retransmission backoffs", down("x", reverted))["observed"] == 2
    assert outcome("F3", "retransmission backoffs", down("x", reverted)) == DIFFERS
    assert outcome("F3", "retransmission backoffs", down("x", doubling)) == HOLDS


def test_backoffs_at_the_rto_cap_are_not_undone():
    times = [0, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 102.4, 204.8, 324.8, 444.8]
    run = Run.observed(result("x", [], [seg(t, "client", "data") for t in times]))
    from tcplab.claims.record import backoffs_undone

    assert backoffs_undone(run, "client", "data").value == 0


def test_equal_a_count_read_against_the_runs_own_setting_H10_and_F1():
    def queue(established, somaxconn="2"):
        events = [app(0.0, "server", "listen", arg={"port": 8080, "backlog": 128})]
        events += [
            st(0.1 + i / 10, "server", "SYN_RECV", "ESTABLISHED", 40000 + i) for i in range(established)
        ]
        return result(
            "accept-queue-full",
            ["H10"],
            events,
            sysctls={"server": {"net.core.somaxconn": somaxconn, "net.ipv4.tcp_abort_on_overflow": "0"}},
        )

    assert outcome("H10", "connections queued", queue(3)) == DIFFERS
    assert "sk_acceptq_is_full" in row("H10", "connections queued", queue(3))["note"]
    assert outcome("H10", "connections queued", queue(2)) == HOLDS
    assert outcome("H10", "connections queued", queue(3, somaxconn="3")) == HOLDS
    assert outcome("H10", "the handshake that finds", queue(3)) == HOLDS  # no RST: dropped

    def crash(copies):
        return result(
            "server-host-crash-fast",
            ["F1"],
            [seg(t, "client", "data", "dropped") for t in range(copies)],
            sysctls={"client": {"net.ipv4.tcp_retries2": "5"}},
        )

    assert outcome("F1", "data retransmissions", crash(7)) == DIFFERS  # a TLP + 5 RTOs
    assert "tail loss probe" in row("F1", "data retransmissions", crash(7))["note"]
    assert outcome("F1", "data retransmissions", crash(6)) == HOLDS


def test_equal_the_segment_that_answers_F6_and_T9():
    def closed(answer):
        return result(
            "port-closed", ["F6"], [seg(2.0, "client", "data", t_out=2.0005), seg(2.0008, "server", answer)]
        )

    assert outcome("F6", "the client's data", closed("rst")) == HOLDS
    assert outcome("F6", "the client's data", closed("data-ack")) == DIFFERS
    nothing = result("port-closed", ["F6"], [seg(2.0, "client", "data")])
    assert row("F6", "the client's data", nothing)["observed"] == "nothing"
    # T9: the *retransmitted* FIN (the 2nd copy) is the one that must draw the RST.
    tw = result(
        "no-time-wait",
        ["T9"],
        [
            seg(0.1, "server", "peer-fin"),
            seg(0.11, "client", "last-ack", "dropped"),
            seg(0.3, "server", "peer-fin"),
            seg(0.31, "client", "last-ack"),
        ],
    )
    assert outcome("T9", "a retransmitted FIN", tw) == DIFFERS


def test_equal_what_a_call_or_a_state_waited_for_H8_H7():
    def handshake(connect_end):
        return result(
            "connect-vs-accept",
            ["H8"],
            [
                seg(0.0, "client", "syn"),
                seg(0.001, "server", "syn-ack", "delayed", t_out=0.3),
                seg(0.3002, "client", "ack", "delayed", t_out=0.8),
                seg(0.9, "server", "data"),
                app(0.0, "client", "connect", t_end=connect_end),
                app(0.0, "server", "accept", t_end=0.8005),
            ],
        )

    assert outcome("H8", "connect() returns on", handshake(0.301)) == HOLDS
    assert outcome("H8", "accept() returns on", handshake(0.301)) == HOLDS
    assert outcome("H8", "connect() returns on", handshake(0.95)) == DIFFERS

    def data_completes(last):
        return result(
            "ack-lost-then-data",
            ["H7"],
            [
                seg(0.0, "client", "syn"),
                seg(0.001, "server", "syn-ack"),
                seg(0.002, "client", "ack", "dropped"),
                seg(0.1, "client", "data"),
                seg(1.0, "client", "ack"),
                st(0.0, "client", "CLOSE", "SYN_SENT"),
                st(0.002, "client", "SYN_SENT", "ESTABLISHED"),
                st(last, "server", "LISTEN", "SYN_RECV"),
                st(last, "server", "SYN_RECV", "ESTABLISHED"),
            ],
        )

    assert outcome("H7", "the server is ESTABLISHED on", data_completes(0.1001)) == HOLDS
    assert outcome("H7", "the server is ESTABLISHED on", data_completes(1.0001)) == DIFFERS


def test_contains_a_state_sequence_T10():
    def close(middle):
        return result(
            "simultaneous-close",
            ["T10"],
            [
                st(0.0, "client", "CLOSE", "SYN_SENT"),
                st(0.01, "client", "SYN_SENT", "ESTABLISHED"),
                st(0.1, "client", "ESTABLISHED", "FIN_WAIT1"),
                st(0.16, "client", "FIN_WAIT1", middle),
                st(0.22, "client", middle, "TIME_WAIT"),
            ],
        )

    assert outcome("T10", "client states", close("CLOSING")) == HOLDS
    assert outcome("T10", "client states", close("FIN_WAIT2")) == DIFFERS


def test_forever_a_state_no_timer_ends_T5_F7():
    def half_close(end):
        events = [
            app(0.1, "client", "shutdown"),
            st(0.1, "client", "ESTABLISHED", "FIN_WAIT1"),
            st(0.101, "client", "FIN_WAIT1", "FIN_WAIT2"),
        ]
        if end:
            events.append(st(end, "client", "FIN_WAIT2", "CLOSE", source="inet_diag"))
        res = result(
            "shutdown-half-close", ["T5"], events, sysctls={"client": {"net.ipv4.tcp_fin_timeout": "3"}}
        )
        res["observation"] = {"t_stop": 11.6}
        return res

    assert outcome("T5", "FIN_WAIT2 after shutdown", half_close(None)) == HOLDS
    assert outcome("T5", "FIN_WAIT2 after shutdown", half_close(3.1)) == DIFFERS
    assert outcome("T5", "FIN_WAIT2 after close()", half_close(3.1)) is None  # not a close()

    def idle_server(end):
        events = [st(0.0, "server", "SYN_RECV", "ESTABLISHED")]
        events += [st(end, "server", "ESTABLISHED", "CLOSE")] if end else []
        res = result("client-crash-no-keepalive", ["F7"], events)
        res["observation"] = {"t_stop": 21.0}
        return res

    assert outcome("F7", "without keepalive", idle_server(None)) == HOLDS
    assert outcome("F7", "without keepalive", idle_server(15.0)) == DIFFERS


def test_near_a_timer_and_a_state_cut_short_T5_T8():
    def fin_wait2(lasted, stop=100.0):
        events = [app(0.1, "client", "close"), st(0.1, "client", "FIN_WAIT1", "FIN_WAIT2")]
        if lasted is not None:
            events.append(st(0.1 + lasted, "client", "FIN_WAIT2", "CLOSE", source="inet_diag"))
        res = result(
            "fin-wait2-timeout", ["T5"], events, sysctls={"client": {"net.ipv4.tcp_fin_timeout": "60"}}
        )
        res["observation"] = {"t_stop": stop}
        return res

    assert outcome("T5", "FIN_WAIT2 after close()", fin_wait2(60.9)) == HOLDS
    assert outcome("T5", "FIN_WAIT2 after close()", fin_wait2(75.0)) == DIFFERS
    assert outcome("T5", "FIN_WAIT2 after close()", fin_wait2(45.0)) == DIFFERS
    # The run stopped at 30 s, still in FIN_WAIT2: it cannot tell.
    assert outcome("T5", "FIN_WAIT2 after close()", fin_wait2(None, stop=30.0)) == UNTESTED
    # ... but one that outlived the documented 60 s by far differs already.
    assert outcome("T5", "FIN_WAIT2 after close()", fin_wait2(None, stop=90.0)) == DIFFERS


def test_at_least_a_counter_H11():
    def flood(sent):
        return result(
            "syn-flood-syncookies",
            ["H11"],
            [
                app(0.0, "server", "netstat", counters={}),
                app(8.0, "server", "netstat", counters={"SyncookiesSent": sent}),
            ],
        )

    assert outcome("H11", "SYN cookies sent", flood(184)) == HOLDS
    assert outcome("H11", "SYN cookies sent", flood(0)) == DIFFERS


def test_mss_the_largest_segment_against_the_option_the_server_saw_H15():
    head = "45000034f47740003f06cf20c612f602c613f602dd4e1f902f40102d000000008002faf0"
    mss_1460 = head + "bfa50000020405b4010104020103030a"  # a SYN as the client sent it
    stripped = head + "c55b000001010101010104020103030a"  # as the router let it go: NOPs
    assert _mss_option(bytes.fromhex(mss_1460)) == 1460
    assert _mss_option(bytes.fromhex(stripped)) == 0

    def mss(largest):
        return result(
            "mss",
            ["H15"],
            [
                seg(0.0, "client", "syn", raw=mss_1460, raw_out=stripped),
                seg(0.01, "server", "data", len=largest),
                seg(0.011, "server", "data", len=248),
            ],
        )

    assert outcome("H15", "server's largest", mss(536)) == HOLDS
    assert outcome("H15", "server's largest", mss(1460)) == DIFFERS


def test_sequence_numbers_a_SYN_and_a_FIN_take_H1_T1():
    def handshake(ack):
        return result(
            "handshake-normal",
            ["H1"],
            [
                seg(0.0, "client", "syn", seq=100, len=0, flags="S"),
                seg(0.001, "server", "syn-ack", seq=900, ack=ack, len=0, flags="SA"),
            ],
        )

    assert outcome("H1", "sequence numbers the SYN takes", handshake(101)) == HOLDS
    assert outcome("H1", "sequence numbers the SYN takes", handshake(102)) == DIFFERS


def test_unprompted_the_third_ACK_is_never_retransmitted_H5():
    def ack_lost(extra_ack):
        events = [
            seg(0.0, "server", "syn-ack", t_out=0.0001),
            seg(0.001, "client", "ack", "dropped"),
            seg(1.0, "server", "syn-ack", t_out=1.0001),
            seg(1.001, "client", "ack", "dropped"),
        ]
        events += [seg(1.5, "client", "ack", "dropped")] if extra_ack else []
        return result("ack-lost-fast", ["H5"], events)

    assert outcome("H5", "client ACKs sent with no", ack_lost(False)) == HOLDS
    assert outcome("H5", "client ACKs sent with no", ack_lost(True)) == DIFFERS


def test_holders_only_the_active_closer_has_TIME_WAIT_T8():
    def teardown(server_too):
        events = [seg(0.1, "client", "fin"), st(0.3, "client", "FIN_WAIT2", "TIME_WAIT")]
        events += [st(0.31, "server", "LAST_ACK", "TIME_WAIT")] if server_too else []
        return result("teardown-normal", ["T1"], events)

    assert outcome("T8", "hosts with a TIME_WAIT", teardown(False)) == HOLDS
    assert outcome("T8", "hosts with a TIME_WAIT", teardown(True)) == DIFFERS


def test_after_last_TIME_WAIT_restarts_on_each_FIN_copy_T7():
    def last_ack_lost(ends):
        return result(
            "last-ack-lost",
            ["T7"],
            [
                st(0.3, "client", "FIN_WAIT2", "TIME_WAIT"),
                seg(0.3, "server", "peer-fin"),
                seg(13.4, "server", "peer-fin"),
                st(ends, "client", "TIME_WAIT", "CLOSE"),
            ],
        )

    assert outcome("T7", "TIME_WAIT lasts after", last_ack_lost(74.9)) == HOLDS
    assert outcome("T7", "TIME_WAIT lasts after", last_ack_lost(60.4)) == DIFFERS  # not restarted


def test_the_model_column_reads_the_prediction_with_the_same_reader():
    model = {
        "segments": [{"t": t, "from": "client", "name": "syn"} for t in (0, 1, 2, 3)],
        "calls": {"client connect": {"result": "ETIMEDOUT", "t_end": 131.0}},
    }
    found = row("H2", "connect() fails after", dict(MODERN, model=model))
    assert found["model"] == 131.0 and found["observed"] == 133.5
    assert row("H2", "SYN retransmits at", dict(MODERN, model=model))["model"] == [1, 2, 3]


def test_agree_rules_directly():
    near = Comparison("x", None, "client", documented=60.0, how="near")
    assert agree(near, 60.0, Seen(62.9)) and not agree(near, 60.0, Seen(63.1))
    assert agree(near, 60.0, Seen(20.0, ended=False)) is None
    assert agree(near, 60.0, Seen(70.0, ended=False)) is False


# --- claims, kernels, reports ----------------------------------------------------------------

CATALOGUE = {
    "syn-lost-modern": {"file": "scenarios/handshake/syn-lost-modern.yaml", "claims": ["H2"], "sysctls": {}},
    "syn-lost-fast": {
        "file": "scenarios/handshake/syn-lost-fast.yaml",
        "claims": ["H2"],
        "sysctls": {"client": {"net.ipv4.tcp_syn_retries": "2", "net.ipv4.tcp_syn_linear_timeouts": "0"}},
    },
    "teardown-normal": {"file": "scenarios/teardown/normal.yaml", "claims": ["T1"], "sysctls": {}},
}


def test_a_claim_holds_only_when_every_comparison_was_tested():
    listed = {n: tuple(s["claims"]) for n, s in CATALOGUE.items()}
    pins = {n: s["sysctls"] for n, s in CATALOGUE.items()}
    only_fast = syn_lost((0, 1, 3), 7.05, {"client": {}})
    only_fast["scenario"] = "syn-lost-fast"
    judged = judge_claim(BY_ID["H2"], [only_fast], pins, listed)
    assert judged["documents"] == UNTESTED and "tcp_syn_retries=2" in judged["reason"]
    assert judge_claim(BY_ID["H2"], [MODERN], pins, listed)["documents"] == DIFFERS
    absent = judge_claim(BY_ID["T1"], [MODERN], pins, listed)
    assert absent["documents"] == UNTESTED and "not in the results: teardown-normal" in absent["reason"]


def test_two_kernels_side_by_side_and_the_headline():
    old = syn_lost((0, 1, 3, 7, 15, 31), 63.2, {"client": {"net.ipv4.tcp_syn_retries": "5"}}, kernel="4.19.0")
    report = build_report({"6.18.44": [MODERN], "4.19.0": [old]}, CATALOGUE)
    assert [k["release"] for k in report["kernels"]] == ["4.19.0", "6.18.44"]
    h2 = next(c for c in report["claims"] if c["id"] == "H2")
    assert h2["kernels"]["4.19.0"]["documents"] == HOLDS
    assert h2["kernels"]["6.18.44"]["documents"] == DIFFERS
    assert h2["headline"].startswith("Holds on Linux 4.19.0, differs on Linux 6.18.44.")
    assert report["kernels"][1]["summary"] == (
        "on Linux 6.18.44: 0 hold, 1 differ, 35 not tested; lab: 1/1 scenarios pass"
    )
    md = render_markdown(report)
    assert "| claim | Linux 4.19.0 | Linux 6.18.44 | the documents say |" in md
    assert "| [H2](#h2) | holds · lab pass | differs · lab pass |" in md
    assert "**Holds on Linux 4.19.0, differs on Linux 6.18.44." in md
    assert (
        render_markdown(build_report({"6.18.44": [MODERN], "4.19.0": [old]}, CATALOGUE)) == md
    )  # nothing from the clock


def test_evidence_packs_deterministically_and_loads_per_kernel(tmp_path):
    runs = tmp_path / "results"
    runs.mkdir()
    (runs / "syn-lost-modern.json").write_text(json.dumps(MODERN))
    (runs / "old.json").write_text(json.dumps(dict(TEXTBOOK, scenario="syn-lost-modern")))
    first = pack(runs, tmp_path / "evidence", CATALOGUE)
    blobs = {p: p.read_bytes() for d in first for p in sorted(d.iterdir())}
    pack(runs, tmp_path / "evidence", CATALOGUE)
    assert {p: p.read_bytes() for p in blobs} == blobs  # the same bytes again (gzip mtime 0)
    assert sorted(d.name for d in first) == ["5.4.0", "6.18.44"]
    assert (
        json.loads(gzip.decompress((tmp_path / "evidence/6.18.44/syn-lost-modern.json.gz").read_bytes()))
        == MODERN
    )
    groups, catalogue = load(tmp_path / "evidence")
    assert sorted(groups) == ["5.4.0", "6.18.44"] and catalogue == CATALOGUE


def tcplab(*args):
    return subprocess.run(
        [sys.executable, "-m", "tcplab", *args, "--no-color"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_claims_and_list_commands_from_saved_results(tmp_path):
    """`tcplab claims --results` (no root) with one subfolder per kernel; `tcplab list
    --claims` shows the report's verdicts."""
    for kernel, res in (("a", dict(MODERN, verdict="fail")), ("b", TEXTBOOK)):
        (tmp_path / "r" / kernel).mkdir(parents=True)
        (tmp_path / "r" / kernel / "run.json").write_text(json.dumps(res))
    md, js = tmp_path / "claims.md", tmp_path / "claims.json"
    proc = tcplab("claims", "--results", str(tmp_path / "r"), "--out", str(md), "--json", str(js))
    assert proc.returncode == 1, proc.stdout + proc.stderr  # a lab verdict failed
    report = json.loads(js.read_text())
    h2 = next(c for c in report["claims"] if c["id"] == "H2")
    assert h2["kernels"]["6.18.44"]["lab"] == "fail"
    assert h2["kernels"]["6.18.44"]["documents"] == DIFFERS
    assert h2["kernels"]["5.4.0"]["documents"] == HOLDS
    assert "| Linux 5.4.0 | Linux 6.18.44 |" in md.read_text()
    listing = tcplab("list", "--claims", "--report", str(js))
    assert listing.returncode == 0, listing.stderr
    line = next(x for x in listing.stdout.splitlines() if x.startswith("│ H2"))
    assert "differs · lab fail" in line


EVIDENCE = ROOT / "evidence"


@pytest.mark.skipif(not EVIDENCE.is_dir(), reason="no committed evidence")
def test_the_committed_report_regenerates_byte_for_byte_from_the_evidence(tmp_path):
    """docs/claims.md and docs/claims.json are exactly what `tcplab claims --results
    evidence/` makes of the committed raw results."""
    groups, catalogue = load(EVIDENCE)
    report = build_report(groups, catalogue)
    md = render_markdown(report)
    js = json.dumps(report, indent=1, ensure_ascii=False) + "\n"
    assert md == (ROOT / "docs/claims.md").read_text(), (
        "docs/claims.md is stale: tcplab claims --results evidence/"
    )
    assert js == (ROOT / "docs/claims.json").read_text(), (
        "docs/claims.json is stale: tcplab claims --results evidence/"
    )
    proc = tcplab(
        "claims", "--results", "evidence", "--out", str(tmp_path / "c.md"), "--json", str(tmp_path / "c.json")
    )
    assert (tmp_path / "c.md").read_text() == md, proc.stdout + proc.stderr
