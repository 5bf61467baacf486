"""YAML nodes with their line numbers, read one checked shape at a time.

We compose() the YAML into a node tree instead of safe_load()ing it: every node keeps its
line, so every error can say file:line: key: what was expected and what was found.
Scalars become Python values one at a time, from the tag PyYAML's safe resolver gave
them, and only where the format wants a value; nothing else is ever constructed, so
alias bombs and odd tags cost nothing and cannot raise anything but ScenarioError.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tcplab.core.segments import ALIASES, VOCABULARY, canonical_name
from tcplab.errors import ScenarioError
from tcplab.units import parse_duration, parse_percent

# --- scalars and messages ---------------------------------------------------------------

_TAG = "tag:yaml.org,2002:"
_NOT_PLAIN = object()  # a list, a mapping, or a scalar that is not null/bool/int/float/str
_c = yaml.constructor.SafeConstructor()
_BUILD: dict[str, Callable[[Node], Any]] = {
    _TAG + "null": lambda node: None, _TAG + "bool": _c.construct_yaml_bool,
    _TAG + "int": _c.construct_yaml_int, _TAG + "float": _c.construct_yaml_float,
    _TAG + "str": lambda node: node.value,
}


def value(node: Node) -> Any:
    """The Python value of a scalar node, or _NOT_PLAIN. Explicit tags can carry text the
    constructor chokes on (`!!int abc`, `!!bool maybe`): that is just not a value."""
    build = _BUILD.get(node.tag) if isinstance(node, ScalarNode) else None
    try:
        return build(node) if build else _NOT_PLAIN
    except (ValueError, KeyError, TypeError, ArithmeticError, yaml.YAMLError):
        return _NOT_PLAIN


def show(text: str, limit: int = 50) -> str:
    """repr() keeps a message on one line; long values are cut."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[:limit - 4] + "...'"


def found(node: Node) -> str:
    """What the file has at `node`, for 'expected X, found Y'."""
    if not isinstance(node, ScalarNode):
        return "a mapping" if isinstance(node, MappingNode) else "a list"
    plain, raw = value(node), show(node.value)
    if plain is None or isinstance(plain, str):
        return "nothing (null)" if plain is None else f"the string {show(plain)}"
    if plain is not _NOT_PLAIN:
        return f"the {'boolean' if isinstance(plain, bool) else 'number'} {raw[1:-1]}"
    if node.tag.startswith(_TAG):  # a timestamp, binary, set, ... or a bad !!int
        return f"the {node.tag.removeprefix(_TAG)} {raw}"
    return f"{raw} tagged {show(node.tag)}"


def line_of(node: Node) -> int:
    return node.start_mark.line + 1


def join(prefix: str, name: str) -> str:
    """A key path; odd names (newlines, empty, very long) are quoted to keep one line."""
    if not name.isprintable() or not name.strip() or len(name) > 50:
        name = show(name)
    return f"{prefix}.{name}" if prefix else name


def hint(word: str, choices: Iterable[str]) -> str:
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean {lowered[close[0]]!r}?" if close else ""


# --- the reader -----------------------------------------------------------------------

Entries = dict[str, tuple[Node, Node]]  # key -> (key node, value node), in file order


class Map:
    """A checked mapping: value nodes by key, and each key's dotted path and line."""

    def __init__(self, key: str, entries: Entries):
        self.key, self.entries = key, entries

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def node(self, name: str) -> Node:
        return self.entries[name][1]

    def path(self, name: str) -> str:
        return join(self.key, name)

    def line(self, name: str) -> int:
        return line_of(self.entries[name][0])

    def get(self, name: str, parse: Callable[..., Any], default: Any = None, **kw: Any) -> Any:
        """parse(value node, key path, **kw) if the key is there, else the default."""
        return parse(self.node(name), self.path(name), **kw) if name in self else default


