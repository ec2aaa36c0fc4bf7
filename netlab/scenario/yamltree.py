"""YAML text -> a tree of values that remember where they are in the file.

PyYAML's ``yaml.safe_load`` forgets positions and silently keeps the last of
two equal keys. Here the document is *composed* (``SafeLoader.get_single_node``,
the step before construction) and the node graph is turned into
:class:`Scalar`, :class:`Mapping` and :class:`Sequence` values carrying the
1-based line and column of every key and value. Because composition keeps every
key/value pair, a key given twice is kept as well (in ``Mapping.repeated``), so
the validator can report it. Merge keys (``<<: *anchor``) and aliases work as
in YAML 1.1. Scalars are typed by PyYAML's safe resolver except for numbers:
only plain decimals of up to 18 digits (``42``, ``-1``, ``1.5``) are numbers
(Python refuses int() of more than 4,300 digits), so YAML 1.1's traps
(``1:00`` read as 60, ``010`` as 8, ``0x10``, ``1_000``) stay strings that the
field readers refuse with a hint.

Input is bounded before it is built: libyaml (when PyYAML has it) parses, a
first pass over the events refuses more than :data:`MAX_VALUES` values or
nesting deeper than :data:`MAX_DEPTH`, and building refuses aliases that
expand the document beyond :data:`MAX_VALUES` values (a "billion laughs").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import yaml
from yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, ScalarEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"

MAX_VALUES = 20_000
MAX_DEPTH = 64
_TOO_BIG_HINT = "a lab's scenario holds a few hundred values; check that this is the scenario file"


def _strict_numbers(base: type[yaml.SafeLoader]) -> type[yaml.SafeLoader]:
    """``base`` (a PyYAML loader) resolving only plain decimals as numbers."""
    table: dict[str, list[tuple[str, re.Pattern[str]]]] = {
        first: [(tag, rx) for tag, rx in entries if tag not in (_INT_TAG, _FLOAT_TAG)]
        for first, entries in base.yaml_implicit_resolvers.items()}
    numbers = (
        (_INT_TAG, re.compile(r"[-+]?(?:0|[1-9][0-9]{0,17})\Z"), "-+0123456789"),  # int64
        (_FLOAT_TAG, re.compile(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z"
                                r"|[-+]?\.(?:inf|Inf|INF)\Z|\.(?:nan|NaN|NAN)\Z"), "-+.0123456789"),
    )
    for tag, rx, firsts in numbers:
        for first in firsts:
            table.setdefault(first, []).append((tag, rx))
    return type(f"Strict{base.__name__}", (base,), {"yaml_implicit_resolvers": table})


# libyaml parses a 1 MiB document several times faster than pure Python.
_LOADER = _strict_numbers(getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@dataclass(frozen=True)
class Pos:
    """A place in the file: 1-based line and column."""

    line: int
    column: int


@dataclass(frozen=True)
class Scalar:
    """A plain value (str, int, float, bool, None, date...) and where it is.

    ``raw`` is the text as written in the file, quotes included.
    """

    value: object
    pos: Pos
    raw: str

    def pos_at(self, offset: int) -> Pos:
        """Where character ``offset`` of the string value is in the file.

        Exact for one-line plain or quoted scalars without escapes; otherwise
        the position of the scalar itself.
        """
        text = self.value if isinstance(self.value, str) else None
        if text is None or "\n" in self.raw:
            return self.pos
        if self.raw == text:
            return Pos(self.pos.line, self.pos.column + offset)
        if self.raw in (f'"{text}"', f"'{text}'"):
            return Pos(self.pos.line, self.pos.column + 1 + offset)
        return self.pos


@dataclass(frozen=True)
class Entry:
    """One ``key: value`` pair; ``key`` is None when the key is not a scalar."""

    key: str | None
    key_pos: Pos
    value: Value


@dataclass(frozen=True)
class Mapping:
    """A mapping in file order; ``repeated`` holds later copies of a key."""

    entries: tuple[Entry, ...]
    pos: Pos
    repeated: tuple[Entry, ...] = ()

    def get(self, key: str) -> Entry | None:
        """The entry for ``key``, or None."""
        for entry in self.entries:
            if entry.key == key:
                return entry
        return None


@dataclass(frozen=True)
class Sequence:
    """A list, in order."""

    items: tuple[Value, ...]
    pos: Pos


Value = Scalar | Mapping | Sequence


class YamlProblem(Exception):
    """The text is not YAML netlab can read; carries a message, hint and place."""

    def __init__(self, message: str, hint: str, pos: Pos | None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.pos = pos


class _Mark(Protocol):
    """A place as PyYAML reports it: its pure-Python and libyaml marks both have these."""

    @property
    def line(self) -> int: ...
    @property
    def column(self) -> int: ...


def _pos(mark: _Mark | None) -> Pos | None:
    return Pos(mark.line + 1, mark.column + 1) if mark is not None else None


def _at(node: Node) -> Pos:
    """Where ``node`` starts; the composer gives every node its start mark."""
    return Pos(node.start_mark.line + 1, node.start_mark.column + 1)


def _syntax_hint(problem: str, at: str) -> str:
    """A hint for a parser's ``problem``; ``at`` is the character where it was found."""
    if at == "\t" or "'\\t'" in problem or "\t" in problem:
        return "YAML does not allow tabs for indentation; indent with spaces"
    if "mapping values are not allowed" in problem:
        return "check the indentation here, and quote a value that contains ': '"
    if "expected a single document" in problem or "but found another document" in problem:
        return "a scenario is one YAML document; remove the extra '---'"
    if "undefined alias" in problem:
        return "define the anchor (&name) before using the alias (*name)"
    if "could not find expected ':'" in problem:
        return "a key needs ': ' after it, or a quote is not closed"
    if "while scanning a quoted scalar" in problem:
        return "a quoted string is not closed"
    if "while parsing a flow" in problem:
        return "a [ or { is not closed, or items are not separated by commas"
    if "found duplicate anchor" in problem:
        return "give each anchor (&name) its own name"
    return "check the indentation and the quoting at this point"


