"""TCP state and cause tracepoints from a private tracefs instance.

A private instance (/sys/kernel/tracing/instances/<name>) keeps our events, clock and
buffer apart from anything else using ftrace on the host, and removing it undoes all
of it. Tracepoints are global: the instance sees every namespace on the machine, so
`to_events` keeps only records whose local address belongs to the lab.

`parse_trace_line` and `to_events` are pure; `TraceSession` is the IO around them.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import select
import subprocess
import threading
import time
from typing import Any

from tcplab.core.events import KernelNoted, StateChanged
from tcplab.errors import LabError

TRACEFS = "/sys/kernel/tracing"
EVENTS = (
    "sock/inet_sock_set_state",
    "tcp/tcp_retransmit_skb",
    "tcp/tcp_retransmit_synack",
    "tcp/tcp_send_reset",
    "tcp/tcp_receive_reset",
)
# The kernel's own timer lateness: timer:timer_expire_entry says, for every wheel timer
# it runs, `now` and the wheel's `baseclk` (jiffies) — now - baseclk is how late the
# timer softirq ran it past its (rounded) expiry. Only TCP's timers are traced (a filter
# on the handler's address from /proc/kallsyms: the filter takes no symbol names).
TIMER_EVENT = "timer/timer_expire_entry"
TCP_TIMERS = (
    "tcp_write_timer",
    "tcp_delack_timer",
    "tcp_keepalive_timer",
    "reqsk_timer_handler",
    "tw_timer_handler",
)
BUFFER_KB = 2048  # per CPU (default 1408); a scenario writes KBs, but bursts come in softirq
_POLL_MS = 50  # how long stop() can wait for the reader thread

# "<task>-<pid> [(<tgid>)] [<cpu>] <flags> <secs>.<usecs>: <event>: <body>". The task
# name (comm) may hold spaces and dashes, so it is whatever precedes the last
# "-<pid>" that is followed by the CPU column.
_LINE = re.compile(
    r"^\s*(?P<task>.*?)-(?P<pid>\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?P<cpu>\d+)\]"
    r"\s+(?:\S+\s+)?(?P<ts>\d+\.\d+):\s+(?P<event>\w+):\s?(?P<body>.*)$"
)
_FIELD = re.compile(r"(\w+)=(\S*)")
_LOST = re.compile(r"CPU:\s*\d+ \[LOST (\d+) EVENTS\]")


def parse_trace_line(line: str) -> dict[str, Any] | None:
    """One trace_pipe line -> {"mono", "event", "fields"}; None for anything else.
    Field values stay strings: the meaning of each belongs to `to_events`."""
    m = _LINE.match(line.rstrip("\n"))
    if not m:
        return None
    fields = dict(_FIELD.findall(m["body"]))
    return {"mono": float(m["ts"]), "event": m["event"], "fields": fields}


def _state(name: str) -> str:
    # TCP_NEW_SYN_RECV is the kernel's name for a request sock; in the Record it is SYN_RECV.
    name = name.removeprefix("TCP_")
    return "SYN_RECV" if name == "NEW_SYN_RECV" else name


def _endpoint(value: str) -> tuple[str, int] | None:
    """'198.18.0.2:8080' -> (addr, port); IPv6 ('[::1]:80') and garbage -> None."""
    addr, _, port = value.rpartition(":")
    return (addr, int(port)) if addr.count(".") == 3 and port.isdigit() else None


def _tuple(rec: dict[str, Any]) -> tuple[str, int, str, int] | None:
    """(local addr, local port, remote addr, remote port) of an IPv4 TCP record."""
    f = rec["fields"]
    if rec["event"] == "tcp_send_reset":  # no family field; src is the local end
        src, dst = _endpoint(f.get("src", "")), _endpoint(f.get("dest", ""))
        return (*src, *dst) if src and dst else None
    if f.get("family") != "AF_INET" or f.get("protocol", "IPPROTO_TCP") != "IPPROTO_TCP":
        return None
    try:
        return f["saddr"], int(f["sport"]), f["daddr"], int(f["dport"])
    except (KeyError, ValueError):
        return None


def _wildcard_owners(rows, addr_to_host) -> dict[int, str]:
    """A socket on a wildcard address (a listener bound to 0.0.0.0, and the RST it
    sends, which reads src=0.0.0.0:port dest=0.0.0.0:0) names no host. It belongs to
    the one lab host whose other sockets (children, request socks) use that port. If
    none does, or a socket outside the lab (another run) uses it too, it is left out."""
    owners: dict[int, set[str | None]] = {}
    for _rec, (laddr, lport, _r, _p) in rows:
        if lport and laddr != "0.0.0.0":
            owners.setdefault(lport, set()).add(addr_to_host.get(laddr))
    return {port: host for port, (host, *more) in owners.items() if host and not more}


def _leaves_syn_sent(rec: dict[str, Any]) -> bool:
    f = rec["fields"]
    return f.get("oldstate") == "TCP_SYN_SENT" or f.get("state") == "TCP_SYN_SENT"


def _fill_connect_ports(rows) -> None:
    """CLOSE->SYN_SENT fires before connect() picks the source port, so it reads
    sport=0. Take the port from the first later record of a socket in SYN_SENT (leaving
    it, or retransmitting its SYN) with the same addresses and remote port. Without a
    socket id in the event this is a guess only when one host opens several connections
    to the same remote port at once."""
    used: set[int] = set()
    for i, (rec, (laddr, lport, raddr, rport)) in enumerate(rows):
        if rec["event"] != "inet_sock_set_state" or lport:
            continue
        for j in range(i + 1, len(rows)):
            later, (la, lp, ra, rp) = rows[j]
            if j not in used and lp and (la, ra, rp) == (laddr, raddr, rport) and _leaves_syn_sent(later):
                used.add(j)
                rows[i] = (rec, (laddr, lp, raddr, rport))
                break


def _detail(event: str, f: dict[str, str], laddr, lport, raddr, rport) -> str:
    """'local -> remote' (or '<-' for a received RST), then state, err, reason if any."""
    arrow = "<-" if event == "tcp_receive_reset" else "->"
    extra = [f"state={_state(f['state'])}"] if "state" in f else []
    extra += [f"{key}={f[key]}" for key in ("err", "reason") if key in f]
    return " ".join([f"{laddr}:{lport} {arrow} {raddr}:{rport}", *extra])


def to_events(records, addr_to_host: dict[str, str], t0: float) -> list[StateChanged | KernelNoted]:
    """Parsed records -> Record events for the lab's hosts, t relative to t0."""
    rows = [(rec, t) for rec in records if (t := _tuple(rec)) is not None]
    _fill_connect_ports(rows)
    wildcard = _wildcard_owners(rows, addr_to_host)
    out: list[StateChanged | KernelNoted] = []
    for rec, (laddr, lport, raddr, rport) in rows:
        host = wildcard.get(lport) if laddr == "0.0.0.0" else addr_to_host.get(laddr)
        if host is None:
            continue
        t, f = rec["mono"] - t0, rec["fields"]
        if rec["event"] == "inet_sock_set_state":
            out.append(
                StateChanged(
                    t,
                    host,
                    _state(f.get("oldstate", "")),
                    _state(f.get("newstate", "")),
                    "tracepoint",
                    laddr,
                    lport,
                    raddr,
                    rport,
                )
            )
        else:
            out.append(
                KernelNoted(t, host, rec["event"], _detail(rec["event"], f, laddr, lport, raddr, rport))
            )
    return sorted(out, key=lambda e: e.t)


