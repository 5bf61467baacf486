"""Each figure of `python -m bench`: measured, then set beside its anchor and goal.

Every function builds what it needs (bench/lab.py or a whole tcplab run), tears it
down, and returns plain numbers: seconds as microseconds or seconds, rates in MB/s
(10^6 bytes a second).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from bench import lab as blab
from tcplab.core.faults import Fault

ROOT = Path(__file__).resolve().parents[1]
ARMED = [Fault("delay", "fin", None, None, by=0.001)]  # the "one fault armed"
# A fault on SYNs that never acts (its nth is never reached): every SYN of a flood
# is queued and decided, the hook's worst case. Under ARMED the SYNs pass unheld and
# the hook only watches them (tcplab/lab/hook/watch.py).
SYNS_QUEUED = [Fault("drop", "syn", (10**9,), None)]
# A fault on data that never acts: a pure-ACK name depends on every segment before
# it, so every segment is queued and decided (selection.py), the hook's whole load.
ALL_QUEUED = [Fault("drop", "data", (10**9,), None)]
PORT = 5001
REPEATS = 3  # bulk transfers per side: the median is reported, all are kept


def _quantiles(values: list[float], scale: float = 1e6) -> dict:
    if not values:
        return {"n": 0}
    v = sorted(values)
    at = lambda q: round(v[min(len(v) - 1, int(q * len(v)))] * scale, 1)  # noqa: E731
    return {"n": len(v), "p50": at(0.5), "p99": at(0.99), "max": round(v[-1] * scale, 1)}


def residencies(record) -> list[float]:
    """Each delivered segment's time in the router: kernel receive stamp to verdict."""
    return [
        s.t_out - s.t
        for s in record.segments
        if s.fate == "delivered" and s.t_out is not None and not s.injected
    ]


def _hook_residency(stats: dict, record) -> dict:
    """The hook's own figures (its stats at the end): only segments it queued, kernel
    receive stamp to verdict. The record's t_out - t is zero for the segments the
    observer saw pass, so it would flatter the hook. An older hook reports none: then
    every segment was queued, and the record's figures are the same thing."""
    r = stats.get("residency")
    if r is None:
        return _quantiles(residencies(record))
    return {"n": r.get("queued"), "p50": r.get("p50_us"), "p99": r.get("p99_us"), "max": r.get("max_us")}


def _transfers(plan, nbytes: int) -> list[float]:
    """MB/s of REPEATS transfers client -> server, each timed by the receiver."""
    rates = []
    for _ in range(REPEATS):
        sink = blab.start(plan.server_ns, "sink", PORT, 1)
        blab.listening(sink)
        blab.peer(plan.client_ns, "bulk", plan.server_addr, PORT, nbytes)
        got = json.loads(sink.communicate()[0].splitlines()[-1])["connections"][0]
        rates.append(got["bytes"] / got["seconds"] / 1e6)
    return rates


def bulk(nbytes: int, faults=None) -> dict:
    with blab.lab() as plan:
        bare = _transfers(plan, nbytes)
        with blab.hooked(plan, faults or ARMED) as hook:
            armed = _transfers(plan, nbytes)
        record = hook.record
    hooked, unhooked = statistics.median(armed), statistics.median(bare)
    return {
        "bytes": nbytes,
        "unhooked_MBps": [round(r, 1) for r in bare],
        "armed_MBps": [round(r, 1) for r in armed],
        "ratio": round(hooked / unhooked, 4),
        "goal": ">= 0.9",
        "recorded_segments": len(record.segments),
        "residency_us": _hook_residency(hook.stats, record),
        "queue": {k: hook.stats.get(k) for k in ("queue_dropped", "user_dropped")},
    }


def _connects(plan, n: int = 200, gap: float = 0.005) -> list[float]:
    sink = blab.start(plan.server_ns, "sink", PORT, n)
    blab.listening(sink)
    times = blab.peer(plan.client_ns, "connects", plan.server_addr, PORT, n, gap)
    sink.communicate()
    return times["connect_seconds"]


def idle() -> dict:
    """Handshakes one at a time: the hook's own latency, with nothing queued behind."""
    with blab.lab() as plan:
        bare = _connects(plan)
        with blab.hooked(plan, ARMED) as hook:
            armed = _connects(plan)
        record = hook.record
    extra = statistics.median(armed) - statistics.median(bare)
    return {
        "connects": len(armed),
        "unhooked_connect_us": _quantiles(bare),
        "armed_connect_us": _quantiles(armed),
        "extra_rtt_p50_us": round(extra * 1e6, 1),
        "rtt_goal": "<= 50 us",
        "residency_us": _hook_residency(hook.stats, record),
        "residency_goal": "p50 <= 100 us, p99 <= 1000 us",
    }


