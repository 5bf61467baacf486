"""The one place that joins the lab (namespaces, hook, agents, tracefs) and the core
(record, checker). Everything it builds is torn down in `finally`, whatever happens.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from tcplab.core.check.base import verdict
from tcplab.core.model.predict import predict
from tcplab.core.model.teardown.prediction import teardown_hints
from tcplab.core.record import Record, blind_spot
from tcplab.core.scenario import Scenario, step_to_wire
from tcplab.errors import LabError
from tcplab.judging import RunResult, judge_record, model_kernel, nothing_judged
from tcplab.lab import fault_config, jiffies, preflight, rawstore, topology
from tcplab.lab.procs import Child
from tcplab.lab.sockets import client_side
from tcplab.render.view import NullView, View
from tcplab.stepping import StepDriver

# A child's start (namespace, scapy, sysctls): ~0.3 s here, over 15 s in a TCG VM
# running four scenarios on two vCPUs; before the scenario's clock, so affordable.
READY_TIMEOUT = 90.0
# Set by the CLI's SIGINT/SIGTERM handler: every run stops at its next loop turn and
# tears down in its own `finally` (threads cannot be interrupted any other way).
CANCEL = threading.Event()


class Interrupted(LabError):
    exit_code = 130


class _Run:
    """One scenario on one fresh topology."""

    def __init__(self, scenario: Scenario, view: View, step: StepDriver | None = None):
        self.sc, self.view, self.step = scenario, view, step
        self.inbox: queue.Queue = queue.Queue()
        self.children: dict[str, Child] = {}
        self.result = RunResult(scenario, "error")
        self.record: Record | None = None
        self.trace = None
        self.done: set[str] = set()
        self.stopping = False
        self.stopped_at: float | None = None  # monotonic, when observation stopped
        self.hook_stats: dict = {}
        self._trace_count = 0
        self.prediction = None  # the kernel model, for the live "next expected" line

    # -- set-up -----------------------------------------------------------------------
    @contextmanager
    def phase(self, name: str):
        """Time a phase of set-up or teardown for the result's `timings`."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.result.timings[name] = round(time.monotonic() - started, 4)

    def start(self, plan: topology.Plan) -> None:
        with self.phase("namespaces"):
            topology.build(plan)
        self.view.started(self.sc, plan)
        # The tracefs instance is made (reading /proc/kallsyms for the timer filter,
        # ~0.1 s) while the children start (Python interpreters, ~0.2 s): both are done
        # before the apps are told to go, so tracing still covers the whole run.
        with ThreadPoolExecutor(1) as pool:
            tracing = pool.submit(self._timed, "tracefs", self._start_trace, plan)
            with self.phase("children"):
                self._start_children(plan)
            tracing.result()

    def _timed(self, name: str, step, *args) -> None:
        with self.phase(name):
            step(*args)

    def _start_children(self, plan: topology.Plan) -> None:
        router_sysctls = {"net.ipv4.ip_forward": "1", **self.sc.sysctls.get("router", {})}
        self._spawn(
            "router",
            "tcplab.lab.hook",
            {
                "netns": plan.router_ns,
                "queue": plan.queue,
                "sysctls": router_sysctls,
                # The whole client side: a flood's spoofed sources are client addresses too.
                "client_addrs": client_side(plan.client_addr, plan.prefixlen, plan.router_client_addr),
                "raw_path": str(topology.raw_path(plan)),
                **(self.step.config() if self.step else {}),
                **fault_config.for_hook(self.sc, plan),
            },
        )
        self.result.sysctls["router"] = router_sysctls
        for host, ns, addr, peer in (
            ("server", plan.server_ns, plan.server_addr, plan.client_addr),
            ("client", plan.client_ns, plan.client_addr, plan.server_addr),
        ):
            self._spawn(
                host,
                "tcplab.lab.app",
                {
                    "netns": ns,
                    "addr": addr,
                    "peer_addr": peer,
                    "sysctls": self._settable(host),
                    "steps": [step_to_wire(s) for s in self.sc.apps[host]],
                    **fault_config.for_agent(self.sc, host),
                },
            )
        ready = self._wait_ready({"router", "server", "client"})
        for role in ("server", "client"):
            self.result.sysctls[role] = ready[role].get("sysctls", {})
        try:
            self.prediction = predict(self.sc, model_kernel(self.result), self.result.sysctls)
            self.result.model = self.prediction.to_json()
            if self.step:
                self.step.model(model_kernel(self.result), self.result.sysctls)
        except Exception as e:  # noqa: BLE001 - the live hint is optional; judging says why
            self.result.notes.append(f"kernel model unavailable for the live view: {e}")

    def _settable(self, host: str) -> dict[str, str]:
        values, notes = preflight.settable(self.sc.sysctls.get(host, {}))
        self.result.notes += [f"{host}: {n}" for n in notes]
        return values

    def _start_trace(self, plan: topology.Plan) -> None:
        from tcplab.lab.tracefs import TraceSession

        if preflight.polling_only():  # the user's choice, stated in the result
            self.trace = None
            self.result.notes.append("no tracepoints (TCPLAB_TRACEFS=off); states come from inet_diag only")
            self.view.note(self.result.notes[-1])
            return
        # Preflight found the tracepoint; failing now (an instance that cannot be made)
        # leaves the state record incomplete: the run cannot judge, LabError -> error.
        self.trace = TraceSession(f"tcplab-{plan.run_id}")

    def _spawn(self, role: str, module: str, config: dict) -> None:
        self.children[role] = Child(role, module, config, self.inbox)

    def _wait_ready(self, roles: set[str]) -> dict[str, dict]:
        """Each child says `ready` once it has entered its namespace and set its
        sysctls (and, for the hook, bound the queue and installed its rule)."""
        ready: dict[str, dict] = {}
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and set(ready) != roles:
            if CANCEL.is_set():
                raise Interrupted("interrupted during set-up")
            try:
                who, msg = self.inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            if msg["kind"] == "ready":
                ready[who] = msg
            elif msg["kind"] == "exited":
                raise LabError(f"could not start the lab: {self.children[who].why_dead()}")
        for role in roles - set(ready):
            raise LabError(
                f"{role} did not become ready within {READY_TIMEOUT:.0f} s "
                f"({' | '.join(self.children[role].stderr_lines[-3:])})"
            )
        return ready

    # -- the run ----------------------------------------------------------------------
    def run(self, plan: topology.Plan) -> None:
        self.record = rec = Record(t0=time.monotonic(), wall0=time.time())
        rec.have_tracepoint = self.trace is not None
        rec.jiffies = [x for x in (jiffies.read_clock(),) if x is not None]
        self.children["server"].send("go")
        client_go = not any(s.call == "listen" for s in self.sc.apps["server"])
        if client_go:
            self._client_go()
        settle_from = None
        while True:
            now = time.monotonic()
            t = now - rec.t0
            if CANCEL.is_set():
                raise Interrupted(f"interrupted at t={t:.1f}s")
            paused = self.step.pause(now) if self.step else 0.0  # the presenter's
            if t > self.sc.timeout + paused:
                self.result.notes.append(
                    f"timeout: stopped after {self.sc.timeout:g} s"
                    + (f" and {paused:.1f} s paused by the presenter" if paused else "")
                )
                break
            if self.done >= {"client", "server"}:
                settle_from = settle_from or now
                if now - settle_from >= self.sc.settle:
                    break
            self._pump(plan, timeout=0.05)
            if self.step:
                self.step.turn(self.sc, rec, self.view, self.children["router"].send, time.monotonic())
            if not client_go and self._server_listening():
                self._client_go()
                client_go = True
            self.view.tick(time.monotonic() - rec.t0, self._waiting())

    def _client_go(self) -> None:
        """The client starts once the server listens, and the timed faults (`at:`)
        count from this moment, when both applications run: on a loaded machine the
        listen can take a second to be reported, and a crash `at: 1s` counted from the
        server's start struck before the client had even connected."""
        clock = repr(time.monotonic())
        self.children["client"].send(f"go {clock}")
        self.children["router"].send(f"go {clock}")
        self.children["server"].send(f"clock {clock}")

    def _server_listening(self) -> bool:
        return (
            any(c.host == "server" and c.call == "listen" for c in self.record.apps) or "server" in self.done
        )

    def _waiting(self) -> str:
        """What the run is waiting for: blocked calls, and the next event the kernel
        model expects ("next: client syn #4 at t≈3.0 s"), so a long backoff never looks
        hung."""
        now = time.monotonic() - self.record.t0
        held = self.step.status(self.record, time.monotonic()) if self.step else ""
        if held:  # the presenter's turn: the scenario's own next event may never come
            return held
        parts = [f"{host} {call}() blocked {now - t:.1f}s" for host, call, t in self.record.open_calls()]
        syns = self.record.sent_by("client", "syn")
        if self.prediction is not None and syns:
            origin = syns[0].t
            upcoming = [
                (origin + p.t, f"{p.sender} {p.name} #{p.nth}")
                for p in self.prediction.segments
                if origin + p.t > now
            ]
            upcoming += [
                (origin + end, f"{host} {call}() {result}")
                for (host, call), (result, _start, end) in self.prediction.calls.items()
                if origin + end > now
            ]
            upcoming += teardown_hints(self.prediction.teardown, origin, now)
            if upcoming:
                at, what = min(upcoming)
                parts.append(f"next: {what} ≈{at:.1f}s")
        return " · ".join(parts)

    def _pump(self, plan: topology.Plan, timeout: float) -> None:
        try:
            who, msg = self.inbox.get(timeout=timeout)
        except queue.Empty:
            who = None
        while who is not None:
            self._handle(who, msg)
            try:
                who, msg = self.inbox.get_nowait()
            except queue.Empty:
                who = None
        self._pump_trace(plan)

    def _handle(self, who: str, msg: dict) -> None:
        rec, kind = self.record, msg["kind"]
        if kind == "segments":
            # What reached the router after observation stopped is the apps' exit
            # closing sockets, not the scenario's; the observer's rows may come later
            # than that and still be the scenario's, so it is their time that counts.
            for ev in rec.add_segments(msg, until=self.stopped_at):
                if not self.stopping:
                    self.view.event(ev)
                if ev.fate == "held" and self.step:
                    self.step.held(self.sc, rec, ev, self.view, time.monotonic())
        elif kind == "released":
            rec.release(msg)
        elif kind == "decided" and self.step:  # the presenter's choice, carried out
            self.step.decided(self.sc, rec, msg, self.view, time.monotonic())
        elif kind == "app-start":
            rec.app_started(who, msg)
            self.view.call_started(rec.t(msg["mono"]), who, msg["call"], msg.get("arg"))
        elif kind == "app":
            self.view.event(rec.app_finished(who, msg))
        elif kind == "diag":
            ev = rec.add_diag(who, msg)
            if blind_spot(ev) or self.trace is None:
                self.view.event(ev)
        elif kind in ("fault", "app-exit"):
            self.view.event(rec.add_fault(who, msg))
        elif kind == "lab-error":  # a fault the lab could not carry out: no verdict
            self.result.errors.append(msg["message"])
        elif kind == "done":
            self.done.add(who)
        elif kind == "alive":
            rec.alive_at_end |= {(who, tuple(s)) for s in msg["sockets"]}
        elif kind == "stats":
            self.hook_stats = msg
        elif kind == "exited" and not self.stopping:
            raise LabError(f"lab process died during the run: {self.children[who].why_dead()}")

    def _pump_trace(self, plan: topology.Plan, final: bool = False) -> None:
        """Tracepoint records become events. to_events needs the whole batch (it
        attributes ports across records), so the record is rebuilt from all of them
        and the view gets only the ones it has not shown yet."""
        if self.trace is None:
            return
        from tcplab.lab.tracefs import timer_expiries, timer_lateness, to_events

        records = self.trace.records()
        if len(records) == self._trace_count and not final:
            return
        self._trace_count = len(records)
        evs = to_events(records, plan.addr_to_host, self.record.t0)
        states = [e for e in evs if e.kind == "state"]
        kernel = [e for e in evs if e.kind != "state"]
        for ev in sorted(
            states[len(self.record.tracepoint_states) :] + kernel[len(self.record.kernel) :],
            key=lambda e: e.t,
        ):
            self.view.event(ev)
        self.record.tracepoint_states, self.record.kernel = states, kernel
        if final and self.trace.timers:
            self.record.timer_late = [
                [round(t - self.record.t0, 6), late, fn] for t, late, fn in timer_lateness(records)
            ]
            self.record.timer_fired = [
                [round(t - self.record.t0, 6), fn] for t, fn in timer_expiries(records)
            ]

    # -- tear-down --------------------------------------------------------------------
    def stop(self, plan: topology.Plan) -> None:
        """Apps first (their sockets close after observation stops), the hook last, so
        no segment of the run ever passes unhooked. Every step runs whatever the one
        before it did: a failure is recorded (the run becomes an error), not raised."""
        self.stopping = True
        self.stopped_at = time.monotonic()
        if self.record is not None:
            self.record.t_stop = self.record.t(self.stopped_at)
            self.record.jiffies += [x for x in (jiffies.read_clock(),) if x is not None]
        with self.phase("stop_tracefs"):
            self._guard("stopping tracefs", self._stop_trace, plan)
        with self.phase("stop_children"):
            # One after the other, the client first: stopped together (tried in session
            # 9 for 0.1 s), the server's exit closed its socket while the client's poller
            # still watched, and a half-closed client was seen reach TIME_WAIT
            # (shutdown-half-close, server-process-killed in CI). The hook goes last, so
            # nothing of the run passes unhooked.
            for role in ("client", "server", "router"):
                if role in self.children:
                    self._guard(f"stopping the {role} process", self.children[role].stop)
        if self.record is not None:
            self._guard("reading the last messages", self._drain)
            self.record.close_open_calls()
            self._guard(
                "reading the segments' bytes",
                lambda: self.record.attach_raw(rawstore.read(topology.raw_path(plan))),
            )
            self.record.sort_segments()

    def _guard(self, what: str, step, *args) -> None:
        try:
            step(*args)
        except Exception as e:  # noqa: BLE001 - teardown must go on; the run says error
            self.result.errors.append(f"{what}: {e}")

    def _stop_trace(self, plan: topology.Plan) -> None:
        if self.trace is not None:
            self.trace.stop()  # stops reading, removes the instance
            if self.record is not None:
                self._pump_trace(plan, final=True)

    def _drain(self) -> None:
        try:
            while True:
                self._handle(*self.inbox.get_nowait())
        except queue.Empty:
            pass


