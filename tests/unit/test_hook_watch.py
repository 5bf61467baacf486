"""The hook's watch (tcplab/lab/hook/watch.py): SYNs and FINs that pass unheld reach
the hook's classifier in the order received and only up to the stamp of the queued
segment being decided, so it names that one as a classifier fed by one queue of
everything would. A stand-in socket plays the kernel's packet socket."""

import socket

from scapy.layers.inet import IP, TCP

from tcplab.core.packet import parse_ipv4_tcp
from tcplab.core.segments import Classifier
from tcplab.lab.hook import observer, watch
from unit.helpers import C, CP, S, SP, X, Y

PACKET_HOST = 0


def wire(src, sport, dst, dport, flags, seq, ack=0) -> bytes:
    return bytes(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack))


class FakeSocket:
    """recvmsg() as a SOCK_DGRAM packet socket with SO_TIMESTAMPNS gives it."""

    def __init__(self):
        self.frames = []

    def arrive(self, data: bytes, us: int, pkttype: int = PACKET_HOST):
        stamp = observer._TIMESPEC.pack(us // 1_000_000, (us % 1_000_000) * 1000 + 999)
        anc = [(socket.SOL_SOCKET, observer.SO_TIMESTAMPNS, stamp)]
        self.frames.append((data[: watch.SNAP], anc, 0, ("veth", 0x0800, pkttype, 1, b"")))

    def recvmsg(self, size, ancsize):
        if not self.frames:
            raise BlockingIOError
        return self.frames.pop(0)


def test_what_came_before_a_queued_segment_is_counted_first_and_nothing_after_it():
    sock = FakeSocket()
    w = watch.Watch(sock, ("syn",), ("fin",))  # a `delay: fin` run
    syn1 = wire(C, CP, S, SP, "S", X)
    syn1_again = wire(C, CP, S, SP, "S", X)  # a retransmission: syn #2 of conn 1
    syn2 = wire(C, CP + 1, S, SP, "S", X + 500)  # conn 2, after the FIN
    sock.arrive(syn1, 1_000_000)
    sock.arrive(wire(C, CP, S, SP, "SA", X), 1_000_001, pkttype=watch.PACKET_OUTGOING)  # ours: never
    sock.arrive(syn1_again, 2_000_000)
    sock.arrive(wire(S, SP, C, CP, "SA", Y, X + 1), 2_000_100)  # a SYN-ACK: not watched
    sock.arrive(wire(C, CP, S, SP, "FA", X + 1, Y + 1), 3_000_000)  # the queue has FINs
    sock.arrive(syn2, 3_000_050)
    w.read()
    assert [len(w.pending), w.pending[0][0]] == [3, 1_000_000]

    hook = Classifier({C})
    hook.classify(parse_ipv4_tcp(wire(S, SP, C, CP, "SA", Y, X + 1)))  # (a queued kind in another run)
    w.feed(hook, 3_000_000)  # the client's FIN, queued, stamped 3_000_000.
    fin = hook.classify(parse_ipv4_tcp(wire(C, CP, S, SP, "FA", X + 1, Y + 1)))
    assert (fin.conn, fin.name, fin.nth) == (1, "fin", 1)
    assert [stamp for stamp, _ in w.pending] == [3_000_050]  # conn 2's SYN waits for a later one
    # conn 2's SYN counts before a segment stamped after it
    w.feed(hook, 3_000_051)
    assert hook.classify(parse_ipv4_tcp(wire(C, CP + 1, S, SP, "FA", X + 501, 1))).conn == 2
    assert not w.pending


def test_the_syns_counted_are_the_ones_a_classifier_of_everything_counts():
    """conn 1's second SYN (a retransmission) makes the SYN queued by `drop: syn` in
    another run #2; here SYNs are watched and a SYN-ACK fault's nth depends on none."""
    sock = FakeSocket()
    w = watch.Watch(sock, ("fin", "syn"), ("syn-ack",))
    for us, seq in ((10, X), (20, X)):
        sock.arrive(wire(C, CP, S, SP, "S", seq), us)
    hook = Classifier({C})
    w.feed(hook, 30)
    first = hook.classify(parse_ipv4_tcp(wire(S, SP, C, CP, "SA", Y, X + 1)))
    everything = Classifier({C})
    for _ in range(2):
        everything.classify(parse_ipv4_tcp(wire(C, CP, S, SP, "S", X)))
    want = everything.classify(parse_ipv4_tcp(wire(S, SP, C, CP, "SA", Y, X + 1)))
    assert (first.conn, first.name, first.nth, first.sender) == (want.conn, want.name, want.nth, want.sender)


def test_a_segment_without_a_stamp_takes_everything_read_so_far():
    sock = FakeSocket()
    w = watch.Watch(sock, ("syn",), ("fin",))
    sock.arrive(wire(C, CP, S, SP, "S", X), 5_000_000)
    hook = Classifier({C})
    w.feed(hook, None)
    assert not w.pending


def test_the_filter_takes_syns_and_fins_of_tcp_and_nothing_else():
    """The classic BPF program, interpreted: the opcodes it uses, on real headers."""
    prog = [watch.struct.unpack("HBBI", watch._syn_fin_filter()[i : i + 8]) for i in range(0, 72, 8)]

    def run(pkt: bytes) -> int:
        a = x = pc = 0
        while True:
            code, jt, jf, k = prog[pc]
            pc += 1
            if code == 0x30:
                a = pkt[k]
            elif code == 0x28:
                a = int.from_bytes(pkt[k : k + 2], "big")
            elif code == 0xB1:
                x = 4 * (pkt[k] & 0x0F)
            elif code == 0x50:
                a = pkt[x + k]
            elif code == 0x15:
                pc += jt if a == k else jf
            elif code == 0x45:
                pc += jt if a & k else jf
            elif code == 0x06:
                return k
            else:
                raise AssertionError(f"opcode {code:#x}")

    kept_by_flags = (("S", 1), ("SA", 1), ("FA", 1), ("F", 1), ("A", 0), ("PA", 0), ("R", 0), ("RA", 0))
    for flags, kept in kept_by_flags:
        assert bool(run(wire(C, CP, S, SP, flags, X))) == bool(kept), flags
    options = bytes(IP(src=C, dst=S, options=[b"\x01" * 4]) / TCP(sport=CP, dport=SP, flags="S"))
    assert run(options) == watch.SNAP  # the IP header's length is read, not assumed
    assert run(bytes(IP(src=C, dst=S, proto=0) / (b"\x00" * 20))) == 0  # not TCP (protocol 0)
    later = bytes(IP(src=C, dst=S, proto=6, frag=100) / (b"\x02" * 20))
    assert run(later) == 0  # a later fragment: its bytes are not a TCP header
