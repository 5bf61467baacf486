"""Every kind of check can fail: for each kind the committed catalogue records show
(evidence/), one record where it passes is bent the way a wrong kernel would have
behaved (a segment missing, late or extra, a call failing otherwise or later, a state
reached later) and the same check must then fail. A kind no bend can fail is a check
that cannot fail: the test says which."""

from __future__ import annotations

import copy
import gzip
import json
import re
from pathlib import Path

import pytest

from tcplab.core.check.base import MODEL_SLOP, Slop, slow_legs
from tcplab.core.record import Record
from tcplab.judging import rejudge
from tcplab.format.load import load_scenario
from tests.unit.retime import moved

ROOT = Path(__file__).resolve().parents[2]
EVIDENCE = sorted((ROOT / "evidence").glob("6.*/*.json.gz"))
SEGMENT = re.compile(
    r"\b(syn-ack|syn|ack|rst|fin-ack|fin|peer-fin|last-ack|data-ack|data|"
    r"keepalive-ack|keepalive)\b"
)
HOST = re.compile(r"\b(client|server)\b")
STATE = re.compile(r"\b([A-Z][A-Z_0-9]{3,})\b")
CALL = re.compile(r"\b(\w+)\(\)")


def kind(name: str) -> str:
    """A check's name with its particulars taken out: one entry per kind."""
    n = re.sub(r"#\d+", "#N", name)
    n = HOST.sub("H", n)
    n = re.sub(r"(interval|offset) \d+", r"\1 N", n)
    n = SEGMENT.sub("SEG", n)
    n = re.sub(r"t=[\d.]+s", "t=T", n)
    return CALL.sub("CALL()", n)


def load(path: Path) -> dict:
    with gzip.open(path, "rt") as f:
        return json.load(f)


def _lab_was_slow(run: dict) -> bool:
    """Whether the lab itself took more than the default tolerance's 4 ms floor (its
    hook holding a segment, a host's way to the router): such a run's missed timings
    and segment counts are not judged (an error, by design), so it shows no check
    failing."""
    record = Record.from_json(run)
    hook = (Slop.of(record).worst - MODEL_SLOP) / 2
    return max(hook, slow_legs(record)[0]) >= 0.004


TRIES = 3  # records per kind: a record's own shape may leave a bend nothing to move


def examples() -> list[tuple[str, tuple[tuple[Path, str], ...]]]:
    """(kind, ((record, check name), ...)): passing, judged checks of each kind, from
    the smallest records that have one (the fewest connections and segments to
    follow), runs the lab did not slow first; up to TRIES of them."""
    found: dict[str, list[tuple[Path, str]]] = {}
    runs = [(path, load(path)) for path in EVIDENCE]
    for path, run in sorted(runs, key=lambda r: (_lab_was_slow(r[1]), r[0].stat().st_size)):
        for c in judged(run).checks:
            k = kind(c.name)
            mine = found.setdefault(k, [])
            if c.judged and c.passed and len(mine) < TRIES and path not in {p for p, _n in mine}:
                mine.append((path, c.name))
    return sorted((k, tuple(v)) for k, v in found.items() if v)


def judged(run: dict):
    return rejudge(scenario_of(run), run)


def scenario_of(run: dict):
    """The run's scenario file in this checkout (the evidence names the path of the
    checkout it ran in)."""
    parts = Path(run["file"]).parts
    return load_scenario(str(ROOT.joinpath(*parts[parts.index("scenarios") :])))


# -- bends: what a wrong kernel would have left in the record ---------------------------


def _segments(run: dict, host: str, name: str) -> list[dict]:
    return [
        e
        for e in run["events"]
        if e["kind"] == "segment" and e.get("from") == host and e["name"] == name and not e.get("injected")
    ]


def drop_segment(which):
    def bend(run, host, name, state, call):
        mine = _segments(run, host, name)
        if not mine:
            return None
        gone = mine[which]
        return {**run, "events": [e for e in run["events"] if e is not gone]}

    bend.__name__ = f"drop_segment[{which}]"
    return bend


