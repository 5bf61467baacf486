"""The raw results behind the claims report, kept in the repository.

Layout: evidence/<kernel release>/<scenario>.json.gz, each the run JSON exactly as
`tcplab run --json` wrote it (gzip, mtime 0: the same run packs to the same bytes), and
evidence/<kernel release>/scenarios.json, the catalogue the runs came from (each
scenario's file, claims and sysctls), so the report regenerates from the evidence
alone, whatever the scenario files say later.

    python -m tcplab.claims.evidence RESULTS_DIR [--into evidence] [--scenarios scenarios]

copies a results folder (from `tcplab run --json DIR` or `tcplab claims --keep DIR`)
into evidence/<release>/.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

MANIFEST = "scenarios.json"


def _read(path: Path) -> object:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    try:
        return json.loads(data)
    except ValueError:
        raise ValueError(f"{path}: not a JSON file") from None


def _files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and (p.name.endswith(".json") or p.name.endswith(".json.gz")) and p.name != MANIFEST
    )


def load(folder: Path) -> tuple[dict[str, list[dict]], dict[str, dict]]:
    """(kernel release -> run JSONs, scenario name -> {file, claims, sysctls}) from a
    folder of result JSONs (.json or .json.gz), directly or one subfolder per kernel.
    The catalogue is the union of the folders' scenarios.json (empty when none)."""
    groups: dict[str, list[dict]] = {}
    for path in _files(folder):
        res = _read(path)
        if isinstance(res, dict) and "verdict" in res and "claims" in res:
            groups.setdefault(str(res.get("kernel", "?")), []).append(res)
    catalogue: dict[str, dict] = {}
    for path in sorted(folder.rglob(MANIFEST)):
        catalogue.update(_read(path))
    return groups, catalogue


def catalogue_of(scenarios) -> dict[str, dict]:
    """The catalogue as the report needs it, from loaded scenario files."""
    return {
        sc.name: {
            "file": sc.path,
            "claims": list(sc.claims),
            "sysctls": {h: dict(v) for h, v in sorted(sc.sysctls.items())},
        }
        for sc in sorted(scenarios, key=lambda s: s.name)
    }


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def pack(results: Path, into: Path, catalogue: dict[str, dict]) -> list[Path]:
    """Copy every result JSON in `results` to into/<release>/<scenario>.json.gz, and the
    catalogue beside them. Returns the folders written."""
    written: set[Path] = set()
    for path in _files(results):
        res = _read(path)
        if not (isinstance(res, dict) and "verdict" in res and "claims" in res):
            continue
        folder = into / str(res.get("kernel", "unknown"))
        folder.mkdir(parents=True, exist_ok=True)
        raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        name = path.name.removesuffix(".gz").removesuffix(".json")
        (folder / f"{name}.json.gz").write_bytes(_gzip(raw))
        written.add(folder)
    for folder in written:
        (folder / MANIFEST).write_text(json.dumps(catalogue, indent=1, sort_keys=True) + "\n")
    return sorted(written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tcplab.claims.evidence", description="Copy run JSONs into evidence/<release>/."
    )
    parser.add_argument("results", type=Path)
    parser.add_argument("--into", type=Path, default=Path("evidence"))
    parser.add_argument(
        "--scenarios", default="scenarios", help="the scenario files the runs came from (default: scenarios)"
    )
    args = parser.parse_args(argv)
    from tcplab.format.load import discover, load_scenario

    catalogue = catalogue_of(load_scenario(f) for f in discover([args.scenarios]))
    for folder in pack(args.results, args.into, catalogue):
        files = sorted(folder.iterdir())
        size = sum(f.stat().st_size for f in files)
        print(f"{folder}: {len(files) - 1} runs, {size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
