"""The bad-input corpus, tests/bad_input/: one mistake per file, each named for it. Every
entry must make the CLI exit 2 with one line on stderr, `tcplab: FILE:LINE: KEY: ...`,
and no traceback; no root needed.

A text file states what the error must name on its first line, `# expect: LINE KEY`
(`-` for no line; no KEY when the error names none, as for YAML syntax errors). Entries
that cannot carry that line (empty, binary, UTF-16, a directory, a dangling symlink)
are in SIDECAR. The CLI runs in-process (fast); a sample also runs as a real process.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcplab.cli import signals
from tcplab.cli.main import main as cli_main
from tcplab.format.reader import MAX_ERRORS

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "bad_input"
CASES = sorted(CORPUS.iterdir())  # directories and symlinks are cases too

# name -> (line or None, key, words the message must contain)
SIDECAR = {
    "empty.yaml": (None, "", "empty file"),
    "binary.yaml": (1, "", "expected UTF-8 text, found byte 0x89"),
    "utf16.yaml": (1, "", "expected UTF-8 text, found byte 0xff"),
    "a-directory.yaml": (None, "", "no scenario files found"),
    "dangling-symlink.yaml": (None, "", "no such file or directory"),
}

# Sysctls are checked against this kernel by `run`, before anything is set up; `validate`
# checks files only and does not look at /proc/sys.
RUN_ONLY = {"sysctl-not-on-this-kernel.yaml", "sysctl-is-a-directory.yaml", "sysctl-read-only.yaml"}

# Mistakes the code gets wrong today (reported, not fixed here). Each still runs: when it
# starts to pass, the test fails so that the entry is removed.
KNOWN_WRONG: dict[str, str] = {}  # file -> why the loader still gets it wrong

_EXPECT = re.compile(r"# expect: (-|[0-9]+)(?: (\S+))?\n")


def expectation(path: Path) -> tuple[int | None, str, str]:
    if path.name in SIDECAR:
        return SIDECAR[path.name]
    first = path.read_bytes().split(b"\n", 1)[0] + b"\n"
    match = _EXPECT.fullmatch(first.decode("utf-8", "replace"))
    assert match, f"{path.name}: first line must be '# expect: LINE KEY' (or add it to SIDECAR)"
    return (None if match[1] == "-" else int(match[1])), match[2] or "", ""


def where(path: Path, line: int | None, key: str) -> str:
    """What the one stderr line must start with."""
    shown = f"{path}:{line}" if line else str(path)
    return f"tcplab: {shown}: " + (f"{key}: " if key else "")


class WouldSetUp(Exception):
    """The run got past every input check: it would have built a lab."""


def run_cli(monkeypatch, *args: str) -> tuple[int | str, str, str]:
    """The CLI's main() in-process: (exit code, stdout, stderr). `run` never gets to build
    anything: the runner and the slot claim are replaced by a tripwire."""
    from tcplab import runner
    from tcplab.lab import topology

    def tripwire(*_a, **_k):
        raise WouldSetUp

    monkeypatch.setattr(runner, "run_scenario", tripwire)
    monkeypatch.setattr(topology, "claim_slot", tripwire)
    monkeypatch.setattr(signals, "catch", lambda: None)
    monkeypatch.setattr(sys, "argv", ["tcplab", *args])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli_main()
            code: int | str = 0
        except SystemExit as e:
            code = e.code if e.code is not None else 0
        except WouldSetUp:
            code = "would set up a lab"
    return code, out.getvalue(), err.getvalue()


def problems(path: Path, code, out: str, err: str) -> list[str]:
    line, key, words = expectation(path)
    found = []
    if code != 2:
        found.append(f"exit code {code!r}, expected 2")
    if "Traceback" in err or "Traceback" in out:
        found.append("a traceback")
    if err.count("\n") != 1 or not err.endswith("\n"):
        found.append(f"stderr is {err.count(chr(10))} lines, expected one")
    if not err.startswith(where(path, line, key)):
        found.append(f"stderr does not start with {where(path, line, key)!r}")
    if words not in err:
        found.append(f"stderr does not say {words!r}")
    if out:
        found.append(f"stdout is not empty: {out!r}")
    return found


@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_bad_input_is_one_line_exit_2(path, monkeypatch):
    command = "run" if path.name in RUN_ONLY else "validate"
    extra = ("--no-color",) if command == "run" else ()
    code, out, err = run_cli(monkeypatch, command, *extra, str(path))
    found = problems(path, code, out, err)
    if path.name in KNOWN_WRONG:
        if not found:
            pytest.fail(f"{path.name} is right now: remove it from KNOWN_WRONG")
        pytest.xfail(f"{KNOWN_WRONG[path.name]} ({'; '.join(found)}; stderr: {err.strip()!r})")
    assert not found, f"{path.name}: {'; '.join(found)}\nstdout: {out!r}\nstderr: {err!r}"


def test_corpus_is_big_enough_and_complete():
    assert len(CASES) >= 50
    assert set(SIDECAR) | RUN_ONLY | set(KNOWN_WRONG) <= {p.name for p in CASES}
    assert any(p.is_dir() for p in CASES) and any(p.is_symlink() for p in CASES)
    assert (CORPUS / "binary.yaml").read_bytes().startswith(b"\x89PNG")
    assert (CORPUS / "empty.yaml").read_bytes() == b""
    for path in CASES:
        expectation(path)  # every entry says what its error must name


def test_validate_of_the_whole_corpus_reports_every_file(monkeypatch):
    """The corpus as a whole: validate goes on past a bad file, one line per mistake, so
    each file it finds in the folder says its one mistake, and the files whose mistake
    only `run` sees are ok."""
    from tcplab.format.load import discover

    code, out, err = run_cli(monkeypatch, "validate", str(CORPUS))
    files = discover([CORPUS])
    ok = {line.split(":")[0].removeprefix("ok  ") for line in out.splitlines()}
    assert code == 2 and "Traceback" not in err
    assert ok == {str(f) for f in files if f.name in RUN_ONLY}
    bad = [line.removeprefix("tcplab: ").split(":")[0] for line in err.splitlines()]
    assert sorted(bad) == sorted(str(f) for f in files if f.name not in RUN_ONLY)


SAMPLE = [
    "binary.yaml",
    "empty.yaml",
    "a-directory.yaml",
    "deeply-nested.yaml",
    "alias-bomb.yaml",
    "yaml-syntax-tab.yaml",
    "not-utf8.yaml",
    "nth-zero.yaml",
]


def test_a_sample_as_real_processes():
    """The same contract through `python -m tcplab`, interpreter exit code and all."""

    def one(name):
        return name, subprocess.run(
            [sys.executable, "-m", "tcplab", "validate", str(CORPUS / name)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )

    with ThreadPoolExecutor(max_workers=len(SAMPLE)) as pool:
        for name, proc in pool.map(one, SAMPLE):
            found = problems(CORPUS / name, proc.returncode, proc.stdout, proc.stderr)
            assert not found, f"{name}: {'; '.join(found)}\nstderr: {proc.stderr!r}"


def _limit_memory():
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


# A scenario file is read with a bound (tcplab.format.load.MAX_FILE): /dev/zero once ended
# in a MemoryError traceback or the OOM killer.
def test_an_endless_file_is_bad_input():
    proc = subprocess.run(
        [sys.executable, "-m", "tcplab", "validate", "/dev/zero"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        preexec_fn=_limit_memory,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-500:]
    assert proc.stderr.startswith("tcplab: /dev/zero: ") and "Traceback" not in proc.stderr


# --- fuzz: whatever the file holds, validate exits 0 or 2 with one line, never a traceback --

VALID = (CORPUS.parent.parent / "scenarios" / "handshake" / "syn-lost.yaml").read_text()


@st.composite
def mangled(draw) -> bytes:
    """A real scenario with a few random cuts and insertions: mostly still YAML, so the
    fuzz reaches the checks deep in the format, not just the parser."""
    text = VALID
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        else:
            text = text[:at] + draw(st.text(max_size=20)) + text[at:]
    return text.encode("utf-8", "surrogatepass")


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
        mangled(),
    )
)
def test_validate_never_raises(data, monkeypatch):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_bytes(data)
        code, out, err = run_cli(monkeypatch, "validate", str(path))
    assert code in (0, 2), (code, err)
    if code == 2:  # a few random cuts can make several mistakes: one line each
        lines = err.splitlines()
        assert out == "" and err.endswith("\n") and 1 <= len(lines) <= MAX_ERRORS, err
        assert all(line.startswith(f"tcplab: {path}") for line in lines), err
    else:
        assert err == "" and out.startswith(f"ok  {path}: "), out
