"""The package's structure holds: no import cycle inside tcplab/ (deferred imports in
functions count too: they only hide a cycle), no module importing another's private
name, no module over 500 lines. Read from the source with ast, nothing imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "tcplab"
MAX_LINES = 500


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(path: Path, known: set[str]) -> list[tuple[str, str, int]]:
    """(module imported, name imported or "", line) for every tcplab import in a file,
    at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names if a.name.startswith("tcplab")]
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("tcplab")
            and node.level == 0
        ):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                # `from tcplab.core import model`: the module itself, not a name in it
                out.append((sub, "", node.lineno) if sub in known else (node.module, a.name, node.lineno))
    return out


def private_attributes(path: Path, known: set[str]) -> list[tuple[str, str, int]]:
    """`module._name` where `module` is a tcplab module this file imported by name."""
    tree = ast.parse(path.read_text())
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                if f"{node.module}.{a.name}" in known:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.asname and a.name in known:
                    aliases[a.asname] = a.name
    return [
        (aliases[n.value.id], n.attr, n.lineno)
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute)
        and isinstance(n.value, ast.Name)
        and n.value.id in aliases
        and n.attr.startswith("_")
        and not n.attr.startswith("__")
    ]


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {
        name: {m for m, _n, _l in imports(path, set(mods)) if m in mods and m != name}
        for name, path in mods.items()
    }


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_inside_the_package():
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_private_name_imported_across_modules():
    mods = modules()
    bad = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {mod}.{name}"
        for me, path in mods.items()
        for mod, name, line in imports(path, set(mods)) + private_attributes(path, set(mods))
        if name.startswith("_") and not name.startswith("__") and mod != me
    ]
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_the_private_import_check_sees_one(tmp_path):
    f = tmp_path / "x.py"
    f.write_text(
        "from tcplab import runner\n\ndef g():\n    from tcplab.runner import _secret\n"
        "    return runner._other\n"
    )
    assert ("tcplab.runner", "_secret", 4) in imports(f, {"tcplab.runner"})
    assert private_attributes(f, {"tcplab.runner"}) == [("tcplab.runner", "_other", 5)]


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_over_500_lines(name):
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name}: {lines} lines (at most {MAX_LINES})"
