"""Kernel VMs from Debian packages (docs/kernel-vms.md).

    kernel-vm build KERNEL...            build (or reuse) the cached image of each kernel
    kernel-vm run KERNEL... -- ARGS...   boot each image and run `./lab ARGS` inside
    kernel-vm KERNEL... -- ARGS...       the same as run
    kernel-vm list | clean [KERNEL...]

The pure parts (argument parsing, the rewriting of OUT in the lab's arguments, the
image key, the qemu command line, the choice of accelerator) are functions of their
inputs, tested in tests/unit/test_kernel_vm.py; the rest shells out (debootstrap,
chroot, mkfs.ext4, qemu) and owns everything it starts: every temporary file, child
process and mount is gone on every exit (mounts live only in a private mount
namespace; qemu dies with this process, by PR_SET_PDEATHSIG, and on a timeout).
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import io
import json
import os
import py_compile
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
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
    suite: str          # the apt target release the kernel package comes from
    package: str
    about: str


KERNELS = {
    "6.1": Kernel("6.1", "bookworm", "linux-image-cloud-amd64", "Debian 12's own kernel"),
    "6.12": Kernel("6.12", "bookworm-backports", "linux-image-cloud-amd64",
                   "Debian 12 with the bookworm-backports kernel"),
}
# The lab's test suite needs more inside (setup.sh --test): a separate image, NAME+test.
TEST_FLAVOUR = "+test"


class Usage(Exception):
    """Bad command line: exit 2, nothing was done."""


class Failed(Exception):
    """The tool could not do its job: exit 3."""


# ----------------------------------------------------------------- pure parts

def parse_args(argv: list[str]) -> argparse.Namespace:
    """`run` is the default command: `kernel-vm 6.1 6.12 -- run x.yaml` is a run."""
    argv = list(argv)
    lab_args: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, lab_args = argv[:i], argv[i + 1:]
    commands = ("build", "run", "list", "clean")
    if argv and argv[0] not in commands and not argv[0].startswith("-"):
        argv = ["run", *argv]
    p = argparse.ArgumentParser(prog="kernel-vm", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build (or reuse) the cached image of each kernel")
    b.add_argument("kernels", nargs="+", metavar="KERNEL")
    b.add_argument("--rebuild", action="store_true", help="build even when the cached image is current")
    b.add_argument("--test-deps", action="store_true",
                   help="also what ./lab test needs (setup.sh --test): the image NAME+test")
    r = sub.add_parser("run", help="boot each kernel's image and run ./lab ARGS inside",
                       epilog="ARGS after -- go to ./lab inside the VM, as root; an argument "
                              "OUT or OUT/... names the directory brought back to the host.")
    r.add_argument("kernels", nargs="+", metavar="KERNEL")
    r.add_argument("--accel", choices=("auto", "kvm", "tcg"),
                   default=os.environ.get("KERNEL_VM_ACCEL", "auto"),
                   help="auto: KVM if a probe guest runs under it, else TCG (default)")
    r.add_argument("--timeout", type=float, default=float(os.environ.get("KERNEL_VM_TIMEOUT", 3600)),
                   help="seconds the VM may run before qemu is killed (default 3600)")
    r.add_argument("--out", type=Path, default=None,
                   help="host directory for the results (default results/vm/<kernel release>/)")
    r.add_argument("--memory", default="2G")
    r.add_argument("--smp", type=int, default=2)
    r.add_argument("--source", choices=("worktree", "head"), default="worktree",
                   help="worktree: the checkout's files as they are now (tracked and "
                        "untracked, not ignored); head: the committed tree (git archive HEAD)")
    r.add_argument("--no-build", action="store_true", help="fail instead of building a missing or stale image")
    r.add_argument("--quiet", action="store_true", help="do not echo the VM's console")
    sub.add_parser("list", help="the cached images")
    c = sub.add_parser("clean", help="remove cached images (all, or the named ones) and leftovers")
    c.add_argument("kernels", nargs="*", metavar="KERNEL")
    ns = p.parse_args(argv)
    ns.lab_args = lab_args
    if ns.command == "run" and not lab_args:
        raise Usage("run: give the lab's arguments after --, e.g. -- run scenarios/handshake/normal.yaml --json OUT/")
    if ns.command in ("build", "run", "clean"):
        for k in ns.kernels:
            if image_kernel(k) is None:
                raise Usage(f"unknown kernel {k!r}: known are {', '.join(KERNELS)} "
                            f"(and NAME{TEST_FLAVOUR} for an image with the test tools)")
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


def qemu_argv(*, accel: str, kernel: Path, initrd: Path, disk: Path, job: Path,
              results: Path, console: Path, memory: str = "2G", smp: int = 2,
              name: str = "tcplab", extra_append: str = "", cpu_model: str = "") -> list[str]:
    """The VM: no network, no display; the root disk is a throw-away snapshot of the cached
    image (so every boot starts from the same image), the job is a raw tar on vdb and the
    results a raw tar the guest writes on vdc. Under nice: others may be timing things here."""
    # cx16=off under TCG: qemu 7.2 (Debian 12's) emulates 6.12's per-CPU cmpxchg16b (the
    # SLUB freelist) wrongly now and then, and the guest oopses at boot (1 boot in 3
    # here); without cx16 the kernel takes its fallback path: 10 boots in 10.
    cpu = ["-accel", "kvm", "-cpu", cpu_model or "host"] if accel == "kvm" else \
          ["-accel", "tcg,thread=multi", "-cpu", cpu_model or "max,cx16=off"]
    append = ("root=/dev/vda rw console=ttyS0 init=/sbin/kernel-vm-init panic=-1 "
              "quiet loglevel=4 net.ifnames=0")
    if extra_append:  # KERNEL_VM_APPEND, for debugging a boot (e.g. loglevel=7)
        append += " " + extra_append
    return ["nice", "-n", "10", "qemu-system-x86_64", "-name", name,
            "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
            *cpu, "-smp", str(smp), "-m", memory, "-no-reboot",
            "-kernel", str(kernel), "-initrd", str(initrd), "-append", append,
            "-drive", f"file={disk},if=virtio,format=raw,snapshot=on",
            "-drive", f"file={job},if=virtio,format=raw,readonly=on",
            "-drive", f"file={results},if=virtio,format=raw",
            "-device", "virtio-rng-pci",
            "-serial", f"file:{console}"]


def probe_argv(kernel: Path) -> list[str]:
    """A guest that only boots the kernel until it finds no root and panics: under a KVM
    that works that takes a second or two and qemu exits 0 (-no-reboot)."""
    return ["nice", "-n", "10", "qemu-system-x86_64", "-nodefaults", "-no-user-config",
            "-display", "none", "-monitor", "none", "-serial", "none",
            "-accel", "kvm", "-cpu", "host", "-m", "256M", "-no-reboot",
            "-kernel", str(kernel), "-append", "root=/dev/nonexistent panic=-1 console=ttyS0"]


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
    return ("kvm", "the probe guest ran under KVM") if ok else ("tcg", f"KVM cannot run a guest here ({reason})")


def judge_probe(returncode: int | None, stderr: str) -> tuple[bool, str]:
    """The probe's outcome: exited 0 is success; KVM's internal errors (the guest stops,
    qemu does not exit) and a timeout (returncode None) are failures."""
    for line in stderr.splitlines():
        if "KVM internal error" in line or "failed to initialize kvm" in line.lower() \
                or "emulation failure" in line:
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


# ----------------------------------------------------------------- processes

_children: set[subprocess.Popen] = set()


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG = 1: a child still running when this process dies (even by
    # SIGKILL) is killed too.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _die_with_parent_niced() -> None:
    _die_with_parent()
    os.nice(10)  # the image builds (dpkg, gcc, mkfs) yield to the host's own work


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
    _children.discard(proc)


def spawn(argv: list[str], niced: bool = False, **kw) -> subprocess.Popen:
    proc = subprocess.Popen(argv, start_new_session=True,
                            preexec_fn=_die_with_parent_niced if niced else _die_with_parent, **kw)
    _children.add(proc)
    return proc


def sh(argv: list[str], *, quiet: bool = False, **kw) -> None:
    """Runs argv to its end (killed with this tool on any exit); fails on non-zero."""
    if quiet:
        kw.setdefault("stdout", subprocess.DEVNULL)
    proc = spawn(argv, niced=True, **kw)
    try:
        rc = proc.wait()
    finally:
        _kill(proc)
    if rc != 0:
        raise Failed(f"{' '.join(map(str, argv[:4]))}... exited {rc}")


def kill_children() -> None:
    for proc in list(_children):
        _kill(proc)


def _on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def say(msg: str) -> None:
    print(f"kernel-vm: {msg}", file=sys.stderr, flush=True)


def scratch(kind: str) -> Path:
    """A temporary directory under the cache, named with this process's pid, so a later
    run can sweep what a SIGKILLed one left (sweep_leftovers)."""
    tmp = CACHE / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{kind}-{os.getpid()}-", dir=tmp))


def remove(path: Path) -> None:
    if path.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def sweep_leftovers() -> None:
    tmp = CACHE / "tmp"
    if not tmp.is_dir():
        return
    for d in tmp.iterdir():
        try:
            pid = int(d.name.rsplit("-", 2)[-2])  # <kind>-<pid>-<random, no dash>
        except (IndexError, ValueError):
            continue
        if not Path(f"/proc/{pid}").exists():
            remove(d)


# ----------------------------------------------------------------- the project's files

def project_files(source: str) -> list[str]:
    if source == "head":
        out = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "-r", "-z", "--name-only", "HEAD"],
                             capture_output=True, check=True).stdout
    else:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], capture_output=True, check=True).stdout
    names = [n.decode() for n in out.split(b"\0") if n]
    if source == "worktree":  # a tracked file deleted in the worktree is not sent
        names = [n for n in names if os.path.lexists(ROOT / n)]
    return names


def source_note(source: str) -> str:
    git = lambda *a: subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True,
                                    text=True).stdout.strip()
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return (f"source: {source}\ncommit: {git('rev-parse', 'HEAD')}\n"
            f"uncommitted changes: {'yes' if dirty and source == 'worktree' else 'no'}\n"
            + (dirty + "\n" if dirty and source == "worktree" else ""))


def add_project(tar: tarfile.TarFile, source: str, prefix: str) -> None:
    if source == "head":
        blob = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", f"--prefix={prefix}/", "HEAD"],
                              capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(blob)) as src:
            for m in src.getmembers():
                tar.addfile(m, src.extractfile(m) if m.isfile() else None)
        return
    names = project_files(source)
    for name in names:
        tar.add(ROOT / name, arcname=f"{prefix}/{name}", recursive=False)
    add_bytecode(tar, names, prefix)


def add_bytecode(tar: tarfile.TarFile, names: list[str], prefix: str) -> None:
    """The project's modules compiled here, when this Python is the guest's (Debian 12's
    3.11): under TCG the lab's children would each compile them again, at the same time,
    inside the lab's start-up deadline. A .pyc is valid for the source's mtime and size,
    which the tar keeps."""
    if sys.version_info[:2] != GUEST_PYTHON:
        return  # job.sh compiles them in the guest instead, once, before the job
    tag = sys.implementation.cache_tag
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            if not (name.startswith("tcplab/") and name.endswith(".py")) or not (ROOT / name).is_file():
                continue
            path = Path(name)
            pyc = Path(tmp) / "x.pyc"
            try:
                py_compile.compile(str(ROOT / name), cfile=str(pyc), dfile=f"/root/project/{name}",
                                   doraise=True)
            except py_compile.PyCompileError:
                continue
            tar.add(pyc, arcname=f"{prefix}/{path.parent}/__pycache__/{path.stem}.{tag}.pyc")


def key_files() -> dict[str, bytes]:
    return {n: (ROOT / n).read_bytes() for n in ("pyproject.toml", "scripts/setup.sh")} | \
           {"guest-init": (HERE / "guest-init").read_bytes()}


# ----------------------------------------------------------------- build

def need_root() -> None:
    if os.geteuid() != 0:
        raise Failed("run as root (debootstrap, chroot and qemu's disks need it)")


def ensure_host_tools() -> None:
    wanted = {"qemu-system-x86_64": "qemu-system-x86", "debootstrap": "debootstrap",
              "mkfs.ext4": "e2fsprogs"}
    missing = sorted({pkg for cmd, pkg in wanted.items() if not shutil.which(cmd)})
    if missing:
        say(f"installing {' '.join(missing)} on the host")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        sh(["apt-get", "update", "-qq"], env=env)
        sh(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env, quiet=True)


def image_dir(name: str) -> Path:
    return CACHE / name


def image_meta(name: str) -> dict | None:
    try:
        return json.loads((image_dir(name) / "image.json").read_text())
    except (OSError, ValueError):
        return None


def base_tarball() -> Path:
    """debootstrap --variant=minbase bookworm, once, shared by every image."""
    tarball = CACHE / "bookworm-minbase.tar"
    if tarball.exists():
        return tarball
    t0 = time.monotonic()
    say("debootstrap --variant=minbase bookworm (once for all kernels)")
    root = scratch("debootstrap")
    try:
        sh(["debootstrap", "--variant=minbase", "bookworm", str(root), MIRROR], quiet=True)
        os.chmod(root, 0o755)
        part = tarball.with_suffix(".part")
        sh(["tar", "-C", str(root), "--numeric-owner", "-cf", str(part), "."])
        part.rename(tarball)
    finally:
        remove(root)
    say(f"base root ready in {time.monotonic() - t0:.0f} s")
    return tarball


CHROOT_SCRIPT = r"""
set -eu
export DEBIAN_FRONTEND=noninteractive HOME=/root LANG=C.UTF-8 \
       PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
