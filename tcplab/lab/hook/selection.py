"""Which segments go through the hook's queue, derived from the scenario's faults;
the rest are observed passively (tcplab/lab/hook/observer.py) and never wait for us.

A kind is a TCP flag pattern, matched the way iptables' `--tcp-flags MASK COMP` does
(flags & MASK == COMP), so the iptables rule and the observer's test of whether the
queue has a segment are the same table read twice.

The decision needs a segment's name and occurrence number. For the control kinds
(syn, syn-ack, fin/peer-fin, rst) those depend only on segments of the control
kinds: the name on the flags and on which side's FIN came first, the count on earlier
segments of the same name, the connection on SYNs and FINs (a 4-tuple reused after a
FIN with a fresh ISN is a new connection) (core/segments.py). So a classifier fed only
SYN and FIN segments, plus the kinds the faults name, names and counts them
exactly as the one that sees everything; a SYN-ACK matters to none of that (it
names itself, and only counts among SYN-ACKs). Only the kinds the faults name are
queued; the SYNs and FINs the classifier needs besides are watched (watch.py: a
packet socket of the hook's, read up to each queued segment's stamp), not held, so
they cost the path nothing (before session 13 they were queued: +56 us on every
handshake). The pure-ACK names (ack, fin-ack, data, ...)
depend on sequence numbers of everything sent before; a fault on one of them queues
everything, as before issue 15.

A random fault (core/faults.py) is queued by its whole kind, like any other (the dice
roll for every segment of the name), and its dice need the segment's place relative
to its sender's ISN: the server's comes with its SYN-ACK, so a random fault watches the
SYN-ACKs too.
"""

from __future__ import annotations

from tcplab.core.segments import ACK, FIN, RST, SYN
from tcplab.core.step import MODE_ALL

# kind -> (mask, comp) as iptables --tcp-flags takes them
KINDS: dict[str, tuple[int, int]] = {
    "syn": (SYN | ACK | RST, SYN),
    "syn-ack": (SYN | ACK | RST, SYN | ACK),
    "fin": (SYN | RST | FIN, FIN),
    "rst": (RST, RST),
}
NAME_KIND = {"syn": "syn", "syn-ack": "syn-ack", "fin": "fin", "peer-fin": "fin", "rst": "rst"}
# What the decision classifier must see to count and name the control kinds.
ALWAYS = ("syn", "fin")
_FLAG_NAMES = ((SYN, "SYN"), (ACK, "ACK"), (FIN, "FIN"), (RST, "RST"))


def select(faults, step: str | None = None) -> tuple[str, ...] | None:
    """The kinds to queue: those the faults name; None: every TCP segment (a fault on
    a pure-ACK name, or `--step all`, which holds them all); none at all without
    faults: nothing to decide."""
    if step == MODE_ALL or any(f.segment not in NAME_KIND for f in faults):
        return None
    return tuple(sorted({NAME_KIND[f.segment] for f in faults}))


def watched(faults, step: str | None = None) -> tuple[str, ...]:
    """The kinds the hook's classifier must see but no fault touches: they pass
    unheld and the hook learns of them from its watch (watch.py)."""
    kinds = select(faults, step)
    if not kinds:  # everything queued, or nothing to decide
        return ()
    isns = {"syn-ack"} if any(f.random for f in faults) else set()
    return tuple(sorted((set(ALWAYS) | isns) - set(kinds)))


def queued(kinds: tuple[str, ...] | None, flags: int) -> bool:
    return kinds is None or any(flags & KINDS[k][0] == KINDS[k][1] for k in kinds)


def iptables_matches(kinds: tuple[str, ...] | None) -> list[list[str]]:
    """One list of iptables match arguments per rule."""
    if kinds is None:
        return [["-p", "tcp"]]
    return [["-p", "tcp", "--tcp-flags", _names(KINDS[k][0]), _names(KINDS[k][1])] for k in kinds]


def _names(bits: int) -> str:
    return ",".join(name for bit, name in _FLAG_NAMES if bits & bit)
