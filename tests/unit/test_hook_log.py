"""The hook's record path without a kernel: rows -> one `segments` message -> the
runner's Record; bytes -> the raw store -> attached at the end; the outbox never
blocks; rows count by when the router received them."""

import json
import os

from tcplab.core.record import Record
from tcplab.core.segments import Classifier
from tcplab.lab import rawstore
from tcplab.lab.hook.log import BATCH_MAX, SegmentLog
from tcplab.lab.hook.outbox import Outbox
from unit.helpers import C, handshake


class Lines:
    def __init__(self):
        self.lines = []

    def write_line(self, line):
        self.lines.append(json.loads(line))


def test_rows_become_the_records_segments_with_their_bytes(tmp_path):
    out, path = Lines(), tmp_path / "segments.raw"
    log = SegmentLog(out, str(path))
    clf = Classifier({C})
    for i, seg in enumerate(handshake()):
        ident = log.next_id()
        log.segment(
            ident,
            10.0 + i,
            clf.classify(seg),
            "delivered",
            10.5 + i,
            None,
            bytes([0x45, i]) * 200,
            400,
            sent=b"out" if i == 1 else None,
        )
    assert out.lines == []  # nothing before the flush: the verdicts come first
    log.close()
    (msg,) = out.lines
    rec = Record(t0=10.0)
    segs = rec.add_segments(msg)
    assert [(s.name, s.t, s.t_out, s.wire_len) for s in segs] == [
        ("syn", 0.0, 0.5, 400),
        ("syn-ack", 1.0, 1.5, 400),
        ("ack", 2.0, 2.5, 400),
    ]
    rec.attach_raw(rawstore.read(path))
    assert len(bytes.fromhex(rec.segments[0].raw)) == rawstore.RAW_MAX  # cut, once
    assert rec.segments[1].raw_out == b"out".hex() and rec.segments[0].raw_out == ""


def test_a_long_batch_goes_early_and_events_keep_their_order():
    out = Lines()
    log = SegmentLog(out)
    seen = Classifier({C}).classify(handshake()[0])
    for _ in range(BATCH_MAX + 1):
        log.segment(log.next_id(), 1.0, seen, "delivered", 1.0, None, b"", 40)
    assert [len(m["rows"]) for m in out.lines] == [BATCH_MAX]
    log.event("released", id=1)
    assert [m["kind"] for m in out.lines] == ["segments", "segments", "released"]


def test_the_observers_file_is_read_with_the_hooks_and_a_torn_end_is_skipped(tmp_path):
    path = tmp_path / "segments.raw"
    hook, obs = rawstore.RawWriter(str(path)), rawstore.RawWriter(f"{path}.observer")
    hook.write(1, b"a" * 10)
    obs.write(1 << 31, b"b" * 10)
    hook.close()
    obs.close()
    with open(path, "ab") as f:
        f.write(b"\x02\x00\x00\x00\x00\xff\x00abc")  # says 255 bytes, has 3
    got = rawstore.read(path)
    assert got == {1: {"raw": b"a" * 10}, 1 << 31: {"raw": b"b" * 10}}


def test_the_outbox_keeps_what_a_full_pipe_cannot_take():
    r, w = os.pipe()
    box = Outbox(w)
    line = "x" * 4095
    for _ in range(40):  # 160 KiB: more than a pipe holds
        box.write_line(line)
    assert box.pending()
    got = b""
    while box.pending():
        got += os.read(r, 1 << 16)
        box.send()
    box.close()
    os.close(w)
    while chunk := os.read(r, 1 << 16):
        got += chunk
    os.close(r)
    assert got == (line + "\n").encode() * 40


def test_rows_after_observation_stopped_are_left_out_by_their_own_time():
    """The observer's rows may reach the runner after it stopped observing; what the
    router received before then is still the scenario's."""
    out = Lines()
    log = SegmentLog(out)
    clf = Classifier({C})
    for mono, seg in zip((10.0, 12.0, 11.0), handshake()):
        log.segment(log.next_id(), mono, clf.classify(seg), "delivered", mono, None, b"", 40)
    log.flush()
    rec = Record(t0=10.0)
    rec.add_segments(out.lines[0], until=11.5)
    rec.sort_segments()
    assert [(s.name, s.t) for s in rec.segments] == [("syn", 0.0), ("ack", 1.0)]
