"""The documented claims, and the report that puts each one next to what kernels did.

- table.py:    the 36 claims, each with the quantities or behaviours that test it
               (claim.py; the rows in handshake.py, teardown.py, faults.py; the
               documents' rules in documented.py, the kernel's reasons in why.py)
- record.py:   reading those from a run's record and from the kernel model's prediction
- judge.py:    the documents' verdict (holds / differs / not tested here) and the lab's
- report.py:   every claim on every kernel, as a dict (docs/claims.json)
- render.py:   the same as Markdown (docs/claims.md)
- evidence.py: the committed raw results (evidence/<release>/) the report is built from

Nothing here runs anything: results in, a report out.
"""

from tcplab.claims.claim import Claim, Comparison
from tcplab.claims.judge import DIFFERS, HOLDS, UNTESTED
from tcplab.claims.render import render_markdown
from tcplab.claims.report import build_report
from tcplab.claims.table import BY_ID, CLAIMS

__all__ = [
    "BY_ID",
    "CLAIMS",
    "Claim",
    "Comparison",
    "DIFFERS",
    "HOLDS",
    "UNTESTED",
    "build_report",
    "render_markdown",
]
