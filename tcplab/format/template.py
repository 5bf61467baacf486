"""A new scenario file, written out with a comment on every part (`tcplab new`): one
segment fault (drop, delay or duplicate of a named segment), sysctls per host, and the
client's and server's apps from a few presets, judged by the kernel model. Pure: a
Draft in, YAML text out; the command checks the text with the loader before writing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tcplab.core.segments import VOCABULARY

FAULTS = ("drop", "delay", "duplicate")
PORT = 8080

# preset -> (its steps as YAML flow items, what it does)
CLIENT_APPS = {
    "connect": (['connect: "server:{port}"', "sleep: 1s", "close"], "connects, waits a second, closes"),
    "send": (
        ['connect: "server:{port}"', "send: 1000", "sleep: 1s", "close"],
        "connects, sends 1000 bytes, waits a second, closes",
    ),
    "close": (['connect: "server:{port}"', "close"], "connects and closes at once"),
}
SERVER_APPS = {
    "accept": (
        ["listen: {port}", "accept", "recv", "close"],
        "listens, accepts, reads until the client's data or FIN, closes",
    ),
    "listen": (["listen: {port}", "sleep: 2s"], "listens but never accepts"),
    "none": (["sleep: 2s"], "nothing listens: the kernel answers a SYN with RST"),
}


@dataclass(frozen=True)
class Draft:
    name: str
    segment: str = "syn"
    fault: str = "drop"
    nth: str = "1"  # "all", "2" or "1,3"
    by: str = "500ms"  # delay and duplicate only
    sysctls: dict[str, dict[str, str]] = field(default_factory=dict)  # host -> name -> value
    client: str = "connect"
    server: str = "accept"
    claim: str = ""  # an ID such as H2, or ""
    claim_text: str = ""  # its sentence, for the first line
    timeout: float = 30.0
    schema: str = ""  # the schema's path relative to the file, for editors


def render(d: Draft) -> str:
    """The scenario file's text."""
    what = _fault_words(d)
    first = f"# {d.claim}: {d.claim_text}" if d.claim else f"# {what}."
    lines = [first]
    if d.schema:
        lines.append(f"# yaml-language-server: $schema={d.schema}")
    lines += [
        "# Written by `tcplab new`; check it with `tcplab validate FILE`, see what the",
        "# kernel model predicts with `tcplab explain FILE`, run it with `tcplab run FILE`.",
        f"scenario: {d.name}",
        f"summary: {json.dumps(what + '.', ensure_ascii=False)}",  # JSON is YAML: quoted
    ]
    lines += (
        [f"claims: [{d.claim}]"]
        if d.claim
        else ["# claims: [H2]            # the IDs of the claims it tests (tcplab list --claims)"]
    )
    lines += _hosts(d.sysctls)
    lines += [
        "apps:  # each host's calls, in order (docs/scenario-format.md lists them all)",
        f"  server: [{', '.join(_steps(SERVER_APPS, d.server))}]  # {SERVER_APPS[d.server][1]}",
        f"  client: [{', '.join(_steps(CLIENT_APPS, d.client))}]  # {CLIENT_APPS[d.client][1]}",
        "faults:  # what the router does to the segments; the first matching fault decides",
        f"  - {d.fault}: {d.segment}",
        f"    nth: {_nth(d.nth)}  # which occurrences: 1 is the first, all is every one",
    ]
    if d.fault in ("delay", "duplicate"):
        held = "held" if d.fault == "delay" else "the copy sent"
        lines.append(f"    by: {d.by}  # {held} this long after the original")
    lines += [
        "expect:",
        "  model: linux  # judged against the kernel model's prediction for this kernel",
        "  # and, if you like, expectations of your own, e.g.:",
        "  # client:",
        "  #   connect: ok               # or ETIMEDOUT, ECONNREFUSED, ...",
        "  #   retransmits:",
        "  #     syn: {intervals: [1s]}  # the gaps between the copies",
        f"timeout: {d.timeout:g}s  # the run stops here; the model's last event fits well inside",
    ]
    return "\n".join(lines) + "\n"


def _fault_words(d: Draft) -> str:
    desc = VOCABULARY[d.segment][3]
    which = (
        f"every {desc} ({d.segment})"
        if d.nth == "all"
        else f"the {desc} #{_nth(d.nth).strip('[]')} ({d.segment})"
    )
    how = {"drop": "dropped", "delay": f"held {d.by}", "duplicate": f"duplicated {d.by} later"}
    return f"{which[0].upper()}{which[1:]} {how[d.fault]} in the network"


def _nth(nth: str) -> str:
    parts = [p.strip() for p in nth.split(",") if p.strip()]
    return parts[0] if len(parts) == 1 else f"[{', '.join(parts)}]"


def _steps(presets: dict, name: str) -> list[str]:
    return [step.format(port=PORT) for step in presets[name][0]]


def _hosts(sysctls: dict[str, dict[str, str]]) -> list[str]:
    if not any(sysctls.values()):
        return [
            "# hosts:                   # sysctls per host, e.g. fewer SYN retries:",
            "#   client:",
            "#     sysctls: {net.ipv4.tcp_syn_retries: 2}",
        ]
    lines = ["hosts:  # sysctls set in that host's namespace before the apps start"]
    for host, values in sysctls.items():
        if values:
            pairs = ", ".join(f"{k}: {v}" for k, v in values.items())
            lines += [f"  {host}:", f"    sysctls: {{{pairs}}}"]
    return lines