def extra_segment(run, host, name, state, call):
    """One more of that segment (or, where the host sent none, a first one)."""
    mine = (
        _segments(run, host, name)
        or [
            dict(e, name=name, nth=0)
            for e in run["events"]
            if e["kind"] == "segment" and e.get("from") == host
        ][-1:]
    )
    if not mine or name is None:
        return None
    extra = dict(
        mine[-1],
        t=mine[-1]["t"] + 0.05,
        nth=mine[-1]["nth"] + 1,
        t_out=(mine[-1]["t_out"] or mine[-1]["t"]) + 0.05,
    )
    return {**run, "events": sorted(run["events"] + [extra], key=lambda e: e["t"])}


def _shift(run, pick, by):
    """The picked events later by `by`; a retransmitted segment with its kernel's
    tracepoint (tests/unit/retime.py)."""
    out = copy.deepcopy(run)
    return moved(out, [e for e in out["events"] if pick(e)], by)


def later_segment(which, by):
    def bend(run, host, name, state, call):
        mine = _segments(run, host, name)
        if not mine:
            return None
        one = mine[which]
        return _shift(
            run,
            lambda e: (
                e.get("kind") == "segment"
                and e.get("from") == host
                and e["name"] == name
                and e["nth"] == one["nth"]
                and e["t"] == one["t"]
            ),
            by,
        )

    bend.__name__ = f"later_segment[{which}]+{by}"
    return bend


NAMED = re.compile(r"\b([a-z-]+) #(\d+)")


def later_named(by):
    """The segment the check names (`data #3 after #2`: data #3), later."""

    def bend(run, host, name, state, call, check=""):
        m = NAMED.search(check)
        if not m or host is None:
            return None
        return _shift(
            run,
            lambda e: (
                e.get("kind") == "segment"
                and e.get("from") == host
                and e["name"] == m[1]
                and e["nth"] == int(m[2])
            ),
            by,
        )

    bend.__name__ = f"later_named+{by}"
    return bend


def bigger_segments(run, host, name, state, call):
    if not _segments(run, host, name):
        return None
    out = copy.deepcopy(run)
    for e in _segments(out, host, name):
        e["len"] += 100
    return out


AFTER = re.compile(r"after t=([\d.]+)s")


def segment_into_silence(run, host, name, state, call, check=""):
    """The host sends once more where the check says it stays silent."""
    mine = [e for e in run["events"] if e["kind"] == "segment" and e.get("from") == host]
    m = AFTER.search(check)
    if not mine or not m:
        return None
    syn = next(e["t"] for e in run["events"] if e["kind"] == "segment" and e["name"] == "syn")
    at = syn + float(m[1]) + 0.5
    extra = dict(mine[-1], t=at, t_out=None, fate="dropped", nth=mine[-1]["nth"] + 1)
    return {**run, "events": sorted(run["events"] + [extra], key=lambda e: e["t"])}


def state_ends(run, host, name, state, call):
    """The host leaves the state (to CLOSE) a second after it got there."""
    starts = [e for e in run["events"] if e["kind"] == "state" and e["host"] == host and e.get("to") == state]
    if not starts:
        return None
    end = dict(starts[-1], t=starts[-1]["t"] + 1.0, **{"from": state, "to": "CLOSE"})
    obs = copy.deepcopy(run.get("observation") or {})
    key = "tracepoint_states" if end.get("source") == "tracepoint" else "diag_states"
    obs.setdefault(key, []).append(dict(end))
    obs[key].sort(key=lambda e: e["t"])
    return {**run, "events": sorted(run["events"] + [end], key=lambda e: e["t"]), "observation": obs}


def synacks_sent_again(run, host, name, state, call):
    answers = [
        e
        for e in run["events"]
        if e["kind"] == "segment" and e.get("from") == "server" and e["name"] == "syn-ack"
    ]
    if len(answers) < 10:
        return None
    again = [
        dict(e, t=e["t"] + 1.0, t_out=(e["t_out"] or e["t"]) + 1.0, retransmission=True) for e in answers
    ]
    return {**run, "events": sorted(run["events"] + again, key=lambda e: e["t"])}