def timer_filter(kallsyms: str) -> str | None:
    """An ftrace filter selecting TCP's timer handlers by address, from /proc/kallsyms;
    None when it shows none (kptr_restrict hides addresses as zeros). Each name is
    looked up with str.find rather than by splitting all 5 MB into lines (60 ms of
    every run's set-up)."""
    found = {}
    for name in TCP_TIMERS:
        for end in ("\n", "\t"):  # a built-in symbol's line ends with it; a module's has \t[mod]
            key = f" {name}{end}"
            i = kallsyms.find(key)
            while i != -1 and name not in found:
                parts = kallsyms[kallsyms.rfind("\n", 0, i) + 1 : i].split()
                if len(parts) == 2 and parts[1] in ("t", "T") and int(parts[0], 16) != 0:
                    found[name] = parts[0]
                i = kallsyms.find(key, i + 1)
    if not found:
        return None
    return " || ".join(f"function == 0x{addr}" for addr in found.values())


@functools.cache
def _timer_rule() -> str | None:
    """timer_filter() of this boot's /proc/kallsyms, once per process: the addresses
    do not change while the kernel runs, and reading the file costs ~60 ms (the kernel
    formats 5 MB), once per run of a --jobs batch otherwise."""
    try:
        with open("/proc/kallsyms") as f:
            return timer_filter(f.read())
    except OSError:
        return None


