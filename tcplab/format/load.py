"""Scenario files: YAML text -> tcplab.core.scenario.Scenario, or one ScenarioError
(`file:line: key: message`, exit 2). This module reads the top level and the hosts;
steps.py, faults.py and expect.py read their own keys, all on reader.py's Reader.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from functools import partial
from pathlib import Path

from yaml.nodes import MappingNode, Node

from tcplab.core.faults import Fault, Forge, HostFault
from tcplab.core.scenario import HOSTS, Expect, Scenario
from tcplab.errors import ScenarioError, ScenarioErrors
from tcplab.format import expect, faults, keys, steps
from tcplab.format.reader import Reader, compose, found, join, line_of, value

__all__ = ["discover", "load_scenario", "load_text"]

MAX_FILE = 1024 * 1024
MAX_TIMEOUT = 3600  # seconds


def scenario(r: Reader, root: Node) -> Scenario:
    """The scenario, or every mistake in it as one ScenarioErrors."""
    if not isinstance(root, MappingNode):
        r.fail(
            root,
            "",
            "expected a mapping of scenario keys (scenario, summary, apps, "
            f"...) at the top level, found {found(root)}",
        )
    top = r.mapping(root, "", keys.TOP_KEYS, required=("scenario", "summary", "apps"))
    name = top.get("scenario", r.string, what="a one-line scenario name", blank=False, one_line=True)
    summary = top.get("summary", r.string, what="a summary", blank=False)
    claims = top.get("claims", partial(_claims, r), ())
    sysctls = top.get("hosts", partial(_hosts, r), {host: {} for host in HOSTS})
    # The timeout comes before the rest: a delay's `by` and `gives_up_after` must fit in
    # it. A wrong one is not held against them: they are measured against the longest.
    before = r.failures
    timeout = top.get("timeout", r.duration, 60.0, positive=True, limit=MAX_TIMEOUT)
    limit = MAX_TIMEOUT if r.failed_since(before) else timeout
    settle = top.get("settle", r.duration, 1.0, limit=600)
    apps = top.get("apps", partial(steps.apps, r))  # None: unknown, for expect's checks
    before = r.failures
    seed = top.get("seed", r.integer, lo=0, hi=keys.MAX_SEED)
    # A wrong seed is noted once: the random faults are not also "without a seed".
    known_seed = 0 if r.failed_since(before) else seed
    before = r.failures
    every = top.get("faults", partial(faults.faults, r), (), timeout=limit, seed=known_seed)
    if (
        seed is not None
        and not r.failed_since(before)
        and not any(isinstance(f, Fault) and f.random for f in every)
    ):
        r.note(
            top.line("seed"),
            "seed",
            "no fault rolls dice (give a drop, delay or duplicate a probability, or a delay a jitter)",
        )
    expected = top.get("expect", partial(expect.expect, r), Expect(), apps=apps, timeout=limit)
    if r.errors:
        raise ScenarioErrors(r.errors)
    return Scenario(
        path=r.path,
        name=name,
        summary=summary.strip(),
        claims=claims,
        sysctls=sysctls,
        apps=apps,
        faults=tuple(f for f in every if isinstance(f, Fault)),
        expect=expected,
        timeout=timeout,
        settle=settle,
        lines=dict(r.lines),
        host_faults=tuple(f for f in every if isinstance(f, HostFault)),
        forges=tuple(f for f in every if isinstance(f, Forge)),
        seed=seed,
    )


def _claims(r: Reader, node: Node, key: str) -> tuple[str, ...]:
    ids: list[str] = []
    what = "a claim ID such as H2, T8 or F1 (see CLAIMS.md)"
    for item, ikey in r.items(node, key):
        if not isinstance(claim := value(item), str) or not keys.CLAIM.fullmatch(claim):
            r.note(item, ikey, f"expected {what}, found {found(item)}")
        elif claim in ids:
            r.note(item, ikey, f"{claim} is listed twice")
        else:
            ids.append(claim)
    return tuple(ids)


def _hosts(r: Reader, node: Node, key: str) -> dict[str, dict[str, str]]:
    hosts, by_host = r.mapping(node, key, HOSTS), {host: {} for host in HOSTS}
    for host in hosts:
        by_host[host] = hosts.get(host, partial(_host, r), {})
    return by_host


def _host(r: Reader, node: Node, key: str) -> dict[str, str]:
    return r.mapping(node, key, keys.HOST_KEYS).get("sysctls", partial(_sysctls, r), {})


def _sysctls(r: Reader, node: Node, key: str) -> dict[str, str]:
    settings = {}
    for name, (knode, vnode) in r.entries(node, key).items():
        if not keys.SYSCTL.fullmatch(name):
            r.note(
                knode,
                join(key, name),
                "expected a per-namespace sysctl name such "
                "as net.ipv4.tcp_syn_retries (only net.* can differ per host)",
            )
            continue
        setting = value(vnode)
        if type(setting) is not int:  # written to /proc/sys as text: one line of it
            setting = r.attempt(
                r.string,
                vnode,
                join(key, name),
                "an integer or a one-line string",
                blank=False,
                one_line=True,
            )
        settings[name] = str(setting)
        r.lines[join(key, name)] = line_of(knode)
    return settings


def load_text(text: str, path: str) -> Scenario:
    """Parse scenario text; `path` is used in messages and as Scenario.path."""
    return scenario(Reader(path), compose(text, path))


def load_scenario(path: str | Path) -> Scenario:
    shown = str(path)
    try:
        with open(path, "rb") as f:  # bounded: /dev/zero is not a scenario
            data = f.read(MAX_FILE + 1)
        if len(data) > MAX_FILE:
            raise ScenarioError(shown, None, "", f"larger than {MAX_FILE // 1024} KiB: not a scenario file")
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        why = {
            errno.ENOENT: "no such file or directory",
            errno.EISDIR: "is a directory, expected a scenario file",
        }.get(getattr(e, "errno", None), f"cannot read: {getattr(e, 'strerror', None) or e}")
        raise ScenarioError(shown, None, "", why) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ScenarioError(
            shown,
            data[: e.start].count(b"\n") + 1,
            "",
            f"expected UTF-8 text, found byte 0x{data[e.start]:02x}",
        ) from None
    return load_text(text, shown)


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; directories -> their *.yaml and *.yml files, recursively, sorted.
    Hidden files and directories (.git, editor droppings) are skipped; repeats dropped."""
    found: list[Path] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise ScenarioError(str(given), None, "", "no such file or directory")
        files = (
            [path]
            if not path.is_dir()
            else sorted(
                f
                for f in path.rglob("*")
                if f.suffix in (".yaml", ".yml")
                and f.is_file()
                and not any(part.startswith(".") for part in f.relative_to(path).parts)
            )
        )
        for file in files:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                found.append(file)
    return found
