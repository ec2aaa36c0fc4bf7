"""YAML text -> a tree of values that remember where they are in the file.

PyYAML's ``yaml.safe_load`` forgets positions and silently keeps the last of
two equal keys. Here the document is *composed* (``SafeLoader.get_single_node``,
the step before construction) and the node graph is turned into
:class:`Scalar`, :class:`Mapping` and :class:`Sequence` values carrying the
1-based line and column of every key and value. Because composition keeps every
key/value pair, a key given twice is kept as well (in ``Mapping.repeated``), so
the validator can report it. Merge keys (``<<: *anchor``) and aliases work as
in YAML 1.1; scalars are typed by PyYAML's safe resolver (so ``yes`` is a
boolean and ``22:22`` a base-60 integer, as in ``safe_load``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


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


Value = Union[Scalar, Mapping, Sequence]


class YamlProblem(Exception):
    """The text is not YAML netlab can read; carries a message, hint and place."""

    def __init__(self, message: str, hint: str, pos: Pos | None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.pos = pos


def _pos(mark: yaml.Mark | None) -> Pos | None:
    return Pos(mark.line + 1, mark.column + 1) if mark is not None else None


def _syntax_hint(problem: str) -> str:
    if "'\\t'" in problem or "\t" in problem:
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
        return YamlProblem(f"invalid YAML: {text_}", _syntax_hint(text_), _pos(mark))
    if isinstance(err, yaml.reader.ReaderError):
        before = text[: err.position]
        line = before.count("\n") + 1
        column = err.position - (before.rfind("\n") + 1) + 1
        return YamlProblem(
            f"invalid YAML: unacceptable character #x{err.character:04x}"
            if isinstance(err.character, int) else "invalid YAML: unreadable text",
            "a scenario is plain UTF-8 text; remove control characters",
            Pos(line, column),
        )
    return YamlProblem(f"invalid YAML: {err}", "check the file is a YAML document", None)


class _Builder:
    """Turns one composed node graph into positioned values (one per document)."""

    def __init__(self, loader: yaml.SafeLoader, text: str) -> None:
        self._loader = loader
        self._text = text
        self._done: dict[int, Value] = {}
        self._active: set[int] = set()

    def build(self, node: Node) -> Value:
        """The value of ``node``; raises YamlProblem on tags or recursive aliases."""
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
            elif isinstance(node, SequenceNode):
                self._check_tag(node, _SEQ_TAG)
                value = Sequence(tuple(self.build(n) for n in node.value), _pos(node.start_mark))
            else:
                self._check_tag(node, _MAP_TAG)
                value = self._mapping(node)
        finally:
            self._active.discard(key)
        self._done[key] = value
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
        except (ConstructorError, ValueError) as err:
            problem = getattr(err, "problem", None) or str(err)
            raise YamlProblem(
                f"cannot read this value: {problem}",
                "use plain strings, numbers, true/false, lists and mappings without tags",
                _pos(node.start_mark),
            ) from None
        raw = self._text[node.start_mark.index:node.end_mark.index]
        return Scalar(value, _pos(node.start_mark), raw)

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
            entry = Entry(key, _pos(key_node.start_mark), self.build(value_node))
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
        return Mapping(tuple(inherited + explicit), _pos(node.start_mark), tuple(repeated))


def parse_document(text: str) -> Value | None:
    """Compose ``text`` into positioned values; None for an empty document.

    A document that holds only comments, or only ``null``/``~``, is empty.
    Raises YamlProblem for syntax errors (with the parser's line and column),
    unsupported tags, recursive aliases and documents nested too deeply.
    """
    try:
        loader = yaml.SafeLoader(text)  # the reader checks for unprintable characters here
    except yaml.YAMLError as err:
        raise _from_yaml_error(err, text) from None
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as err:
            raise _from_yaml_error(err, text) from None
        except RecursionError:
            raise YamlProblem("the document is nested too deeply", "flatten it", None) from None
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
