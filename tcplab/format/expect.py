"""`expect:`: what each host's calls return, its segments' counts and timings, its
states and how long they last, and the kernel model to judge against. An expectation
that could never be met (a call the host never makes, a segment it never sends) is
an error in the file, not a check that always fails.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from functools import partial
from typing import Any

from yaml.nodes import MappingNode, Node

from tcplab.core.kernel_expect import parse_range
from tcplab.core.scenario import (
    APP_HOSTS,
    Expect,
    HostExpect,
    KernelExpect,
    Lasting,
    Step,
    Timing,
    Tolerance,
    all_steps,
)
from tcplab.core.segments import VOCABULARY, canonical_name, senders
from tcplab.format import keys
from tcplab.format.reader import Reader, found, hint, join, line_of, show, value
from tcplab.units import parse_duration


def expect(
    r: Reader, node: Node, key: str, apps: dict[str, tuple[Step, ...] | None] | None, timeout: float
) -> Expect:
    """`apps` None, or a host's steps None: not known (a mistake there), so no check
    against them."""
    e = r.mapping(node, key, keys.EXPECT_KEYS)
    return Expect(
        hosts={
            host: e.get(host, partial(host_expect, r), steps=(apps or {}).get(host), timeout=timeout)
            for host in APP_HOSTS
            if host in e
        },
        model=e.get("model", r.choice, choices=keys.MODELS),
        tolerance=e.get("tolerance", partial(tolerance, r), Tolerance()),
        by_kernel=e.get("kernels", partial(kernels, r), (), apps=apps, timeout=timeout),
    )


def kernels(
    r: Reader, node: Node, key: str, apps: dict[str, tuple[Step, ...] | None] | None, timeout: float
) -> tuple[KernelExpect, ...]:
    """`kernels: {"< 6.13": {server: {...}}}`: host expectations for a range of kernel
    versions, replacing the same keys there (core/kernel_expect.py)."""
    out = []
    for text, (knode, vnode) in r.entries(node, key).items():
        rkey = join(key, text)
        parsed = parse_range(str(text))
        if isinstance(parsed, str):
            r.fail(knode, rkey, parsed)
        m = r.mapping(vnode, rkey, APP_HOSTS)
        if not m.entries and not m.unknown:
            r.fail(vnode, rkey, "expected client: or server: expectations for these kernels")
        hosts = {
            host: m.get(host, partial(host_expect, r), steps=(apps or {}).get(host), timeout=timeout)
            for host in APP_HOSTS
            if host in m
        }
        out.append(KernelExpect(parsed, hosts, line_of(knode)))
    return tuple(out)


def tolerance(r: Reader, node: Node, key: str) -> Tolerance:
    t, default = r.mapping(node, key, keys.TOLERANCE_KEYS), Tolerance()
    return Tolerance(abs=t.get("abs", r.duration, default.abs), rel=t.get("rel", r.percent, default.rel))


def host_expect(
    r: Reader, node: Node, key: str, steps: tuple[Step, ...] | None, timeout: float
) -> HostExpect:
    h = r.mapping(node, key, keys.HOST_EXPECT_KEYS)
    host = key.rpartition(".")[2]
    lines = {name: h.line(name) for name in h}
    calls = {}
    for call in (name for name in h if name in keys.EXPECTABLE_CALLS):
        if not _has_step(steps, call):
            r.note(h.line(call), h.path(call), f"can never match: apps.{host} has no {call} step")
        calls[call] = h.get(call, partial(call_results, r))
    if "received" in h and not _has_step(steps, "recv"):
        r.note(h.line("received"), h.path("received"), f"can never match: apps.{host} has no recv step")
    return HostExpect(
        calls=calls,
        retransmits=h.get(
            "retransmits", partial(per_segment, r), {}, host=host, lines=lines, each=partial(timing, r)
        ),
        sends=h.get(
            "sends",
            partial(per_segment, r),
            {},
            host=host,
            lines=lines,
            each=lambda n, k, line: r.integer(n, k, 0),
        ),
        largest=h.get(
            "largest",
            partial(per_segment, r),
            {},
            host=host,
            lines=lines,
            each=lambda n, k, line: r.integer(n, k, 0, 65535),
        ),
        gives_up_after=h.get(
            "gives_up_after", r.duration, limit=timeout, below=True, why=" (the timeout stops the run first)"
        ),
        states=h.get("states", partial(states, r)),
        sockets=h.get("sockets", partial(state_counts, r), {}),
        lasts=h.get("lasts", partial(lastings, r), {}, timeout=timeout),
        returns_after=h.get("returns_after", partial(returns_after, r), {}, host=host, steps=steps),
        lines=lines,
        resent=h.get("resent", partial(per_segment, r), {}, host=host, lines=lines, each=partial(resent, r)),
        received=h.get("received", r.integer, lo=0),
    )


def _has_step(steps: tuple[Step, ...] | None, call: str) -> bool:
    """Does a host make this call? Steps not known (a mistake in them) could."""
    return steps is None or any(step.call == call for step in all_steps(steps))


def call_results(r: Reader, node: Node, key: str) -> str | dict[str, int]:
    """`connect: ok` (every connect) or `connect: {ok: 10, EADDRNOTAVAIL: 5}` (how
    many calls ended each way; repeated calls)."""
    if not isinstance(node, MappingNode):
        return result(r, node, key)
    counts: dict[str, int] = {}
    for name, (knode, vnode) in r.entries(node, key).items():
        outcome = result(r, knode, join(key, name))
        counts[outcome] = r.integer(vnode, join(key, name), 0)
    if not counts:
        r.fail(node, key, "expected at least one RESULT: COUNT, e.g. {ok: 3}")
    return counts


def result(r: Reader, node: Node, key: str) -> str:
    what = "ok or an errno name such as ETIMEDOUT"
    text = r.string(node, key, what)
    if text == "ok" or text in keys.ERRNO_NAMES:
        return text
    code = getattr(errno, text, None) if text.isidentifier() else None
    why = (
        f"; Python reports errno {code} as {errno.errorcode[code]}"
        if type(code) is int and code in errno.errorcode
        else hint(text, ("ok", *sorted(keys.ERRNO_NAMES)))
    )
    r.fail(node, key, f"expected {what}, found {found(node)}{why}")


def per_segment(
    r: Reader, node: Node, key: str, host: str, lines: dict[str, int], each: Callable[[Node, str, int], Any]
) -> dict[str, Any]:
    """`retransmits:` and `sends:` map segment names to something. The host must be
    able to send that segment, or the expectation could never be met."""
    label, by_segment = key.rpartition(".")[2], {}

    def entry(name: str, knode: Node, vnode: Node) -> None:
        skey = join(key, name)
        segment = r.segment(name, knode, skey)
        if host not in senders(segment):
            r.fail(knode, skey, f"can never match: the {host} never sends {segment}")
        if segment in by_segment:
            r.fail(
                knode,
                skey,
                f"{name} is another name for {segment}, given at line {lines[f'{label}.{segment}']}",
            )
        lines[f"{label}.{segment}"] = line_of(knode)
        by_segment[segment] = each(vnode, skey, line_of(knode))

    for name, (knode, vnode) in r.entries(node, key).items():
        r.attempt(entry, name, knode, vnode)
    return by_segment


def timing(r: Reader, node: Node, key: str, line: int) -> Timing:
    t = r.mapping(node, key, keys.TIMING_KEYS)
    if not t.entries and not t.unknown:
        r.fail(node, key, "expected at least one of intervals, offsets, count")
    intervals = t.get("intervals", r.durations)
    offsets = t.get("offsets", r.durations)
    for i, (item, ikey) in enumerate(r.items(t.node("offsets"), t.path("offsets")) if offsets else []):
        if i and offsets[i] < offsets[i - 1]:
            r.fail(
                item,
                ikey,
                f"offsets are times since the first send and cannot decrease, found {show(item.value)[1:-1]}",
            )
    count = t.get("count", r.integer, lo=0)
    sizes = {
        name: len(v) for name, v in (("intervals", intervals), ("offsets", offsets)) if v is not None
    } | ({"count": count} if count is not None else {})
    if len(set(sizes.values())) > 1:
        last = list(sizes)[-1]  # blame the last one the format lists
        said = ", ".join(f"{name} {size}" for name, size in sizes.items())
        r.fail(t.node(last), t.path(last), f"intervals, offsets and count must agree in length, found {said}")
    return Timing(intervals, offsets, count, line)


def states(r: Reader, node: Node, key: str) -> tuple[str, ...]:
    return tuple(state(r, item, ikey) for item, ikey in r.items(node, key, True))


def state(r: Reader, node: Node, key: str, text: str | None = None) -> str:
    if text is None:
        text = r.string(node, key, "a TCP state name such as SYN_SENT")
    name = text.strip().upper().replace("-", "_").removeprefix("TCP_")
    name = keys.STATE_ALIASES.get(name, name)
    if name not in keys.STATES:
        r.fail(
            node,
            key,
            f"unknown TCP state {show(text)}{hint(name, keys.STATES)} "
            f"(expected one of: {', '.join(keys.STATES)})",
        )
    return name


def per_state(r: Reader, node: Node, key: str, each: Callable[[Node, str, str], Any]) -> dict[str, Any]:
    """`sockets:` and `lasts:` map state names to something. CLOSE is where a socket
    is gone: it cannot be counted, and a stay in it never ends."""
    by_state: dict[str, Any] = {}
    lines: dict[str, int] = {}

    def entry(text: str, knode: Node, vnode: Node) -> None:
        skey = join(key, text)
        name = state(r, knode, skey, text)
        if name == "CLOSE":
            r.fail(
                knode,
                skey,
                "can never match: CLOSE means the socket is gone, so it is never counted and never left",
            )
        if name in by_state:
            r.fail(knode, skey, f"{text} is another name for {name}, given at line {lines[name]}")
        lines[name] = line_of(knode)
        by_state[name] = each(vnode, skey, name)

    for text, (knode, vnode) in r.entries(node, key).items():
        r.attempt(entry, text, knode, vnode)
    return by_state


def state_counts(r: Reader, node: Node, key: str) -> dict[str, int]:
    return per_state(r, node, key, lambda n, k, _state: r.integer(n, k, 0))


def lastings(r: Reader, node: Node, key: str, timeout: float) -> dict[str, Lasting]:
    def lasting(n: Node, k: str, _state: str) -> Lasting:
        why = " (the timeout stops the run first)"
        if value(n) == "forever":
            return Lasting(forever=True, line=line_of(n))
        if isinstance(n, MappingNode):
            m = r.mapping(n, k, keys.LASTING_KEYS, required=keys.LASTING_KEYS)
            return Lasting(
                at_least=m.get("at_least", r.duration, limit=timeout, below=True, why=why), line=line_of(n)
            )
        try:
            parse_duration(value(n))
        except (ValueError, OverflowError):
            r.fail(
                n, k, f"expected a duration such as 60s, forever, or {{at_least: DURATION}}, found {found(n)}"
            )
        return Lasting(seconds=r.duration(n, k, limit=timeout, below=True, why=why), line=line_of(n))

    return per_state(r, node, key, lasting)


def returns_after(
    r: Reader, node: Node, key: str, host: str, steps: tuple[Step, ...] | None
) -> dict[str, str]:
    """CALL: SEGMENT, the call returns once that segment from the peer arrived."""
    peer = "server" if host == "client" else "client"
    awaited = {}
    for call, (knode, vnode) in r.entries(node, key).items():
        ckey = join(key, call)
        if not _has_step(steps, call):
            r.note(knode, ckey, f"can never match: apps.{host} has no {show(call)[1:-1]} step")
            continue
        segment = r.segment(r.string(vnode, ckey, "a segment name such as syn-ack"), vnode, ckey)
        if peer not in senders(segment):
            r.fail(
                vnode,
                ckey,
                f"can never match: the {peer} never sends {segment}, so the {host} never receives it",
            )
        awaited[call] = segment
    return awaited


def resent(r: Reader, node: Node, key: str, line: int) -> tuple[int, int | None]:
    """`N` or `{at_least: N, at_most: M}` retransmissions of a segment that occupies
    sequence space (a repeated pure ACK is an answer, never a retransmission)."""
    name = key.rpartition(".")[2]
    if not VOCABULARY[canonical_name(name) or name][2]:
        r.fail(
            line,
            key,
            f"can never match: {name} occupies no sequence space, so it is "
            "never a retransmission (count it with sends)",
        )
    if not isinstance(node, MappingNode):
        n = r.integer(node, key, 0, what="a count, or {at_least: N, at_most: M}")
        return n, n
    b = r.mapping(node, key, keys.BOUND_KEYS)
    if not b.entries:
        r.fail(node, key, "expected at_least, at_most or both")
    lo, hi = b.get("at_least", r.integer, 0, lo=0), b.get("at_most", r.integer, lo=0)
    if hi is not None and hi < lo:
        r.fail(b.node("at_most"), b.path("at_most"), f"expected at least at_least ({lo}), found {hi}")
    return lo, hi
