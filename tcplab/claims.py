"""The documented claims, and the report that puts each one next to what this kernel did.

The 36 claims come from five tutorial documents (see docs/claims.md for where each one
is written). A claim that names a number carries it here as a `Measure`: the report
reads the same quantity from the kernel model's prediction and from the observed run,
and says in one sentence where documents and kernel differ. Nothing here runs anything:
results (the run JSON) in, a report (a dict) out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


@dataclass(frozen=True)
class Measure:
    """A number a document gives, and where to find the same number in a run.

    kind:  call      - how long the host's first `what` call took (start to return)
           offsets   - times of the host's 2nd, 3rd, ... `what` segment since its first
           retransmits - how many `what` segments the host sent after the first
           state     - how long the host's first socket to enter state `what` stayed in it
    """

    label: str
    documented: float | tuple[float, ...]
    kind: str
    host: str
    what: str
    why: str = ""  # why a modern kernel may differ; printed only when the numbers do
    # The sysctls the number depends on, at the value the documents assume ("" = the
    # kernel's default). A run that pins one to something else (a fast variant) cannot
    # confirm or refute the documents' number, so it is not compared.
    setting: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Claim:
    id: str
    seeds: tuple[str, ...]
    text: str
    measures: tuple[Measure, ...] = field(default_factory=tuple)


_SYN_WHY = ("Linux 6.5+ retransmits the first tcp_syn_linear_timeouts (4) SYNs after a "
            "fixed 1 s and tcp_syn_retries defaults to 6, so with defaults connect() "
            "gives up after about 131 s, not 63 s.")
# What the documents assume: tcp_syn_retries=5 and (before 6.5) no linear timeouts.
_SYN = (("net.ipv4.tcp_syn_retries", "5"), ("net.ipv4.tcp_syn_linear_timeouts", "0"))
_SYNACK = (("net.ipv4.tcp_synack_retries", "5"),)
_FIN_WHY = ("A FIN is retransmitted on the connection's RTO, computed from the measured "
            "round trip with a 200 ms floor (tcp_rto_min), not on the 1 s initial RTO "
            "of a SYN.")

CLAIMS: tuple[Claim, ...] = (
    Claim("H1", ("000", "001", "002", "003", "004"),
          "Normal 3-way handshake: client CLOSED→SYN_SENT→ESTABLISHED, server "
          "LISTEN→SYN_RECV→ESTABLISHED; SYN seq=x, SYN-ACK seq=y ack=x+1, ACK ack=y+1."),
    Claim("H2", ("003",),
          "A lost SYN is retransmitted with the same sequence number, the timeout doubling "
          "1, 2, 4, 8, 16 s; after 32 s more the client gives up (tcp_syn_retries=5, 63 s) "
          "and connect() fails.",
          (Measure("SYN retransmits at (s after the first)", (1, 3, 7, 15, 31), "offsets",
                   "client", "syn", _SYN_WHY, _SYN),
           Measure("connect() fails after (s)", 63.0, "call", "client", "connect",
                   _SYN_WHY, _SYN))),
    Claim("H3", ("001",),
          "An unanswered SYN-ACK: Linux retries 5 times, waiting 1+2+4+8+16+32 = 63 s "
          "in all (server side).",
          (Measure("SYN-ACK retransmits at (s after the first)", (1, 3, 7, 15, 31),
                   "offsets", "server", "syn-ack", setting=_SYNACK),
           Measure("SYN-ACK retransmissions", 5.0, "retransmits", "server", "syn-ack",
                   setting=_SYNACK))),
    Claim("H4", ("003",),
          "A lost SYN-ACK makes both sides retransmit: the client its SYN "
          "(tcp_syn_retries), the server its SYN-ACK (tcp_synack_retries)."),
    Claim("H5", ("003",),
          "A lost third ACK: the server retransmits the SYN-ACK until tcp_synack_retries "
          "is used up, waits twice the last timeout and drops the half-open connection; "
          "the ACK itself is never retransmitted.",
          (Measure("SYN-ACK retransmissions", 5.0, "retransmits", "server", "syn-ack",
                   setting=_SYNACK),
           Measure("half-open connection dropped after (s)", 63.0, "state", "server",
                   "SYN_RECV", setting=_SYNACK))),
    Claim("H6", ("000", "004"),
          "SYN_RCVD is only visible when the final handshake ACK is withheld."),
    Claim("H7", ("003",),
          "The third handshake segment may carry data; the client is ESTABLISHED after "
          "sending it; if it is lost and the client sends data, the server becomes "
          "ESTABLISHED on that data segment."),
    Claim("H8", ("003",),
          "connect() returns after the 2nd handshake segment; accept() returns after "
          "the 3rd."),
    Claim("H9", ("003",),
          "Without accept() the connection is still established (it waits in the accept "
          "queue)."),
    Claim("H10", ("003",),
          "The accept queue holds min(backlog, somaxconn); when it is full, "
          "tcp_abort_on_overflow decides between dropping and RST."),
    Claim("H11", ("001", "004"),
          "A SYN flood fills the half-open queue; with tcp_syncookies the server answers "
          "with SYN cookies and a genuine client still connects."),
    Claim("H12", ("003",),
          "No listener: the SYN is answered by RST and connect() fails with "
          "ECONNREFUSED."),
    Claim("H13", ("003",),
          "Without listen(), a simultaneous open still establishes a connection."),
    Claim("H14", ("003",),
          "A stale SYN reaching the server first gets a SYN-ACK the client rejects with "
          "RST; the genuine handshake then succeeds."),
    Claim("H15", ("003", "004"),
          "The MSS is negotiated in the SYN options; 536 if absent."),
    Claim("H16", ("004",),
          "Many SYN_SENT sockets on a client mean the server's network drops SYNs or "
          "never answers."),
    Claim("T1", ("000", "001", "002", "003", "004"),
          "Normal 4-way close: the active closer goes FIN_WAIT_1→FIN_WAIT_2→TIME_WAIT→"
          "CLOSED, the passive closer CLOSE_WAIT→LAST_ACK→CLOSED; each FIN takes one "
          "sequence number."),
    Claim("T2", ("000", "004"),
          "FIN_WAIT_1 receiving FIN and ACK together goes straight to TIME_WAIT (the "
          "4-way close becomes 3-way)."),
    Claim("T3", ("003",),
          "A lost first FIN is retransmitted (tcp_orphan_retries times); then the closer "
          "waits twice the last timeout and closes.",
          (Measure("first FIN retransmit after (s)", (1.0,), "offsets", "client", "fin",
                   _FIN_WHY, (("net.ipv4.tcp_rto_min_us", ""),)),)),
    Claim("T4", ("003",),
          "A lost ACK of the first FIN: the active closer retransmits its FIN and the "
          "server ACKs again."),
    Claim("T5", ("003",),
          "FIN_WAIT_2 after close() lasts at most tcp_fin_timeout (60 s); after "
          "shutdown(SHUT_WR) it lasts for ever.",
          (Measure("FIN_WAIT2 after close() lasts (s)", 60.0, "state", "client",
                   "FIN_WAIT2", setting=(("net.ipv4.tcp_fin_timeout", "60"),)),)),
    Claim("T6", ("003",),
          "A lost FIN from the passive closer is retransmitted from LAST_ACK "
          "(tcp_orphan_retries); the active closer's FIN_WAIT_2 times out after "
          "tcp_fin_timeout."),
    Claim("T7", ("003",),
          "A lost last ACK: the passive closer retransmits its FIN; the active closer in "
          "TIME_WAIT ACKs again and restarts its 2MSL timer."),
    Claim("T8", ("001", "003"),
          "TIME_WAIT lasts 2MSL; Linux's MSL is 30 s, so 60 s; only the active closer "
          "has it.",
          (Measure("TIME_WAIT lasts (s)", 60.0, "state", "client", "TIME_WAIT"),)),
    Claim("T9", ("003",),
          "Without TIME_WAIT, a retransmitted FIN would be answered with RST."),
    Claim("T10", ("000", "004"),
          "Simultaneous close: both send FIN and both pass through CLOSING."),
    Claim("T11", ("001", "003", "004"),
          "Many CLOSE_WAIT sockets: the passive side never calls close()."),
    Claim("T12", ("003",),
          "Many TIME_WAIT sockets on a client exhaust its local ports for one "
          "destination ip:port (ip_local_port_range)."),
    Claim("F1", ("002",),
          "Server host crash: the client retransmits its data until the retry limit "
          "(tcp_retries2), then closes.",
          (Measure("data retransmissions before the client gives up (tcp_retries2=15)",
                   15.0, "retransmits", "client", "data",
                   "tcp_retries2 is turned into a time, 924.6 s after the first RTO "
                   "retransmission (tcp_model_timeout()), not a count; and a tail loss "
                   "probe goes out before the first RTO.",
                   (("net.ipv4.tcp_retries2", ""),)),)),
    Claim("F2", ("002",),
          "Server host crash and reboot: the client's next segment is answered by RST and "
          "the client closes."),
    Claim("F3", ("002",),
          "Network down between them: the client retransmits (ICMP unreachable is "
          "ignored) until the limit."),
    Claim("F4", ("002",),
          "Network restored before anyone sent: the connection survives; if the client "
          "gave up meanwhile, the server's next segment gets RST."),
    Claim("F5", ("002", "003"),
          "Server process killed (kill -9): the kernel sends FIN and completes the 4-way "
          "close."),
    Claim("F6", ("002",),
          "Server port closed (no listener any more): the next segment is answered by "
          "RST."),
    Claim("F7", ("001", "003"),
          "Client host crash: the server stays ESTABLISHED for ever unless keepalive "
          "probes detect it (keepalive time, interval, probes)."),
    Claim("F8", ("000",),
          "Broken pipe: the client gives up reading and closes; the server later writes "
          "a large response, gets RST, and its next write fails with EPIPE."),
)

BY_ID = {c.id: c for c in CLAIMS}

# Where documents and kernel "agree": within this much of the documented number (the
# timer wheel alone makes a 60 s timer up to ~2 s late at HZ=250).
AGREE_ABS, AGREE_REL = 0.3, 0.05


# --- reading a quantity from a run (observed) or from the model's prediction ----------------

def _app_calls(res: dict, host: str, call: str) -> list[dict]:
    return [e for e in res.get("events", []) if e.get("kind") == "app"
            and e.get("host") == host and e.get("call") == call]


def _times(items, host: str, name: str) -> list[float]:
    return sorted(e["t"] for e in items if e.get("from") == host and e.get("name") == name)


def _state_span(events: list[dict], host: str, state: str, end: float) -> tuple[float, bool] | None:
    """(duration, ended) of the first socket of `host` to enter `state`."""
    key = None
    for e in events:
        if e.get("kind") != "state" or e.get("host") != host:
            continue
        sock = (e.get("laddr"), e.get("lport"), e.get("raddr"), e.get("rport"))
        if key is None and e.get("to") == state:
            key, start = sock, e["t"]
        elif key is not None and sock == key and e.get("from") == state:
            return e["t"] - start, True
    return (end - start, False) if key is not None else None


def observe(m: Measure, res: dict) -> dict[str, Any] | None:
    """The measure's value in a run: {"value": number or list, "detail": str}."""
    events = res.get("events", [])
    if m.kind == "call":
        found = _app_calls(res, m.host, m.what)
        if not found or found[0].get("t_end") is None:
            return None
        c = found[0]
        return {"value": round(c["t_end"] - c["t"], 3), "detail": c.get("result", "")}
    segs = [e for e in events if e.get("kind") == "segment"]
    times = _times(segs, m.host, m.what)
    if m.kind == "offsets":
        return {"value": [round(t - times[0], 3) for t in times[1:]], "detail": ""} \
            if times else None
    if m.kind == "retransmits":
        return {"value": max(len(times) - 1, 0), "detail": ""}
    if m.kind == "state":
        end = max((e["t"] for e in events), default=0.0)
        span = _state_span(events, m.host, m.what, end)
        if span is None:
            return None
        return {"value": round(span[0], 3),
                "detail": "" if span[1] else "still there when the run ended"}
    raise ValueError(f"unknown measure kind {m.kind}")


