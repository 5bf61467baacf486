"""The package as a user gets it: `pip install <checkout>` into a clean venv in a
temporary directory outside the checkout (its dependencies resolved from the index
within pyproject's ranges, nothing borrowed from .venv), then the installed `tcplab`
from that directory: --version, the catalogue, a shipped scenario by name. About 30 s
on a 2-core machine with a local package index; no root."""

import json
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    home = tmp_path_factory.mktemp("clean")
    assert ROOT not in home.parents
    venv.create(home / "venv", with_pip=True, symlinks=True)
    built_before = (ROOT / "build").exists()
    try:
        proc = subprocess.run(
            [str(home / "venv" / "bin" / "pip"), "install", "-q", str(ROOT)],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        if not built_before:  # setuptools builds in the source tree
            shutil.rmtree(ROOT / "build", ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return home


def tcplab(home: Path, *args: str) -> subprocess.CompletedProcess:
    # From the temporary directory, with the clean venv's interpreter: nothing of the
    # checkout on sys.path (sys.executable would be .venv's).
    return subprocess.run(
        [str(home / "venv" / "bin" / "tcplab"), *args], cwd=home, capture_output=True, text=True, timeout=120
    )


def test_version(installed):
    proc = tcplab(installed, "--version")
    assert proc.returncode == 0 and proc.stdout.strip() == "tcplab, version 0.1.0"


def test_the_catalogue_is_in_the_wheel(installed):
    proc = tcplab(installed, "list", "--json")
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert len(listed) == len(list((ROOT / "scenarios").rglob("*.yaml")))
    site = "/site-packages/tcplab/data/scenarios/"
    assert all(site in row["file"] and str(ROOT) not in row["file"] for row in listed)
    table = tcplab(installed, "list", "--no-color")
    assert "syn-lost-fast" in table.stdout and "handshake-normal" in table.stdout


def test_a_scenario_by_name_and_the_schema_beside_it(installed):
    proc = tcplab(installed, "validate", "syn-lost-fast")
    assert proc.returncode == 0, proc.stderr
    shown = Path(proc.stdout.split()[1].rstrip(":"))
    assert shown.as_posix().endswith("tcplab/data/scenarios/handshake/syn-lost-fast.yaml")
    schema_line = shown.read_text().splitlines()[1]
    assert (shown.parent / schema_line.split("$schema=")[1]).is_file()
    explained = tcplab(installed, "explain", "--no-color", "handshake/normal")
    assert explained.returncode == 0 and "kernel model for Linux" in explained.stdout
    missing = tcplab(installed, "run", "no-such-scenario")
    assert missing.returncode == 2
    assert "nor a shipped scenario of that name" in missing.stderr


def test_the_license_is_in_the_metadata(installed):
    site = next((installed / "venv" / "lib").glob("python3*/site-packages"))
    meta = next(site.glob("tcplab-*.dist-info"))
    text = (meta / "METADATA").read_text()
    assert "License-Expression: MIT" in text and "License-File: LICENSE" in text
    assert (meta / "licenses" / "LICENSE").is_file()
    assert "Requires-Dist: click<9,>=8.1" in text
