"""The observer's packet socket read through a TPACKET_V3 ring (issue 15).

Why: a reader that takes each frame with recvmsg() makes a system call per frame and
is woken per frame, on the cores the traffic it watches needs. The bench measured it
(docs/performance.md, bench/tap_cost.py): the socket drained by a bare Python recv
loop took bulk throughput to 0.66 of the unwatched path. With a TPACKET_V3 ring
(Documentation/networking/packet_mmap.rst) the kernel writes the frames into blocks
of memory the reader shares, and hands a block over when it is full or when
RETIRE_MS passed since its first frame (prb_retire_rx_blk_timer_expired()): the
reader is woken per block and reads frames without a system call. A reader that
falls behind leaves blocks full; the kernel then drops frames and counts them
(PACKET_STATISTICS), as the socket's queue did.

`parse_block` is pure: a block's bytes in, its frames out (tested on constructed
blocks, tests/unit/test_hook_ring.py)."""

from __future__ import annotations

import mmap
import socket
import struct

SOL_PACKET, PACKET_RX_RING, PACKET_VERSION, TPACKET_V3 = 263, 5, 10, 2
TP_STATUS_KERNEL, TP_STATUS_USER = 0, 1
BLOCK_SIZE = 1 << 20  # a power of two pages (packet_set_ring())
BLOCKS = 32  # 32 MiB: ~90,000 frames of a 256-byte snap, what a lagging reader may owe
FRAME_SIZE = 2048  # V3 packs frames of any length into a block; this only sizes the count
RETIRE_MS = 4  # an idle block is handed over this long after its first frame

# struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1's
# block_status, num_pkts, offset_to_first_pkt (linux/if_packet.h)
_BLOCK = struct.Struct("=IIIII")
# struct tpacket3_hdr: tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len, tp_status,
# tp_mac, tp_net (the rest: rxhash, vlan, padding)
_FRAME = struct.Struct("=IIIIIIHH")
_STATUS = struct.Struct("=I")
# sockaddr_ll follows the header at TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) = 48;
# its sll_pkttype is 10 bytes in
PKTTYPE_AT = 48 + 10


def parse_block(buf, at: int) -> list[tuple[int, int, int, bytes]] | None:
    """The frames of the block at `at` of the ring `buf`, as (seconds, nanoseconds,
    sll_pkttype, bytes from the network header); None while the kernel still owns it."""
    _version, _priv, status, count, first = _BLOCK.unpack_from(buf, at)
    if not status & TP_STATUS_USER:
        return None
    out, off = [], at + first
    for _ in range(count):
        nxt, sec, nsec, snaplen, _len, _status, _mac, net = _FRAME.unpack_from(buf, off)
        out.append((sec, nsec, buf[off + PKTTYPE_AT], bytes(buf[off + net : off + net + snaplen])))
        off += nxt
    return out


def unretired(buf, at: int) -> int:
    """How many frames the kernel has written into the block at `at` without handing it
    over yet: prb_fill_curr_block() counts each in num_pkts as it writes it, and
    prb_open_block() zeroes the count when it starts the block. 0 for a handed-over
    block (parse_block's)."""
    _version, _priv, status, count, _first = _BLOCK.unpack_from(buf, at)
    return 0 if status & TP_STATUS_USER else count


def release_block(buf, at: int) -> None:
    """Give the block back to the kernel (tpacket_hdr_v1.block_status)."""
    _STATUS.pack_into(buf, at + 8, TP_STATUS_KERNEL)


def add_ring(sock: socket.socket) -> bool:
    """Give the socket its ring, before any frame can arrive (the hook does, before it
    binds its queue: frames queued on the socket before would be read after the
    ring's). False when the kernel will not: the observer then reads with recvmsg()."""
    req = struct.pack(
        "=7I", BLOCK_SIZE, BLOCKS, FRAME_SIZE, BLOCK_SIZE // FRAME_SIZE * BLOCKS, RETIRE_MS, 0, 0
    )
    try:
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
    except OSError:
        return False
    return True


class Ring:
    """A socket's receive ring (add_ring), mapped; `frames()` takes what the kernel
    handed over, block by block, in the order it filled them. OSError when the
    socket has none."""

    def __init__(self, sock: socket.socket):
        self.map = mmap.mmap(
            sock.fileno(), BLOCK_SIZE * BLOCKS, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
        )
        self.next = 0  # the block the kernel fills after the last one taken

    def frames(self, blocks: int = BLOCKS) -> list[tuple[int, int, int, bytes]]:
        """The frames of up to `blocks` handed-over blocks; [] when none is."""
        out: list[tuple[int, int, int, bytes]] = []
        for _ in range(blocks):
            at = self.next * BLOCK_SIZE
            got = parse_block(self.map, at)
            if got is None:
                break
            out += got
            release_block(self.map, at)
            self.next = (self.next + 1) % BLOCKS
        return out

    def unretired(self) -> int:
        """Frames in the block the kernel is filling (the one after the last taken), not
        yet handed over: at the end of a run, what waiting longer would still bring."""
        return unretired(self.map, self.next * BLOCK_SIZE)

    def close(self) -> None:
        self.map.close()
