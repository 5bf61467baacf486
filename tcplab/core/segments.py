"""Segment vocabulary: the names a fault or an expectation uses for a TCP segment.

Everything that decides what a segment *is* lives in this module (h11's `_state.py`
habit): the name table, the aliases, which side can send which name, and the
classifier that turns raw headers into a named, counted occurrence.
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass, field

# Flag bits as in the TCP header (RFC 9293 section 3.1).
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
_FLAG_LETTERS = (
    (SYN, "S"),
    (FIN, "F"),
    (RST, "R"),
    (PSH, "P"),
    (ACK, "A"),
    (URG, "U"),
    (ECE, "E"),
    (CWR, "C"),
)

CLIENT, SERVER = "client", "server"

# name -> (aliases, who can send it, does it occupy sequence space, description)
VOCABULARY: dict[str, tuple[tuple[str, ...], frozenset[str], bool, str]] = {
    "syn": (("handshake-1",), frozenset({CLIENT}), True, "client's SYN"),
    "syn-ack": (("handshake-2",), frozenset({SERVER}), True, "server's SYN-ACK"),
    "ack": (("handshake-3",), frozenset({CLIENT}), False, "client's pure ACK completing the handshake"),
    "fin": (
        ("teardown-1",),
        frozenset({CLIENT, SERVER}),
        True,
        "first FIN, from whichever side closes first",
    ),
    "fin-ack": (("teardown-2",), frozenset({CLIENT, SERVER}), False, "pure ACK of the first FIN"),
    "peer-fin": (
        ("teardown-3",),
        frozenset({CLIENT, SERVER}),
        True,
        "the second FIN, from the passive closer",
    ),
    "last-ack": (("teardown-4",), frozenset({CLIENT, SERVER}), False, "ACK of the second FIN"),
    "data": ((), frozenset({CLIENT, SERVER}), True, "segment with payload"),
    "data-ack": ((), frozenset({CLIENT, SERVER}), False, "any other pure ACK (of data, a window update)"),
    "keepalive": (
        (),
        frozenset({CLIENT, SERVER}),
        False,
        "a keepalive (or zero-window) probe: a bare ACK with seq one below what its sender has sent",
    ),
    "keepalive-ack": ((), frozenset({CLIENT, SERVER}), False, "the pure ACK answering a keepalive probe"),
    "rst": ((), frozenset({CLIENT, SERVER}), False, "any RST"),
}

ALIASES: dict[str, str] = {a: name for name, (aliases, *_rest) in VOCABULARY.items() for a in aliases}


def canonical_name(name: str) -> str | None:
    """'handshake-2' -> 'syn-ack'; unknown names -> None."""
    if name in VOCABULARY:
        return name
    return ALIASES.get(name)


def senders(name: str) -> frozenset[str]:
    return VOCABULARY[name][1]


def flag_string(flags: int) -> str:
    return "".join(letter for bit, letter in _FLAG_LETTERS if flags & bit) or "."


def flags_of(letters: str) -> int:
    """The flag bits a flag_string() names (a saved run's segments carry the letters)."""
    return sum(bit for bit, letter in _FLAG_LETTERS if letter in letters)


@dataclass(frozen=True)
class Segment:
    """The header fields of one IPv4 TCP segment, as the router saw it."""

    src: str
    sport: int
    dst: str
    dport: int
    flags: int
    seq: int
    ack: int
    length: int  # payload bytes

    @property
    def seq_space(self) -> int:
        """Sequence numbers the segment occupies (SYN and FIN count one each)."""
        return self.length + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)


@dataclass(frozen=True)
class Classified:
    """A segment with its name, occurrence number and direction."""

    segment: Segment
    name: str
    nth: int  # 1 = first occurrence of this name on this connection (per direction)
    sender: str  # CLIENT or SERVER
    retransmission: bool  # same name, same sequence number as an earlier occurrence
    conn: int  # connection number within the run, from 1
    # Which segment this is, independent of timing (the dice of a random fault,
    # core/faults.py): where it sits relative to the ISNs (see _offset()), None when an
    # ISN is unknown; and how many times its sender has sent this name at this offset.
    offset: int | None = None
    copy: int = 1


@dataclass
class _Connection:
    """What the classifier remembers about one connection (4-tuple + ISN)."""

    number: int
    client_isn: int | None = None
    server_isn: int | None = None
    first_fin: tuple[str, int] | None = None  # (sender, sequence number right after FIN)
    peer_fin: tuple[str, int] | None = None
    simultaneous: bool = False  # both sides sent a bare SYN: a simultaneous open (RFC 9293 3.5)
    snd_nxt: dict[str, int] = field(default_factory=dict)  # sender -> end of what it sent
    acked: dict[str, int] = field(default_factory=dict)  # sender -> what its peer ACKed of it
    probe: dict[str, int] = field(default_factory=dict)  # prober -> the ack answering it
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    seqs: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    copies: dict[tuple[str, str, int | None], int] = field(default_factory=dict)