# Set-up is CPU-bound (namespaces, and three Python processes importing what they need)
# and a run's clock starts right after it. Side by side, a catalogue sets up a few runs
# at a time, so that neither a set-up's readiness deadline nor the timing of the runs
# already going suffers: 50 set-ups at once on 2 cores left 6 agents not ready after
# 15 s and delayed other runs' apps by more than a second; two at a time still kept
# both cores busy, and a running scenario's RTO timer fired 52 ms late. One core is
# left to the runs.
SETUP_SLOTS = threading.BoundedSemaphore(max(1, (os.cpu_count() or 2) - 1))


@contextmanager
def _setting_up():
    while not SETUP_SLOTS.acquire(timeout=0.1):
        if CANCEL.is_set():
            raise Interrupted("interrupted before set-up")
    try:
        yield
    finally:
        SETUP_SLOTS.release()


def run_scenario(scenario: Scenario, view: View | None = None, step: StepDriver | None = None) -> RunResult:
    """One scenario watched by `view`; with `step`, a presenter steps it (stepping.py)."""
    view = view or NullView()
    started = time.monotonic()
    run = _Run(scenario, view, step)
    plan = None
    try:
        with run.phase("preflight"):
            preflight.require()
        if CANCEL.is_set():
            raise Interrupted("interrupted before set-up")
        plan = topology.claim_slot()
        run.result.lab = {
            "run_id": plan.run_id,
            "namespaces": list(plan.namespaces),
            "client": plan.client_addr,
            "server": plan.server_addr,
            "queue": plan.queue,
            "tracefs_instance": f"tcplab-{plan.run_id}",
        }
        with _setting_up():
            run.start(plan)
        with run.phase("run"):
            run.run(plan)
    except LabError as e:
        run.result.errors.append(str(e))
    except Exception as e:  # noqa: BLE001 - a bug of the lab's: this run is an error, the batch goes on
        # (session 9: a set-up that raised FileNotFoundError ended a 300-run batch)
        run.result.errors.append(f"lab bug: {type(e).__name__}: {e} (please report it)")
        traceback.print_exc()
    finally:
        if plan is not None:
            try:
                run.stop(plan)
            finally:
                with run.phase("destroy"):
                    left = topology.destroy(plan)
                    if left:
                        run.result.errors.append(f"could not remove {', '.join(left)}")
                    topology.release_slot(plan)
    return _judge(run, time.monotonic() - started)


