"""nftables objects and transactions, as the knftables library builds and prints them.

kube-proxy's nftables mode does not write nft syntax by hand: it fills
``sigs.k8s.io/knftables`` objects (``types.go``: ``Table``, ``Chain``, ``Rule``,
``Set``, ``Map``, ``Element``) into a ``Transaction`` (``transaction.go``) and knftables
prints each operation (``objects.go``, the ``writeOperation`` methods) for ``nft -f -``.
This module is that part of knftables v0.0.18 (the release kube-proxy v1.32 vendors),
reduced to the fields kube-proxy sets: :func:`concat` is ``knftables.Concat``,
:func:`operation_text` the ``writeOperation`` methods, :func:`parse_priority`
``ParsePriority``. Names are printed in the ``ip`` family and the ``kube-proxy`` table
unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

FAMILY = "ip"
"""``knftables.IPv4Family``: the only family modelled."""
TABLE = "kube-proxy"
"""``kubeProxyTable``."""

Verb = Literal["add", "create", "flush", "delete"]
"""The ``nft`` verbs kube-proxy uses (``addVerb`` ... ``deleteVerb``)."""


@dataclass(frozen=True)
class Table:
    """``knftables.Table``: the table itself, with its comment."""

    comment: str | None = None


@dataclass(frozen=True)
class Chain:
    """``knftables.Chain``: a regular chain, or a base chain when ``hook`` is set.

    ``priority`` is kept as kube-proxy gives it (``dstnat-10``) and printed as a number.
    """

    name: str
    type: str | None = None
    hook: str | None = None
    priority: str | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        if (self.hook is None) != (self.type is None) or (self.hook is None) != (self.priority is None):
            raise ValueError(f"chain {self.name!r}: a base chain needs type, hook and priority")


@dataclass(frozen=True)
class Rule:
    """``knftables.Rule``: rule text appended to ``chain``, with an optional comment."""

    chain: str
    rule: str
    comment: str | None = None


@dataclass(frozen=True)
class Set:
    """``knftables.Set`` (the fields kube-proxy fills): key type, flags, timeout, comment."""

    name: str
    type: str = ""
    flags: tuple[str, ...] = ()
    timeout_seconds: int | None = None
    comment: str | None = None


@dataclass(frozen=True)
class Map:
    """``knftables.Map``: ``type`` holds ``key : value`` types."""

    name: str
    type: str = ""
    comment: str | None = None


@dataclass(frozen=True)
class Element:
    """``knftables.Element``: a member of set ``set`` or an entry of map ``map`` (one of
    the two is empty), with its key and (for a map) value parts and an optional comment.
    """

    key: tuple[str, ...]
    set: str = ""
    map: str = ""
    value: tuple[str, ...] = ()
    comment: str | None = None

    def __post_init__(self) -> None:
        if bool(self.set) == bool(self.map):
            raise ValueError("an element names exactly one set or map")
        if not self.key:
            raise ValueError("an element needs a key")
        if self.set and self.value:
            raise ValueError("a set element has no value")

    @property
    def container(self) -> str:
        """The set or map the element belongs to."""
        return self.set or self.map


NFTObject = Table | Chain | Rule | Set | Map | Element


@dataclass(frozen=True)
class Operation:
    """One queued ``nft`` command (knftables' ``operation``)."""

    verb: Verb
    obj: NFTObject

    def __post_init__(self) -> None:
        if isinstance(self.obj, Rule) and self.verb != "add":
            raise ValueError("only 'add' is modelled for rules")
        if isinstance(self.obj, Element) and self.verb == "flush":
            raise ValueError("elements cannot be flushed")
        if (isinstance(self.obj, Element) and self.obj.map and not self.obj.value
                and self.verb in ("add", "create")):
            raise ValueError("a map element needs a value")


@dataclass(frozen=True)
class Transaction:
    """``knftables.Transaction``: operations run together, all or nothing."""

    operations: tuple[Operation, ...] = ()

    @property
    def num_operations(self) -> int:
        """``Transaction.NumOperations``."""
        return len(self.operations)

    def text(self, family: str = FAMILY, table: str = TABLE) -> str:
        """``Transaction.String``: the ``nft -f -`` input, one command a line."""
        return "".join(operation_text(op, family, table) for op in self.operations)


Word = str | int | Sequence[str]


def concat(*args: Word) -> str:
    """``knftables.Concat``: the words joined by spaces, except after a lone ``"@"``.

    Strings go in as they are (an empty one adds nothing but may leave a space out),
    string sequences word by word, integers in decimal. Raises nothing.
    """
    out: list[str] = []
    length = 0
    need_space = wrote_at = False

    def put(word: str) -> None:
        nonlocal length
        if need_space:
            out.append(" ")
            length += 1
        out.append(word)
        length += len(word)

    for arg in args:
        if isinstance(arg, str):
            put(arg)
            wrote_at = arg == "@"
        elif isinstance(arg, int):
            put(str(arg))
        else:
            for word in arg:
                put(word)
                wrote_at = word == "@"
                need_space = length > 0 and not wrote_at
        need_space = length > 0 and not wrote_at
    return "".join(out)


_NUMERIC_PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0,
                       "security": 50, "srcnat": 100}
