"""Expectations per kernel version (`expect.kernels`): parsing the ranges, replacing
keys for a kernel inside them, and the file:line errors."""

import pytest

from tcplab.core.check.expect import check_scenario
from tcplab.core.kernel_expect import for_kernel, overlay, parse_range
from tcplab.core.model.kernel import Kernel
from tcplab.core.scenario import HostExpect, KernelRange
from tcplab.errors import ScenarioError
from tcplab.format.load import load_text

BASE = """\
scenario: x
summary: y
apps:
  server: [listen: 8080, accept, close]
  client: [connect: "server:8080", close]
expect:
  server:
    accept: ok
    sockets: {SYN_RECV: 2}
    states: [SYN_RECV, ESTABLISHED, CLOSE]
"""


@pytest.mark.parametrize(
    "text, inside, outside",
    [
        (">= 6.5", [(6, 5), (6, 18), (7, 0)], [(6, 4), (5, 15)]),
        ("< 6.13", [(6, 1), (6, 12)], [(6, 13), (6, 18)]),
        (">= 6.5, < 6.13", [(6, 5), (6, 12)], [(6, 1), (6, 13)]),
        ("<6.13,>=6.11", [(6, 11), (6, 12)], [(6, 10), (6, 13)]),
    ],
)
def test_ranges(text, inside, outside):
    r = parse_range(text)
    assert isinstance(r, KernelRange)
    assert all(v in r for v in inside) and not any(v in r for v in outside)


@pytest.mark.parametrize(
    "text, why",
    [
        ("6.5", "a bound such as"),
        ("> 6.5", "a bound such as"),
        (">= 6", "a bound such as"),
        (">= 6.5, >= 6.6", "two lower bounds"),
        (">= 6.13, < 6.5", "an empty range"),
        (">= 6.5, < 6.6, < 6.7", "one or two bounds"),
    ],
)
def test_bad_ranges(text, why):
    assert why in parse_range(text)


def test_a_range_replaces_only_the_keys_it_gives():
    base = HostExpect(
        calls={"accept": "ok"},
        sockets={"SYN_RECV": 2, "LISTEN": 1},
        states=("SYN_RECV", "ESTABLISHED"),
        lines={"accept": 8, "sockets": 9, "states": 10},
    )
    over = HostExpect(sockets={"SYN_RECV": 3}, lines={"sockets": 13})
    got = overlay(base, over)
    assert got.sockets == {"SYN_RECV": 3, "LISTEN": 1} and got.calls == {"accept": "ok"}
    assert got.states == base.states and got.lines["sockets"] == 13
    assert overlay(base, HostExpect(states=("ESTABLISHED",), lines={"states": 14})).states == ("ESTABLISHED",)


def test_loaded_and_applied_by_version():
    sc = load_text(BASE + '  kernels:\n    "< 6.13": {server: {sockets: {SYN_RECV: 3}}}\n', "x.yaml")
    (k,) = sc.expect.by_kernel
    assert k.line == 12 and k.range.before == (6, 13)
    old, applied = for_kernel(sc.expect.hosts, sc.expect.by_kernel, (6, 1))
    assert old["server"].sockets == {"SYN_RECV": 3} and applied == [k]
    new, applied = for_kernel(sc.expect.hosts, sc.expect.by_kernel, (6, 18))
    assert new["server"].sockets == {"SYN_RECV": 2} and applied == []
    assert for_kernel(sc.expect.hosts, sc.expect.by_kernel, None)[0] == sc.expect.hosts


def test_the_check_judges_the_kernels_own_expectation():
    from unit.test_check_states import time_wait_record

    sc = load_text(
        BASE.replace(
            "    accept: ok\n    sockets: {SYN_RECV: 2}\n    states: [SYN_RECV, ESTABLISHED, CLOSE]\n", ""
        ).replace("  server:\n", "  client:\n    lasts: {TIME_WAIT: 60s}\n")
        + '  kernels:\n    "< 6.5": {client: {lasts: {TIME_WAIT: 50s}}}\n'
        + "timeout: 80s\n",
        "x.yaml",
    )
    rec = time_wait_record()  # TIME_WAIT 60.1 s
    (new,) = check_scenario(sc, rec, Kernel((6, 18)))
    (old,) = check_scenario(sc, rec, Kernel((6, 1)))
    assert new.passed and new.expected == 60.0
    assert not old.passed and old.expected == 50.0


@pytest.mark.parametrize(
    "tail, line, key, message",
    [
        ('  kernels:\n    "6.13": {server: {accept: ok}}\n', 12, "expect.kernels.6.13", "a bound such as"),
        ('  kernels:\n    "< 6.13": {}\n', 12, "expect.kernels.< 6.13", "client: or server:"),
        (
            '  kernels:\n    "< 6.13": {router: {accept: ok}}\n',
            12,
            "expect.kernels.< 6.13.router",
            "unknown key",
        ),
        (
            '  kernels:\n    "< 6.13": {server: {connect: ok}}\n',
            12,
            "expect.kernels.< 6.13.server.connect",
            "no connect step",
        ),
    ],
)
def test_bad_input_names_file_line_and_key(tail, line, key, message):
    with pytest.raises(ScenarioError) as e:
        load_text(BASE + tail, "x.yaml")
    text = str(e.value)
    assert text.startswith(f"x.yaml:{line}: {key}") and message in text, text