apt-get update -qq
apt-get install -y -qq --no-install-recommends -t "$1" "$2" >/dev/null
# An initramfs that loads only what finds the root disk: the default (MODULES=most)
# takes seconds more to boot under TCG.
echo MODULES=list > /etc/initramfs-tools/conf.d/kernel-vm
printf 'virtio_pci\nvirtio_blk\n' >> /etc/initramfs-tools/modules
update-initramfs -u -k all >/dev/null
cd /root/project
bash scripts/setup.sh $3
apt-get clean
rm -rf /var/lib/apt/lists/* /root/.cache
"""


def build(name: str, rebuild: bool = False) -> dict:
    kernel = image_kernel(name)
    key = image_key(name, key_files())
    meta = image_meta(name)
    if meta and meta.get("key") == key and not rebuild:
        return meta
    if meta:
        say(f"{name}: the cached image is stale (pyproject.toml, scripts/setup.sh or the "
            f"recipe changed): rebuilding" if meta.get("key") != key else f"{name}: rebuilding")
    need_root()
    ensure_host_tools()
    t0 = time.monotonic()
    tarball = base_tarball()
    say(f"{name}: building the image ({kernel.package} from {kernel.suite}, the project by scripts/setup.sh)")
    work = scratch(f"build-{name.replace('+', '_')}")
    try:
        root = work / "root"
        root.mkdir()
        sh(["tar", "-C", str(root), "--numeric-owner", "-xpf", str(tarball)])
        os.chmod(root, 0o755)  # not the 0700 of the temporary directory it was made in
        (root / "etc/apt/sources.list").write_text(
            f"deb {MIRROR} bookworm main\ndeb {MIRROR} bookworm-updates main\n"
            f"deb {SECURITY} bookworm-security main\ndeb {MIRROR} bookworm-backports main\n")
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        bundle = Path("/etc/ssl/certs/ca-certificates.crt")
        if bundle.exists():  # TLS to PyPI verifies as on the host (as fresh-machine-check does)
            (root / "etc/ssl/certs").mkdir(parents=True, exist_ok=True)
            shutil.copy(bundle, root / "etc/ssl/certs/ca-certificates.crt")
            (root / "usr/local/share/ca-certificates/host").mkdir(parents=True, exist_ok=True)
            shutil.copy(bundle, root / "usr/local/share/ca-certificates/host/host-bundle.crt")
            (root / "etc/pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
        project = root / "root/project"
        project.mkdir(parents=True)
        for n in project_files("worktree"):
            dst = project / n
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / n, dst, follow_symlinks=False)
        (root / "etc/hostname").write_text("tcplab-vm\n")
        shutil.copy(HERE / "guest-init", root / "sbin/kernel-vm-init")
        os.chmod(root / "sbin/kernel-vm-init", 0o755)
        (root / "root/chroot-build.sh").write_text(CHROOT_SCRIPT)
        test_flag = "--test" if name.endswith(TEST_FLAVOUR) else ""
        # Mounts only inside a private mount namespace: they vanish with it, on any exit.
        sh(["unshare", "-m", "--propagation", "private", "bash", "-ec",
            'r=$1; shift; mount -t proc proc "$r/proc"; mount -t sysfs sysfs "$r/sys"; '
            'mount --rbind /dev "$r/dev"; mount -t tmpfs tmpfs "$r/run"; '
            'exec chroot "$r" /usr/bin/env -i bash /root/chroot-build.sh "$@"',
            "_", str(root), kernel.suite, kernel.package, test_flag])
        (root / "root/chroot-build.sh").unlink()
        (root / "etc/resolv.conf").write_text("")
        boot = root / "boot"
        vmlinuz = sorted(boot.glob("vmlinuz-*"))
        if len(vmlinuz) != 1:
            raise Failed(f"expected one kernel in /boot, found {[p.name for p in vmlinuz]}")
        release = vmlinuz[0].name.removeprefix("vmlinuz-")
        out = work / "image"
        out.mkdir()
        shutil.copy(vmlinuz[0], out / "vmlinuz")
        shutil.copy(boot / f"initrd.img-{release}", out / "initrd.img")
        used = int(subprocess.run(["du", "-sb", str(root)], capture_output=True, text=True,
                                  check=True).stdout.split()[0])
        size_mb = int(used * 1.25 / 2**20) + 1024  # room for the runs' own files
        sh(["mkfs.ext4", "-q", "-F", "-L", "tcplab-root", "-d", str(root),
            str(out / "disk.img"), f"{size_mb}M"])
        pkg = subprocess.run(["chroot", str(root), "dpkg-query", "-W", "-f", "${Version}",
                              f"linux-image-{release}"], capture_output=True, text=True).stdout
        meta = {"name": name, "key": key, "kernel_release": release, "package": kernel.package,
                "package_version": pkg, "suite": kernel.suite,
                "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "build_seconds": round(time.monotonic() - t0, 1),
                "disk_mb": size_mb, "disk_used_mb": round(used / 2**20)}
        (out / "image.json").write_text(json.dumps(meta, indent=1) + "\n")
        dest = image_dir(name)
        remove(dest)
        out.rename(dest)
        say(f"{name}: built {release} ({pkg}) in {meta['build_seconds']:.0f} s, "
            f"{meta['disk_used_mb']} MB used of a {size_mb} MB disk: {dest}")
        return meta
    finally:
        remove(work)


# ----------------------------------------------------------------- run

def kvm_usable() -> bool:
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
        return True
    except OSError:
        return False


def probe_kvm(kernel: Path, timeout: float = 20.0) -> tuple[bool, str]:
    proc = spawn(probe_argv(kernel), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if judge_probe(None, "".join(lines))[1] != "the probe guest did not finish":
                break  # KVM said it failed; the guest is stopped, qemu would wait forever
            time.sleep(0.1)
        rc = proc.poll()
    finally:
        _kill(proc)
    reader.join(timeout=1)
    return judge_probe(rc, "".join(lines))


def follow(path: Path, stop: threading.Event, quiet: bool) -> None:
    """Echoes the VM's console as it grows."""
    while not path.exists() and not stop.is_set():
        time.sleep(0.1)
    if quiet or not path.exists():
        return
    with open(path, "rb") as f:
        while True:
            chunk = f.read()
            if chunk:
                sys.stderr.buffer.write(chunk.replace(b"\r", b""))
                sys.stderr.flush()
            elif stop.is_set():
                return
            else:
                time.sleep(0.2)


def run_one(name: str, args: argparse.Namespace) -> int:
    meta = image_meta(name)
    if args.no_build:
        if not meta or meta.get("key") != image_key(name, key_files()):
            raise Failed(f"{name}: no current cached image (build it: scripts/kernel-vm build {name})")
    else:
        meta = build(name)
    need_root()
    img = image_dir(name)
    t0 = time.monotonic()
    work = scratch(f"run-{name.replace('+', '_')}")
    try:
        job = work / "job.tar"
        with tarfile.open(job, "w", format=tarfile.GNU_FORMAT) as tar:
            tar.add(HERE / "guest-job.sh", arcname="job.sh")
            for arcname, data in (("args", b"".join(a.encode() + b"\0" for a in rewrite_out(args.lab_args))),
                                  ("source.txt", source_note(args.source).encode())):
                info = tarfile.TarInfo(arcname)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            add_project(tar, args.source, "project")
        results = work / "results.img"
        with open(results, "wb") as f:
            f.truncate(1 << 30)  # sparse; the guest writes a tar at its start
        console = work / "console.log"
        accel, why = choose_accel(args.accel, kvm_usable(), lambda: probe_kvm(img / "vmlinuz"))
        say(f"{name}: booting {meta['kernel_release']} under {accel.upper()} ({why})")
        argv = qemu_argv(accel=accel, kernel=img / "vmlinuz", initrd=img / "initrd.img",
                         disk=img / "disk.img", job=job, results=results, console=console,
                         memory=args.memory, smp=args.smp, name=f"tcplab-{name}",
                         extra_append=os.environ.get("KERNEL_VM_APPEND", ""),
                         cpu_model=os.environ.get("KERNEL_VM_CPU", ""))
        stop = threading.Event()
        echo = threading.Thread(target=follow, args=(console, stop, args.quiet), daemon=True)
        echo.start()
        # TMPDIR: where qemu keeps the snapshot=on overlay, removed with the work dir.
        proc = spawn(argv, env=dict(os.environ, TMPDIR=str(work)),
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        timed_out = False
        try:
            proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            qemu_err = ""
            if proc.poll() is None:
                _kill(proc)
            else:
                _children.discard(proc)
            try:
                qemu_err = proc.stderr.read()
            except (OSError, ValueError):
                pass
            stop.set()
            echo.join(timeout=5)
        wall = time.monotonic() - t0
        out = results_dir(args.out, len(args.kernels), meta["kernel_release"])
        if args.out is None:
            remove(out)  # results/vm/<release>/ holds the last run only
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "-xf", str(results), "-C", str(out), "--no-same-owner"],
                       capture_output=True)
        shutil.copy(console, out / "console.log") if console.exists() else None
        if timed_out:
            say(f"{name}: timed out after {args.timeout:.0f} s; qemu killed; console in {out}/console.log")
            return 124
        if qemu_err.strip():
            (out / "qemu-stderr.txt").write_text(qemu_err)
        try:
            rc = int((out / "exit-code").read_text())
        except (OSError, ValueError):
            say(f"{name}: the VM brought back no results (qemu exit {proc.returncode}); "
                f"see {out}/console.log" + (f"; qemu: {qemu_err.strip()[-300:]}" if qemu_err.strip() else ""))
            return 3
        timing = {}
        try:
            timing = json.loads((out / "timing.json").read_text())
        except (OSError, ValueError):
            pass
        timing |= {"accel": accel, "wall_s": round(wall, 1), "kernel_release": meta["kernel_release"]}
        (out / "timing.json").write_text(json.dumps(timing) + "\n")
        for stem, verdict in summarize(out):
            say(f"  {stem}: {verdict}")
        say(f"{name}: {meta['kernel_release']}, ./lab exited {rc}; booted to the job in "
            f"{timing.get('boot_to_job_s', '?')} s, job {timing.get('job_s', '?')} s, "
            f"{wall:.0f} s in all; results in {out}")
        return rc
    finally:
        remove(work)


def list_images() -> int:
    for d in sorted(CACHE.iterdir()) if CACHE.is_dir() else []:
        meta = image_meta(d.name)
        if meta:
            current = meta.get("key") == image_key(d.name, key_files())
            print(f"{d.name:10} {meta['kernel_release']:28} {meta.get('package_version', ''):22} "
                  f"built {meta['built']} in {meta['build_seconds']:.0f} s"
                  f"{'' if current else '  (stale: rebuilt on next use)'}")
    return 0


def clean(names: list[str]) -> int:
    sweep_leftovers()
    if not names:
        remove(CACHE)
        say(f"removed {CACHE}")
    for n in names:
        remove(image_dir(n))
        say(f"removed {image_dir(n)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except Usage as e:
        print(f"kernel-vm: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    try:
        if args.command == "list":
            return list_images()
        if args.command == "clean":
            return clean(args.kernels)
        need_root()
        sweep_leftovers()
        if args.command == "build":
            for k in args.kernels:
                build(k + (TEST_FLAVOUR if args.test_deps and not k.endswith(TEST_FLAVOUR) else ""),
                      rebuild=args.rebuild)
            return 0
        worst = 0
        for k in args.kernels:
            rc = run_one(image_name(k, args.lab_args), args)
            worst = rc if worst == 0 else worst
        return worst
    except Failed as e:
        say(str(e))
        return 3
    except KeyboardInterrupt:
        say("interrupted: what it started (qemu, chroot, mounts) and its temporary files are gone")
        return 130
    finally:
        kill_children()
