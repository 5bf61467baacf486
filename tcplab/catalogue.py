"""Where the shipped scenarios and the schema are, and a scenario found by name.

A wheel carries them as package data, tcplab/data/scenarios and tcplab/data/schema
(setup.py copies them there at build time); a checkout, or an editable install of one,
has them beside the package, scenarios/ and schema/, and those are what the package
uses there. Either way `tcplab list`, `demo` and `run NAME` work from any directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tcplab.errors import ScenarioError

_PACKAGE = Path(__file__).resolve().parent
_SCENARIO = re.compile(r"^scenario:\s*['\"]?([^'\"#\s]+)", re.MULTILINE)


def data_dir(name: str) -> Path:
    """scenarios or schema: the installed copy, else the checkout's; a checkout's is
    shown relative to the current directory when inside it (`scenarios/handshake/
    normal.yaml`, as before)."""
    if (_PACKAGE / "data" / name).is_dir():
        return _PACKAGE / "data" / name
    if (_PACKAGE.parent / name).is_dir():
        return _shown(_PACKAGE.parent / name)
    raise ScenarioError(
        name,
        None,
        "",
        f"tcplab's {name} are neither installed with it ({_PACKAGE / 'data'}) nor beside it (a checkout)",
    )


def _shown(path: Path) -> Path:
    try:
        return path.relative_to(Path.cwd().resolve())
    except (ValueError, OSError):
        return path


def scenarios_dir() -> Path:
    return data_dir("scenarios")


def files() -> list[Path]:
    root = scenarios_dir()
    return sorted(p for p in root.rglob("*.yaml") if p.is_file())


def resolve(name: str) -> Path:
    """A shipped scenario by its file (`handshake/syn-lost`, `syn-lost-fast`, with or
    without .yaml) or by its `scenario:` name (`handshake-normal`). A name two files
    could mean is an error naming both."""
    root = scenarios_dir()
    stem = name.removesuffix(".yaml").removesuffix(".yml").strip("/")
    matches = [p for p in files() if p.relative_to(root).with_suffix("").as_posix() == stem]
    matches = matches or [p for p in files() if p.stem == stem]
    matches = matches or [p for p in files() if _scenario_name(p) == stem]
    if len(matches) == 1:
        return matches[0]
    if matches:
        listed = ", ".join(p.relative_to(root).with_suffix("").as_posix() for p in matches)
        raise ScenarioError(name, None, "", f"more than one shipped scenario is called that: {listed}")
    raise ScenarioError(
        name,
        None,
        "",
        "no such file or directory, nor a shipped scenario of that name (tcplab list shows them)",
    )


def _scenario_name(path: Path) -> str | None:
    try:
        match = _SCENARIO.search(path.read_text(errors="replace"))
    except OSError:
        return None
    return match[1] if match else None


def resolve_all(paths) -> list:
    """Paths as given where they exist (or are plainly paths: discover() says they are
    missing), shipped scenarios by name where not; no paths: the whole catalogue."""
    if not paths:
        return [scenarios_dir()]
    return [resolve(str(p)) if not os.path.lexists(p) and _is_name(str(p)) else p for p in paths]


def _is_name(arg: str) -> bool:
    """`syn-lost`, `handshake/syn-lost(.yaml)` may be names; `./x.yaml`, `/tmp/x.yaml`,
    `a/b/c.yaml` are only paths."""
    return not arg.startswith((".", "/", "~")) and arg.count("/") <= 1