def requests_end_later(run, host, name, state, call):
    return (
        _state_later(run, "server", "SYN_RECV", 2.0)
        if any(e["kind"] == "state" and e.get("from") == "SYN_RECV" for e in run["events"])
        else None
    )


def _calls(run, host, call):
    return [e for e in run["events"] if e["kind"] == "app" and e["host"] == host and e["call"] == call]


def call_fails_otherwise(run, host, name, state, call):
    if not _calls(run, host, call):
        return None
    out = copy.deepcopy(run)
    for e in _calls(out, host, call):
        e["result"] = "EPERM" if e["result"] != "EPERM" else "ok"
    return out


def call_returns_later(run, host, name, state, call):
    """The call (or, unnamed, every call of the host that failed) returns 2 s later."""

    def mine(r):
        return [
            e
            for e in r["events"]
            if e["kind"] == "app"
            and e["host"] == host
            and e.get("t_end") is not None
            and (e["call"] == call if call else e["result"] not in ("ok", None))
        ]

    if not mine(run):
        return None
    out = copy.deepcopy(run)
    first = mine(out)[0]["t"]
    for e in mine(out):
        e["t_end"] += 2.0
    mine = [{"t": first}]
    # the kernel's own moment (the tracepoint's SYN_SENT->...) moves with it; its
    # start (CLOSE->SYN_SENT) stays
    out = _state_later(out, host, None, 2.0, after=mine[0]["t"])
    for e in out["events"] + [
        x for k in ("tracepoint_states", "diag_states") for x in (out.get("observation") or {}).get(k, [])
    ]:
        if (
            e.get("kind") == "state"
            and e["host"] == host
            and e.get("to") == "SYN_SENT"
            and e["t"] >= mine[0]["t"] + 2.0
        ):
            e["t"] -= 2.0
    return out


def _state_later(run, host, state, by, after=0.0):
    def pick(e):
        return (
            e.get("kind") == "state"
            and e["host"] == host
            and e["t"] >= after
            and (state is None or e.get("to") == state or e.get("from") == state)
        )

    out = _shift(run, pick, by)
    obs = out.get("observation") or {}
    for key in ("tracepoint_states", "diag_states"):
        for e in obs.get(key, []):
            if pick(dict(e, kind="state")):
                e["t"] += by
    return out


def state_later(run, host, name, state, call):
    if state is None:
        return None
    ends = [e for e in run["events"] if e["kind"] == "state" and e["host"] == host and e.get("from") == state]
    return _state_later(run, host, None, 3.0, after=ends[0]["t"] - 1e-6) if ends else None


def state_sooner(run, host, name, state, call):
    if state is None:
        return None
    ends = [e for e in run["events"] if e["kind"] == "state" and e["host"] == host and e.get("from") == state]
    starts = [e for e in run["events"] if e["kind"] == "state" and e["host"] == host and e.get("to") == state]
    if not ends or not starts:
        return None
    by = -(ends[0]["t"] - starts[0]["t"]) * 0.5
    return _state_later(run, host, None, by, after=ends[0]["t"] - 1e-6)


def states_skip(run, host, name, state, call):
    """The host never reaches the state (or any state after its handshake)."""
    target = [
        e
        for e in run["events"]
        if e["kind"] == "state" and e["host"] == host and (state is None or e.get("to") == state)
    ]
    if not target:
        return None
    cut = target[-1]["t"]

    def keep(e):
        return not (e.get("kind", "state") == "state" and e.get("host") == host and e["t"] >= cut - 1e-9)

    obs = dict(run.get("observation") or {})
    for key in ("tracepoint_states", "diag_states"):
        obs[key] = [e for e in obs.get(key, []) if keep(e)]
    return {**run, "events": [e for e in run["events"] if keep(e)], "observation": obs}


