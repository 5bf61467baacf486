"""`tcplab demo`: a guided tour of the handshake and teardown scenarios for a classroom.
Before each scenario it says what the claim is (what `tcplab explain` prints), then runs
it with the live ladder, gives the verdict, and waits for Enter.

`--slow FACTOR` holds every segment the router forwards FACTOR x 0.1 s, so the ladder
unfolds at a pace people can follow. The holds are ordinary `delay` faults added after
the scenario's own (a delay the scenario already has grows by the same amount), so the
hook applies them like any other fault and the kernel model, which simulates the
scenario's faults, predicts the slowed network exactly as it will be. What a constant
hold per segment changes, and what it does not:

- Every round trip grows by two holds. The kernel's timers (SYN and SYN-ACK backoff,
  the request timer) run on each host's own clock from the moment it sends, so the
  gaps between retransmissions, which the claims are about, do not move.
- A call that waits for an answer (connect() refused by a RST) ends two holds later:
  the scenario's `gives_up_after` for connect() is moved by what the model says the
  holds add, and the demo prints the change. Other timings are judged unchanged.
- A hold must stay well below the 1 s initial retransmission timeout, or the kernel
  would retransmit before the answer arrives and the scenario would test something
  else: FACTOR is at most MAX_SLOW (0.4 s per segment, a 0.8 s round trip).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import signal
from pathlib import Path

from rich.console import Console
from rich.text import Text

from tcplab.core.faults import Fault
from tcplab.catalogue import scenarios_dir
from tcplab.core.model.kernel import Kernel
from tcplab.core.model.predict import predict
from tcplab.core.scenario import Scenario
from tcplab.core.segments import VOCABULARY
from tcplab.errors import ScenarioError

HOLD_UNIT = 0.1  # seconds of hold per unit of --slow
MAX_SLOW = 4.0
QUICK = 60.0  # scenarios whose timeout is longer are left out unless --all
TOUR = ("handshake", "teardown")


def default_paths() -> list[Path]:
    """The shipped scenario folders of the tour (installed, or this checkout's)."""
    return [scenarios_dir() / topic for topic in TOUR]


def tour_order(scenarios: list[Scenario]) -> list[Scenario]:
    """Each folder's normal case first (what a good handshake looks like before a
    broken one), otherwise as given."""
    folders = list(dict.fromkeys(Path(sc.path).parent for sc in scenarios))
    return sorted(
        scenarios, key=lambda sc: (folders.index(Path(sc.path).parent), Path(sc.path).stem != "normal")
    )


def slowed(sc: Scenario, hold: float, shift_connect: float = 0.0) -> Scenario:
    """The scenario with every forwarded segment held `hold` seconds more. Pure.
    `shift_connect`: how much later the model says a failing connect() now ends."""
    faults = tuple(dataclasses.replace(f, by=f.by + hold) if f.action == "delay" else f for f in sc.faults)
    faults += tuple(Fault("delay", name, by=hold) for name in VOCABULARY)
    hosts = dict(sc.expect.hosts)
    client = hosts.get("client")
    if client is not None and client.gives_up_after is not None and shift_connect:
        hosts["client"] = dataclasses.replace(client, gives_up_after=client.gives_up_after + shift_connect)
    # A segment released after both apps finished, and the answer it draws, still
    # belong to the run: settle waits for them; the timeout leaves room for as many
    # holds in a row as a quick scenario has segments.
    return dataclasses.replace(
        sc,
        faults=faults,
        expect=dataclasses.replace(sc.expect, hosts=hosts),
        settle=sc.settle + 3 * hold,
        timeout=sc.timeout + 40 * hold,
    )


# Their timers run on the host's own clock from its initial timeout (1 s), whatever the
# round trip: SYN, SYN-ACK, and the ACK the client sends to every SYN-ACK it gets.
FIXED_TIMER_SEGMENTS = frozenset({"syn", "syn-ack", "ack"})
# The 60 s of TIME_WAIT start when the state is entered, whatever the RTO (FIN_WAIT2
# is not one of them: its timer is max(tcp_fin_timeout, 3.5 RTO), tcp_fin_time()).
FIXED_TIMER_STATES = frozenset({"TIME_WAIT"})


def not_slowable(sc: Scenario, hold: float) -> str | None:
    """Why holding every segment would change what the scenario measures, or None.
    The RTO of an established connection is computed from the round trips the kernel
    measured, so retransmissions of FINs and data, and the length of states that end
    on a round trip or an RTO, move with the holds; and where the kernel model says
    the holds change which segments are sent, the scenario would test something else."""
    if sc.forges or sc.host_faults:
        # Seen on 6.18: stale-syn, slowed, sends its SYN twice: its RST re-arms the SYN
        # timer to TCP_TIMEOUT_MIN (8 ms at HZ=250, core/model/handshake.py), which the held real
        # SYN-ACK outlasts; host faults act at fixed times.
        return "its forged segments and host faults are timed against exchanges the holds would stretch"
    for host, exp in sc.expect.hosts.items():
        moved = sorted(set(exp.retransmits) - FIXED_TIMER_SEGMENTS)
        if moved:
            return (
                f"{host} {', '.join(moved)} retransmissions follow an RTO the kernel "
                "computes from the measured round trip, which the holds would lengthen"
            )
        states = sorted(set(getattr(exp, "lasts", {}) or {}) - FIXED_TIMER_STATES)
        if states:
            return (
                f"how long {host} stays in {', '.join(states)} depends on the round "
                "trip, which the holds would lengthen"
            )
    plain, slow = _predictions(sc, _same_horizon(sc, hold))
    if plain is not None and slow is not None:

        def shape(p):
            return [(s.sender, s.name) for s in p.segments], sorted((k, v[0]) for k, v in p.calls.items())

        if shape(plain) != shape(slow):
            return (
                "the kernel model says the holds would change which segments are sent "
                "(a round trip would outlast a retransmission timer)"
            )
    return None


def _same_horizon(sc: Scenario, hold: float) -> Scenario:
    # The model predicts up to the timeout: the slowed run's longer one would let it
    # foresee retransmissions the scenario never waits for.
    return dataclasses.replace(slowed(sc, hold), timeout=sc.timeout)


def _predictions(*scenarios: Scenario) -> list:
    """The kernel model's prediction for each scenario, None where it cannot say."""
    from tcplab.lab.preflight import kernel_hz

    kernel = Kernel.from_release(platform.release(), kernel_hz() or 250)
    out = []
    for sc in scenarios:
        try:
            out.append(predict(sc, kernel, sc.sysctls))
        except Exception:  # noqa: BLE001 - the model covers handshakes only
            out.append(None)
    return out


def connect_shift(sc: Scenario, hold: float) -> tuple[float, str]:
    """How much later the model says the client's failing connect() ends when every
    segment is held: (seconds, why). Zero when connect() succeeds or the model cannot
    say (the expectation is then judged as written)."""
    plain, slow = _predictions(sc, _same_horizon(sc, hold))
    plain = plain.calls.get(("client", "connect")) if plain is not None else None
    slow = slow.calls.get(("client", "connect")) if slow is not None else None
    if not plain or not slow or plain[0] == "ok" or plain[0] != slow[0]:
        return 0.0, ""
    return round(slow[2] - plain[2], 6), (
        f"connect() → {plain[0]} comes {slow[2] - plain[2]:.3f} s later (model)"
    )


class DemoView:
    """The live ladder, headed with the scenario as written (not with the holds)."""

    def __init__(self, console: Console, shown: Scenario):
        from tcplab.render.live import LiveView

        self.live, self.shown = LiveView(console), shown

    def started(self, scenario, plan) -> None:
        self.live.started(self.shown, plan)

    def __getattr__(self, name):
        return getattr(self.live, name)


def runnable(sc: Scenario, all_: bool) -> str | None:
    """Why the tour leaves a scenario out, or None."""
    if sc.timeout > QUICK and not all_:
        return f"runs up to {sc.timeout:g} s (tcplab demo --all includes it)"
    for values in sc.sysctls.values():
        for name in values:
            if not os.path.isfile("/proc/sys/" + name.replace(".", "/")):
                return f"this kernel ({platform.release()}) has no {name}"
    return None


def _s(seconds: float) -> str:
    return f"{round(seconds, 3):g} s"


def pause(console: Console, last: bool) -> bool:
    """Wait for Enter; False when the audience has seen enough (q, or no input left)."""
    if last:
        return True
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        answer = console.input(Text("press Enter for the next scenario, q to stop: ", style="bold"))
    except EOFError:
        return True  # nobody at the keyboard (a pipe): carry on
    finally:
        signal.signal(signal.SIGINT, previous)
    return answer.strip().lower() not in ("q", "quit")


def intro(console: Console, sc: Scenario, index: int, total: int, hold: float, changes: str) -> None:
    from tcplab.render.explain import explain_scenario

    console.rule(Text(f"{index}/{total}  {sc.name}", style="bold"))
    explain_scenario(console, sc)
    if hold:
        console.print(
            Text(
                f"slowed: every segment the router forwards is held {_s(hold)} more "
                f"(--slow {hold / HOLD_UNIT:g}), so a round trip takes {_s(2 * hold)} longer; "
                "the kernel's retransmission timers do not move, and the model is told "
                "about the holds." + (f" Expectation moved: {changes}." if changes else ""),
                style="yellow",
            )
        )
    console.print()


def tour(
    console: Console, scenarios: list[Scenario], slow: float, stop_between: bool, all_: bool, stepping=None
) -> list:
    """Runs the tour; returns the RunResults. `stepping`: a context per run yielding
    the presenter's StepDriver (`--step`), or None."""
    from tcplab.render.live import print_verdict
    from tcplab.runner import CANCEL, run_scenario

    hold = slow * HOLD_UNIT
    chosen = []
    for sc in tour_order(scenarios):
        why = runnable(sc, all_)
        if why:
            console.print(Text(f"skipped {sc.name}: {why}", style="dim"))
        else:
            chosen.append(sc)
    if not chosen:
        raise ScenarioError(
            " ".join(sc.path for sc in scenarios),
            None,
            "",
            "no scenario left to show (--all includes the long ones)",
        )
    plural = "s" if len(chosen) > 1 else ""
    console.print(
        Text(
            f"tcplab demo: {len(chosen)} scenario{plural}"
            + (f", slowed: each segment held {_s(hold)}" if hold else ""),
            style="bold",
        )
    )
    results = []
    for i, sc in enumerate(chosen, 1):
        if CANCEL.is_set():
            break
        unslowed = not_slowable(sc, hold) if hold else None
        here = 0.0 if unslowed else hold
        shift, why = connect_shift(sc, here) if here else (0.0, "")
        expected = getattr(sc.expect.hosts.get("client"), "gives_up_after", None)
        changes = ""
        if expected is not None and shift:
            changes = f"client gives up after {expected:g} s → {expected + shift:.3f} s ({why})"
        intro(console, sc, i, len(chosen), here, changes)
        if unslowed:
            console.print(
                Text(f"not slowed: {unslowed}; it runs at the network's own speed.", style="yellow")
            )
        run = slowed(sc, here, shift) if here else sc
        view = DemoView(console, dataclasses.replace(sc, timeout=run.timeout))
        try:
            with (stepping or contextlib.nullcontext)() as driver:
                result = run_scenario(run, view, driver)
        finally:
            view.finish()
        if here:
            result.notes.append(
                f"slowed by tcplab demo --slow {slow:g}: every forwarded segment held {_s(here)} more"
            )
        print_verdict(console, result)
        console.print()
        results.append(result)
        if stop_between and not pause(console, i == len(chosen)):
            break
    return results