def timer_lateness(records) -> list[list]:
    """[t (mono), jiffies late, handler] of each traced TCP timer the wheel ran more
    than the one tick its slack already allows (now - baseclk > 1)."""
    out = []
    for rec in records:
        if rec["event"] != "timer_expire_entry":
            continue
        f = rec["fields"]
        try:
            late = int(f["now"]) - int(f["baseclk"])
        except (KeyError, ValueError):
            continue
        if late > 1:
            out.append([rec["mono"], late, f.get("function", "")])
    return out


def timer_expiries(records) -> list[list]:
    """[t (mono), handler] of every traced TCP timer that ran."""
    return [
        [rec["mono"], rec["fields"].get("function", "")]
        for rec in records
        if rec["event"] == "timer_expire_entry"
    ]


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def mounted(root: str = TRACEFS) -> bool:
    """Mount tracefs if a minimal host left it unmounted (no network state changes);
    whether it is there now. Preflight asks this before a run, TraceSession again."""
    if not os.path.isdir(f"{root}/instances"):
        try:
            subprocess.run(["mount", "-t", "tracefs", "nodev", root], capture_output=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            pass  # judged just below
    return os.path.isdir(f"{root}/instances")


def _mount_tracefs(root: str) -> None:
    if not mounted(root):
        raise LabError(
            f"tracefs is not available at {root}",
            f"run as root on a kernel with CONFIG_FTRACE and mount it (mount -t tracefs nodev {root})",
        )


def leftover_instances(prefix: str, root: str = TRACEFS) -> list[str]:
    """Instances whose name starts with prefix (what a killed run left behind)."""
    try:
        return sorted(n for n in os.listdir(f"{root}/instances") if n.startswith(prefix))
    except OSError:
        return []


def remove_instance(name: str, root: str = TRACEFS, patience: float = 0.0) -> None:
    """Remove the instance (its events go with it). The kernel refuses (EBUSY) while a
    process still holds one of its files open, e.g. a live run reading trace_pipe —
    and then nothing was changed: events are deliberately not disabled first, since
    that would silently blind a live run that `clean` cannot see (another chroot or
    mount namespace has its own /run).

    `patience`: how long to retry EBUSY. Our own session retries, because a process
    forked by a parallel run holds a copy of our trace_pipe fd until it execs
    (O_CLOEXEC closes it only then); seen in 5 of 140 runs side by side."""
    path = f"{root}/instances/{name}"
    deadline = time.monotonic() + patience
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno == errno.EBUSY and time.monotonic() < deadline:
                time.sleep(0.02)
                continue
            raise LabError(
                f"cannot remove tracefs instance {path}: {e.strerror}",
                "stop the tcplab run that still uses it, then retry",
            ) from e


class TraceSession:
    """A private tracefs instance with the TCP tracepoints on, read by a thread.

    records() is everything parsed so far; `missing` names events this kernel lacks;
    `lost` counts events the kernel dropped because the buffer overflowed."""

    def __init__(self, name: str, root: str = TRACEFS):
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad tracefs instance name: {name!r}")
        _mount_tracefs(root)
        self.name, self.root, self.path = name, root, f"{root}/instances/{name}"
        self.missing: list[str] = []
        self.timers = False  # TCP timers' lateness traced (timer_filter)
        self.lost = 0
        self.error: BaseException | None = None
        self._records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake: tuple[int, ...] = ()  # stop()'s pipe to the reader: (read end, write end)
        try:
            os.mkdir(self.path)
        except OSError as e:
            fix = (
                "a killed run left it: remove it with tcplab's clean command"
                if isinstance(e, FileExistsError)
                else "run as root"
            )
            raise LabError(f"cannot create tracefs instance {self.path}: {e.strerror}", fix) from e
        fd = -1
        try:
            self._configure()
            fd = os.open(f"{self.path}/trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
            self._wake = os.pipe()
            self._thread: threading.Thread | None = threading.Thread(
                target=self._read, args=(fd,), daemon=True, name=f"trace-{name}"
            )
            self._thread.start()  # from here on the thread owns fd
        except BaseException:
            if fd >= 0:
                os.close(fd)  # an open trace_pipe makes rmdir fail with EBUSY
            for end in self._wake:
                os.close(end)
            remove_instance(name, root)
            raise

    def _configure(self) -> None:
        # mono: record timestamps are CLOCK_MONOTONIC, the same as time.monotonic().
        _write(f"{self.path}/trace_clock", "mono")
        _write(f"{self.path}/buffer_size_kb", str(BUFFER_KB))
        for event in EVENTS:
            if os.path.exists(enable := f"{self.path}/events/{event}/enable"):
                _write(enable, "1")
            else:
                self.missing.append(event)
        self.timers = self._trace_timers()

    def _trace_timers(self) -> bool:
        """timer_expire_entry for TCP's timers only; False (no lateness measured) when
        the event or the handlers' addresses are not there."""
        event = f"{self.path}/events/{TIMER_EVENT}"
        rule = _timer_rule()
        if rule is None or not os.path.exists(f"{event}/enable"):
            return False
        try:
            _write(f"{event}/filter", rule)
        except OSError:
            return False  # never trace every timer of the machine instead
        _write(f"{event}/enable", "1")
        return True

    def _read(self, fd: int) -> None:
        poller, tail = select.poll(), b""
        poller.register(fd, select.POLLIN)
        # stop() writes here so the poll returns at once (it waited out up to two
        # _POLL_MS timeouts: ~0.1 s of every run's teardown); never read, it stays ready
        poller.register(self._wake[0], select.POLLIN)
        try:
            while True:
                final = self._stopping.is_set()  # checked before draining: nothing is lost
                # poll() may wait for buffer_percent of the buffer to fill, so a timeout
                # is followed by a read attempt anyway.
                poller.poll(_POLL_MS)
                tail = self._drain(fd, tail)
                if final:
                    return
        except BaseException as e:  # reported by stop(); the thread must not die silently
            self.error = e
        finally:
            os.close(fd)
            os.close(self._wake[0])  # the write end is stop()'s

    def _drain(self, fd: int, tail: bytes) -> bytes:
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:  # EAGAIN: the buffer is empty for now
                return tail
            if not chunk:
                return tail
            *lines, tail = (tail + chunk).split(b"\n")
            parsed = []
            for line in (raw.decode("utf-8", "replace") for raw in lines):
                if lost := _LOST.search(line):
                    self.lost += int(lost.group(1))
                elif (rec := parse_trace_line(line)) is not None:
                    parsed.append(rec)
            with self._lock:
                self._records.extend(parsed)

    def records(self) -> list[dict[str, Any]]:
        """What the reader has parsed so far (a copy); still there after stop()."""
        with self._lock:
            return list(self._records)

    def stop(self) -> None:
        """Stop reading, disable the events, remove the instance. Idempotent. Raises
        LabError afterwards if the reader thread failed."""
        if self._thread is not None:
            self._stopping.set()
            try:
                os.write(self._wake[1], b"x")
            except OSError:  # the reader already ended (its error is raised below)
                pass
            self._thread.join()
            os.close(self._wake[1])
            self._thread = None
            remove_instance(self.name, self.root, patience=2.0)
            if self.error is not None:
                raise LabError(f"reading {self.path}/trace_pipe failed: {self.error}")

    def __enter__(self) -> TraceSession:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
