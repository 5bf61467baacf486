"""Raw bytes -> Segment, checked against packets scapy builds."""

from scapy.layers.inet import ICMP, IP, TCP, UDP

from tcplab.core.packet import parse_ipv4_tcp


def test_parses_tcp_with_options_and_payload():
    pkt = (
        IP(src="198.18.1.2", dst="198.19.1.2")
        / TCP(
            sport=40000,
            dport=8080,
            flags="PA",
            seq=123,
            ack=456,
            options=[("MSS", 1460), ("NOP", None), ("WScale", 7)],
        )
        / (b"x" * 37)
    )
    seg = parse_ipv4_tcp(bytes(pkt))
    assert (seg.src, seg.sport, seg.dst, seg.dport) == ("198.18.1.2", 40000, "198.19.1.2", 8080)
    assert (seg.seq, seg.ack, seg.length, seg.flags) == (123, 456, 37, 0x18)


def test_syn_occupies_one_sequence_number():
    seg = parse_ipv4_tcp(bytes(IP() / TCP(flags="S", seq=9)))
    assert seg.length == 0 and seg.seq_space == 1


def test_not_tcp_or_truncated():
    assert parse_ipv4_tcp(bytes(IP() / UDP())) is None
    assert parse_ipv4_tcp(bytes(IP() / ICMP())) is None
    assert parse_ipv4_tcp(b"\x45\x00") is None
    assert parse_ipv4_tcp(bytes(IP() / TCP())[:30]) is None
