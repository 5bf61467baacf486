"""The catalogue side by side against its longest scenario, measured in the same run.

    sudo .venv/bin/python bench/catalogue.py [--jobs N] [--json DIR] [PATHS...]

Runs `tcplab run --jobs N --json DIR PATHS` (default: every scenario in scenarios/, all
at once) and prints the wall time of the whole catalogue, each scenario's own duration
(from its result JSON: set-up to teardown), and the ratio

    catalogue wall time / longest scenario's duration in that same run

The goal is <= 1.25: running side by side costs set-up and scheduling, not the sum of
the scenarios. A second number compares with the longest scenario alone (run again on
an idle lab afterwards, unless --no-alone), which shows what sharing two cores with the
others costs that scenario. Nothing is asserted: the numbers go to docs/kernel-notes.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(paths: list[str], jobs: int, out: Path) -> tuple[float, int]:
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tcplab",
            "run",
            "--no-color",
            "--jobs",
            str(jobs),
            "--json",
            str(out),
            *paths,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return time.monotonic() - started, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", default=["scenarios"])
    ap.add_argument("--jobs", type=int, default=0, help="default: every scenario at once")
    ap.add_argument("--json", type=Path, help="keep the result JSONs here")
    ap.add_argument("--no-alone", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from tcplab.format.load import discover

    files = [str(f) for f in discover(args.paths)]
    jobs = args.jobs or len(files)
    out = args.json or Path(tempfile.mkdtemp(prefix="tcplab-bench-"))
    wall, code = run(files, jobs, out)
    results = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    if not results:
        sys.exit(f"no results (tcplab exited {code})")
    results.sort(key=lambda r: r["duration"], reverse=True)
    longest = results[0]
    verdicts: dict[str, int] = {}
    for r in results:
        verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
    print(
        f"{len(results)} scenarios, --jobs {jobs}, on {longest['kernel']}: "
        + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
    )
    for r in results[:8]:
        print(f"  {r['duration']:8.1f} s  {r['verdict']:5}  {r['scenario']}")
    print(f"catalogue wall time      {wall:8.1f} s")
    print(f"longest in the same run  {longest['duration']:8.1f} s  ({longest['scenario']})")
    print(f"ratio                    {wall / longest['duration']:8.3f}  (goal <= 1.25)")
    print(f"sum of all durations     {sum(r['duration'] for r in results):8.1f} s")
    if not args.no_alone:
        alone_dir = Path(tempfile.mkdtemp(prefix="tcplab-bench-alone-"))
        alone, _ = run([longest["file"]], 1, alone_dir)
        print(f"longest alone            {alone:8.1f} s  (ratio {wall / alone:.3f})")


if __name__ == "__main__":
    main()
