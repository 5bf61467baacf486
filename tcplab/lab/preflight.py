"""What the lab needs from this machine, checked before anything is set up.

Each probe returns a Finding; `tcplab doctor` prints them all, `require()` raises the
first fatal one as a LabError (exit 3) with the fix.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass

from tcplab.core.model.kernel import absent_means
from tcplab.errors import LabError, ScenarioError

TRACEFS = "/sys/kernel/tracing"


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    fatal: bool = True  # False: the lab still works, with less


def root() -> Finding:
    ok = os.geteuid() == 0
    return Finding(
        "root", ok, "running as root" if ok else f"uid {os.geteuid()}", "run as root (sudo tcplab ...)"
    )


def iptables() -> Finding:
    path = shutil.which("iptables")
    if not path:
        return Finding(
            "iptables", False, "iptables not found", "apt-get install iptables (scripts/setup.sh installs it)"
        )
    out = subprocess.run([path, "--version"], capture_output=True, text=True)
    return Finding("iptables", out.returncode == 0, (out.stdout or out.stderr).strip())


def nfqueue() -> Finding:
    """nfnetlink_queue must be loadable; the iptables NFQUEUE target (xt_NFQUEUE)
    is what the hook uses, since native nft `queue` is missing on some kernels."""

    def present() -> bool:
        return os.path.exists("/proc/net/netfilter/nfnetlink_queue") or os.path.exists(
            "/sys/module/nfnetlink_queue"
        )

    if not present() and shutil.which("modprobe"):
        subprocess.run(["modprobe", "nfnetlink_queue"], capture_output=True)
    ok = present()
    fix = "modprobe nfnetlink_queue (kernel needs CONFIG_NETFILTER_NETLINK_QUEUE)"
    try:
        import netfilterqueue  # noqa: F401
    except ImportError as e:
        return Finding(
            "nfnetlink_queue",
            False,
            f"python binding missing: {e}",
            "pip install NetfilterQueue (needs libnetfilter-queue-dev, gcc)",
        )
    return Finding(
        "nfnetlink_queue", ok, "module loaded" if ok else "module not available", "" if ok else fix
    )


def polling_only() -> bool:
    """The user chose to run without tracepoints (TCPLAB_TRACEFS=off): states then come
    from inet_diag polling, which can miss a state that lasts less than a poll."""
    return os.environ.get("TCPLAB_TRACEFS") == "off"


def tracefs(root: str = TRACEFS) -> Finding:
    """The state record's clock and completeness come from the sock:inet_sock_set_state
    tracepoint, so without it the lab cannot judge states exactly: fatal, unless the
    user asked for polling only."""
    if polling_only():
        return Finding(
            "tracefs",
            False,
            "off (TCPLAB_TRACEFS=off): states come from "
            "inet_diag polling only, and short states may be missed",
            "unset TCPLAB_TRACEFS",
            fatal=False,
        )
    from tcplab.lab.tracefs import mounted

    if not mounted(root):
        return Finding(
            "tracefs",
            False,
            f"not mounted at {root}, and mounting it failed",
            f"mount -t tracefs nodev {root} (the kernel needs CONFIG_FTRACE); "
            "or run with TCPLAB_TRACEFS=off to take states from inet_diag "
            "polling only",
        )
    ok = os.path.isdir(f"{root}/events/sock/inet_sock_set_state")
    return Finding(
        "tracefs",
        ok,
        "sock:inet_sock_set_state available"
        if ok
        else "this kernel has no sock:inet_sock_set_state tracepoint",
        ""
        if ok
        else "a kernel with CONFIG_TRACEPOINTS (4.16 or later); or run "
        "with TCPLAB_TRACEFS=off to take states from inet_diag polling only",
    )


def netns() -> Finding:
    ok = os.path.exists("/proc/self/ns/net")
    return Finding(
        "network namespaces", ok, "supported" if ok else "no /proc/self/ns/net", "a kernel with CONFIG_NET_NS"
    )


def kernel() -> Finding:
    return Finding("kernel", True, platform.release(), fatal=False)


def sysctls(names: set[str]) -> Finding:
    """A sysctl this kernel does not have: name it. Its presence in the root
    namespace's /proc/sys is only read here, never written."""
    missing = sorted(n for n in names if not os.path.exists("/proc/sys/" + n.replace(".", "/")))
    if missing:
        return Finding(
            "sysctls",
            False,
            "not on this kernel: " + ", ".join(missing),
            f"remove them from the scenario or use a kernel that has them (this is {platform.release()})",
        )
    return Finding("sysctls", True, f"{len(names)} requested, all present")


def check_sysctls_exist(scenarios, proc_sys: str = "/proc/sys") -> None:
    """A sysctl this kernel lacks (or that cannot be written) is the scenario's mistake
    (exit 2), found before any namespace exists - unless its absence is the very value
    asked for (core/model/kernel.py, ABSENT_MEANS): then it is left out (settable()).
    The root namespace's /proc/sys is only looked at here: per-namespace sysctls exist
    in every namespace or in none."""
    for sc in scenarios:
        for host, values in sc.sysctls.items():
            for name, value in values.items():
                key = f"hosts.{host}.sysctls.{name}"
                path = f"{proc_sys}/" + name.replace(".", "/")
                why = None
                if not os.path.isfile(path):
                    if absent_means(name, value):
                        continue
                    why = f"this kernel ({os.uname().release}) has no such sysctl"
                elif not os.stat(path).st_mode & 0o222:
                    why = "read-only: the kernel reports it but does not let it be set"
                if why:
                    raise ScenarioError(sc.path, sc.lines.get(key), key, why)


def settable(values: dict[str, str], proc_sys: str = "/proc/sys") -> tuple[dict[str, str], list[str]]:
    """The sysctls to write, and a note for each one left out because this kernel
    lacks it and behaves as its value (check_sysctls_exist() let only those through)."""
    keep, notes = {}, []
    for name, value in values.items():
        note = None if os.path.isfile(f"{proc_sys}/" + name.replace(".", "/")) else absent_means(name, value)
        if note:
            notes.append(note)
        else:
            keep[name] = value
    return keep, notes


def findings(sysctl_names: set[str] = frozenset()) -> list[Finding]:
    found = [root(), netns(), iptables(), nfqueue(), tracefs(), kernel()]
    if sysctl_names:
        found.append(sysctls(set(sysctl_names)))
    return found


def require(sysctl_names: set[str] = frozenset()) -> list[Finding]:
    """Raise for the first fatal problem; return the findings (incl. warnings)."""
    found = findings(sysctl_names)
    for f in found:
        if f.fatal and not f.ok:
            raise LabError(f"{f.name}: {f.detail}", f.fix or None)
    return found


def kernel_hz() -> int | None:
    """CONFIG_HZ of the running kernel, for the model's timer-wheel granularity."""
    import gzip

    for path, opener in (("/proc/config.gz", gzip.open), (f"/boot/config-{platform.release()}", open)):
        try:
            with opener(path, "rt") as f:
                for line in f:
                    if line.startswith("CONFIG_HZ="):
                        return int(line.split("=", 1)[1])
        except (OSError, ValueError):
            continue
    return None
