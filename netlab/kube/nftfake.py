"""knftables' fake nftables: a table a transaction is run against, and its dump.

kube-proxy's unit tests run the proxier against ``knftables.Fake`` (``fake.go`` of
knftables v0.0.18) and compare ``Fake.Dump()`` with their expectations. This module is
that fake, for one table: :func:`run` is ``Fake.run`` (a transaction applies whole or not
at all; ``add`` of an existing object keeps it, ``flush`` empties, ``delete`` removes,
rules and map elements must name chains, sets and maps that exist, as
``checkRuleRefs``/``checkElementRefs`` check) and :func:`dump` is ``Fake.Dump`` (every
object's ``add`` line, sorted by name, then every chain's rules and every set's and map's
elements in the order they were added). Values are frozen; :func:`run` returns a new
table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from netlab.kube.nftobjects import (
    FAMILY,
    TABLE,
    Chain,
    Element,
    Map,
    Operation,
    Rule,
    Set,
    Table,
    Transaction,
    operation_text,
)


class NFTablesError(Exception):
    """A transaction the fake refuses (knftables' not-found and exists errors)."""


@dataclass(frozen=True)
class FakeChain:
    """``FakeChain``: a chain and its rules in order."""

    chain: Chain
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class FakeSet:
    """``FakeSet``: a set and its elements in the order added."""

    set: Set
    elements: tuple[Element, ...] = ()


@dataclass(frozen=True)
class FakeMap:
    """``FakeMap``: a map and its elements in the order added."""

    map: Map
    elements: tuple[Element, ...] = ()


@dataclass(frozen=True)
class FakeTable:
    """``FakeTable``: the table and its chains, sets and maps by name (read-only)."""

    table: Table
    chains: Mapping[str, FakeChain] = field(default_factory=dict)
    sets: Mapping[str, FakeSet] = field(default_factory=dict)
    maps: Mapping[str, FakeMap] = field(default_factory=dict)

    def chain_rules(self, chain: str) -> tuple[str, ...]:
        """The rule texts of ``chain`` (none for a missing chain), as ``ListRules`` gives."""
        found = self.chains.get(chain)
        return tuple(r.rule for r in found.rules) if found else ()


def _missing(kind: str, name: str) -> NFTablesError:
    return NFTablesError(f"no such {kind} {name!r}")


def _check_rule_refs(rule: Rule, chains: Mapping[str, object], sets: Mapping[str, object],
                     maps: Mapping[str, object]) -> None:
    """``checkRuleRefs``: ``@name`` after ``map``/``vmap`` is a map, else a set (or map);
    the word after ``goto``/``jump`` is a chain."""
    words = rule.rule.split(" ")
    for i, word in enumerate(words):
        if word.startswith("@"):
            name = word[1:]
            if i > 0 and words[i - 1] in ("map", "vmap"):
                if name not in maps:
                    raise _missing("map", name)
            elif name not in sets and name not in maps:
                raise _missing("set", name)
        elif word in ("goto", "jump") and i < len(words) - 1 and words[i + 1] not in chains:
            raise _missing("chain", words[i + 1])


def _check_element_refs(element: Element, chains: Mapping[str, object]) -> None:
    """``checkElementRefs``: a ``goto``/``jump`` verdict must name a chain."""
    if len(element.value) == 1:
        words = element.value[0].split(" ")
        if len(words) == 2 and words[0] in ("goto", "jump") and words[1] not in chains:
            raise _missing("chain", words[1])


def _apply_element(verb: str, element: Element, elements: list[Element]) -> None:
    at = next((i for i, e in enumerate(elements) if e.key == element.key), -1)
    if verb in ("add", "create"):
        if at == -1:
            elements.append(element)
        elif verb == "create":
            raise NFTablesError(f"element {' . '.join(element.key)!r} already exists")
        else:
            elements[at] = element
    elif verb == "delete":
        if at == -1:
            raise _missing("element", " . ".join(element.key))
        del elements[at]


_Container = TypeVar("_Container", Set, Map)


def _apply_container(verb: str, kind: str, obj: _Container,
                     store: dict[str, tuple[_Container, list[Element]]]) -> None:
    """A set or map operation: ``add`` keeps an existing one, ``flush`` empties it."""
    _check_exists(verb, kind, obj.name, obj.name in store)
    if verb in ("add", "create"):
        store.setdefault(obj.name, (obj, []))
    elif verb == "flush":
        store[obj.name][1].clear()
    else:
        del store[obj.name]


def _check_exists(verb: str, kind: str, name: str, exists: bool) -> None:
    """``checkExists``: ``add`` is fine either way, ``create`` needs it absent, the rest present."""
    if verb == "create" and exists:
        raise NFTablesError(f"{kind} {name!r} already exists")
    if verb not in ("add", "create") and not exists:
        raise _missing(kind, name)


def run(table: FakeTable | None, tx: Transaction) -> FakeTable | None:
    """``Fake.run``: ``table`` after ``tx`` (``None`` while the table does not exist).

    Raises NFTablesError, leaving nothing applied, for an operation on something that
    does not exist (the table included), a ``create`` of something that does, or a rule
    or map element naming a missing chain, set or map.
    """
    meta = table.table if table else None
    chains = {n: (c.chain, list(c.rules)) for n, c in table.chains.items()} if table else {}
    sets = {n: (s.set, list(s.elements)) for n, s in table.sets.items()} if table else {}
    maps = {n: (m.map, list(m.elements)) for n, m in table.maps.items()} if table else {}
    for op in tx.operations:
        verb, obj = op.verb, op.obj
        if meta is None and not isinstance(obj, Table):
            raise _missing("table", f"{FAMILY} {TABLE}")
        if isinstance(obj, Table):
            _check_exists(verb, "table", TABLE, meta is not None)
            if verb == "flush" or verb == "delete":
                meta, chains, sets, maps = None, {}, {}, {}
            if verb != "delete" and meta is None:
                meta = obj
        elif isinstance(obj, Chain):
            _check_exists(verb, "chain", obj.name, obj.name in chains)
            if verb in ("add", "create"):
                chains.setdefault(obj.name, (obj, []))
            elif verb == "flush":
                chains[obj.name][1].clear()
            else:
                del chains[obj.name]
        elif isinstance(obj, Rule):
            if obj.chain not in chains:
                raise _missing("chain", obj.chain)
            _check_rule_refs(obj, chains, sets, maps)
            chains[obj.chain][1].append(obj)
        elif isinstance(obj, Set):
            _apply_container(verb, "set", obj, sets)
        elif isinstance(obj, Map):
            _apply_container(verb, "map", obj, maps)
        elif obj.set:
            if obj.set not in sets:
                raise _missing("set", obj.set)
            _apply_element(verb, obj, sets[obj.set][1])
        else:
            if obj.map not in maps:
                raise _missing("map", obj.map)
            _check_element_refs(obj, chains)
            _apply_element(verb, obj, maps[obj.map][1])
    if meta is None:
        return None
    return FakeTable(
        table=meta,
        chains={n: FakeChain(c, tuple(rules)) for n, (c, rules) in chains.items()},
        sets={n: FakeSet(s, tuple(els)) for n, (s, els) in sets.items()},
        maps={n: FakeMap(m, tuple(els)) for n, (m, els) in maps.items()},
    )


def dump(table: FakeTable | None) -> str:
    """``Fake.Dump``: the table as a transaction that would recreate it ('' if none).

    Raises nothing.
    """
    if table is None:
        return ""
    ops: list[Operation] = [Operation("add", table.table)]
    ops += [Operation("add", table.chains[n].chain) for n in sorted(table.chains)]
    ops += [Operation("add", table.sets[n].set) for n in sorted(table.sets)]
    ops += [Operation("add", table.maps[n].map) for n in sorted(table.maps)]
    for name in sorted(table.chains):
        ops += [Operation("add", rule) for rule in table.chains[name].rules]
    for name in sorted(table.sets):
        ops += [Operation("add", e) for e in table.sets[name].elements]
    for name in sorted(table.maps):
        ops += [Operation("add", e) for e in table.maps[name].elements]
    return "".join(operation_text(op) for op in ops)
