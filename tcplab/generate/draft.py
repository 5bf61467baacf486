"""A generated scenario from its seed. A draw is: a kind (handshake, teardown,
established), an app schedule from shapes.SHAPES, one or two faults, and sysctls. Every
timer chain a fault can start is bounded by pinning the sysctl that ends it (small
retries), and the timeout covers the worst case those sysctls allow (bounds.worst).
The draft is written as YAML that the loader reads back before any file is written.

`generate(seed)` is pure: one `random.Random(seed)` decides everything, so a seed (with
the same kind, fast and linear_timeouts, and this version of the package) names one
file forever. A draw whose timeout would exceed the budget is drawn again from the same
generator, so the result is still a function of the seed.
"""

from __future__ import annotations

import json
import math
import os
import random
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcplab.generate.bounds import worst
from tcplab.generate.shapes import SHAPES
from tcplab.generate.vocabulary import (
    ACTIONS,
    BUDGET_S,
    CHAINED,
    DELAYS,
    DUPLICATE_LAGS,
    FAST_BUDGET_S,
    FAST_DELAYS,
    HOSTS,
    KINDS,
    LINEAR,
    LINEAR_SYSCTL,
    NTHS,
    ORPHAN_RETRIES,
    PHASES,
    PORT,
    RETRIES2,
    S,
    SETTLE,
    SYNACK_RETRIES,
    SYN_RETRIES,
    SYSCTLS,
    TAIL,
    TEXTS,
    VARIATION,
    Dur,
    Fault,
    Plan,
    Step,
    pick,
    weighted,
)


# --- faults and sysctls -----------------------------------------------------------------------


def _fault(rng: random.Random, name: str, sides: frozenset[str], fast: bool) -> Fault:
    action, nth = weighted(rng, ACTIONS), weighted(rng, NTHS)
    sender = None if rng.random() < 0.4 else pick(rng, sorted(sides))
    by = None
    if action == "delay":
        by = pick(rng, FAST_DELAYS if fast else DELAYS)
    elif action == "duplicate":
        by = pick(rng, DUPLICATE_LAGS) or None
    return Fault(action, name, nth, sender, by)


def _faults(rng: random.Random, kind: str, plan: Plan, fast: bool) -> list[Fault]:
    """One or two segment faults (a host fault counts as one), each on a different name
    so that none can shadow the other; the first on a name of the kind's phase."""
    names = sorted(plan.sends)
    if plan.host_fault:
        wanted = 1 if rng.random() < 0.4 else 0
        firsts = [n for n in names if n not in PHASES["handshake"]]
    else:
        wanted = 2 if rng.random() < 0.4 else 1
        firsts = [n for n in PHASES[kind] if n in plan.sends]
    faults: list[Fault] = []
    for i in range(wanted):
        pool = (
            firsts
            if i == 0
            else [
                n
                for n in names
                if n != faults[0].segment and not (plan.host_fault and n in PHASES["handshake"])
            ]
        )
        name = pick(rng, pool)
        faults.append(_fault(rng, name, plan.sends[name], fast))
    return faults


def _sysctls(
    rng: random.Random, plan: Plan, faults: list[Fault], fast: bool, linear: bool
) -> dict[str, dict[str, int]]:
    """The pins the faults need to keep every chain short, then some variation."""
    pins = {h: dict(plan.pins[h]) for h in HOSTS}
    drops = {f.segment for f in faults if f.action == "drop"}
    needed: list[tuple[str, str]] = []
    if drops & {"syn", "syn-ack"}:
        needed += [("client", SYN_RETRIES)] + ([("client", LINEAR)] if linear else [])
    if drops & {"syn-ack", "ack"}:
        needed.append(("server", SYNACK_RETRIES))
    if any(f.action == "drop" and f.nth is None and f.segment in CHAINED for f in faults):
        needed += [(h, name) for h in HOSTS for name in (RETRIES2, ORPHAN_RETRIES)]
    for host, name in needed:
        pins[host].setdefault(name, pick(rng, SYSCTLS[name][2 if fast else 1]))
    for name, (hosts, values, fast_values) in SYSCTLS.items():
        if name == LINEAR and not linear:
            continue  # this kernel has no such sysctl: naming it is a load error at run time
        for host in hosts:
            if name not in pins[host] and rng.random() < VARIATION:
                pins[host][name] = pick(rng, fast_values if fast else values)
    return pins


# --- the file ------------------------------------------------------------------------------------


@dataclass
class Draft:
    """One generated scenario before it is written out."""

    seed: int
    kind: str  # as asked (any, ...): the command that writes it again says this
    phase: str  # what was drawn: handshake, teardown or established
    shape: str
    plan: Plan
    faults: list[Fault]
    pins: dict[str, dict[str, int]]
    timeout: int  # seconds
    body: float


