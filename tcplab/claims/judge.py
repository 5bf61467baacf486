"""The documents' verdict: does a run's observation agree with what the documents say?

Per run and comparison: `holds`, `differs` or `not tested here` (the run sets a sysctl
the documents' number depends on to something else, or stopped before the quantity
could be told apart). Per claim and kernel: `differs` if any comparison differs,
`holds` if every comparison held in at least one run, else `not tested here`.
"""

from __future__ import annotations

from typing import Any

from tcplab.claims.claim import Claim, Comparison
from tcplab.claims.record import Run, Seen

HOLDS, DIFFERS, UNTESTED = "holds", "differs", "not tested here"

# "near": within max(ABS, REL x the documented value). The timer wheel alone makes a
# 60 s timer up to ~2 s late at HZ=250 (docs/kernel-notes.md), a loaded machine adds a
# few tens of ms: 5 % keeps both inside and still tells 63 s from 131 s, 60 s from 73 s,
# 1, 3, 7 s from 1, 2, 3 s.
ABS, REL = 0.3, 0.05


def tolerance(c: Comparison, documented: float) -> float:
    absolute, relative = c.tolerance or (ABS, REL)
    return max(absolute, relative * abs(documented))


def agree(c: Comparison, documented: Any, seen: Seen) -> bool | None:
    """True (holds), False (differs), None (this run cannot tell)."""
    value = seen.value
    if c.how == "forever":  # no timer ends it: still there at the end, past `documented`
        if seen.ended:
            return False
        return True if value > documented else None
    if not seen.ended:  # a state cut short by the run's end is a lower bound
        if c.how in ("near", "equal") and isinstance(value, (int, float)):
            return False if value > documented + tolerance(c, documented) else None
        return None
    if c.how == "near":
        docs = list(documented) if isinstance(documented, (tuple, list)) else [documented]
        vals = list(value) if isinstance(value, (tuple, list)) else [value]
        return len(vals) == len(docs) and all(abs(v - d) <= tolerance(c, d) for d, v in zip(docs, vals))
    if c.how == "at_least":
        return value >= documented
    if c.how == "contains":  # the documented states, in this order, one after the other
        n = len(documented)
        return any(list(value[i : i + n]) == list(documented) for i in range(len(value) - n + 1))
    if c.how == "mss":  # at most the MSS; TCP options (up to 40 bytes) may take some of it
        return documented - 40 < value <= documented
    return value == (list(documented) if isinstance(documented, tuple) else documented)


def pinned_away(c: Comparison, pins: dict[str, dict[str, str]]) -> list[str]:
    """The sysctls this run sets away from what the documents assume for `c`."""
    away = set()
    for host_values in pins.values():
        for name, documented in c.setting:
            value = host_values.get(name)
            if value is not None and (documented == "" or value != documented):
                away.add(f"{name.rsplit('.', 1)[1]}={value}")
    return sorted(away)


def run_pins(res: dict, scenario_pins: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The scenario's sysctls, and a TCP_SYNCNT step, which sets tcp_syn_retries for a
    socket as surely as the sysctl does."""
    pins = {h: dict(v) for h, v in scenario_pins.items()}
    for e in res.get("events") or []:
        if e.get("kind") == "app" and e.get("call") == "syncnt":
            pins.setdefault(e["host"], {})["net.ipv4.tcp_syn_retries"] = str(e.get("arg"))
    return pins


def _documented(c: Comparison, run: Run) -> Any:
    return c.documented(run) if callable(c.documented) else c.documented


def _why(c: Comparison, run: Run) -> str:
    return c.why(run) if callable(c.why) else c.why


def judge_run(c: Comparison, res: dict, scenario_pins: dict[str, dict[str, str]]) -> dict | None:
    """One row: the comparison in one run (whose scenario sets `scenario_pins`), or None
    when the run does not show it."""
    pins = run_pins(res, scenario_pins)
    run = Run.observed(res)
    if c.when is not None and not c.when(run):
        return None
    seen = c.read(run, c.host, c.what, c.nth)
    if seen is None:
        return None
    model_run = Run.predicted(res)
    predicted = c.read(model_run, c.host, c.what, c.nth) if model_run and c.modelled else None
    documented = _documented(c, run)
    away = pinned_away(c, pins)
    outcome, note = UNTESTED, ""
    if away:
        note = f"the run sets {', '.join(away)}, away from what the documents assume"
    elif documented is None:
        note = "the run lacks what the documents' rule needs"
    else:
        ok = agree(c, documented, seen)
        if ok is None:
            note = "the run ended before this could be told"
        else:
            outcome = HOLDS if ok else DIFFERS
            note = _why(c, run) if not ok else ""
    return {
        "scenario": res.get("scenario"),
        "label": c.label,
        "documented": documented,
        "says": c.says,
        "how": c.how,
        "model": None if predicted is None else predicted.value,
        "observed": seen.value,
        "observed_detail": seen.detail,
        "outcome": outcome,
        "note": note,
    }


def judge_claim(
    claim: Claim, results: list[dict], pins: dict[str, dict[str, dict]], listed: dict[str, tuple[str, ...]]
) -> dict:
    """Every comparison of the claim over the runs that show it. `listed`: scenario name
    -> claim IDs, for the whole catalogue (to say which scenario was not run)."""
    rows, differ_notes, untested_notes, outcomes = [], [], [], []
    for c in claim.comparisons:
        names = set(c.scenarios) or {n for n, ids in listed.items() if claim.id in ids}
        mine = [
            judge_run(c, res, pins.get(res.get("scenario"), {}))
            for res in results
            if res.get("scenario") in names or (not c.scenarios and claim.id in res.get("claims", []))
        ]
        mine = [row for row in mine if row is not None]
        got = {row["outcome"] for row in mine}
        outcome = DIFFERS if DIFFERS in got else HOLDS if HOLDS in got else UNTESTED
        outcomes.append(outcome)
        if not mine:
            ran = {res.get("scenario") for res in results}
            missing = sorted(names - ran)
            note = f"not in the results: {', '.join(missing)}" if missing else "no run shows it"
            mine = [
                {
                    "scenario": None,
                    "label": c.label,
                    "documented": None,
                    "says": c.says,
                    "how": c.how,
                    "model": None,
                    "observed": None,
                    "observed_detail": "",
                    "outcome": UNTESTED,
                    "note": note,
                }
            ]
        rows += mine
        if outcome == DIFFERS:
            differ_notes += [row["note"] for row in mine if row["outcome"] == DIFFERS]
        elif outcome == UNTESTED:
            untested_notes += [f"{c.label}: {row['note']}" for row in mine if row["note"]]
    verdict = DIFFERS if DIFFERS in outcomes else HOLDS if all(o == HOLDS for o in outcomes) else UNTESTED
    notes = differ_notes if verdict == DIFFERS else untested_notes if verdict == UNTESTED else []
    sep = " " if verdict == DIFFERS else "; "  # whole sentences, or one note per quantity
    reason = sep.join(dict.fromkeys(x for x in notes if x))
    return {
        "documents": verdict,
        "reason": reason,
        "rows": rows,
        "compared": sum(1 for o in outcomes if o != UNTESTED),
        "comparisons": len(outcomes),
    }


def lab_verdict(results: list[dict], claim_id: str, covered: bool) -> str:
    """The lab's own verdict: the worst of the runs that cite the claim."""
    verdicts = {r.get("verdict") for r in results if claim_id in r.get("claims", [])}
    if not verdicts:
        return "not run" if covered else "no scenario"
    return next((v for v in ("error", "fail") if v in verdicts), "pass")
