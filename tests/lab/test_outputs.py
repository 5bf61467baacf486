"""Outputs of a real run, read back by their consumers: JUnit by junitparser, the
Mermaid diagram by a structure check, and the saved JSON by `tcplab show`."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from junitparser import JUnitXml

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]


def test_a_real_run_exports_junit_mermaid_and_shows_again(tmp_path):
    scenario = ROOT / "scenarios" / "handshake" / "ack-lost-then-data.yaml"
    out = {k: tmp_path / f"r.{k}" for k in ("json", "xml", "mmd", "pcapng")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tcplab",
            "run",
            "--no-color",
            "--json",
            str(out["json"]),
            "--junit",
            str(out["xml"]),
            "--mermaid",
            str(out["mmd"]),
            "--pcap",
            str(out["pcapng"]),
            str(scenario),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    res = json.loads(out["json"].read_text())

    (suite,) = list(JUnitXml.fromfile(str(out["xml"])))
    assert suite.tests == len(res["checks"]) and suite.failures == 0
    assert {c.name for c in suite} == {c["name"] for c in res["checks"]}

    mmd = out["mmd"].read_text().splitlines()
    assert mmd[0] == "sequenceDiagram"
    segments = [e for e in res["events"] if e["kind"] == "segment"]
    dropped = [e for e in segments if e["fate"] == "dropped"]
    assert len([x for x in mmd if "-xR:" in x]) == len(dropped) == 1  # the lost ACK
    assert len([x for x in mmd if x.startswith("    R->>")]) == len(segments) - len(dropped)

    show = subprocess.run(
        [sys.executable, "-m", "tcplab", "show", "--no-color", str(out["json"])],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert show.returncode == 0, show.stderr
    for e in segments:
        assert f"{e['name']} #{e['nth']}" in show.stdout
    assert "PASS" in show.stdout and "✕ dropped" in show.stdout

    check_pcap_with_tshark(out["pcapng"], segments)


def check_pcap_with_tshark(path, segments):
    """tshark (Wireshark's reader) finds every segment as sent, and as delivered unless
    dropped, with the flags and sequence numbers of the JSON and the comment naming it."""
    tshark = shutil.which("tshark")
    if tshark is None:
        if os.environ.get("CI"):
            pytest.fail("tshark is missing: ./lab test installs it (scripts/setup.sh --test)")
        pytest.skip("tshark is not installed")
    rows = subprocess.run(
        [
            tshark,
            "-r",
            str(path),
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-o",
            "tcp.relative_sequence_numbers:FALSE",
            "-e",
            "frame.comment",
            "-e",
            "tcp.seq",
            "-e",
            "tcp.ack",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    got = [tuple(r.split("|")) for r in rows]
    want = []
    for e in segments:
        name = f"{e['name']} #{e['nth']} from {e['from']}"
        fate = e["fate"] + (f" by {e['fault']}" if e.get("fault") else "")
        ack = str(e["ack"])  # tshark shows the field even without the ACK flag
        want.append((f"{name}: sent ({fate})", str(e["seq"]), ack))
        if e["fate"] != "dropped":
            want.append((f"{name}: delivered", str(e["seq"]), ack))
    assert sorted(got) == sorted(want)
