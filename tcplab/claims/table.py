"""The 36 documented claims, each with what in a run would confirm or refute it.

One table: claim -> comparisons (claim.py), its rows in handshake.py (H), teardown.py
(T) and faults.py (F). A comparison names a quantity or behaviour the claim states (a
number, an errno, a state sequence, a segment count, what answers a segment), the
reader that takes it from a run (tcplab.claims.record: the same reader for the record
and for the kernel model's prediction), the documents' value (a constant, or the
documents' rule applied to the run's own settings, e.g. "tcp_fin_timeout":
documented.py), the rule that compares them (tcplab.claims.judge) and, for when they
differ, why (why.py). Nothing here knows what any kernel did: the verdict is computed
from the run, so another kernel can flip it.
"""

from __future__ import annotations

from tcplab.claims.claim import Claim
from tcplab.claims.faults import FAULTS
from tcplab.claims.handshake import HANDSHAKE
from tcplab.claims.teardown import TEARDOWN

CLAIMS: tuple[Claim, ...] = (*HANDSHAKE, *TEARDOWN, *FAULTS)

BY_ID = {c.id: c for c in CLAIMS}
