"""The scenario format's key tables: which keys each mapping takes, which names and
patterns a value may have. The loader checks files against them and the JSON Schema
(schema.py) is built from them, so a key added here is known to both at once.
"""

from __future__ import annotations

import errno
import re
from typing import NamedTuple

from tcplab.core.faults import HOST_FAULTS, SEGMENT_ACTIONS
from tcplab.core.scenario import APP_HOSTS, STEP_CALLS

TOP_KEYS = (
    "scenario",
    "summary",
    "claims",
    "hosts",
    "apps",
    "faults",
    "expect",
    "timeout",
    "settle",
    "seed",
    "$schema",
)  # $schema: for editors, ignored
HOST_KEYS = ("sysctls",)
CLAIM = re.compile(r"[HTF][0-9]+")
SYSCTL = re.compile(r"net\.[a-z0-9_.\-]+")  # only net.* sysctls are per network namespace

# --- apps: steps and their arguments ---------------------------------------------------


class StepForm(NamedTuple):
    """How a step is written: does the call take an argument, may it be left out (a
    bare `accept`), and an example for messages and the schema's descriptions."""

    takes_arg: bool
    bare_ok: bool
    example: str


STEP_FORMS = {
    "listen": StepForm(True, False, "listen: 8080"),
    "accept": StepForm(False, True, "accept"),
    "connect": StepForm(True, False, "connect: server:8080"),
    "send": StepForm(True, False, "send: 1000"),
    "recv": StepForm(True, True, "recv: 1000"),
    "sleep": StepForm(True, False, "sleep: 2s"),
    "close": StepForm(False, True, "close"),
    "shutdown": StepForm(True, False, "shutdown: wr"),
    "bind": StepForm(True, False, "bind: 40000"),
    "linger": StepForm(True, False, "linger: 0"),
    "keepalive": StepForm(True, False, "keepalive: {idle: 2s, interval: 1s, count: 3}"),
    "syncnt": StepForm(True, False, "syncnt: 2"),
    "rcvtimeo": StepForm(True, False, "rcvtimeo: 2s"),
    "repeat": StepForm(True, False, "repeat: {times: 3, steps: [connect: server:8080]}"),
    "flood": StepForm(True, False, "flood: {syns: 500, port: 8080}"),
    "netstat": StepForm(False, True, "netstat"),
}
assert tuple(STEP_FORMS) == STEP_CALLS

LISTEN_KEYS = ("port", "backlog")  # listen's mapping form
KEEPALIVE_KEYS = ("idle", "interval", "count")
REPEAT_KEYS = ("times", "parallel", "steps")
FLOOD_KEYS = ("syns", "port")
SHUTDOWN_HOWS = ("wr", "rd", "rdwr")
MAX_SEND = 16 * 1024 * 1024
# Steps a repeat cannot hold, and why.
NOT_REPEATED = {
    "listen": "one listener per port: put listen before the repeat",
    "repeat": "repeats do not nest",
    "flood": "one flood step sends as many SYNs as asked: raise syns instead",
}

# --- faults ------------------------------------------------------------------------------

FAULT_ACTIONS = SEGMENT_ACTIONS  # drop: NAME, delay: NAME, ...
FAULT_KEYS = FAULT_ACTIONS + ("nth", "from", "by", "probability", "jitter")
MAX_SEED = 2**32 - 1
HOST_FAULT_KEYS = (*HOST_FAULTS, "at", "until")
FORGE_KEYS = ("forge", "to", "at", "after", "nth", "from")
ACTION_KEYS = (*HOST_FAULTS, "forge")  # the keys that make an entry a host fault or forge

# --- expect --------------------------------------------------------------------------------

EXPECT_KEYS = APP_HOSTS + ("model", "tolerance", "kernels")
MODELS = ("linux",)
TOLERANCE_KEYS = ("abs", "rel")
EXPECTABLE_CALLS = tuple(c for c in STEP_CALLS if c not in ("sleep", "repeat"))
HOST_EXPECT_KEYS = EXPECTABLE_CALLS + (
    "retransmits",
    "sends",
    "gives_up_after",
    "states",
    "sockets",
    "lasts",
    "returns_after",
    "largest",
    "resent",
    "received",
)
BOUND_KEYS = ("at_least", "at_most")  # resent: {NAME: {at_least: N, at_most: M}}
TIMING_KEYS = ("intervals", "offsets", "count")
LASTING_KEYS = ("at_least",)  # lasts: {STATE: {at_least: DURATION}}
ERRNO_NAMES = frozenset(errno.errorcode.values())  # the names the app agent reports
STATES = (
    "CLOSE",
    "LISTEN",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "CLOSE_WAIT",
    "CLOSING",
    "LAST_ACK",
    "TIME_WAIT",
)
# Textbook and RFC spellings -> the kernel's names (what inet_diag and the tracepoint say).
STATE_ALIASES = {
    "CLOSED": "CLOSE",
    "SYN_RCVD": "SYN_RECV",
    "SYN_RECEIVED": "SYN_RECV",
    "FIN_WAIT_1": "FIN_WAIT1",
    "FIN_WAIT_2": "FIN_WAIT2",
}
