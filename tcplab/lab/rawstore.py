"""The bytes of every segment the router saw, kept apart from its messages.

The hook's messages to the runner carry a segment's header fields; its bytes (the
first RAW_MAX of the packet, for pcaps and the claims' MSS reading) go to a file in
the run's slot directory as they are, no hex, no JSON, through a buffered writer: the
callback's cost per segment is a memory copy, and the slot directory goes when the
run's slot is released. The runner reads the file once, after the hook has stopped.

Format: per packet a little-endian header (hook id u32, which u8: 0 as it came, 1 as
it left when a fault rewrote it; length u16), then the bytes.
"""

from __future__ import annotations

import struct

RAW_MAX = 256  # bytes of each packet kept: all headers, a little payload
_HEAD = struct.Struct("<IBH")
AS_SEEN, AS_SENT = 0, 1


class RawWriter:
    def __init__(self, path: str | None):
        self._f = open(path, "wb", buffering=1 << 16) if path else None

    def write(self, ident: int, packet: bytes, which: int = AS_SEEN) -> None:
        if self._f is not None:
            data = packet[:RAW_MAX]
            self._f.write(_HEAD.pack(ident, which, len(data)) + data)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


def read(path) -> dict[int, dict[str, bytes]]:
    """hook id -> {"raw": bytes, "raw_out": bytes}, from the hook's file and its
    observer's (`path`.observer, tcplab/lab/hook/observer.py); what a killed hook left
    unwritten (its buffer) is missing, and a torn last entry is skipped."""
    out: dict[int, dict[str, bytes]] = {}
    for one in (str(path), f"{path}.observer"):
        try:
            with open(one, "rb") as f:
                _read_into(out, f.read())
        except OSError:
            pass
    return out


def _read_into(out: dict, data: bytes) -> None:
    i = 0
    while i + _HEAD.size <= len(data):
        ident, which, n = _HEAD.unpack_from(data, i)
        i += _HEAD.size
        if i + n > len(data):
            break
        out.setdefault(ident, {})["raw_out" if which == AS_SENT else "raw"] = data[i : i + n]
        i += n