class Reader:
    """Reads the generic shapes of one file's node tree (mappings, lists, strings,
    numbers, durations, segment names); every check fails with file, line and key. The
    format's own parts (load.py, steps.py, faults.py, expect.py) are built on it."""

    def __init__(self, path: str):
        self.path = path
        self.lines: dict[str, int] = {}  # dotted key -> line, for checks made after loading

    def fail(self, where: Node | int, key: str, message: str) -> NoReturn:
        raise ScenarioError(self.path, where if isinstance(where, int) else line_of(where),
                            key, message)

    def entries(self, node: Node, key: str) -> Entries:
        """A mapping's entries. Duplicate keys are errors: PyYAML would silently keep the
        last one, and a scenario that says two things is wrong."""
        if not isinstance(node, MappingNode):
            self.fail(node, key, f"expected a mapping, found {found(node)}")
        entries: Entries = {}
        for knode, vnode in node.value:
            if knode.tag == _TAG + "merge":  # expanding them would need cycle and blow-up guards
                self.fail(knode, key, "merge keys (<<) are not supported; alias a whole "
                                      "mapping or list instead")
            if not isinstance(knode, ScalarNode):
                self.fail(knode, key, f"expected a name as key, found {found(knode)}")
            if knode.value in entries:
                self.fail(knode, join(key, knode.value), "duplicate key (first given at line "
                                                         f"{line_of(entries[knode.value][0])})")
            entries[knode.value] = (knode, vnode)
        return entries

    def mapping(self, node: Node, key: str, allowed: tuple[str, ...],
                required: tuple[str, ...] = ()) -> Map:
        checked = Map(key, self.entries(node, key))
        for name in checked:
            if name not in allowed:
                listed = ", ".join(a for a in allowed if a != "$schema")
                self.fail(checked.line(name), checked.path(name), f"unknown key {show(name)}"
                          f"{hint(name, allowed)} (expected one of: {listed})")
        for name in required:
            if name not in checked:
                self.fail(node, checked.path(name), "missing")
        return checked

    def items(self, node: Node, key: str, nonempty: bool = False) -> list[tuple[Node, str]]:
        """A list's items, each with its key path."""
        if not isinstance(node, SequenceNode):
            self.fail(node, key, f"expected a list, found {found(node)}")
        if nonempty and not node.value:
            self.fail(node, key, "expected a non-empty list, found an empty one")
        return [(item, f"{key}[{i}]") for i, item in enumerate(node.value)]

    def string(self, node: Node, key: str, what: str, blank: bool = True,
               one_line: bool = False) -> str:
        text = value(node)
        if (not isinstance(text, str) or (not blank and not text.strip())
                or (one_line and any(c in text for c in "\r\n\0"))):
            self.fail(node, key, f"expected {what}, found {found(node)}")
        return text

    def choice(self, node: Node, key: str, choices: tuple[str, ...]) -> str:
        text = self.string(node, key, " or ".join(choices))
        if text not in choices:
            self.fail(node, key, f"expected {' or '.join(choices)}, found {found(node)}"
                                 f"{hint(text, choices)}")
        return text

    def integer(self, node: Node, key: str, lo: int, hi: int | None = None,
                what: str | None = None) -> int:
        number = value(node)
        what = what or (f"an integer from {lo} to {hi}" if hi is not None
                        else f"an integer >= {lo}")
        if type(number) is not int:  # bool is an int subclass: `yes` must not pass as 1
            quoted = isinstance(number, str) and number.strip().lstrip("+-").isdigit()
            self.fail(node, key, f"expected {what}, found {found(node)}"
                                 + (" (remove the quotes)" if quoted else ""))
        if number < lo or (hi is not None and number > hi):
            self.fail(node, key, f"expected {what}, found {show(node.value)[1:-1]}")
        return number

    def duration(self, node: Node, key: str, positive: bool = False,
                 limit: float | None = None, below: bool = False, why: str = "") -> float:
        try:
            seconds = parse_duration(value(node))
        except (ValueError, OverflowError):  # float() of a 400-digit integer overflows
            self.fail(node, key, f"expected a duration such as 1.5s or 200ms, found {found(node)}")
        too_long = limit is not None and (seconds >= limit if below else seconds > limit)
        if too_long or (positive and seconds <= 0):
            bounds = ["above 0"] if positive else []
            if limit is not None:
                bounds.append(f"{'below' if below else 'at most'} {limit:g}s{why}")
            self.fail(node, key, f"expected a duration {' and '.join(bounds)}, "
                                 f"found {show(node.value)[1:-1]}")
        return seconds

    def durations(self, node: Node, key: str) -> tuple[float, ...]:
        return tuple(self.duration(item, ikey) for item, ikey in self.items(node, key))

    def percent(self, node: Node, key: str) -> float:
        try:
            return parse_percent(value(node))
        except (ValueError, OverflowError):
            self.fail(node, key, f"expected a percentage such as 12.5%, found {found(node)}")

    def segment(self, name: str, where: Node, key: str) -> str:
        canonical = canonical_name(name)
        if canonical is None:
            self.fail(where, key, f"unknown segment name {show(name)}"
                                  f"{hint(name, (*VOCABULARY, *ALIASES))} (expected one of: "
                                  f"{', '.join(VOCABULARY)}, or an alias: {', '.join(ALIASES)})")
        return canonical


def compose(text: str, path: str) -> Node:
    """The node tree of YAML text; every YAML error is one ScenarioError line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        context = e.context or ""
        if e.context and e.context_mark and mark and e.context_mark.line != mark.line:
            context += f" (line {e.context_mark.line + 1})"
        said = ", ".join(part for part in (context, e.problem) if part)
        raise ScenarioError(path, mark.line + 1 if mark else None, "",
                            f"invalid YAML: {said}".replace("\n", " ")) from None
    except yaml.reader.ReaderError as e:  # a character YAML does not allow, e.g. NUL
        raise ScenarioError(path, text[:e.position].count("\n") + 1, "",
                            f"invalid YAML: character U+{e.character:04X} is not allowed") from None
    except yaml.YAMLError as e:
        raise ScenarioError(path, None, "", f"invalid YAML: {e}".replace("\n", " ")) from None
    except RecursionError:
        raise ScenarioError(path, None, "", "invalid YAML: nested too deeply") from None
    if root is None:
        raise ScenarioError(path, None, "", "empty file: expected a mapping with at least "
                                            "scenario, summary and apps")
    return root