def flood(rate: float, seconds: float, faults=None) -> dict:
    with blab.lab() as plan:
        with blab.hooked(plan, faults or ARMED) as hook:
            sent = blab.peer(plan.client_ns, "flood", plan.client_addr, plan.server_addr, PORT, rate, seconds)
            time.sleep(0.5)  # the last answers pass
        record = hook.record
    syns = [s for s in record.segments if s.name == "syn"]
    return {
        "rate_asked": rate,
        "seconds": seconds,
        "syns_sent": sent["syns"],
        "rate_sent": round(sent["syns"] / sent["seconds"]),
        "syns_recorded": len(syns),
        "segments_recorded": len(record.segments),
        "queue_dropped": hook.stats.get("queue_dropped"),
        "user_dropped": hook.stats.get("user_dropped"),
        "goal": "0 drops",
        "observer_drops": hook.stats.get("observer_drops"),
        "watch_drops": hook.stats.get("watch_drops"),
        "residency_us": _hook_residency(hook.stats, record),
    }


def _run(path: Path):
    from tcplab.runner import run_scenario
    from tcplab.format.load import load_scenario

    return run_scenario(load_scenario(path))


def setup() -> dict:
    """A whole tcplab run of a short scenario: its wall time outside the scenario."""
    res = _run(ROOT / "scenarios" / "handshake" / "no-listener.yaml")
    timings = res.to_json().get("timings", {})
    scenario = timings.get("run", 0.0)
    return {
        "scenario": "handshake/no-listener",
        "verdict": res.verdict,
        "wall_s": round(res.duration, 3),
        "scenario_s": scenario,
        "outside_scenario_s": round(res.duration - scenario, 3),
        "goal": "<= 0.5 s",
        "phases_s": timings,
    }


def json_size() -> dict:
    """Bytes of result JSON per 1,000 segments, from a bulk run through tcplab itself
    (its runner, record and live path), with its throughput and residency."""
    res = _run(ROOT / "bench" / "bulk.yaml")
    doc = res.to_json()
    segs = [e for e in doc["events"] if e["kind"] == "segment"]
    size = len(json.dumps(doc))
    apps = {(e["host"], e["call"]): e for e in doc["events"] if e["kind"] == "app"}
    recv, conn = apps.get(("server", "recv")), apps.get(("client", "connect"))
    took = recv["t_end"] - conn["t_end"] if recv and conn and recv["t_end"] else None
    return {
        "scenario": "bench/bulk.yaml",
        "verdict": res.verdict,
        "segments": len(segs),
        "json_bytes": size,
        "bytes_per_1000_segments": round(size / len(segs) * 1000),
        "tcplab_MBps": round(4 * 2**20 / took / 1e6, 1) if took else None,
        "residency_us": _quantiles(residencies(res.record)),
    }


def catalogue() -> dict:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "catalogue.py")], cwd=ROOT, capture_output=True, text=True
    )
    return {"output": proc.stdout.splitlines()[-8:]}


def table(out: dict) -> str:
    f = out["figures"]
    rows = [("figure", "measured", "anchor", "ratio / value", "goal")]
    for key, how in (("bulk", "armed"), ("bulk_queued", "all queued")):
        if key not in f:
            continue
        b = f[key]
        rows.append(
            (
                f"bulk throughput, {how} / unhooked",
                f"{statistics.median(b['armed_MBps']):.1f} MB/s",
                f"{statistics.median(b['unhooked_MBps']):.1f} MB/s",
                f"{b['ratio']:.3f}",
                b["goal"],
            )
        )
        r = b["residency_us"]
        rows.append(
            (
                f"hook residency under bulk ({how}, n={r.get('n')})",
                f"p50 {r.get('p50')} us",
                "",
                f"p99 {r.get('p99')} us",
                "p50 <= 100, p99 <= 1000 us",
            )
        )
    if "idle" in f:
        i = f["idle"]
        r = i["residency_us"]
        rows.append(
            (
                "hook residency, idle lab",
                f"p50 {r.get('p50')} us",
                "",
                f"p99 {r.get('p99')} us",
                i["residency_goal"],
            )
        )
        rows.append(
            (
                "extra handshake RTT (connect p50)",
                f"{i['armed_connect_us']['p50']} us",
                f"{i['unhooked_connect_us']['p50']} us",
                f"+{i['extra_rtt_p50_us']} us",
                i["rtt_goal"],
            )
        )
    for key, how in (("flood", "SYNs watched"), ("flood_queued", "SYNs queued")):
        if key not in f:
            continue
        x = f[key]
        lost = [x.get(k) or 0 for k in ("queue_dropped", "user_dropped", "observer_drops", "watch_drops")]
        rows.append(
            (
                f"SYN flood {x['rate_asked']:.0f}/s for {x['seconds']:g} s ({how})",
                f"{x['rate_sent']}/s sent",
                f"{x['syns_recorded']} recorded",
                "+".join(str(n) for n in lost) + " drops",
                x["goal"],
            )
        )
    if "setup" in f:
        s = f["setup"]
        rows.append(
            (
                "set-up + teardown of a run",
                f"{s['outside_scenario_s']} s",
                f"wall {s['wall_s']} s",
                f"{s['outside_scenario_s']} s",
                s["goal"],
            )
        )
    if "json" in f:
        j = f["json"]
        rows.append(
            (
                "result JSON per 1,000 segments",
                f"{j['bytes_per_1000_segments']} B",
                f"{j['segments']} segments",
                "",
                "(no goal)",
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows)
