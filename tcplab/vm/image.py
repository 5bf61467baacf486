"""scripts/kernel-vm's images: a Debian 12 root with the project installed, one disk per
kernel, cached by a key of what went into it."""

from __future__ import annotations

import io
import json
import os
import py_compile
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from tcplab.vm.plan import (
    CACHE,
    Failed,
    GUEST_PYTHON,
    HERE,
    MIRROR,
    ROOT,
    SECURITY,
    TEST_FLAVOUR,
    image_kernel,
    image_key,
)
from tcplab.vm.procs import remove, say, scratch, sh

# ----------------------------------------------------------------- the project's files


def project_files(source: str) -> list[str]:
    if source == "head":
        out = subprocess.run(
            ["git", "-C", str(ROOT), "ls-tree", "-r", "-z", "--name-only", "HEAD"],
            capture_output=True,
            check=True,
        ).stdout
    else:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout
    names = [n.decode() for n in out.split(b"\0") if n]
    if source == "worktree":  # a tracked file deleted in the worktree is not sent
        names = [n for n in names if os.path.lexists(ROOT / n)]
    return names


def source_note(source: str) -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return (
        f"source: {source}\ncommit: {git('rev-parse', 'HEAD')}\n"
        f"uncommitted changes: {'yes' if dirty and source == 'worktree' else 'no'}\n"
        + (dirty + "\n" if dirty and source == "worktree" else "")
    )


def add_project(tar: tarfile.TarFile, source: str, prefix: str) -> None:
    if source == "head":
        blob = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", f"--prefix={prefix}/", "HEAD"],
            capture_output=True,
            check=True,
        ).stdout
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
                py_compile.compile(
                    str(ROOT / name), cfile=str(pyc), dfile=f"/root/project/{name}", doraise=True
                )
            except py_compile.PyCompileError:
                continue
            tar.add(pyc, arcname=f"{prefix}/{path.parent}/__pycache__/{path.stem}.{tag}.pyc")


def key_files() -> dict[str, bytes]:
    return {n: (ROOT / n).read_bytes() for n in ("pyproject.toml", "scripts/setup.sh")} | {
        "guest-init": (HERE / "guest-init").read_bytes()
    }


# ----------------------------------------------------------------- build


def need_root() -> None:
    if os.geteuid() != 0:
        raise Failed("run as root (debootstrap, chroot and qemu's disks need it)")


def ensure_host_tools() -> None:
    wanted = {"qemu-system-x86_64": "qemu-system-x86", "debootstrap": "debootstrap", "mkfs.ext4": "e2fsprogs"}
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
        say(
            f"{name}: the cached image is stale (pyproject.toml, scripts/setup.sh or the "
            f"recipe changed): rebuilding"
            if meta.get("key") != key
            else f"{name}: rebuilding"
        )
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
            f"deb {SECURITY} bookworm-security main\ndeb {MIRROR} bookworm-backports main\n"
        )
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
        sh(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "bash",
                "-ec",
                'r=$1; shift; mount -t proc proc "$r/proc"; mount -t sysfs sysfs "$r/sys"; '
                'mount --rbind /dev "$r/dev"; mount -t tmpfs tmpfs "$r/run"; '
                'exec chroot "$r" /usr/bin/env -i bash /root/chroot-build.sh "$@"',
                "_",
                str(root),
                kernel.suite,
                kernel.package,
                test_flag,
            ]
        )
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
        used = int(
            subprocess.run(
                ["du", "-sb", str(root)], capture_output=True, text=True, check=True
            ).stdout.split()[0]
        )
        size_mb = int(used * 1.25 / 2**20) + 1024  # room for the runs' own files
        sh(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-L",
                "tcplab-root",
                "-d",
                str(root),
                str(out / "disk.img"),
                f"{size_mb}M",
            ]
        )
        pkg = subprocess.run(
            ["chroot", str(root), "dpkg-query", "-W", "-f", "${Version}", f"linux-image-{release}"],
            capture_output=True,
            text=True,
        ).stdout
        meta = {
            "name": name,
            "key": key,
            "kernel_release": release,
            "package": kernel.package,
            "package_version": pkg,
            "suite": kernel.suite,
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": round(time.monotonic() - t0, 1),
            "disk_mb": size_mb,
            "disk_used_mb": round(used / 2**20),
        }
        (out / "image.json").write_text(json.dumps(meta, indent=1) + "\n")
        dest = image_dir(name)
        remove(dest)
        out.rename(dest)
        say(
            f"{name}: built {release} ({pkg}) in {meta['build_seconds']:.0f} s, "
            f"{meta['disk_used_mb']} MB used of a {size_mb} MB disk: {dest}"
        )
        return meta
    finally:
        remove(work)


# ----------------------------------------------------------------- run