def _from_yaml_error(err: yaml.YAMLError, text: str) -> YamlProblem:
    if isinstance(err, yaml.MarkedYAMLError):
        problem = err.problem or ""
        context = err.context or ""
        if not problem:
            text_ = context or "not a YAML document"
        elif context and problem.startswith("but "):
            text_ = f"{context}, {problem}"
        elif context:
            text_ = f"{problem} ({context})"
        else:
            text_ = problem
        mark = err.problem_mark or err.context_mark
        at = text[mark.index] if mark is not None and 0 <= mark.index < len(text) else ""
        return YamlProblem(f"invalid YAML: {text_}", _syntax_hint(text_, at), _pos(mark))
    if isinstance(err, yaml.reader.ReaderError):
        # libyaml counts the position in bytes; find the character in the text instead.
        bad = yaml.reader.Reader.NON_PRINTABLE.search(text)
        index = bad.start() if bad else 0
        before = text[:index]
        return YamlProblem(
            f"invalid YAML: unacceptable character #x{ord(text[index]):04x}" if bad
            else "invalid YAML: unreadable text",
            "a scenario is plain UTF-8 text; remove control characters",
            Pos(before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1),
        )
    return YamlProblem(f"invalid YAML: {err}", "check the file is a YAML document", None)


class _Builder:
    """Turns one composed node graph into positioned values (one per document)."""

    def __init__(self, loader: yaml.SafeLoader, text: str) -> None:
        self._loader = loader
        self._text = text
        self._done: dict[int, Value] = {}
        self._active: set[int] = set()
        self._sizes: dict[int, int] = {}

    def size(self, node: Node) -> int:
        """How many values ``node`` holds once every alias is expanded (1 for a merge key)."""
        return self._sizes.get(id(node), 1)

    def build(self, node: Node) -> Value:
        """The value of ``node``; raises YamlProblem on tags, recursive aliases and
        aliases that expand beyond MAX_VALUES values."""
        key = id(node)
        if key in self._done:
            return self._done[key]
        if key in self._active:
            raise YamlProblem(
                "an alias refers to the node that contains it",
                "remove the recursive alias (*name inside &name)",
                _pos(node.start_mark),
            )
        self._active.add(key)
        try:
            if isinstance(node, ScalarNode):
                value: Value = self._scalar(node)
                size = 1
            elif isinstance(node, SequenceNode):
                self._check_tag(node, _SEQ_TAG)
                value = Sequence(tuple(self.build(n) for n in node.value), _at(node))
                size = 1 + sum(self.size(n) for n in node.value)
            else:
                assert isinstance(node, MappingNode)  # the composer makes only these three
                self._check_tag(node, _MAP_TAG)
                value = self._mapping(node)
                size = 1 + sum(self.size(k) + self.size(v) for k, v in node.value)
        finally:
            self._active.discard(key)
        if size > MAX_VALUES:
            raise YamlProblem(
                f"with its aliases expanded the document holds more than {MAX_VALUES:,} values",
                "an alias (*name) repeats its anchor's whole value; use anchors a few times, "
                "not nested in each other", _pos(node.start_mark))
        self._done[key] = value
        self._sizes[key] = size
        return value

    def _check_tag(self, node: Node, expected: str) -> None:
        if node.tag != expected:
            raise YamlProblem(
                f"YAML tag {node.tag!r} is not supported",
                "use plain lists and mappings without tags",
                _pos(node.start_mark),
            )

    def _scalar(self, node: ScalarNode) -> Scalar:
        try:
            value = self._loader.construct_object(node)
        except Exception as err:  # noqa: BLE001 - PyYAML's constructors also raise IndexError,
            # TypeError... (``!!int`` with no value); constructing a scalar changes nothing.
            problem = getattr(err, "problem", None) or str(err) or type(err).__name__
            raise YamlProblem(
                f"cannot read this value: {problem}",
                "use plain strings, numbers, true/false, lists and mappings without tags",
                _pos(node.start_mark),
            ) from None
        raw = self._text[node.start_mark.index:node.end_mark.index]
        return Scalar(value, _at(node), raw)

    def _merge_sources(self, node: Node) -> list[Mapping]:
        value = self.build(node)
        if isinstance(value, Mapping):
            return [value]
        if isinstance(value, Sequence) and all(isinstance(v, Mapping) for v in value.items):
            return [v for v in value.items if isinstance(v, Mapping)]
        raise YamlProblem(
            "a merge key (<<) needs a mapping or a list of mappings",
            "write <<: *anchor where &anchor names a mapping",
            _pos(node.start_mark),
        )

    def _mapping(self, node: MappingNode) -> Mapping:
        explicit: list[Entry] = []
        seen: set[str] = set()
        repeated: list[Entry] = []
        merged: list[Entry] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE_TAG:
                for source in self._merge_sources(value_node):
                    merged.extend(source.entries)
                continue
            key = key_node.value if isinstance(key_node, ScalarNode) else None
            if not isinstance(key_node, ScalarNode):
                self.build(key_node)  # a complex key (``? [a, b]``) counts like any value
            entry = Entry(key, _at(key_node), self.build(value_node))
            if key is not None and key in seen:
                repeated.append(entry)
                continue
            if key is not None:
                seen.add(key)
            explicit.append(entry)
        # YAML merge: explicit keys win; among merged sources, the first wins.
        inherited: list[Entry] = []
        for entry in merged:
            if entry.key is not None and entry.key not in seen:
                seen.add(entry.key)
                inherited.append(entry)
        return Mapping(tuple(inherited + explicit), _at(node), tuple(repeated))


