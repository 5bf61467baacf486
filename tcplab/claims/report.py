"""The claims report: every claim, on every kernel whose results are given.

Results in (run JSONs grouped by kernel release, and the catalogue they were run
from), a dict out. Everything in it comes from the results and the catalogue, never
from the machine or the clock, so the same evidence gives the same bytes.
"""

from __future__ import annotations

import re
from datetime import datetime, UTC

from tcplab.claims.judge import DIFFERS, HOLDS, UNTESTED, judge_claim, lab_verdict, ABS, REL
from tcplab.claims.table import CLAIMS


def release_key(release: str) -> tuple:
    """6.1.176 before 6.18.44: numbers compared as numbers."""
    return tuple(int(x) if x.isdigit() else x for x in re.split(r"[.\-]", release))


def kernel_hz(results: list[dict]) -> int | None:
    """HZ as the kernel model saw it ("Linux 6.18 (HZ=250)")."""
    for res in results:
        m = re.search(r"HZ=(\d+)", str((res.get("model") or {}).get("kernel", "")))
        if m:
            return int(m.group(1))
    return None


def when_run(results: list[dict]) -> str:
    """The runs' own start and end (UTC), from the results."""
    spans = [
        (r["started"], r["started"] + (r.get("duration") or 0.0))
        for r in results
        if isinstance(r.get("started"), (int, float))
    ]
    if not spans:
        return ""
    fmt = "%Y-%m-%d %H:%M"
    first = datetime.fromtimestamp(min(s for s, _ in spans), UTC).strftime(fmt)
    last = datetime.fromtimestamp(max(e for _, e in spans), UTC).strftime(fmt)
    return f"{first} – {last[11:] if last[:10] == first[:10] else last} UTC"


def _kernel_summary(release: str, results: list[dict], claims: list[dict]) -> dict:
    counts = {
        v: sum(1 for c in claims if c["kernels"][release]["documents"] == v)
        for v in (HOLDS, DIFFERS, UNTESTED)
    }
    passed = sum(1 for r in results if r.get("verdict") == "pass")
    return {
        "release": release,
        "hz": kernel_hz(results),
        "runs": len(results),
        "pass": passed,
        "when": when_run(results),
        "counts": counts,
        "summary": (
            f"on Linux {release}: {counts[HOLDS]} hold, {counts[DIFFERS]} "
            f"differ, {counts[UNTESTED]} not tested; lab: {passed}/"
            f"{len(results)} scenarios pass"
        ),
    }


def headline(per_kernel: dict[str, dict]) -> str:
    """Where the documents hold on one kernel and differ on another, that is the news."""
    by = {}
    for release, k in per_kernel.items():
        by.setdefault(k["documents"], []).append(release)
    if HOLDS in by and DIFFERS in by:
        why = next(k["reason"] for k in per_kernel.values() if k["documents"] == DIFFERS)
        return (
            f"Holds on Linux {', '.join(by[HOLDS])}, differs on Linux {', '.join(by[DIFFERS])}. {why}"
        ).strip()
    return ""


def build_report(groups: dict[str, list[dict]], catalogue: dict[str, dict]) -> dict:
    """groups: kernel release -> run JSONs; catalogue: scenario name -> {file, claims,
    sysctls (the scenario's own, per host)} for every scenario file, run or not."""
    releases = sorted(groups, key=release_key)
    listed = {name: tuple(s.get("claims", ())) for name, s in catalogue.items()}
    pins = {name: s.get("sysctls") or {} for name, s in catalogue.items()}
    claims = []
    for claim in CLAIMS:
        covered = any(claim.id in ids for ids in listed.values())
        per_kernel = {}
        for release in releases:
            results = sorted(groups[release], key=lambda r: str(r.get("scenario")))
            judged = judge_claim(claim, results, pins, listed)
            per_kernel[release] = {"lab": lab_verdict(results, claim.id, covered), **judged}
        claims.append(
            {
                "id": claim.id,
                "seeds": list(claim.seeds),
                "text": claim.text,
                "scenarios": sorted(n for n, ids in listed.items() if claim.id in ids),
                "headline": headline(per_kernel),
                "kernels": per_kernel,
            }
        )
    return {
        "kernels": [_kernel_summary(k, groups[k], claims) for k in releases],
        "tolerance": {"abs": ABS, "rel": REL},
        "claims": claims,
    }
