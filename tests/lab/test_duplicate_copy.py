"""A duplicate's copy is the whole segment (lab/hook/__main__.py): the hook sends the
copy from the bytes the queue gave it, and until session 9 the queue gave only the
first 256 (RAW_MAX), so the copy of a data segment went out cut short and its receiver
dropped it unanswered (gen-8186 on 6.18: no RST from a closed socket). Here a copy of
1000 bytes of data reaches the established server 200 ms after the original: old data,
which tcp_validate_incoming() answers with a duplicate ACK (tcp_sequence() fails,
tcp_send_dupack()).

    sudo .venv/bin/python -m pytest tests/lab/test_duplicate_copy.py
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tcplab.format.load import load_text
from tcplab.runner import run_scenario

pytestmark = pytest.mark.root

SCENARIO = """scenario: duplicate-data-copy
summary: the client's 1000 bytes of data are copied by the router 200 ms later.
apps:
  server: [listen: 8080, accept, recv: 1000, sleep: 500ms, close]
  client: [connect: "server:8080", send: 1000, sleep: 400ms, close, sleep: 200ms]
faults:
  - duplicate: data
    from: client
    nth: 1
    by: 200ms
expect: {model: linux}
timeout: 5s
settle: 300ms
"""


def test_the_copy_of_data_is_whole_and_draws_a_duplicate_ack(tmp_path: Path):
    path = tmp_path / "duplicate-data-copy.yaml"
    path.write_text(SCENARIO)
    res = run_scenario(load_text(path.read_text(), str(path))).to_json()
    segs = [e for e in res["events"] if e["kind"] == "segment"]
    data = next(e for e in segs if e["name"] == "data" and e["from"] == "client" and not e["injected"])
    copy = next(e for e in segs if e["injected"] and e["from"] == "client")
    assert data["wire_len"] == 1052  # 20 + 32 (timestamps) + 1000
    # the IP header's length in the copy's bytes (hex; the record keeps at most
    # RAW_MAX of them): the whole segment's, as before; whether the rest of the bytes
    # went too, the duplicate ACK below says (a cut copy drew none)
    assert int(copy["raw"][4:8], 16) == data["wire_len"], copy
    # and the record says how many bytes the router sent (session 10): all of them
    assert copy["sent_len"] == data["wire_len"], copy
    answers = [
        e for e in segs if e["from"] == "server" and e["name"] == "data-ack" and e["t"] > copy["t_out"]
    ]
    assert answers and answers[0]["t"] - copy["t_out"] < 0.05, (copy, answers)
    assert res["verdict"] == "pass", [c for c in res["checks"] if not c["passed"]]
