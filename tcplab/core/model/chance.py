"""What the kernel model can still say when faults roll dice (core/faults.py: a
probability, a jitter).

The dice are a pure function of each segment's identity, but which segments exist
after the first loss (how many retransmissions, SACK recovery, RACK, tail loss probes,
the congestion window) is the kernel's data path, which the model does not simulate.
So the model never rolls dice itself: it judges the opening when no random fault can
reach it, and abstains, saying so, from everything a random fault can change. A run
whose model checks are all abstentions relies on the scenario's own `expect:`.

- A random fault on a handshake name (syn, syn-ack, ack) or on rst: every segment
  after the first loss depends on the roll, so the model abstains entirely.
- A random fault only on later names (data, data-ack, the teardown's, keepalives):
  the opening is predicted with the certain faults alone and judged up to the client's
  first data or FIN; the teardown, a silent peer's bursts, a flood and the RST count
  are not judged. A certain fault on the handshake's `ack` would make the client's
  data complete the handshake, and the data's fate is random: then nothing is judged.
"""

from __future__ import annotations

from tcplab.core.faults import Fault

# The names whose fate the handshake model plays out; a random fault on one of them
# makes every later moment of the opening random.
OPENING = ("syn", "syn-ack", "ack", "rst")


def random_faults(faults: tuple[Fault, ...]) -> list[Fault]:
    return [f for f in faults if f.random]


def opening_judged(faults: tuple[Fault, ...]) -> bool:
    """Can the handshake model judge the opening despite the random faults?"""
    dice = random_faults(faults)
    return not any(f.segment in OPENING for f in dice) and not any(f.segment == "ack" for f in faults)


def why(faults: tuple[Fault, ...]) -> str:
    """The abstentions' reason, naming the faults that roll dice."""
    named = "; ".join(f.describe() for f in random_faults(faults))
    return (
        f"random faults ({named}): which segments exist after a loss (retransmissions, "
        "recovery, probes) is the kernel's data path, which the model does not simulate"
    )


def unjudged(faults: tuple[Fault, ...]) -> list[tuple[str, str]]:
    """(what, why) the model leaves unjudged in a scenario with random faults."""
    if not random_faults(faults):
        return []
    if not opening_judged(faults):
        return [("everything", why(faults))]
    return [("the teardown, the RST count and what follows the client's first data or FIN", why(faults))]
