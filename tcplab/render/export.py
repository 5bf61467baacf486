"""Exports of a run for other consumers: JUnit XML for CI systems, a Mermaid
sequenceDiagram for GitHub markdown. Pure functions of the result JSON (the contract),
so a saved run exports the same as a live one."""

from __future__ import annotations

import xml.etree.ElementTree as ET

MERMAID_ARROW = {"delivered": "->>", "delayed": "-)", "dropped": "-x"}


def junit(results: list[dict]) -> str:
    """One <testsuite> per scenario, one <testcase> per check; a failed check is a
    <failure> with expected, actual and tolerance; a run that could not judge is an
    <error>."""
    suites = ET.Element("testsuites", name="tcplab")
    for res in results:
        checks = res.get("checks", [])
        failures = sum(not c["passed"] for c in checks)
        errors = 1 if res["verdict"] == "error" else 0
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=res["scenario"],
            tests=str(len(checks) + errors),
            failures=str(failures),
            errors=str(errors),
            time=f"{res.get('duration', 0):.3f}",
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="kernel", value=res.get("kernel", ""))
        ET.SubElement(props, "property", name="claims", value=",".join(res.get("claims", [])))
        for c in checks:
            case = ET.SubElement(suite, "testcase", classname=res["scenario"], name=c["name"])
            if not c["passed"]:
                tol = f", tolerance {c['tolerance']}" if c.get("tolerance") is not None else ""
                msg = f"expected {c['expected']}, got {c['actual']}{tol}"
                failure = ET.SubElement(case, "failure", message=msg, type="expectation")
                failure.text = msg + (f"\nproof: {c['evidence']}" if c.get("evidence") else "")
        if errors:
            case = ET.SubElement(suite, "testcase", classname=res["scenario"], name="lab")
            err = ET.SubElement(case, "error", message="; ".join(res.get("errors", [])), type="lab")
            err.text = "\n".join(res.get("errors", []))
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _mermaid_text(text: str) -> str:
    # Mermaid treats ';' and '#' specially in messages; keep labels plain.
    return text.replace(";", ",").replace("#", "no. ")


def mermaid(res: dict) -> str:
    """The ladder as a Mermaid sequenceDiagram: segments as arrows between client,
    router and server (dropped ones end at the router with an x), state changes and
    calls as notes."""
    lines = [
        "sequenceDiagram",
        "    participant C as client",
        "    participant R as router",
        "    participant S as server",
    ]
    side = {"client": "C", "server": "S"}

    # A call is drawn when it returned; everything else when it happened.
    def when(e: dict) -> float:
        return e["t_end"] if e["kind"] == "app" and e.get("t_end") is not None else e["t"]

    for e in sorted(res.get("events", []), key=when):
        t = f"{e['t']:.3f}s"
        if e["kind"] == "segment":
            src, dst = side[e["from"]], side["server" if e["from"] == "client" else "client"]
            label = _mermaid_text(
                f"{t} {e['name']} #{e['nth']} [{e['flags']}]"
                + (" retransmission" if e["retransmission"] else "")
            )
            if e.get("injected"):  # made by the router: it only leaves the router
                lines.append(f"    R->>{dst}: {label} (injected by the router: {e['fault']})")
            elif e["fate"] == "dropped":
                lines.append(f"    {src}-x{'R'}: {label} (dropped)")
            else:
                lines.append(f"    {src}->>R: {label}")
                held = f" held {e['t_out'] - e['t']:.3f}s" if e["fate"] == "delayed" else ""
                lines.append(f"    R{MERMAID_ARROW[e['fate']]}{dst}: {label}{held}")
        elif e["kind"] == "state":
            lines.append(
                f"    Note over {side.get(e['host'], 'R')}: "
                + _mermaid_text(f"{t} {e['from']} to {e['to']} ({e['source']})")
            )
        elif e["kind"] == "fault":
            lines.append("    Note over R: " + _mermaid_text(f"{t} {e['host']}: {e['what']}"))
        elif e["kind"] == "app" and e.get("t_end") is not None:
            lines.append(
                f"    Note over {side[e['host']]}: "
                + _mermaid_text(f"{e['t_end']:.3f}s {e['call']}() {e['result']}")
            )
    return "\n".join(lines) + "\n"


def pcap(res: dict, path) -> int:
    """pcapng of every segment as the router saw it arrive and, unless dropped, as it
    left (a held one at its release), each with a comment naming the segment and its
    fate. Returns the number of packets written."""
    from scapy.layers.inet import IP
    from scapy.utils import PcapNgWriter

    base = res.get("started") or 0.0
    written = []
    for e in res.get("events", []):
        if e["kind"] != "segment" or not e.get("raw"):
            continue
        name = f"{e['name']} #{e['nth']} from {e['from']}"
        fate = e["fate"] + (f" by {e['fault']}" if e.get("fault") else "")
        if e.get("injected"):  # made by the router: it only ever left it
            written.append(
                (e["t"], bytes.fromhex(e["raw"]), f"{e['name']} injected by the router ({e.get('fault')})")
            )
            continue
        written.append((e["t"], bytes.fromhex(e["raw"]), f"{name}: sent ({fate})"))
        if e["fate"] != "dropped" and e.get("t_out") is not None:
            how = "released" if e["fate"] == "delayed" else "delivered"
            out = e.get("raw_out") or e["raw"]  # rewritten by the fault (strip-mss)?
            written.append(
                (
                    e["t_out"],
                    bytes.fromhex(out),
                    f"{name}: {how}" + (" as rewritten" if e.get("raw_out") else ""),
                )
            )
    writer = PcapNgWriter(str(path))
    for t, raw, comment in sorted(written, key=lambda w: w[0]):
        packet = IP(raw)
        packet.time = base + t
        packet.comments = [comment.encode()]
        writer.write(packet)
    writer.close()
    return len(written)
