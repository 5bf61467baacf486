"""scripts/kernel-vm's pure parts (tcplab/vm/kernelvm.py): its command line, the lab
arguments it sends, the image key, the qemu command line, and the choice between KVM
and TCG. The VMs themselves boot in tests/lab/test_kernel_vm.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tcplab.vm import image, kernelvm, plan, procs


def test_run_is_the_default_command_and_lab_args_follow_the_double_dash():
    a = plan.parse_args(["6.1", "6.12", "--", "run", "x.yaml", "--json", "OUT/"])
    assert (a.command, a.kernels, a.lab_args) == ("run", ["6.1", "6.12"], ["run", "x.yaml", "--json", "OUT/"])
    assert (a.accel, a.source, a.smp, a.no_build) == ("auto", "worktree", 2, False)
    b = plan.parse_args(["run", "6.1", "--accel", "tcg", "--timeout", "60", "--", "test", "-k", "x"])
    assert (b.accel, b.timeout, b.lab_args) == ("tcg", 60.0, ["test", "-k", "x"])
    # arguments after -- are the lab's, even when they look like kernel-vm's
    c = plan.parse_args(["6.1", "--", "--accel", "kvm"])
    assert c.accel == "auto" and c.lab_args == ["--accel", "kvm"]


def test_build_list_clean():
    assert plan.parse_args(["build", "6.1", "--rebuild"]).rebuild
    assert plan.parse_args(["build", "6.12", "--test-deps"]).test_deps
    assert plan.parse_args(["build", "6.1+test"]).kernels == ["6.1+test"]
    assert plan.parse_args(["list"]).command == "list"
    assert plan.parse_args(["clean"]).kernels == []


@pytest.mark.parametrize(
    "argv, says",
    [
        (["run", "6.1"], "after --"),
        (["6.1"], "after --"),
        (["build", "5.10"], "unknown kernel '5.10'"),
        (["6.2", "--", "run", "x.yaml"], "unknown kernel"),
    ],
)
def test_bad_command_lines(argv, says):
    with pytest.raises(plan.Usage, match=says):
        plan.parse_args(argv)


def test_bad_command_line_exits_2_and_does_nothing(capsys):
    assert kernelvm.main(["build", "5.10"]) == 2
    assert kernelvm.main(["run", "6.1", "--accel", "hvf", "--", "x"]) == 2
    assert "unknown kernel" in capsys.readouterr().err


def test_lab_test_runs_on_the_image_with_the_test_tools():
    assert plan.image_name("6.1", ["test", "tests/unit"]) == "6.1+test"
    assert plan.image_name("6.1", ["run", "test"]) == "6.1"
    assert plan.image_name("6.1+test", ["test"]) == "6.1+test"
    assert plan.image_kernel("6.12+test") is plan.KERNELS["6.12"]
    assert plan.KERNELS["6.12"].suite == "bookworm-backports" and plan.KERNELS["6.1"].suite == "bookworm"


def test_out_names_the_directory_brought_back():
    assert plan.rewrite_out(
        [
            "run",
            "a.yaml",
            "--json",
            "OUT/",
            "--junit",
            "OUT/j.xml",
            "--x=OUT",
            "OUTSIDE",
            "b/OUT/",
            "--mermaid=OUT/m.mmd",
        ],
        "/g",
    ) == [
        "run",
        "a.yaml",
        "--json",
        "/g/",
        "--junit",
        "/g/j.xml",
        "--x=/g",
        "OUTSIDE",
        "b/OUT/",
        "--mermaid=/g/m.mmd",
    ]


def test_results_dir():
    assert plan.results_dir(None, 2, "6.1.0-9-cloud-amd64") == plan.ROOT / "results/vm/6.1.0-9-cloud-amd64"
    assert plan.results_dir(Path("/x"), 1, "r") == Path("/x")
    assert plan.results_dir(Path("/x"), 2, "r") == Path("/x/r")


def test_image_key_follows_the_kernel_and_what_setup_installs():
    files = {"pyproject.toml": b"a", "scripts/setup.sh": b"b"}
    k = plan.image_key("6.1", files)
    assert k == plan.image_key("6.1", dict(files))
    assert k != plan.image_key("6.12", files)
    assert k != plan.image_key("6.1+test", files)
    assert k != plan.image_key("6.1", files | {"pyproject.toml": b"a2"})
    assert set(image.key_files()) == {"pyproject.toml", "scripts/setup.sh", "guest-init"}


def _argv(accel):
    return plan.qemu_argv(
        accel=accel,
        kernel=Path("/i/vmlinuz"),
        initrd=Path("/i/initrd.img"),
        disk=Path("/i/disk.img"),
        job=Path("/w/job.tar"),
        results=Path("/w/results.img"),
        console=Path("/w/console.log"),
        memory="3G",
        smp=4,
        name="tcplab-6.1",
    )


def _after(argv, flag):
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_qemu_command_line():
    argv = _argv("tcg")
    assert argv[:4] == ["nice", "-n", "10", "qemu-system-x86_64"]
    assert _after(argv, "-accel") == ["tcg,thread=multi"] and _after(argv, "-cpu") == ["max,cx16=off"]
    assert _after(argv, "-smp") == ["4"] and _after(argv, "-m") == ["3G"]
    # vda: the cached image, never written (a throw-away snapshot); vdb: the job; vdc: results
    assert _after(argv, "-drive") == [
        "file=/i/disk.img,if=virtio,format=raw,snapshot=on",
        "file=/w/job.tar,if=virtio,format=raw,readonly=on",
        "file=/w/results.img,if=virtio,format=raw",
    ]
    append = _after(argv, "-append")[0].split()
    assert {"root=/dev/vda", "console=ttyS0", "init=/sbin/kernel-vm-init", "panic=-1"} <= set(append)
    # a stalled guest panics (and so powers off at once) instead of spinning until the timeout
    assert "softlockup_panic=1" in append
    assert _after(argv, "-kernel") == ["/i/vmlinuz"] and _after(argv, "-initrd") == ["/i/initrd.img"]
    assert _after(argv, "-serial") == ["file:/w/console.log"]
    # ends on a panic instead of rebooting; no network, no display, no monitor
    assert "-no-reboot" in argv and "-nodefaults" in argv
    assert not {"-nic", "-netdev", "-net", "-enable-kvm"} & set(argv)
    assert _after(argv, "-display") == ["none"] and _after(argv, "-monitor") == ["none"]
    kvm = _argv("kvm")
    assert _after(kvm, "-accel") == ["kvm"] and _after(kvm, "-cpu") == ["host"]


def _record_line(name, obj):
    import base64
    import gzip

    return f"kernel-vm-record: {name} " + base64.b64encode(gzip.compress(json.dumps(obj).encode())).decode()


def test_records_sent_over_the_console_come_back():
    whole = _record_line("gen-1", {"verdict": "fail", "scenario": "gen-1"})
    cut = _record_line("gen-2", {"verdict": "fail"})[:-12]  # the guest died mid-line
    console = "\n".join(
        [
            "tests/lab/test_generated.py .",
            "[ 12.3] some kernel line " + whole,  # printk text before it on the same line
            cut,
            "kernel-vm-record: ../etc/passwd AAAA",  # not a name
            "kernel-vm-record: gen-3 not-base64!",
        ]
    )
    got = plan.console_records(console)
    assert list(got) == ["gen-1"]
    assert json.loads(got["gen-1"]) == {"verdict": "fail", "scenario": "gen-1"}
    # the terminal sees a note, not the base64
    echoed = kernelvm.shorten_records((whole + "\nnext line\n").encode())
    assert echoed == b"kernel-vm-record: gen-1 (saved in records/)\nnext line\n"
    assert kernelvm.shorten_records(b"plain\n") == b"plain\n"


def test_guest_panic_names_why_nothing_came_back():
    console = "[ 1828.5] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [python:6315]\n"
    console += "[ 1828.6] Kernel panic - not syncing: softlockup: hung tasks\n"
    assert plan.guest_panic(console) == "softlockup: hung tasks"
    assert plan.guest_panic("kernel-vm: results written, powering off\n") == ""


def test_probe_is_a_kvm_guest_that_panics_and_exits():
    argv = plan.probe_argv(Path("/i/vmlinuz"))
    assert argv[:4] == ["nice", "-n", "10", "qemu-system-x86_64"]
    assert _after(argv, "-accel") == ["kvm"] and "-no-reboot" in argv and "-initrd" not in argv
    assert "panic=-1" in _after(argv, "-append")[0]


class Probe:
    def __init__(self, result):
        self.result, self.calls = result, 0

    def __call__(self):
        self.calls += 1
        return self.result


def test_accel_choice():
    p = Probe((True, "ok"))
    assert plan.choose_accel("tcg", True, p) == ("tcg", "asked for") and p.calls == 0
    assert plan.choose_accel("kvm", True, p) == ("kvm", "asked for") and p.calls == 0
    with pytest.raises(plan.Failed, match="/dev/kvm"):
        plan.choose_accel("kvm", False, p)
    assert plan.choose_accel("auto", False, p)[0] == "tcg" and p.calls == 0
    assert plan.choose_accel("auto", True, p)[0] == "kvm" and p.calls == 1
    bad = Probe((False, "KVM internal error. Suberror: 1"))
    accel, why = plan.choose_accel("auto", True, bad)
    assert accel == "tcg" and "KVM internal error" in why and bad.calls == 1


@pytest.mark.parametrize(
    "rc, stderr, ok",
    [
        (0, "", True),
        (None, "KVM internal error. Suberror: 1\nemulation failure\n", False),
        (None, "", False),  # timed out
        (1, "qemu-system-x86_64: failed to initialize kvm: Permission denied\n", False),
        (1, "something else\n", False),
        (0, "KVM internal error. Suberror: 1\n", False),
    ],
)
def test_probe_outcome(rc, stderr, ok):
    assert plan.judge_probe(rc, stderr)[0] is ok


def test_summary_reads_the_verdicts(tmp_path):
    (tmp_path / "normal.json").write_text(json.dumps({"verdict": "pass"}))
    (tmp_path / "syn-lost-modern.json").write_text(json.dumps({"verdict": "fail"}))
    (tmp_path / "timing.json").write_text(json.dumps({"job_s": 1}))
    (tmp_path / "broken.json").write_text("{")
    assert plan.summarize(tmp_path) == [("normal", "pass"), ("syn-lost-modern", "fail")]


def test_a_dead_runs_leftovers_are_swept_and_a_live_ones_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(procs, "CACHE", tmp_path)
    proc = subprocess.Popen(["true"])
    proc.wait()
    gone = tmp_path / "tmp" / f"run-6.1-{proc.pid}-ab_c1"
    mine = tmp_path / "tmp" / f"build-6.12_test-{os.getpid()}-x9_z"
    for d in (gone, mine):
        (d / "root").mkdir(parents=True)
    procs.sweep_leftovers()
    assert not gone.exists() and mine.exists()
    assert procs.scratch("run-6.1").name.startswith(f"run-6.1-{os.getpid()}-")


def test_the_job_carries_the_project_and_its_bytecode():
    import shutil

    if shutil.which("git") is None or not (Path(__file__).resolve().parents[2] / ".git").exists():
        pytest.skip(
            "the project's files are listed by git: needs git and a checkout "
            "(a copy made by `git archive`, as on a fresh machine, has neither)"
        )
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        image.add_project(tar, "worktree", "project")
    names = tarfile.open(fileobj=io.BytesIO(buf.getvalue())).getnames()
    assert "project/pyproject.toml" in names and "project/tcplab/vm/guest-job.sh" in names
    assert not any("/.venv/" in n or n.startswith("project/results/") for n in names)
    if sys.version_info[:2] == plan.GUEST_PYTHON:
        assert f"project/tcplab/cli/__pycache__/main.{sys.implementation.cache_tag}.pyc" in names
