"""The Vagrantfile and the kernel-matrix workflow, checked where no VM can boot.

`vagrant validate` (Debian's vagrant, installed by `./lab test` through
`scripts/setup.sh --test`) loads the Vagrantfile as Vagrant would and checks every
setting outside the provider blocks; `check-jsonschema` (the [test] extra) checks the
workflow against the GitHub workflow schema it carries, offline. A missing tool fails
the test under CI (CI=true) and skips it elsewhere, with the reason. Each check is also
shown to catch a broken copy, so a green result is not a vacuous one.

What these cannot show: that the boxes boot, and that the lab passes inside them. That
is the workflow's own job, on a runner with nested virtualisation.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VAGRANTFILE = ROOT / "Vagrantfile"
WORKFLOW = ROOT / ".github" / "workflows" / "vagrant.yml"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def tool(name: str, installed_by: str) -> str:
    """The tool's path; when it is missing, a failure under CI and a skip elsewhere."""
    beside_python = Path(sys.executable).parent / name  # the venv's bin, not on PATH
    path = str(beside_python) if beside_python.exists() else shutil.which(name)
    if path:
        return path
    reason = f"{name} is not installed ({installed_by} installs it)"
    if in_ci():
        pytest.fail(f"{reason}: CI must run this check, not skip it", pytrace=False)
    pytest.skip(reason)