def predict(m: Measure, res: dict) -> dict[str, Any] | None:
    """The same quantity from the kernel model's prediction saved in the run, if the
    model covers it."""
    model = res.get("model") or {}
    if m.kind == "call":
        call = (model.get("calls") or {}).get(f"{m.host} {m.what}")
        started = _app_calls(res, m.host, m.what)
        if not call or not started:
            return None
        return {"value": round(call["t_end"] - started[0]["t"], 3),
                "detail": call.get("result", "")}
    # The handshake model's segments, and those of the models of later phases
    # (model["teardown"], ...), which keep theirs under their own key.
    parts = [model] + [v for v in model.values() if isinstance(v, dict)]
    segs = [s for part in parts for s in part.get("segments") or []]
    times = _times(segs, m.host, m.what)
    if m.kind == "offsets" and times:
        return {"value": [round(t - times[0], 3) for t in times[1:]], "detail": ""}
    if m.kind == "retransmits" and times:
        return {"value": len(times) - 1, "detail": ""}
    if m.kind == "state":
        for part in parts:  # {"states": {host: [{t, state}, ...]}}: a state lasts until the next
            states = part.get("states")
            seq = states.get(m.host) if isinstance(states, dict) else None
            for here, after in zip(seq or [], (seq or [])[1:]):
                if here.get("state") == m.what:
                    return {"value": round(after["t"] - here["t"], 3), "detail": ""}
    return None