def _name(conn: _Connection, seg: Segment, sender: str) -> str:
    """The classification table, in the order the checks must happen."""
    f = seg.flags
    if f & RST:
        return "rst"
    if f & SYN:
        return "syn-ack" if f & ACK else "syn"
    if f & FIN:
        first = conn.first_fin
        return "fin" if first is None or first[0] == sender else "peer-fin"
    if _is_probe(conn, seg, sender):
        return "keepalive"
    other = SERVER if sender == CLIENT else CLIENT
    if seg.length == 0 and conn.probe.get(other) == seg.ack:
        return "keepalive-ack"
    if seg.length > 0:
        return "data"
    # A pure ACK: what does it acknowledge?
    if conn.peer_fin and conn.peer_fin[0] != sender and _covers(seg.ack, conn.peer_fin[1]):
        return "last-ack"
    if conn.first_fin and conn.first_fin[0] != sender and _covers(seg.ack, conn.first_fin[1]):
        return "fin-ack"
    if (
        sender == CLIENT
        and conn.server_isn is not None
        and conn.first_fin is None
        and seg.ack == (conn.server_isn + 1) & 0xFFFFFFFF
        and conn.client_isn is not None
        and seg.seq == (conn.client_isn + 1) & 0xFFFFFFFF
    ):
        return "ack"
    # In a simultaneous open each side ACKs the other's SYN-ACK: the server's ACK is the
    # mirror image of the client's and gets the same name.
    if (
        sender == SERVER
        and conn.simultaneous
        and conn.first_fin is None
        and conn.server_isn is not None
        and conn.client_isn is not None
        and seg.seq == (conn.server_isn + 1) & 0xFFFFFFFF
        and seg.ack == (conn.client_isn + 1) & 0xFFFFFFFF
    ):
        return "ack"
    return "data-ack"


def _is_probe(conn: _Connection, seg: Segment, sender: str) -> bool:
    """tcp_xmit_probe_skb() (keepalive, zero-window probe): a bare ACK with seq =
    snd_una - 1, out of the peer's window, so the peer must answer. No other bare ACK
    sits one below what its sender has sent. (Stacks that add one old byte are not
    recognised: at the router that looks like a 1-byte retransmission.)"""
    nxt = conn.snd_nxt.get(sender)
    if nxt is None or seg.length != 0 or seg.seq != (nxt - 1) & 0xFFFFFFFF:
        return False
    # Behind the sender's own FIN, not yet ACKed: no probe is sent while anything is in
    # flight (tcp_keepalive_timer() re-arms while packets_out; the zero-window probe
    # timer is armed only without it, tcp_check_probe_timer()). Such an ACK was built
    # before its FIN and overtaken on the way: two CPUs' veth backlogs, 3 ms apart on
    # 6.1 under TCG (gen-5002). It is named for what it acknowledges.
    fins = [f[1] for f in (conn.first_fin, conn.peer_fin) if f is not None and f[0] == sender]
    fin = next((end for end in fins if end == nxt), None)
    return fin is None or _covers(conn.acked.get(sender, (fin - 1) & 0xFFFFFFFF), fin)


def _offset(conn: _Connection, seg: Segment, sender: str, name: str) -> int | None:
    """Where a segment sits, relative to the ISNs, so that it is the same number in
    every run of a scenario (ISNs are random): a segment that occupies sequence space
    (SYN, FIN, data) and a RST by its own sequence number relative to its sender's ISN
    (a SYN 0, the first data byte 1); a pure ACK by what it acknowledges, relative to
    the peer's ISN. None when the ISN it needs was never seen."""
    client, server = conn.client_isn, conn.server_isn
    if VOCABULARY[name][2] or name == "rst":
        isn, number = (client if sender == CLIENT else server), seg.seq
    else:
        isn, number = (server if sender == CLIENT else client), seg.ack
    return None if isn is None else (number - isn) & 0xFFFFFFFF


def _covers(ack: int, seq_after: int) -> bool:
    """ack acknowledges everything before seq_after (modulo 2^32)."""
    return ((ack - seq_after) & 0xFFFFFFFF) < 0x80000000