def vagrant_env(vagrantfile_dir: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    """Vagrant's home and the machine state (.vagrant/) in tmp_path, so the checkout and
    ~/.vagrant.d are left alone; none of the caller's VAGRANT_*/TCPLAB_* settings."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VAGRANT_", "TCPLAB_BOX", "TCPLAB_VAGRANT"))
    }
    return (
        env
        | {
            "VAGRANT_CWD": str(vagrantfile_dir),
            "VAGRANT_HOME": str(tmp_path / "home"),
            "VAGRANT_DOTFILE_PATH": str(tmp_path / "dot"),
            "VAGRANT_CHECKPOINT_DISABLE": "1",
        }
        | extra
    )


def vagrant_validate(
    vagrantfile_dir: Path, tmp_path: Path, *, providers: bool = False, **extra_env: str
) -> subprocess.CompletedProcess:
    """`vagrant validate --ignore-provider`: everything but the provider blocks, without
    VirtualBox or libvirt installed; providers=True checks the libvirt block too (with the
    vagrant-libvirt plugin installed)."""
    vagrant = tool("vagrant", "`sudo ./lab test` (scripts/setup.sh --test)")
    env = vagrant_env(vagrantfile_dir, tmp_path, **extra_env)
    if providers:
        env["VAGRANT_DEFAULT_PROVIDER"] = "libvirt"
    argv = [vagrant, "validate", "--no-color"] + ([] if providers else ["--ignore-provider"])
    return subprocess.run(argv, cwd=vagrantfile_dir, env=env, capture_output=True, text=True, timeout=120)


def has_vagrant_libvirt(tmp_path: Path) -> bool:
    vagrant = tool("vagrant", "`sudo ./lab test` (scripts/setup.sh --test)")
    out = subprocess.run(
        [vagrant, "plugin", "list"],
        env=vagrant_env(ROOT, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    return "vagrant-libvirt" in out


def check_workflow(path: Path) -> subprocess.CompletedProcess:
    exe = tool("check-jsonschema", "the [test] extra of pyproject.toml")
    return subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def machines() -> list[str]:
    return re.findall(r'config\.vm\.define\s+"([\w-]+)"', VAGRANTFILE.read_text())


# --- the Vagrantfile ---------------------------------------------------------------------


def test_vagrantfile_validates(tmp_path):
    had_state = (ROOT / ".vagrant").exists()
    proc = vagrant_validate(ROOT, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validated successfully" in proc.stdout
    assert (ROOT / ".vagrant").exists() == had_state, "validate left .vagrant/ in the checkout"


def test_vagrant_validate_catches_a_mistake(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    text = VAGRANTFILE.read_text()
    assert "m.vm.hostname" in text
    (broken / "Vagrantfile").write_text(text.replace("m.vm.hostname", "m.vm.hostnme", 1))
    proc = vagrant_validate(broken, tmp_path)
    assert proc.returncode != 0
    assert "hostnme" in proc.stdout + proc.stderr


def test_vagrantfile_defines_both_kernels_both_providers_one_setup_script():
    text = VAGRANTFILE.read_text()
    assert machines() == ["debian12", "recent"]
    for provider in ("virtualbox", "libvirt"):
        assert f'config.vm.provider "{provider}"' in text
    # Provisioned by the README's own set-up script, and by no install recipe of its own.
    assert re.findall(r'inline:\s*"([^"]*)"', text) == ["bash /vagrant/scripts/setup.sh"]
    assert "pip install" not in text
    assert 'synced_folder ".", "/vagrant"' in text


def test_vagrantfile_validates_under_tcg(tmp_path):
    proc = vagrant_validate(ROOT, tmp_path, TCPLAB_VAGRANT_TCG="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validated successfully" in proc.stdout


def test_libvirt_block_validates_with_and_without_tcg(tmp_path):
    """The libvirt provider block, TCG settings included, as vagrant-libvirt reads it; and
    a misspelt TCG setting is caught, so the check is not vacuous."""
    if not has_vagrant_libvirt(tmp_path):
        pytest.skip("the vagrant-libvirt plugin is not installed (scripts/vagrant-box installs it)")
    for tcg in ("0", "1"):
        proc = vagrant_validate(ROOT, tmp_path, providers=True, TCPLAB_VAGRANT_TCG=tcg)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    text = VAGRANTFILE.read_text()
    assert 'lv.driver = "qemu"' in text
    (broken / "Vagrantfile").write_text(text.replace('lv.driver = "qemu"', 'lv.drver = "qemu"'))
    proc = vagrant_validate(broken, tmp_path, providers=True, TCPLAB_VAGRANT_TCG="1")
    assert proc.returncode != 0 and "drver" in proc.stdout + proc.stderr
    proc = vagrant_validate(broken, tmp_path, providers=True, TCPLAB_VAGRANT_TCG="0")
    assert proc.returncode == 0, "the TCG settings must apply only with TCPLAB_VAGRANT_TCG=1"


def test_tcg_settings_are_behind_the_variable():
    """TCPLAB_VAGRANT_TCG=1 (scripts/vagrant-box sets it) makes the libvirt domain a TCG
    one; without it the libvirt block is what a KVM host needs, unchanged."""
    text = VAGRANTFILE.read_text()
    assert 'TCG = ENV.fetch("TCPLAB_VAGRANT_TCG", "") == "1"' in text
    block = re.search(r'config\.vm\.provider "libvirt" do \|lv\|\n(.*?)\n  end\n', text, re.S)
    assert block, "no libvirt provider block"
    tcg = re.search(r"\n    if TCG\n(.*?)\n    end", block.group(1), re.S)
    assert tcg, "no `if TCG` in the libvirt block"
    assert 'lv.driver = "qemu"' in tcg.group(1)  # <domain type="qemu">: TCG, not KVM
    # qemu 7.2's TCG and the kernel's cmpxchg16b: a guest froze with it (docs/vagrant.md)
    assert 'lv.cpu_feature name: "cx16", policy: "disable"' in tcg.group(1)
    outside = block.group(1).replace(tcg.group(0), "")
    assert "lv.driver" not in outside and "lv.cpu_mode" not in outside
    assert re.search(r"config\.vm\.boot_timeout = \d+ if TCG", text)


def test_rsync_copies_links_as_links():
    """Vagrant's default rsync arguments include --copy-links, which fails on a dangling
    link (the first real `vagrant up` did, on this one); the Vagrantfile's own do not."""
    assert (ROOT / "tests/bad_input/dangling-symlink.yaml").is_symlink()
    args = re.search(r"rsync__args:\s*\[([^\]]*)\]", VAGRANTFILE.read_text())
    assert args, "the synced folder needs rsync__args without --copy-links"
    names = re.findall(r'"([^"]+)"', args.group(1))
    assert "--archive" in names and "--delete" in names
    assert not {"--copy-links", "-L"} & set(names)


def test_vagrant_box_script_uses_the_vagrantfiles_box():
    script = ROOT / "scripts" / "vagrant-box"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    proc = subprocess.run([str(script), "box-name"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    box = re.search(r'^BOX = ENV\.fetch\("TCPLAB_BOX", "([^"]+)"\)$', VAGRANTFILE.read_text(), re.M)
    assert box and proc.stdout.strip() == box.group(1)
    usage = subprocess.run([str(script)], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 2 and "vagrant-box run" in usage.stdout
    assert "TCPLAB_VAGRANT_TCG=1" in script.read_text()


def test_readme_names_only_machines_the_vagrantfile_defines():
    named = set(
        re.findall(
            r"vagrant (?:up|ssh|halt|destroy|reload|rsync(?:-auto)?|provision)"
            r" ([a-z][\w-]*)",
            (ROOT / "README.md").read_text(),
        )
    )
    assert {"debian12", "recent"} <= named
    assert named <= set(machines())


# --- the workflow ------------------------------------------------------------------------


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_the_github_schema(path):
    proc = check_workflow(path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_schema_check_catches_a_mistake(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:", 1))
    proc = check_workflow(broken)
    assert proc.returncode != 0
    assert "runs_on" in proc.stdout + proc.stderr


def test_workflow_boots_every_machine_and_runs_the_readme_commands():
    flow = yaml.safe_load(WORKFLOW.read_text())
    vm = flow["jobs"]["vm"]
    assert vm["strategy"]["matrix"]["box"] == machines()
    assert vm["strategy"]["fail-fast"] is False
    runs = "\n".join(step.get("run", "") for step in vm["steps"])
    assert 'vagrant up "$BOX"' in runs
    assert "cd /vagrant && sudo ./lab test" in runs
    assert "--json" in runs
    uploads = [s for s in vm["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["if"] == "${{ always() }}"


def test_workflow_has_a_quick_job_first():
    """Unit tests and lint on a stock runner, and the VMs only after them."""
    flow = yaml.safe_load(WORKFLOW.read_text())
    quick = flow["jobs"]["quick"]
    assert quick["runs-on"] == "ubuntu-latest" and quick["timeout-minutes"] <= 30
    runs = "\n".join(step.get("run", "") for step in quick["steps"])
    assert "-c requirements.lock" in runs and "tests/unit/test_lint.py" in runs
    assert "pytest -q -ra tests/unit" in runs
    assert flow["jobs"]["vm"]["needs"] == "quick"