def agrees(documented, value) -> bool:
    docs = documented if isinstance(documented, tuple) else (documented,)
    vals = value if isinstance(value, list) else [value]
    if len(vals) < len(docs):
        return False
    return all(abs(v - d) <= max(AGREE_ABS, AGREE_REL * abs(d)) for d, v in zip(docs, vals))


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, (list, tuple)):
        return ", ".join(f"{v:g}" for v in value) if value else "none"
    return f"{value:g}"


def _sentence(m: Measure, kernel: str, obs: dict) -> str:
    said = _fmt(m.documented)
    got = _fmt(obs["value"]) + (f" ({obs['detail']})" if obs["detail"] else "")
    text = f"The documents say {m.label} {said}; Linux {kernel} did {got}."
    return f"{text} {m.why}" if m.why else text


# --- the report ----------------------------------------------------------------------------

def shortened(m: Measure, pinned: dict[str, dict[str, str]]) -> list[str]:
    """The sysctls this run pins away from what the documents assume for `m`."""
    away = []
    for host_values in pinned.values():
        for name, documented in m.setting:
            value = host_values.get(name)
            if value is not None and (documented == "" or value != documented):
                away.append(f"{name.rsplit('.', 1)[1]}={value}")
    return sorted(set(away))


def scenario_row(res: dict, claim: Claim, pinned: dict[str, dict[str, str]]) -> dict:
    kernel = res.get("kernel", "?")
    measures = []
    for m in claim.measures:
        obs = observe(m, res)
        if obs is None:
            continue  # this scenario does not show that quantity (another one does)
        pred = predict(m, res)
        away = shortened(m, pinned)
        differs = not away and not agrees(m.documented, obs["value"])
        measures.append({
            "label": m.label, "documented": m.documented, "model": pred and pred["value"],
            "observed": obs["value"], "observed_detail": obs["detail"],
            "comparable": not away, "documents_hold": not away and not differs,
            "sentence": (f"Not comparable with the documents: this run pins "
                         f"{', '.join(away)}." if away else
                         _sentence(m, kernel, obs) if differs else "")})
    failed = [c for c in res.get("checks", []) if not c.get("passed")]
    return {"scenario": res.get("scenario"), "file": res.get("file"),
            "verdict": res.get("verdict"), "duration": res.get("duration"),
            "pinned": {h: v for h, v in pinned.items() if v},
            "checks": len(res.get("checks", [])), "failed": [c["name"] for c in failed],
            "errors": res.get("errors", []), "measures": measures}


