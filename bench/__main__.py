"""tcplab's performance record: each figure as a ratio against its physical anchor,
measured in the same run on the same path.

    sudo .venv/bin/python -m bench [--bytes 16777216] [--flood-seconds 2] [--json FILE]

  bulk       throughput with the hook armed (delay fin by 1ms) / unhooked   goal >= 0.9
  bulk_queued  the same with every segment queued (a fault on data that never acts):
             the hook's whole load, and its time per segment under it
  residency  time in the hook per queued segment (kernel receive stamp to
             verdict), under that bulk load and on an idle lab (handshakes)
                                                       goal p50 <= 100 us, p99 <= 1 ms
  rtt        extra round trip the hook adds to a handshake: connect() p50
             hooked - unhooked, 200 connects each                goal <= 50 us
  flood      raw SYNs at 10,000/s through the armed hook (SYNs watched, not held):
             queue, observer and watch drops                          goal 0
  flood_queued  the same with every SYN queued (a fault on SYNs)      goal 0
  setup      a run's wall time outside its scenario (set-up + teardown) of
             scenarios/handshake/no-listener.yaml, per phase       goal <= 0.5 s
  json       result JSON bytes per 1,000 segments (a 4 MiB bulk run through tcplab)
  catalogue  with --catalogue only (bench/catalogue.py: ~17 min on 2 cores)

Prints a table and writes the figures as JSON (default bench/runs/<time>.json),
with the machine they ran on: docs/performance.md shows one such file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from bench import figures

ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        "?",
    )
    return {
        "kernel": platform.release(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_before": os.getloadavg()[0],
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bytes", type=int, default=16 << 20, help="bulk transfer size")
    ap.add_argument("--flood-rate", type=float, default=10000.0)
    ap.add_argument(
        "--flood-seconds",
        type=float,
        default=2.0,
        help="the issue asks 10 s; 2 s keeps the bench short on a shared machine",
    )
    ap.add_argument("--catalogue", action="store_true", help="also bench/catalogue.py")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--only", help="comma-separated figures, e.g. bulk,idle")
    args = ap.parse_args()
    out = {"machine": machine(), "figures": {}}
    steps = [
        ("bulk", lambda: figures.bulk(args.bytes)),
        ("bulk_queued", lambda: figures.bulk(args.bytes, figures.ALL_QUEUED)),
        ("idle", figures.idle),
        ("flood", lambda: figures.flood(args.flood_rate, args.flood_seconds)),
        ("flood_queued", lambda: figures.flood(args.flood_rate, args.flood_seconds, figures.SYNS_QUEUED)),
        ("setup", figures.setup),
        ("json", figures.json_size),
    ]
    if args.catalogue:
        steps.append(("catalogue", figures.catalogue))
    if args.only:
        steps = [(n, f) for n, f in steps if n in args.only.split(",")]
    for name, step in steps:
        out["figures"][name] = step()
        print(f"{name}: {json.dumps(out['figures'][name])}", flush=True)
    out["machine"]["load_after"] = os.getloadavg()[0]
    path = args.json or ROOT / "bench" / "runs" / time.strftime("%Y%m%d-%H%M%S.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print()
    print(figures.table(out))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
