"""What the router adds to the handshake simulator beyond dropping and holding: a
duplicate's copy, placed where the record says it fell, and the stale SYN it forges
(handshake_sim.py uses it)."""

from __future__ import annotations

from collections.abc import Callable

from tcplab.core.model.kernel import LAST_HOP
from tcplab.core.model.prediction import STALE_ISN_BACK, PredictedSegment, Prediction
from tcplab.core.segments import SYN


class RouterCopies:
    # HandshakeSim sets these
    pred: Prediction
    transit: float
    held: tuple | bool | None
    # a duplicate's copy: when it left the router, how long after its original, and
    # whether before the sender's next segment (inputs.copies_sent()); which of the
    # first two places it (copy_clock: "router" or "original")
    copies: dict[tuple[str, str, int], tuple[float, float, bool]]
    copy_clock: str
    # a client copy due before the client's next segment: (its original's arrival,
    # its "arrive" args), until it arrives (ahead_first())
    ahead_copy: tuple[float, tuple] | None
    at: Callable[..., None]
    server_gets: Callable[..., None]

    def send_copy(self, t: float, sender: str, seen, by: float, held: float, args: tuple) -> None:
        """The router's copy of a segment it lets through: the same segment again,
        answered as a retransmission would be (after the client's first data or FIN,
        what it draws is the teardown model's: Observed.late). Without a record, `by`
        after the original; with one, where the record puts it (inputs.copies_sent()),
        by the router's clock or its original's, whichever this run of the simulator
        takes (handshake.py runs both)."""
        copy_ = self.copies.get((sender, seen.name, seen.nth))
        reached = t + self.transit + held  # the original's arrival
        if copy_ is None:
            at = t + self.transit + by
        elif self.copy_clock == "router":
            at = copy_[0] + LAST_HOP
        else:
            at = reached + copy_[1]
        if copy_ is not None and copy_[2] and sender == "client":
            # it reached the server before the client's next segment did, which this
            # idle-path model may deliver sooner than the run did: then the copy goes
            # just before it (ahead_first()). The server's next segments are the
            # teardown's.
            self.ahead_copy = (reached, args)
            self.at(at, "arrive_copy", *args)
        else:
            self.at(at, "arrive", *args)

    def copy_arrives(self, t: float, args: tuple) -> None:
        """A copy held for ahead_first() reaching the server in its own time."""
        if self.ahead_copy is not None and self.ahead_copy[1] == args:
            self.ahead_copy = None
            self.server_gets(t, *args[1:])

    def ahead_first(self, t: float) -> None:
        """A client segment reaching the server after the original of a copy the run
        delivered before the client's next segment: the copy first (gen-4156-ci in the
        6.1 guest: the SYN's copy met the live request, 5 ms before the client's ACK,
        and drew a second SYN-ACK)."""
        if self.ahead_copy is not None and t > self.ahead_copy[0]:
            _at, args = self.ahead_copy
            self.ahead_copy = None
            self.server_gets(t, *args[1:])

    # the router's stale SYN ---------------------------------------------------------
    def forge_stale_syn(self, t: float, seq: int, slack: float) -> None:
        """FaultHook.send_stale_syn(): ahead of the client's first SYN, the same SYN with
        an ISN 2^28 behind. The router makes it up (the classifier never sees it)."""
        self.pred.segments.append(
            PredictedSegment(t, "client", "syn", 0, "delivered", "forged by the router", slack, injected=True)
        )
        self.at(
            t + self.transit, "arrive", "client", SYN, 0, slack, (seq - STALE_ISN_BACK) & 0xFFFFFFFF, 0, t
        )

    def release(self, t: float) -> None:
        """The real SYN the stale one went ahead of."""
        if isinstance(self.held, tuple):
            args = self.held
            self.held = False
            self.at(t + self.transit, "arrive", *args)
