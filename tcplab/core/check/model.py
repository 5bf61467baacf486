"""The run against the kernel model: the one dispatcher (a SYN flood first is judged
by flood.py, everything else by handshake.py and the parts it gathers)."""

from __future__ import annotations

from tcplab.core.check.base import Check
from tcplab.core.check.flood import applies, check_flood
from tcplab.core.check.handshake import check_handshake
from tcplab.core.model.prediction import Prediction
from tcplab.core.record import Record


def check_model(prediction: Prediction, record: Record) -> list[Check]:
    if applies(prediction):  # a SYN flood first (H11): judged apart
        return check_flood(prediction, record)
    return check_handshake(prediction, record)
