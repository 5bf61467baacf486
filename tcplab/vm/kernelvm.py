"""Kernel VMs from Debian packages (docs/kernel-vms.md).

    kernel-vm build KERNEL...            build (or reuse) the cached image of each kernel
    kernel-vm run KERNEL... -- ARGS...   boot each image and run `./lab ARGS` inside
    kernel-vm KERNEL... -- ARGS...       the same as run
    kernel-vm list | clean [KERNEL...]

The pure parts (argument parsing, the rewriting of OUT in the lab's arguments, the
image key, the qemu command line, the choice of accelerator) are functions of their
inputs, in plan.py, tested in tests/unit/test_kernel_vm.py; image.py builds the disks
and procs.py owns the processes; this module boots and runs. The rest shells out (debootstrap,
chroot, mkfs.ext4, qemu) and owns everything it starts: every temporary file, child
process and mount is gone on every exit (mounts live only in a private mount
namespace; qemu dies with this process, by PR_SET_PDEATHSIG, and on a timeout).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

from tcplab.vm.image import add_project, build, image_dir, image_meta, key_files, need_root, source_note
from tcplab.vm.plan import (
    CACHE,
    Failed,
    HERE,
    TEST_FLAVOUR,
    Usage,
    choose_accel,
    console_records,
    guest_panic,
    image_key,
    image_name,
    RECORD_TAG,
    judge_probe,
    parse_args,
    probe_argv,
    qemu_argv,
    results_dir,
    rewrite_out,
    summarize,
)
from tcplab.vm.procs import (
    forget,
    kill,
    kill_children,
    on_signal,
    remove,
    say,
    scratch,
    spawn,
    sweep_leftovers,
)


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
        kill(proc)
    reader.join(timeout=1)
    return judge_probe(rc, "".join(lines))


def shorten_records(chunk: bytes) -> bytes:
    """A record a lab test sent over the console is for the results folder, not the
    terminal: its base64 is cut to a note. (A line split across two reads is echoed
    as it comes.)"""
    tag = RECORD_TAG.encode()
    if tag not in chunk:
        return chunk
    lines = chunk.split(b"\n")
    for i, line in enumerate(lines):
        at = line.find(tag)
        if at >= 0:
            name = line[at + len(tag) :].split(b" ", 1)[0]
            lines[i] = line[: at + len(tag)] + name + b" (saved in records/)"
    return b"\n".join(lines)


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
                sys.stderr.buffer.write(shorten_records(chunk.replace(b"\r", b"")))
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
            for arcname, data in (
                ("args", b"".join(a.encode() + b"\0" for a in rewrite_out(args.lab_args))),
                ("source.txt", source_note(args.source).encode()),
            ):
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
        argv = qemu_argv(
            accel=accel,
            kernel=img / "vmlinuz",
            initrd=img / "initrd.img",
            disk=img / "disk.img",
            job=job,
            results=results,
            console=console,
            memory=args.memory,
            smp=args.smp,
            name=f"tcplab-{name}",
            extra_append=os.environ.get("KERNEL_VM_APPEND", ""),
            cpu_model=os.environ.get("KERNEL_VM_CPU", ""),
        )
        stop = threading.Event()
        echo = threading.Thread(target=follow, args=(console, stop, args.quiet), daemon=True)
        echo.start()
        # TMPDIR: where qemu keeps the snapshot=on overlay, removed with the work dir.
        proc = spawn(
            argv,
            env=dict(os.environ, TMPDIR=str(work)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        timed_out = False
        try:
            proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            qemu_err = ""
            if proc.poll() is None:
                kill(proc)
            else:
                forget(proc)
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
        subprocess.run(["tar", "-xf", str(results), "-C", str(out), "--no-same-owner"], capture_output=True)
        shutil.copy(console, out / "console.log") if console.exists() else None
        records = console_records(console.read_text(errors="replace")) if console.exists() else {}
        if records:
            (out / "records").mkdir(exist_ok=True)
            for stem, data in records.items():
                (out / "records" / f"{stem}.json").write_bytes(data)
            say(f"{name}: {len(records)} record(s) of failed lab tests in {out}/records/")
        if timed_out:
            say(f"{name}: timed out after {args.timeout:.0f} s; qemu killed; console in {out}/console.log")
            return 124
        if qemu_err.strip():
            (out / "qemu-stderr.txt").write_text(qemu_err)
        try:
            rc = int((out / "exit-code").read_text())
        except (OSError, ValueError):
            panic = guest_panic(console.read_text(errors="replace")) if console.exists() else ""
            say(
                f"{name}: the VM brought back no results (qemu exit {proc.returncode}"
                + (f"; the guest kernel panicked: {panic}" if panic else "")
                + f"); see {out}/console.log"
                + (f"; qemu: {qemu_err.strip()[-300:]}" if qemu_err.strip() else "")
            )
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
        say(
            f"{name}: {meta['kernel_release']}, ./lab exited {rc}; booted to the job in "
            f"{timing.get('boot_to_job_s', '?')} s, job {timing.get('job_s', '?')} s, "
            f"{wall:.0f} s in all; results in {out}"
        )
        return rc
    finally:
        remove(work)


def list_images() -> int:
    for d in sorted(CACHE.iterdir()) if CACHE.is_dir() else []:
        meta = image_meta(d.name)
        if meta:
            current = meta.get("key") == image_key(d.name, key_files())
            print(
                f"{d.name:10} {meta['kernel_release']:28} {meta.get('package_version', ''):22} "
                f"built {meta['built']} in {meta['build_seconds']:.0f} s"
                f"{'' if current else '  (stale: rebuilt on next use)'}"
            )
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
        signal.signal(s, on_signal)
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
                build(
                    k + (TEST_FLAVOUR if args.test_deps and not k.endswith(TEST_FLAVOUR) else ""),
                    rebuild=args.rebuild,
                )
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