def draft(seed: int, kind: str = "any", fast: bool = False, linear_timeouts: bool = False) -> Draft:
    """Draw until the timeout fits the budget (most draws do at once)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    rng = random.Random(seed)
    budget = FAST_BUDGET_S if fast else BUDGET_S
    for _attempt in range(200):
        phase = pick(rng, KINDS[:3]) if kind == "any" else kind
        shape = pick(rng, sorted(n for n, (_f, kinds) in SHAPES.items() if phase in kinds))
        plan = SHAPES[shape][0](rng, fast)
        faults = _faults(rng, phase, plan, fast)
        pins = _sysctls(rng, plan, faults, fast, linear_timeouts)
        handshake, body = worst(plan, faults, pins, linear_timeouts)
        span = handshake + body + (TAIL + SETTLE) / S
        timeout = math.ceil(span + max(2.0, 0.15 * span))
        if timeout <= budget:
            return Draft(seed, kind, phase, shape, plan, faults, pins, timeout, body)
    raise RuntimeError(f"seed {seed}: no draw fits a {budget} s timeout (a generator bug)")


def generate(seed: int, kind: str = "any", fast: bool = False, linear_timeouts: bool = False) -> str:
    """The YAML text of scenario gen-<seed>; the same arguments give the same bytes."""
    return render(draft(seed, kind, fast, linear_timeouts), fast, linear_timeouts)


def command(seed: int, kind: str, fast: bool, linear_timeouts: bool) -> str:
    flags = (" --fast" if fast else "") + (
        " --linear-timeouts" if linear_timeouts else " --no-linear-timeouts"
    )
    return f"tcplab generate --seed {seed} --count 1 --kind {kind}{flags} --out DIR"


def render(d: Draft, fast: bool, linear_timeouts: bool) -> str:
    summary = _summary(d)
    lines = [
        f"# Generated by tcplab generate, seed {d.seed}; `"
        f"{command(d.seed, d.kind, fast, linear_timeouts)}` writes it again.",
        f"scenario: gen-{d.seed}",
        "summary: >-",
        *("  " + line for line in textwrap.wrap(summary, 86)),
    ]
    if any(d.pins.values()):
        lines.append("hosts:")
        for host in HOSTS:
            if d.pins[host]:
                lines += [f"  {host}:", *_sysctls_yaml(d.pins[host])]
    lines.append("apps:")
    for host in ("server", "client"):
        steps = [
            *_with_listen(host, d.plan.steps[host]),
            ("sleep", Dur(int(d.body * S) - d.plan.busy[host] + TAIL)),
        ]
        lines += _steps_yaml(host, steps)
    faults = [*map(_fault_yaml, d.faults)] + (
        [_host_fault_yaml(d.plan.host_fault)] if d.plan.host_fault else []
    )
    if faults:
        lines += ["faults:", *(line for f in faults for line in f)]
    lines += ["expect: {model: linux}", f"timeout: {d.timeout}s", f"settle: {SETTLE}"]
    return "\n".join(lines) + "\n"


def _sysctls_yaml(pins: dict[str, int]) -> list[str]:
    flow = "    sysctls: {" + ", ".join(f"{k}: {v}" for k, v in sorted(pins.items())) + "}"
    if len(flow) <= 92:
        return [flow]
    return ["    sysctls:", *(f"      {k}: {v}" for k, v in sorted(pins.items()))]


def _with_listen(host: str, steps: list[Step]) -> list[Step]:
    return [("listen", PORT), *steps] if host == "server" else steps


def _summary(d: Draft) -> str:
    parts = [d.plan.phrase]
    if d.faults:
        parts.append("the router " + " and ".join(f.phrase() for f in d.faults))
    pinned = [f"{k.rsplit('.', 1)[1]}={v} on the {h}" for h in HOSTS for k, v in sorted(d.pins[h].items())]
    if pinned:
        parts.append(", ".join(pinned))
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:]


def _value(arg: Any) -> str:
    if isinstance(arg, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in arg.items()) + "}"
    if isinstance(arg, str) and (":" in arg or " " in arg or arg in TEXTS):
        return json.dumps(arg)  # a JSON string is a YAML double-quoted scalar
    return str(arg)


def _step_yaml(step: Step) -> str:
    call, arg = step
    return call if arg is None else f"{call}: {_value(arg)}"


def _steps_yaml(host: str, steps: list[Step]) -> list[str]:
    flow = f"  {host}: [{', '.join(map(_step_yaml, steps))}]"
    if len(flow) <= 92:
        return [flow]
    return [f"  {host}:", *(f"    - {_step_yaml(s)}" for s in steps)]


def _fault_yaml(f: Fault) -> list[str]:
    lines = [f"  - {f.action}: {f.segment}"]
    if f.nth is not None:
        lines.append(f"    nth: {f.nth if isinstance(f.nth, int) else list(f.nth)}")
    if f.sender:
        lines.append(f"    from: {f.sender}")
    if f.by:
        lines.append(f"    by: {f.by}")
    return lines


def _host_fault_yaml(fault: tuple[str, str, Dur]) -> list[str]:
    action, host, at = fault
    return [f"  - {action}: {host}", f"    at: {at}"]


# --- writing files ---------------------------------------------------------------------------


def has_linear_timeouts() -> bool:
    """Whether the running kernel has tcp_syn_linear_timeouts (Linux 6.5+); the CLI's
    default, never read inside generate()."""
    return os.path.isfile(LINEAR_SYSCTL)


def write_scenarios(
    seed: int, count: int, out: Path, kind: str = "any", fast: bool = False, linear_timeouts: bool = False
) -> list[Path]:
    """gen-<seed>.yaml for seeds seed .. seed+count-1, each loaded back by the loader
    first: a file it rejects is a generator bug, raised, never written."""
    from tcplab.errors import ScenarioError
    from tcplab.format.load import load_text

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for s in range(seed, seed + count):
        path = out / f"gen-{s}.yaml"
        text = generate(s, kind, fast, linear_timeouts)
        try:
            load_text(text, str(path))
        except ScenarioError as e:
            raise RuntimeError(f"generator bug, seed {s}: the loader rejects it: {e}") from e
        path.write_text(text)
        written.append(path)
    return written