def _judge(run: _Run, duration: float) -> RunResult:
    res = run.result
    res.record, res.duration = run.record, duration
    stats = run.hook_stats
    if stats:  # the queue's and the observer's counters, the hook's own residency
        res.lab["hook"] = {k: v for k, v in stats.items() if k not in ("kind", "mono")}
    # A record the machine was too slow to complete cannot be judged: "not judged",
    # like every other abstention; an observer that died is the lab's own failure.
    if stats.get("queue_dropped") or stats.get("user_dropped"):
        res.errors.append(
            f"not judged: NFQUEUE overflowed (kernel dropped {stats.get('queue_dropped')} "
            f"queued, {stats.get('user_dropped')} undeliverable): the hook "
            "fell behind, so the record is incomplete"
        )
    drops = stats.get("observer_drops")
    if isinstance(drops, int) and drops > 0:
        res.errors.append(
            f"not judged: the router's observer fell behind and lost {drops} segments "
            "(dropped by the kernel, or never handed over by its ring): the record is incomplete"
        )
    elif drops:
        res.errors.append(
            "the router's observer died before it said what it lost: the record may be incomplete"
        )
    if stats.get("watch_drops"):
        res.errors.append(
            f"not judged: the hook's watch of SYNs and FINs lost {stats['watch_drops']} "
            "(dropped by the kernel): the hook may have named or counted a segment wrongly"
        )
    if run.trace is not None and run.trace.lost:
        res.errors.append(
            f"not judged: the trace buffer overflowed ({run.trace.lost} tracepoint events "
            "lost): the state record is incomplete"
        )
    if run.record is not None and not res.errors:
        judge_record(run.sc, res, run.record)
    res.verdict = "error" if res.errors or run.record is None else verdict(res.checks)
    if res.verdict == "error" and not res.errors:
        res.errors.append(nothing_judged(res))
    return res