def fewer_flood_syns(run, host, name, state, call):
    syns = [
        e
        for e in run["events"]
        if e["kind"] == "segment" and e.get("from") == "client" and e["name"] == "syn"
    ]
    if len(syns) < 10:
        return None
    gone = {id(e) for e in syns[1::3]}
    return {**run, "events": [e for e in run["events"] if id(e) not in gone]}


def fewer_flood_answers(run, host, name, state, call):
    answers = [
        e
        for e in run["events"]
        if e["kind"] == "segment" and e.get("from") == "server" and e["name"] == "syn-ack"
    ]
    if len(answers) < 10:
        return None
    gone = {id(e) for e in answers[::3]}
    return {**run, "events": [e for e in run["events"] if id(e) not in gone]}


def counters_off(run, host, name, state, call):
    out = copy.deepcopy(run)
    hit = False
    for e in out["events"]:
        if e["kind"] == "app" and e.get("counters"):
            e["counters"] = {k: v + 7 for k, v in e["counters"].items()}
            hit = True
    return out if hit else None


def no_retransmissions(run, host, name, state, call):
    """The host never sent the segment again (a kernel that gave up, or never lost it)."""
    mine = [e for e in _segments(run, host, name) if e.get("retransmission")]
    if not mine:
        return None
    gone = {id(e) for e in mine}
    return {**run, "events": [e for e in run["events"] if id(e) not in gone]}


def fewer_bytes(run, host, name, state, call):
    """The host's recv() calls returned a byte fewer each (data lost on the way up)."""
    out, hit = copy.deepcopy(run), False
    for e in out["events"]:
        if e["kind"] == "app" and e.get("host") == host and e.get("call") == "recv":
            m = re.match(r"(\d+) bytes", e.get("detail") or "")
            if m and int(m[1]):
                e["detail"] = f"{int(m[1]) - 1} bytes" + e["detail"][m.end() :]
                hit = True
    return out if hit else None


BENDS = [
    drop_segment(-1),
    drop_segment(0),
    extra_segment,
    later_segment(-1, 1.0),
    later_segment(-1, 0.15),
    later_segment(0, 0.15),
    later_named(0.15),
    later_named(1.0),
    bigger_segments,
    segment_into_silence,
    call_fails_otherwise,
    call_returns_later,
    state_later,
    state_sooner,
    state_ends,
    states_skip,
    fewer_flood_syns,
    fewer_flood_answers,
    synacks_sent_again,
    requests_end_later,
    counters_off,
    no_retransmissions,
    fewer_bytes,
]
WANT_CHECK = {later_named(0).__code__, segment_into_silence.__code__}

CASES = examples()


def test_the_evidence_has_the_kinds():
    assert len(CASES) >= 35


@pytest.mark.parametrize("kind_, candidates", CASES, ids=[c[0] for c in CASES])
def test_each_kind_of_check_can_fail(kind_, candidates):
    tried = []
    for path, name in candidates:
        if _fails_when_bent(path, name, tried):
            return
    pytest.fail(f"{kind_!r} passed every bend on {len(candidates)} record(s): {tried}")


def _fails_when_bent(path: Path, name: str, tried: list) -> bool:
    run = load(path)
    sc = scenario_of(run)
    assert _check(rejudge(sc, run), name).passed  # as recorded
    host = (HOST.search(name) or [None])[0] if HOST.search(name) else None
    seg = SEGMENT.search(name)[0] if SEGMENT.search(name) else None
    state = STATE.search(name)[1] if STATE.search(name) else None
    call = CALL.search(name)[1] if CALL.search(name) else None
    for bend in BENDS:
        bent = (
            bend(run, host, seg, state, call, check=name)
            if bend.__code__ in WANT_CHECK
            else bend(run, host, seg, state, call)
        )
        if bent is None:
            continue
        tried.append(f"{path.parent.name}/{path.name}: {bend.__name__}")
        c = _check(rejudge(sc, bent), name)
        if c is not None and c.judged and not c.passed:
            return True
    return False


def _check(res, name):
    return next((c for c in res.checks if c.name == name), None)
