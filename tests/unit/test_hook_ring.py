"""The observer's TPACKET_V3 ring (tcplab/lab/hook/ring.py): blocks laid out as the
kernel writes them (linux/if_packet.h: tpacket_block_desc, tpacket3_hdr, sockaddr_ll),
constructed here, read back frame by frame."""

import struct

from tcplab.lab.hook.ring import TP_STATUS_KERNEL, TP_STATUS_USER, parse_block, release_block

FIRST = 48  # the block descriptor's room (tpacket_hdr_v1, aligned)
NET = 96  # TPACKET_ALIGN(TPACKET3_HDRLEN) + 16, where SOCK_DGRAM frames put the IP header


def block(frames, status=TP_STATUS_USER, size=4096, pkttypes=None):
    buf = bytearray(size)
    struct.pack_into("=IIIII", buf, 0, 3, 0, status, len(frames), FIRST)
    off = FIRST
    for i, (sec, nsec, data) in enumerate(frames):
        length = NET + len(data)
        step = (length + 15) // 16 * 16 if i < len(frames) - 1 else 0
        struct.pack_into("=IIIIIIHH", buf, off, step, sec, nsec, len(data), len(data) + 40, 1, NET, NET)
        buf[off + 58] = (pkttypes or [0] * len(frames))[i]  # sll_pkttype: PACKET_HOST
        buf[off + NET : off + NET + len(data)] = data
        off += step
    return buf


def test_frames_come_out_in_order_with_their_stamps_and_bytes():
    buf = block([(100, 5, b"\x45first"), (100, 900, b"\x45second, longer than the first")])
    assert parse_block(buf, 0) == [
        (100, 5, 0, b"\x45first"),
        (100, 900, 0, b"\x45second, longer than the first"),
    ]


def test_a_block_the_kernel_still_owns_is_not_read():
    assert parse_block(block([(1, 2, b"x")], status=TP_STATUS_KERNEL), 0) is None


def test_a_block_at_an_offset_and_its_release():
    ring = bytearray(4096) + block([(7, 8, b"abc")], pkttypes=[4])
    assert parse_block(ring, 4096) == [(7, 8, 4, b"abc")]  # PACKET_OUTGOING: the caller skips it
    release_block(ring, 4096)
    assert parse_block(ring, 4096) is None


def test_frames_the_kernel_has_not_handed_over_are_counted():
    """The block being filled counts its frames as the kernel writes them; the end of a
    run waits for them, and counts what never came as lost."""
    from tcplab.lab.hook.ring import unretired

    filling = block([(1, 2, b"x"), (1, 3, b"y")], status=TP_STATUS_KERNEL)
    assert unretired(filling, 0) == 2
    assert unretired(block([], status=TP_STATUS_KERNEL), 0) == 0
    assert unretired(block([(1, 2, b"x")]), 0) == 0  # handed over: parse_block's
