"""What the hook tells the runner, after the verdict and in batches.

The callback appends one row per segment (a tuple, no encoding) and its bytes go to
the raw store (tcplab/lab/rawstore.py); the main loop flushes the rows as one
`segments` message after each pass over the queue: one JSON encoding and one write
per batch, never between a segment's arrival and its verdict. A batch is flushed
early when it grows long, so the live view lags a busy queue by at most that many
rows. Other messages (a release, a fault acting) flush the rows first, so the
runner hears everything in the order it happened.
"""

from __future__ import annotations

import itertools
import json
import time

from tcplab.lab.rawstore import AS_SENT, RawWriter

# The row's fields, in order; the runner zips them back into a message per segment.
FIELDS = (
    "id",
    "mono",
    "name",
    "nth",
    "sender",
    "flags",
    "seq",
    "ack",
    "length",
    "fate",
    "retransmission",
    "conn",
    "mono_out",
    "src",
    "dst",
    "sport",
    "dport",
    "fault",
    "wire_len",
    "injected",
    "roll",
    "sent_len",
)
BATCH_MAX = 256


class SegmentLog:
    """`out`: where the messages go (an Outbox, outbox.py); ids count from `first_id`
    (the observer's apart from the hook's)."""

    def __init__(self, out, raw_path: str | None = None, first_id: int = 1):
        self.rows: list[tuple] = []
        self.raw = RawWriter(raw_path)
        self._ids = itertools.count(first_id)
        self._out = out

    def next_id(self) -> int:
        """A segment's id in the record (a release names it)."""
        return next(self._ids)

    def segment(
        self,
        ident: int,
        mono: float,
        seen,
        fate: str,
        mono_out: float | None,
        fault: str | None,
        packet: bytes,
        wire_len: int,
        injected: bool = False,
        sent: bytes | None = None,
        roll: float | None = None,
        sent_len: int | None = None,
    ) -> None:
        s = seen.segment
        self.rows.append(
            (
                ident,
                mono,
                seen.name,
                seen.nth,
                seen.sender,
                s.flags,
                s.seq,
                s.ack,
                s.length,
                fate,
                seen.retransmission,
                seen.conn,
                mono_out,
                s.src,
                s.dst,
                s.sport,
                s.dport,
                fault,
                wire_len,
                injected,
                roll,
                sent_len,
            )
        )
        self.raw.write(ident, packet)
        if sent is not None:
            self.raw.write(ident, sent, AS_SENT)
        if len(self.rows) >= BATCH_MAX:
            self.flush()

    def event(self, kind: str, **fields) -> None:
        self.flush()
        self._emit(kind, **fields)

    def flush(self) -> None:
        if self.rows:
            rows, self.rows = self.rows, []
            self._emit("segments", fields=FIELDS, rows=rows)

    def _emit(self, kind: str, **fields) -> None:
        fields.setdefault("mono", time.monotonic())
        self._out.write_line(json.dumps({"kind": kind, **fields}))

    def close(self) -> None:
        self.flush()
        self.raw.close()