def claim_verdict(rows: list[dict], covered: bool) -> str:
    if not rows:
        return "not run" if covered else "no scenario"
    verdicts = {r["verdict"] for r in rows}
    for v in ("error", "fail"):
        if v in verdicts:
            return v
    return "pass"


def build_report(results: list[dict], scenarios: dict[str, tuple[tuple[str, ...], dict]],
                 kernel: str, hz: int | None, version: str,
                 now: datetime | None = None, source: str = "") -> dict:
    """results: run JSONs; scenarios: name -> (claim IDs, pinned sysctls per host) for
    every scenario file there is (run or not), so claims without a scenario show as
    such and claims whose scenarios did not run (another kernel) as "not run"."""
    now = now or datetime.now(timezone.utc)
    scenario_claims = {name: ids for name, (ids, _pinned) in scenarios.items()}
    claims = []
    for claim in CLAIMS:
        rows = [scenario_row(r, claim, scenarios.get(r.get("scenario"), ((), {}))[1])
                for r in results if claim.id in r.get("claims", [])]
        covered = any(claim.id in ids for ids in scenario_claims.values())
        claims.append({
            "id": claim.id, "seeds": list(claim.seeds), "text": claim.text,
            "documented": [{"label": m.label, "value": m.documented} for m in claim.measures],
            "scenarios": sorted(n for n, ids in scenario_claims.items() if claim.id in ids),
            "verdict": claim_verdict(rows, covered), "runs": rows})
    counts: dict[str, int] = {}
    for c in claims:
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    return {"kernel": kernel, "hz": hz, "tcplab": version,
            "generated": now.strftime("%Y-%m-%d %H:%M UTC"), "counts": counts,
            "source": source,
            "claims": claims}