def _check_bounds(text: str) -> None:
    """Refuse, from the event stream alone, too many values or too deep a nesting.

    Cheap (no node is built), so a huge flat or deep document is refused
    before composition. Raises YamlProblem, also for syntax errors.
    """
    try:
        loader = _LOADER(text)  # the pure-Python reader checks the characters here
    except yaml.YAMLError as err:
        raise _from_yaml_error(err, text) from None
    values = depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
            if isinstance(event, (ScalarEvent, AliasEvent, CollectionStartEvent)):
                values += 1
                if values > MAX_VALUES:
                    raise YamlProblem(f"the document holds more than {MAX_VALUES:,} values",
                                      _TOO_BIG_HINT, _pos(event.start_mark))
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise YamlProblem(f"the document is nested more than {MAX_DEPTH} levels deep",
                                      "flatten it; a scenario is a few levels deep",
                                      _pos(event.start_mark))
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as err:
        raise _from_yaml_error(err, text) from None
    finally:
        loader.dispose()


def parse_document(text: str) -> Value | None:
    """Compose ``text`` into positioned values; None for an empty document.

    A document that holds only comments, or only ``null``/``~``, is empty.
    Raises YamlProblem for syntax errors (with the parser's line and column),
    unsupported tags, recursive aliases, and documents with more than
    MAX_VALUES values (aliases expanded) or nested deeper than MAX_DEPTH.
    """
    _check_bounds(text)
    loader = _LOADER(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as err:
            raise _from_yaml_error(err, text) from None
        if root is None:
            return None
        try:
            value = _Builder(loader, text).build(root)
        except RecursionError:
            raise YamlProblem("the document is nested too deeply", "flatten it", None) from None
    finally:
        loader.dispose()
    if isinstance(value, Scalar) and value.value is None:
        return None
    return value
