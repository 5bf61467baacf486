"""Whether the router's copy of a segment went out whole (observe.truncated()): the
record keeps the first 256 bytes of every packet, so only the hook's own count of the
bytes it sent (`sent_len`, session 10) tells a whole copy of a long segment from one
cut to those 256 bytes, as copies were before session 9."""

from __future__ import annotations

from tcplab.core.events import SegmentSeen, event_from_json
from tcplab.core.model.teardown.observe import truncated
from tcplab.core.segments import ACK

RAW_256 = "45" + "00" * 255  # what the record keeps of a long packet: 256 bytes, as hex


def copy(sent_len: int | None) -> SegmentSeen:
    return SegmentSeen(
        t=1.0,
        name="data",
        nth=1,
        sender="client",
        flags=ACK,
        seq=1,
        ack=1,
        length=1000,
        fate="delivered",
        retransmission=False,
        conn=1,
        t_out=1.0,
        raw=RAW_256,
        wire_len=1052,
        injected=True,
        sent_len=sent_len,
    )


def test_a_whole_copy_is_not_cut_though_the_record_keeps_256_bytes():
    assert not truncated(copy(1052))


def test_a_copy_sent_short_is_cut():
    assert truncated(copy(256))


def test_a_record_from_before_sent_len_reads_as_before():
    assert truncated(copy(None))  # 256 bytes kept of 1052: cut, or not known better


def test_sent_len_survives_the_result_json_and_is_absent_where_unknown():
    again = event_from_json(copy(1052).to_json())
    assert isinstance(again, SegmentSeen) and again.sent_len == 1052
    assert "sent_len" not in copy(None).to_json()
