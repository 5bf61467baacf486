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
from tcplab.errors import ScenarioError, ScenarioErrors
from tcplab.units import parse_duration, parse_percent

# --- scalars and messages ---------------------------------------------------------------

MAX_ERRORS = 100  # per file: past that, one more line helps nobody
_TAG = "tag:yaml.org,2002:"
_NOT_PLAIN = object()  # a list, a mapping, or a scalar that is not null/bool/int/float/str
_c = yaml.constructor.SafeConstructor()
_BUILD: dict[str, Callable[[Node], Any]] = {
    _TAG + "null": lambda node: None,
    _TAG + "bool": _c.construct_yaml_bool,
    _TAG + "int": _c.construct_yaml_int,
    _TAG + "float": _c.construct_yaml_float,
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
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


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


def closest(word: str, choices: Iterable[str]) -> str | None:
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def hint(word: str, choices: Iterable[str]) -> str:
    meant = closest(word, choices)
    return f"; did you mean {meant!r}?" if meant else ""


# --- the reader -----------------------------------------------------------------------

Entries = dict[str, tuple[Node, Node]]  # key -> (key node, value node), in file order


class Map:
    """A checked mapping: value nodes by key, and each key's dotted path and line.
    `unknown` counts the keys it rejected (noted as errors, left out of it)."""

    def __init__(self, reader: Reader, key: str, entries: Entries):
        self.reader, self.key, self.entries = reader, key, entries
        self.unknown = 0
        self.meant: set[str | None] = set()  # what the unknown keys look like misspellings of

    def missing(self, name: str) -> bool:
        """Not there, and not misspelt either (that mistake is already noted)."""
        return name not in self.entries and name not in self.meant

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
        """parse(value node, key path, **kw) if the key is there, else the default. A
        value that is wrong is noted and counts as absent, so the file's next mistake is
        found too."""
        if name not in self:
            return default
        return self.reader.attempt(parse, self.node(name), self.path(name), default=default, **kw)


class Reader:
    """Reads the generic shapes of one file's node tree (mappings, lists, strings,
    numbers, durations, segment names); every check fails with file, line and key. The
    format's own parts (load.py, steps.py, faults.py, expect.py) are built on it."""

    def __init__(self, path: str):
        self.path = path
        self.lines: dict[str, int] = {}  # dotted key -> line, for checks made after loading
        self.errors: list[ScenarioError] = []  # every mistake so far, in the order met
        self._seen: set[tuple[int | None, str]] = set()
        self.failures = 0  # mistakes met, those said once already included

    def fail(self, where: Node | int, key: str, message: str) -> NoReturn:
        raise self.error(where, key, message)

    def error(self, where: Node | int, key: str, message: str) -> ScenarioError:
        if isinstance(where, int):
            return ScenarioError(self.path, where, key, message)
        error = ScenarioError(self.path, line_of(where), key, message)
        error.at = where.start_mark.index  # type: ignore[attr-defined]  # for _add's dedup
        return error

    def note(self, where: Node | int, key: str, message: str) -> None:
        """A mistake that leaves the rest readable: noted, and reading goes on."""
        self._add(self.error(where, key, message))

    def _add(self, error: ScenarioError) -> None:
        """One line per mistake: a node reached again through an alias says its mistake
        once. Past MAX_ERRORS the file is given up on (an alias bomb of mistakes)."""
        self.failures += 1  # said or not: what failed_since() counts
        at = getattr(error, "at", None)
        if at is not None and (at, error.message) in self._seen:
            return
        self._seen.add((at, error.message))
        self.errors.append(error)
        if len(self.errors) >= MAX_ERRORS:
            raise ScenarioErrors(self.errors)

    def attempt(self, parse: Callable[..., Any], *args: Any, default: Any = None, **kw: Any) -> Any:
        """parse(*args, **kw), or, when it fails, its error noted and `default`: where the
        format can pick up after a mistake (a key's value, a list item), so that one
        mistake does not hide the next. Checks that depend on a part that failed skip it,
        so a mistake is reported once and not again as its consequences."""
        try:
            return parse(*args, **kw)
        except ScenarioErrors:
            raise  # too many: the file is given up on
        except ScenarioError as e:
            self._add(e)
            return default

    def failed_since(self, count: int) -> bool:
        """Was a mistake met since self.failures was `count`?"""
        return self.failures > count

    def entries(self, node: Node, key: str) -> Entries:
        """A mapping's entries. Duplicate keys are errors: PyYAML would silently keep the
        last one, and a scenario that says two things is wrong."""
        if not isinstance(node, MappingNode):
            self.fail(node, key, f"expected a mapping, found {found(node)}")
        entries: Entries = {}
        for knode, vnode in node.value:  # a bad key is noted and left out; the first of
            if knode.tag == _TAG + "merge":  # duplicates is kept. Expanding merges would
                self.note(
                    knode, key, "merge keys (<<) are not supported; alias a whole mapping or list instead"
                )  # need blow-up guards
            elif not isinstance(knode, ScalarNode):
                self.note(knode, key, f"expected a name as key, found {found(knode)}")
            elif knode.value in entries:
                self.note(
                    knode,
                    join(key, knode.value),
                    f"duplicate key (first given at line {line_of(entries[knode.value][0])})",
                )
            else:
                entries[knode.value] = (knode, vnode)
        return entries

    def mapping(self, node: Node, key: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> Map:
        """The entries of a mapping whose keys are `allowed`: unknown and missing keys
        are noted (the caller gets the rest), a node that is no mapping fails."""
        checked = Map(self, key, self.entries(node, key))
        for name in list(checked):  # a misspelt key is one mistake, not also a missing one
            if name not in allowed:
                checked.meant.add(closest(name, allowed))
                listed = ", ".join(a for a in allowed if a != "$schema")
                self.note(
                    checked.line(name),
                    checked.path(name),
                    f"unknown key {show(name)}{hint(name, allowed)} (expected one of: {listed})",
                )
                del checked.entries[name]
                checked.unknown += 1
        for name in required:
            if checked.missing(name):
                self.note(node, checked.path(name), "missing")
        return checked

    def items(self, node: Node, key: str, nonempty: bool = False) -> list[tuple[Node, str]]:
        """A list's items, each with its key path."""
        if not isinstance(node, SequenceNode):
            self.fail(node, key, f"expected a list, found {found(node)}")
        if nonempty and not node.value:
            self.fail(node, key, "expected a non-empty list, found an empty one")
        return [(item, f"{key}[{i}]") for i, item in enumerate(node.value)]

    def string(self, node: Node, key: str, what: str, blank: bool = True, one_line: bool = False) -> str:
        text = value(node)
        if (
            not isinstance(text, str)
            or (not blank and not text.strip())
            or (one_line and any(c in text for c in "\r\n\0"))
        ):
            self.fail(node, key, f"expected {what}, found {found(node)}")
        return text

    def choice(self, node: Node, key: str, choices: tuple[str, ...]) -> str:
        text = self.string(node, key, " or ".join(choices))
        if text not in choices:
            self.fail(node, key, f"expected {' or '.join(choices)}, found {found(node)}{hint(text, choices)}")
        return text

    def integer(self, node: Node, key: str, lo: int, hi: int | None = None, what: str | None = None) -> int:
        number = value(node)
        what = what or (f"an integer from {lo} to {hi}" if hi is not None else f"an integer >= {lo}")
        if type(number) is not int:  # bool is an int subclass: `yes` must not pass as 1
            quoted = isinstance(number, str) and number.strip().lstrip("+-").isdigit()
            self.fail(
                node,
                key,
                f"expected {what}, found {found(node)}" + (" (remove the quotes)" if quoted else ""),
            )
        if number < lo or (hi is not None and number > hi):
            self.fail(node, key, f"expected {what}, found {show(node.value)[1:-1]}")
        return number

    def duration(
        self,
        node: Node,
        key: str,
        positive: bool = False,
        limit: float | None = None,
        below: bool = False,
        why: str = "",
    ) -> float:
        try:
            seconds = parse_duration(value(node))
        except (ValueError, OverflowError):  # float() of a 400-digit integer overflows
            self.fail(node, key, f"expected a duration such as 1.5s or 200ms, found {found(node)}")
        too_long = limit is not None and (seconds >= limit if below else seconds > limit)
        if too_long or (positive and seconds <= 0):
            bounds = ["above 0"] if positive else []
            if limit is not None:
                bounds.append(f"{'below' if below else 'at most'} {limit:g}s{why}")
            self.fail(
                node, key, f"expected a duration {' and '.join(bounds)}, found {show(node.value)[1:-1]}"
            )
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
            self.fail(
                where,
                key,
                f"unknown segment name {show(name)}"
                f"{hint(name, (*VOCABULARY, *ALIASES))} (expected one of: "
                f"{', '.join(VOCABULARY)}, or an alias: {', '.join(ALIASES)})",
            )
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
        raise ScenarioError(
            path, mark.line + 1 if mark else None, "", f"invalid YAML: {said}".replace("\n", " ")
        ) from None
    except yaml.reader.ReaderError as e:  # a character YAML does not allow, e.g. NUL
        raise ScenarioError(
            path,
            text[: e.position].count("\n") + 1,
            "",
            f"invalid YAML: character U+{e.character:04X} is not allowed",
        ) from None
    except yaml.YAMLError as e:
        raise ScenarioError(path, None, "", f"invalid YAML: {e}".replace("\n", " ")) from None
    except RecursionError:
        raise ScenarioError(path, None, "", "invalid YAML: nested too deeply") from None
    if root is None:
        raise ScenarioError(
            path, None, "", "empty file: expected a mapping with at least scenario, summary and apps"
        )
    return root