"""``numericPriorities`` (the ip, ip6 and inet families)."""


def parse_priority(priority: str) -> int:
    """``ParsePriority``: ``-110`` for ``dstnat-10``, the number itself for a number.

    Raises ValueError for an unknown name or a bad modifier.
    """
    try:
        return int(priority)
    except ValueError:
        pass
    base, modifier = priority, 0
    cut = min((i for i in (priority.find("+"), priority.find("-")) if i != -1), default=-1)
    if cut != -1:
        base, modifier = priority[:cut], int(priority[cut:])
    if base not in _NUMERIC_PRIORITIES:
        raise ValueError(f"unknown priority {priority!r}")
    return _NUMERIC_PRIORITIES[base] + modifier


_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n",
               "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(text: str) -> str:
    """Go's ``%q`` (``strconv.Quote``) for the comments knftables prints. Raises nothing."""
    parts = []
    for ch in text:
        if ch in _GO_ESCAPES:
            parts.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            parts.append(ch)
        elif ord(ch) < 0x80:
            parts.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            parts.append(f"\\u{ord(ch):04x}")
        else:
            parts.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(parts) + '"'


def _braced(props: Iterable[str]) -> str:
    return " {" + "".join(f" {p} ;" for p in props) + " }"


def operation_text(op: Operation, family: str = FAMILY, table: str = TABLE) -> str:
    """The ``writeOperation`` of ``op``'s object: one ``nft`` command and a newline.

    A base chain priority :func:`parse_priority` cannot turn into a number is printed as
    given, as knftables does. Raises nothing.
    """
    verb, obj = op.verb, op.obj
    creating = verb in ("add", "create")
    if isinstance(obj, Table):
        line = f"{verb} table {family} {table}"
        if creating and obj.comment is not None:
            line += f" {{ comment {go_quote(obj.comment)} ; }}"
    elif isinstance(obj, Chain):
        line = f"{verb} chain {family} {table} {obj.name}"
        if creating and (obj.type is not None or obj.comment is not None):
            props = []
            if obj.type is not None and obj.priority is not None:
                try:
                    priority = str(parse_priority(obj.priority))
                except ValueError:
                    priority = obj.priority
                props.append(f"type {obj.type} hook {obj.hook} priority {priority}")
            if obj.comment is not None:
                props.append(f"comment {go_quote(obj.comment)}")
            line += _braced(props)
    elif isinstance(obj, Rule):
        line = f"{verb} rule {family} {table} {obj.chain} {obj.rule}"
        if obj.comment is not None:
            line += f" comment {go_quote(obj.comment)}"
    elif isinstance(obj, Set | Map):
        kind = "set" if isinstance(obj, Set) else "map"
        line = f"{verb} {kind} {family} {table} {obj.name}"
        if creating:
            props = [f"type {obj.type}"]
            if isinstance(obj, Set) and obj.flags:
                props.append("flags " + ",".join(obj.flags))
            if isinstance(obj, Set) and obj.timeout_seconds is not None:
                props.append(f"timeout {obj.timeout_seconds}s")
            if obj.comment is not None:
                props.append(f"comment {go_quote(obj.comment)}")
            line += _braced(props)
    else:
        line = f"{verb} element {family} {table} {obj.container} {{ {' . '.join(obj.key)}"
        if creating:
            if obj.comment is not None:
                line += f" comment {go_quote(obj.comment)}"
            if obj.value:
                line += f" : {' . '.join(obj.value)}"
        line += " }"
    return line + "\n"
