"""The tally of a bulk run (`tcplab run DIR --jobs N --json OUT/`): verdicts, the failing
checks by name, the model's abstentions by reason, and the seeds to look at. Pure: result
dicts in, a table (a dict, JSON-ready) out; `lines()` renders it as text.

Check names carry numbers that differ from run to run ("data #3 after #2", "t=1.234s");
they are folded (`#k`, `N`) so one kind of disagreement is one row.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tcplab.errors import ScenarioError

VERDICTS = ("pass", "fail", "error")
_NTH = re.compile(r"#\d+")
_NUMBER = re.compile(r"(?<![A-Za-z_\d.])\d+(?:\.\d+)*")  # not tcp_retries2's 2
# `model: not judged: WHAT` (tcplab.core.check.not_judged), with or without a prefix.
_ABSTAINED = re.compile(r"^(?:[\w-]+:\s*)?not judged(?::\s*(?P<what>.*))?$", re.S)
_SEED = re.compile(r"gen-(\d+)")


def normalise(name: str) -> str:
    """One row per kind of check: occurrence numbers and values folded."""
    return _NUMBER.sub("N", _NTH.sub("#k", " ".join(name.split())))


def abstention(check: dict) -> str | None:
    """The reason a check abstained (`not judged`), or None for a judged check. The why
    (the check's `actual`) joins the what when there is one."""
    match = _ABSTAINED.match(check.get("name", ""))
    if not match and check.get("judged", True) is not False:
        return None
    what = (match["what"] if match else None) or check.get("name") or "no reason given"
    why = check.get("actual")
    return normalise(f"{what} ({why})" if isinstance(why, str) and why.strip() else what)


def seed_of(result: dict) -> int | str:
    """gen-<seed> -> the seed; any other scenario -> its name."""
    name = str(result.get("scenario", "?"))
    match = _SEED.fullmatch(name)
    return int(match[1]) if match else name


def _sort_key(seed: int | str) -> tuple:
    return (0, seed, "") if isinstance(seed, int) else (1, 0, seed)


def tally(results: Iterable[dict]) -> dict:
    verdicts: Counter = Counter()
    failing: Counter = Counter()  # normalised check name -> runs with it failing
    abstained: Counter = Counter()  # reason -> runs that abstained for it
    seeds: dict[str, list] = {"fail": [], "error": []}
    runs = all_abstained = 0
    for res in results:
        runs += 1
        verdict = res.get("verdict")
        verdicts[verdict if verdict in VERDICTS else "error"] += 1
        checks = [c for c in res.get("checks") or [] if isinstance(c, dict)]
        failing.update({normalise(c.get("name", "?")) for c in checks if c.get("passed") is False})
        reasons = {r for c in checks if (r := abstention(c)) is not None}
        abstained.update(reasons)
        model = [c for c in checks if str(c.get("name", "")).startswith("model:")]
        all_abstained += bool(model) and all(abstention(c) is not None for c in model)
        if verdict in seeds:
            seeds[verdict].append(seed_of(res))
        elif verdict not in VERDICTS:
            seeds["error"].append(seed_of(res))
    return {
        "runs": runs,
        **{v: verdicts[v] for v in VERDICTS},
        "failing_checks": dict(sorted(failing.items(), key=lambda kv: (-kv[1], kv[0]))),
        "not_judged": dict(sorted(abstained.items(), key=lambda kv: (-kv[1], kv[0]))),
        "runs_with_every_model_check_not_judged": all_abstained,
        "failing_seeds": sorted(seeds["fail"], key=_sort_key),
        "error_seeds": sorted(seeds["error"], key=_sort_key),
    }


def load_results(folder: Path) -> list[dict]:
    """Every *.json result in a folder (what `run --json DIR/` writes); anything else
    there is a mistake worth one line."""
    files = sorted(folder.glob("*.json"))
    if not files:
        raise ScenarioError(str(folder), None, "", "no result JSON files (*.json) here")
    results = []
    for file in files:
        try:
            res = json.loads(file.read_text())
        except (OSError, ValueError) as e:
            raise ScenarioError(str(file), None, "", f"not a tcplab result JSON ({e})") from None
        if not isinstance(res, dict) or "verdict" not in res or "checks" not in res:
            raise ScenarioError(str(file), None, "", "not a tcplab result JSON (no verdict and checks)")
        results.append(res)
    return results


def lines(table: dict) -> list[str]:
    out = [f"runs {table['runs']}: pass {table['pass']}, fail {table['fail']}, error {table['error']}"]
    for title, key in (
        ("failing checks (runs)", "failing_checks"),
        ("not judged (runs), by reason", "not_judged"),
    ):
        out.append(f"{title}:" + ("" if table[key] else " none"))
        out += [f"  {count:4d}  {name}" for name, count in table[key].items()]
    if table["not_judged"]:
        out.append(
            f"runs whose every model check was not judged: {table['runs_with_every_model_check_not_judged']}"
        )
    for title, key in (("failing seeds", "failing_seeds"), ("error seeds", "error_seeds")):
        out.append(f"{title}: " + (" ".join(map(str, table[key])) or "none"))
    return out
