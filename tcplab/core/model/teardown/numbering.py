"""Which of the run's segments the one the simulator sends now is, by name and number.

The simulator names what it sends with its own Classifier, primed with the handshake
(Sim._prime()), so it counts only what it sends itself. The run's numbers also count
the handshake model's answers after the handshake that fall under a teardown name: a
full socket's challenge ACK to a copy of the SYN (tcp_validate_incoming(), RFC 5961
4.2) is a pure ACK, which the router names `data-ack`. Where the run has such an answer
before the simulator's segment of that name, the simulator's #n is the run's #n+1:
its arrival, its timestamps and the faults that pick it by number are the run's #n+1's
(gen-10234 on 6.18: the server's challenge ACK to the router's copy of the SYN was
data-ack #1, the ACK of the client's data #2; the model took #1's moment for its ACK
of the data, 5.4 ms early, beat the client's loss probe with it, and failed the run's
second FIN, and the fault `duplicate: data-ack nth: 2` hit another segment).

What identifies a segment across the two is what it carries: its sequence and
acknowledgement numbers relative to the ISNs (the model's X and Y, the run's first SYN
and SYN-ACK)."""

from __future__ import annotations

from tcplab.core.model.prediction import X, Y
from tcplab.core.model.teardown.simbase import SimBase
from tcplab.core.segments import ACK, VOCABULARY, Classified

# An answer is sent in the softirq that takes the segment (tcp_validate_incoming()),
# microseconds later here and 5.4 ms in a loaded run (gen-10234); the bound is the
# lab's slop cap (check/base.py SLOP_CAP), past which a run is too slow to judge.
ANSWER_WITHIN = 0.040
# the names the order of the two FINs at the router decides (segments.py _name)
SWAPPED = {"fin": "peer-fin", "peer-fin": "fin", "fin-ack": "last-ack", "last-ack": "fin-ack"}


def isns(record, conn: int) -> dict[str, int]:
    """Each side's ISN on the connection: its first SYN or SYN-ACK the router saw."""
    isn: dict[str, int] = {}
    for s in record.segments:
        if s.conn == conn and s.name in ("syn", "syn-ack") and not s.injected:
            isn.setdefault(s.sender, s.seq)
    return isn


def relative(sender: str, flags: int, seq: int, ack: int, isn: dict[str, int]) -> tuple[int, int]:
    """(seq, ack) relative to the sender's ISN and the peer's; ack 0 without ACK."""
    peer = "server" if sender == "client" else "client"
    return (seq - isn[sender]) % 2**32, ((ack - isn[peer]) % 2**32 if flags & ACK else 0)


class Numbering(SimBase):
    def as_the_run_numbers(self, seen: Classified, flags: int, seq: int, ack: int, t: float) -> Classified:
        """`seen` renumbered as the run numbered it: where the run's segment of its
        name and number carries other numbers, and a later one of that name carries
        its own (the nearest in time), that is this one, and the classifier counts on
        from there. Only ever forward: a segment the run lacks is the kernel's to
        judge, not a reason to renumber."""
        if self.obs is None or not self.obs.contents:
            return seen
        key = (seen.sender, seen.name)
        mine = relative(seen.sender, flags, seq, ack, {"client": X, "server": Y})
        theirs = self.obs.contents.get((*key, seen.nth))
        if theirs is None or theirs == mine:
            return seen
        if VOCABULARY[seen.name][2]:
            return seen  # a segment with sequence space is the data path's, never an answer
        later = [
            (abs(self.obs.sent.get((*key, n), t) - t), n)
            for (sender, name, n), content in self.obs.contents.items()
            if (sender, name) == key and n > seen.nth and content == mine
        ]
        if not later:
            return seen
        nth = min(later)[1]
        if not all((*key, n) in self.obs.answers for n in range(seen.nth, nth)):
            # the run's segments in between are not the handshake model's answers: the
            # model sends something else there, which is for the checks to say
            return seen
        return self.clf.renumber(seen, nth)

    def router_key(self, seen: Classified, flags: int, seq: int, ack: int) -> tuple[str, str, int]:
        """The run's (sender, name, nth) of the segment the simulator sends now, for its
        arrival: its own; or, where the run has no segment of that name and number and
        the router named the two FINs the other way round (whose FIN reached it first,
        segments.py _name: `fin`/`peer-fin`, `fin-ack`/`last-ack`), the one of the other
        name that carries the same numbers. Without it such a segment arrived at its
        nominal moment, not when the router let it go (gen-5039 in CI: the client's FIN,
        held 0.5 ms by the hook, was taken to reach the server before the server's
        close(), and the model judged CLOSING where the run went through FIN_WAIT2)."""
        key = (seen.sender, seen.name, seen.nth)
        if self.obs is None or key in self.obs.contents or seen.name not in SWAPPED:
            return key
        mine = relative(seen.sender, flags, seq, ack, {"client": X, "server": Y})
        twins = sorted(
            (n != seen.nth, n)
            for (sender, name, n), content in self.obs.contents.items()
            if (sender, name) == (seen.sender, SWAPPED[seen.name]) and content == mine
        )
        return (seen.sender, SWAPPED[seen.name], twins[0][1]) if twins else key


def handshake_answers(record, conn: int) -> frozenset[tuple[str, str, int]]:
    """The run's pure ACKs (names without sequence space) that a host sent within
    ANSWER_WITHIN after a SYN (at the server) or a SYN-ACK (at the client) reached it,
    copies and retransmissions included: the answers a full socket gives a handshake
    segment again (tcp_validate_incoming(): a challenge ACK to a SYN, the duplicate
    ACK to a SYN-ACK), the handshake model's to predict."""
    came: dict[str, list[float]] = {"server": [], "client": []}
    for s in record.segments:
        if s.conn == conn and s.fate != "dropped" and s.t_out is not None and s.name in ("syn", "syn-ack"):
            came["server" if s.name == "syn" else "client"].append(s.t_out)
    return frozenset(
        (s.sender, s.name, s.nth)
        for s in record.segments
        if s.conn == conn
        and not s.injected
        and not VOCABULARY[s.name][2]
        # one a fault held, dropped or copied did something of its own the teardown
        # does not simulate (gen-4156 in CI: the challenge ACK came after the data's
        # ACK, was the run's data-ack #2, was held 1 s by the fault, and drew an RST
        # from the closed client): the fault's `nth` stays the abstention it was
        and s.fault is None
        and any(t <= s.t <= t + ANSWER_WITHIN for t in came[s.sender])
    )