def render_markdown(report: dict) -> str:
    out = [
        "# Claims report: the documents against this kernel",
        "",
        f"Generated by `tcplab claims` on Linux **{report['kernel']}** "
        f"(HZ={report['hz'] or '?'}), tcplab {report['tcplab']}, {report['generated']}. "
        "Each claim from the five tutorial documents, the scenarios that test it, what "
        "the documents say, what the kernel model predicted for this kernel and these "
        "sysctls, what was observed, and the verdict of the scenario's checks.",
        "",
        "Verdicts: " + ", ".join(f"{n} {v}" for v, n in sorted(report["counts"].items())) + ".",
        "",
        *([f"Results: {report['source']}", ""] if report.get("source") else []),
        "| claim | verdict | scenarios | the documents say |",
        "|---|---|---|---|",
    ]
    for c in report["claims"]:
        names = ", ".join(f"`{n}`" for n in c["scenarios"]) or "—"
        out.append(f"| {c['id']} | {c['verdict']} | {names} | {c['text']} |")
    for c in report["claims"]:
        out += ["", f"## {c['id']} — {c['verdict']}", "", c["text"] +
                f" (seeds {', '.join(c['seeds'])})", ""]
        if not c["runs"]:
            out.append("No scenario ran for this claim." if c["scenarios"]
                       else "No scenario tests this claim yet.")
            continue
        for r in c["runs"]:
            took = f", {r['duration']:.1f} s" if r.get("duration") is not None else ""
            pins = "; ".join(f"{h}: " + ", ".join(f"{k.rsplit('.', 1)[1]}={v}"
                                                   for k, v in vals.items())
                             for h, vals in r.get("pinned", {}).items())
            line = (f"- `{r['scenario']}` ({r['file']}; "
                    f"{'pins ' + pins if pins else 'kernel defaults'}): "
                    f"**{r['verdict']}**, {r['checks']} checks{took}")
            if r["failed"]:
                line += "; failed: " + ", ".join(r["failed"])
            if r["errors"]:
                line += "; errors: " + "; ".join(r["errors"])
            out.append(line)
            if r["measures"]:
                out += ["", "  | quantity | documents | model | observed |",
                        "  |---|---|---|---|"]
                for m in r["measures"]:
                    obs = _fmt(m["observed"]) + (f" ({m['observed_detail']})"
                                                 if m["observed_detail"] else "")
                    out.append(f"  | {m['label']} | {_fmt(m['documented'])} | "
                               f"{_fmt(m['model'])} | {obs} |")
                out.append("")
                for sentence in dict.fromkeys(m["sentence"] for m in r["measures"]):
                    if sentence:  # once per run, though two quantities may share it
                        out.append(f"  {sentence}")
                out.append("")
    return "\n".join(out).rstrip() + "\n"
