"""scripts/kernel-vm's pure parts: its command line, the kernels, image names and keys,
qemu's command line, choosing the accelerator, reading the results."""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("KERNEL_VM_CACHE", ROOT / ".cache" / "kernel-vm"))
MIRROR = os.environ.get("KERNEL_VM_MIRROR", "http://deb.debian.org/debian")
SECURITY = os.environ.get("KERNEL_VM_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
# Bumped when what the image holds changes in a way the key's files do not show.
RECIPE = "3"
GUEST_OUT = "/root/out"
GUEST_PYTHON = (3, 11)  # Debian 12's python3


@dataclass(frozen=True)
class Kernel:
    name: str
    suite: str  # the apt target release the kernel package comes from
    package: str
    about: str


KERNELS = {
    "6.1": Kernel("6.1", "bookworm", "linux-image-cloud-amd64", "Debian 12's own kernel"),
    "6.12": Kernel(
        "6.12",
        "bookworm-backports",
        "linux-image-cloud-amd64",
        "Debian 12 with the bookworm-backports kernel",
    ),
}
# The lab's test suite needs more inside (setup.sh --test): a separate image, NAME+test.
TEST_FLAVOUR = "+test"


class Usage(Exception):
    """Bad command line: exit 2, nothing was done."""


class Failed(Exception):
    """The tool could not do its job: exit 3."""


# ----------------------------------------------------------------- pure parts


USAGE = """Kernel VMs from Debian packages (docs/kernel-vms.md).

    kernel-vm build KERNEL...            build (or reuse) the cached image of each kernel
    kernel-vm run KERNEL... -- ARGS...   boot each image and run `./lab ARGS` inside
    kernel-vm KERNEL... -- ARGS...       the same as run
    kernel-vm list | clean [KERNEL...]"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    """`run` is the default command: `kernel-vm 6.1 6.12 -- run x.yaml` is a run."""
    argv = list(argv)
    lab_args: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, lab_args = argv[:i], argv[i + 1 :]
    commands = ("build", "run", "list", "clean")
    if argv and argv[0] not in commands and not argv[0].startswith("-"):
        argv = ["run", *argv]
    p = argparse.ArgumentParser(
        prog="kernel-vm", description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build (or reuse) the cached image of each kernel")
    b.add_argument("kernels", nargs="+", metavar="KERNEL")
    b.add_argument("--rebuild", action="store_true", help="build even when the cached image is current")
    b.add_argument(
        "--test-deps",
        action="store_true",
        help="also what ./lab test needs (setup.sh --test): the image NAME+test",
    )
    r = sub.add_parser(
        "run",
        help="boot each kernel's image and run ./lab ARGS inside",
        epilog="ARGS after -- go to ./lab inside the VM, as root; an argument "
        "OUT or OUT/... names the directory brought back to the host.",
    )
    r.add_argument("kernels", nargs="+", metavar="KERNEL")
    r.add_argument(
        "--accel",
        choices=("auto", "kvm", "tcg"),
        default=os.environ.get("KERNEL_VM_ACCEL", "auto"),
        help="auto: KVM if a probe guest runs under it, else TCG (default)",
    )
    r.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get("KERNEL_VM_TIMEOUT", 3600)),
        help="seconds the VM may run before qemu is killed (default 3600)",
    )
    r.add_argument(
        "--out",
        type=Path,
        default=None,
        help="host directory for the results (default results/vm/<kernel release>/)",
    )
    r.add_argument("--memory", default="2G")
    r.add_argument("--smp", type=int, default=2)
    r.add_argument(
        "--source",
        choices=("worktree", "head"),
        default="worktree",
        help="worktree: the checkout's files as they are now (tracked and "
        "untracked, not ignored); head: the committed tree (git archive HEAD)",
    )
    r.add_argument(
        "--no-build", action="store_true", help="fail instead of building a missing or stale image"
    )
    r.add_argument("--quiet", action="store_true", help="do not echo the VM's console")
    sub.add_parser("list", help="the cached images")
    c = sub.add_parser("clean", help="remove cached images (all, or the named ones) and leftovers")
    c.add_argument("kernels", nargs="*", metavar="KERNEL")
    ns = p.parse_args(argv)
    ns.lab_args = lab_args
    if ns.command == "run" and not lab_args:
        raise Usage(
            "run: give the lab's arguments after --, e.g. -- run scenarios/handshake/normal.yaml --json OUT/"
        )
    if ns.command in ("build", "run", "clean"):
        for k in ns.kernels:
            if image_kernel(k) is None:
                raise Usage(
                    f"unknown kernel {k!r}: known are {', '.join(KERNELS)} "
                    f"(and NAME{TEST_FLAVOUR} for an image with the test tools)"
                )
    return ns


def image_kernel(name: str) -> Kernel | None:
    return KERNELS.get(name.removesuffix(TEST_FLAVOUR))


def image_name(kernel: str, lab_args: list[str]) -> str:
    """./lab test needs the test tools; any other lab command runs on the plain image."""
    if lab_args[:1] == ["test"] and not kernel.endswith(TEST_FLAVOUR):
        return kernel + TEST_FLAVOUR
    return kernel


def rewrite_out(lab_args: list[str], guest_out: str = GUEST_OUT) -> list[str]:
    """OUT (alone, or at the start of a path: OUT/, OUT/x.xml, --json=OUT/) names the
    directory the host gets back."""
    out = []
    for a in lab_args:
        head, eq, tail = a.partition("=") if a.startswith("--") else ("", "", a)
        if tail == "OUT" or tail.startswith("OUT/"):
            tail = guest_out + tail[3:]
        out.append(head + eq + tail)
    return out


def image_key(kernel: str, files: dict[str, bytes]) -> str:
    """What an image depends on besides its kernel: the recipe, the guest's init, and the
    files that decide what setup.sh installs. A checkout that changes them gets a new image."""
    h = hashlib.sha256(f"{RECIPE}\0{kernel}\0".encode())
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()[:16]


def qemu_argv(
    *,
    accel: str,
    kernel: Path,
    initrd: Path,
    disk: Path,
    job: Path,
    results: Path,
    console: Path,
    memory: str = "2G",
    smp: int = 2,
    name: str = "tcplab",
    extra_append: str = "",
    cpu_model: str = "",
) -> list[str]:
    """The VM: no network, no display; the root disk is a throw-away snapshot of the cached
    image (so every boot starts from the same image), the job is a raw tar on vdb and the
    results a raw tar the guest writes on vdc. Under nice: others may be timing things here."""
    # cx16=off under TCG: qemu 7.2 (Debian 12's) emulates 6.12's per-CPU cmpxchg16b (the
    # SLUB freelist) wrongly now and then, and the guest oopses at boot (1 boot in 3
    # here); without cx16 the kernel takes its fallback path: 10 boots in 10.
    cpu = (
        ["-accel", "kvm", "-cpu", cpu_model or "host"]
        if accel == "kvm"
        else ["-accel", "tcg,thread=multi", "-cpu", cpu_model or "max,cx16=off"]
    )
    # softlockup_panic: twice (sessions 12 and 13) a TCG guest's vCPU stopped taking
    # interrupts ("0 ticks this GP") and the other spun on it until the host's timeout.
    # Panicking then ends the run 20 s after it stalls instead of 90 min later, with
    # both CPUs' backtraces on the console (all_cpu_backtrace; loglevel 5 lets
    # pr_warn and default-level lines such as a backtrace through).
    append = (
        "root=/dev/vda rw console=ttyS0 init=/sbin/kernel-vm-init panic=-1 quiet loglevel=5 net.ifnames=0"
        " softlockup_panic=1 softlockup_all_cpu_backtrace=1"
    )
    if extra_append:  # KERNEL_VM_APPEND, for debugging a boot (e.g. loglevel=7)
        append += " " + extra_append
    return [
        "nice",
        "-n",
        "10",
        "qemu-system-x86_64",
        "-name",
        name,
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-monitor",
        "none",
        *cpu,
        "-smp",
        str(smp),
        "-m",
        memory,
        "-no-reboot",
        "-kernel",
        str(kernel),
        "-initrd",
        str(initrd),
        "-append",
        append,
        "-drive",
        f"file={disk},if=virtio,format=raw,snapshot=on",
        "-drive",
        f"file={job},if=virtio,format=raw,readonly=on",
        "-drive",
        f"file={results},if=virtio,format=raw",
        "-device",
        "virtio-rng-pci",
        "-serial",
        f"file:{console}",
    ]


def probe_argv(kernel: Path) -> list[str]:
    """A guest that only boots the kernel until it finds no root and panics: under a KVM
    that works that takes a second or two and qemu exits 0 (-no-reboot)."""
    return [
        "nice",
        "-n",
        "10",
        "qemu-system-x86_64",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-m",
        "256M",
        "-no-reboot",
        "-kernel",
        str(kernel),
        "-append",
        "root=/dev/nonexistent panic=-1 console=ttyS0",
    ]


def choose_accel(wanted: str, kvm_usable: bool, probe) -> tuple[str, str]:
    """(accelerator, why). probe() -> (ok, reason) boots a probe guest under KVM; it is
    called only when auto has to decide and /dev/kvm is there."""
    if wanted == "tcg":
        return "tcg", "asked for"
    if wanted == "kvm":
        if not kvm_usable:
            raise Failed("--accel kvm: /dev/kvm is missing or not usable")
        return "kvm", "asked for"
    if not kvm_usable:
        return "tcg", "no usable /dev/kvm"
    ok, reason = probe()
    return (
        ("kvm", "the probe guest ran under KVM") if ok else ("tcg", f"KVM cannot run a guest here ({reason})")
    )


def judge_probe(returncode: int | None, stderr: str) -> tuple[bool, str]:
    """The probe's outcome: exited 0 is success; KVM's internal errors (the guest stops,
    qemu does not exit) and a timeout (returncode None) are failures."""
    for line in stderr.splitlines():
        if (
            "KVM internal error" in line
            or "failed to initialize kvm" in line.lower()
            or "emulation failure" in line
        ):
            return False, line.strip()
    if returncode is None:
        return False, "the probe guest did not finish"
    if returncode != 0:
        last = stderr.strip().splitlines()[-1:] or [f"exit {returncode}"]
        return False, last[0]
    return True, "ok"


def results_dir(out: Path | None, kernels: int, release: str) -> Path:
    """results/vm/<release>/ by default; --out DIR for one kernel, DIR/<release>/ for several."""
    if out is None:
        return ROOT / "results" / "vm" / release
    return out / release if kernels > 1 else out


RECORD_TAG = "kernel-vm-record: "


def console_records(console: str) -> dict[str, bytes]:
    """The records a lab test sent over the console while it ran (tests/lab/labhelpers.py
    `send_record`): `kernel-vm-record: NAME BASE64(GZIP(JSON))`, one line each. They
    come back even when the VM never writes its results (a panic, a timeout). A line
    the console cut short is left out."""
    out = {}
    for line in console.splitlines():
        at = line.find(RECORD_TAG)
        if at < 0:
            continue
        name, _, data = line[at + len(RECORD_TAG) :].strip().partition(" ")
        if not re.fullmatch(r"[\w.+-]+", name):
            continue
        try:
            out[name] = gzip.decompress(base64.b64decode(data, validate=True))
        except (ValueError, OSError, EOFError):
            continue
    return out


def guest_panic(console: str) -> str:
    """The guest kernel's panic line, or "": why a VM that powered off by itself brought
    nothing back (softlockup_panic, qemu_argv)."""
    for line in console.splitlines():
        if "Kernel panic - not syncing" in line:
            return line.split("Kernel panic - not syncing", 1)[1].strip(" :")[:200]
    return ""


def summarize(results_dir: Path) -> list[tuple[str, str]]:
    """(scenario file stem, verdict) of each result JSON the job brought back."""
    rows = []
    for p in sorted(results_dir.rglob("*.json")):
        if p.name == "timing.json":
            continue
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "verdict" in data:
            rows.append((p.stem, str(data["verdict"])))
    return rows