class Classifier:
    """Names segments and counts occurrences per connection and name.

    Pure: feed it segments in the order the router saw them. `client_addrs` are
    the addresses on the client side of the router; everything else is the server.
    """

    def __init__(self, client_addrs: frozenset[str] | set[str]):
        self.client_addrs = frozenset(client_addrs)
        self._conns: dict[tuple, _Connection] = {}
        self._next = 1

    def _connection(self, seg: Segment, sender: str) -> _Connection:
        key = (
            (seg.src, seg.sport, seg.dst, seg.dport)
            if sender == CLIENT
            else (seg.dst, seg.dport, seg.src, seg.sport)
        )
        conn = self._conns.get(key)
        fresh_syn = seg.flags & SYN and not seg.flags & ACK
        if conn is None or (
            fresh_syn
            and conn.client_isn is not None
            and seg.seq != conn.client_isn
            and conn.first_fin is not None
        ):
            # A new SYN with another ISN after a close: the 4-tuple is reused.
            conn = _Connection(number=self._next)
            self._next += 1
            self._conns[key] = conn
        return conn

    def classify(self, seg: Segment) -> Classified:
        sender = CLIENT if seg.src in self.client_addrs else SERVER
        conn = self._connection(seg, sender)
        name = _name(conn, seg, sender)
        self._learn(conn, seg, sender, name)
        self._track(conn, seg, sender, name)
        key = (sender, name)
        nth = conn.counts.get(key, 0) + 1
        conn.counts[key] = nth
        seen = conn.seqs.setdefault(key, set())
        # Only segments that occupy sequence space can be retransmitted; a repeated
        # pure ACK is a new answer to something, not a retransmission.
        retrans = VOCABULARY[name][2] and seg.seq in seen
        seen.add(seg.seq)
        offset = _offset(conn, seg, sender, name)
        copy = conn.copies.get((sender, name, offset), 0) + 1
        conn.copies[(sender, name, offset)] = copy
        return Classified(seg, name, nth, sender, bool(retrans), conn.number, offset, copy)

    def renumber(self, seen: Classified, nth: int) -> Classified:
        """`seen` as the nth of its name: segments of that name before it that this
        classifier was not fed (another model's answers: teardown/numbering.py) are
        counted, and what comes after is numbered on from it."""
        conn = next(c for c in self._conns.values() if c.number == seen.conn)
        conn.counts[(seen.sender, seen.name)] = nth
        return dataclasses.replace(seen, nth=nth)

    @staticmethod
    def _track(conn: _Connection, seg: Segment, sender: str, name: str) -> None:
        """What each side has sent, and an unanswered probe: enough to tell a
        keepalive and its answer from other bare ACKs."""
        other = SERVER if sender == CLIENT else CLIENT
        conn.probe.pop(other, None)  # anything from the peer ends the wait for an answer
        if name == "keepalive":
            conn.probe[sender] = (seg.seq + 1) & 0xFFFFFFFF
        if name == "rst":
            return
        if seg.flags & ACK and (other not in conn.acked or _covers(seg.ack, conn.acked[other])):
            conn.acked[other] = seg.ack
        end = (seg.seq + seg.seq_space) & 0xFFFFFFFF
        if sender not in conn.snd_nxt or _covers(end, conn.snd_nxt[sender]):
            conn.snd_nxt[sender] = end

    @staticmethod
    def _learn(conn: _Connection, seg: Segment, sender: str, name: str) -> None:
        # A bare SYN from the server (simultaneous open) carries the server's ISN, as a
        # SYN-ACK from the client carries the client's.
        if name == "syn" and sender == SERVER:
            conn.simultaneous = True
            conn.server_isn = seg.seq if conn.server_isn is None else conn.server_isn
        elif name == "syn" and conn.client_isn is None:
            conn.client_isn = seg.seq
        elif name == "syn-ack" and sender == CLIENT:
            conn.client_isn = seg.seq if conn.client_isn is None else conn.client_isn
        elif (
            name == "syn-ack"
            and conn.server_isn is None
            and (conn.client_isn is None or seg.ack == (conn.client_isn + 1) & 0xFFFFFFFF)
        ):
            # Only a SYN-ACK of the client's own SYN: one answering an old duplicate SYN
            # (RFC 9293 3.5, forge: stale-syn) carries an ISN the handshake never uses.
            conn.server_isn = seg.seq
        elif name == "fin" and conn.first_fin is None:
            conn.first_fin = (sender, (seg.seq + seg.seq_space) & 0xFFFFFFFF)
        elif name == "peer-fin" and conn.peer_fin is None:
            conn.peer_fin = (sender, (seg.seq + seg.seq_space) & 0xFFFFFFFF)
