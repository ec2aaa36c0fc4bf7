"""``iptables-restore`` text parsed, put in kube-proxy's test order, and checked.

kube-proxy's own unit tests compare rules after a normalisation, because its proxier
walks Services in map order. This module is that normalisation, ported:

- :func:`parse` / :meth:`Dump.text` are ``ParseIPTablesDump`` and
  ``IPTablesDump.String`` of ``pkg/util/iptables/testing/parse.go`` (a table's chain
  declarations, then every chain's rules chain by chain, then its ``-X`` lines);
- :func:`sort_rules` is ``sortIPTablesRules`` of ``pkg/proxy/iptables/proxier_test.go``
  (tables by name; ``KUBE-NODEPORTS`` first, ``KUBE-SERVICES`` next, other ``KUBE-*``
  chains by name, then the rest by name; the rules of both ``KUBE-NODEPORTS`` and
  ``KUBE-SERVICES`` stably by the service name in their comment, the nat
  ``KUBE-SERVICES`` "must be the last rule" rule kept last; all other rule order kept);
- :func:`check_jumps` is ``checkIPTablesRuleJumps`` of the same test file (every
  jump and every ``-A`` names a declared chain, no jump to an empty chain, no declared
  chain left unused).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

_TABLE = re.compile(r"^\*(.*)$")
_CHAIN = re.compile(r"^:([^ ]*) - \[([0-9]*):([0-9]*)\]$")
_RULE = re.compile(r"^-A ([^ ]*) (.*)$")
_DELETE = re.compile(r"^-X (.*)$")
_WORD = re.compile(r'(?:^|\s)("[^"]*"|[^"]\S*)')

NODEPORTS = "KUBE-NODEPORTS"
SERVICES = "KUBE-SERVICES"


@dataclass
class Rule:
    """One ``-A`` line: its raw text and its ``--comment`` value (quotes removed), if any."""

    raw: str
    comment: str | None


@dataclass
class Chain:
    """A declared chain, its rules in order, and whether a ``-X`` line deletes it."""

    name: str
    packets: int = 0
    bytes: int = 0
    rules: list[Rule] = field(default_factory=list)
    deleted: bool = False


@dataclass
class Table:
    """One ``*table`` ... ``COMMIT`` section."""

    name: str
    chains: list[Chain] = field(default_factory=list)

    def chain(self, name: str) -> Chain | None:
        """The chain declared as ``name``, if any."""
        return next((c for c in self.chains if c.name == name), None)


@dataclass
class Dump:
    """A whole ``iptables-restore`` input (``IPTablesDump``)."""

    tables: list[Table] = field(default_factory=list)

    def table(self, name: str) -> Table | None:
        """The table called ``name``, if any."""
        return next((t for t in self.tables if t.name == name), None)

    def text(self) -> str:
        """``IPTablesDump.String()``."""
        out: list[str] = []
        for t in self.tables:
            out.append(f"*{t.name}")
            out.extend(f":{c.name} - [{c.packets}:{c.bytes}]" for c in t.chains)
            out.extend(r.raw for c in t.chains for r in c.rules)
            out.extend(f"-X {c.name}" for c in t.chains if c.deleted)
            out.append("COMMIT")
        return "".join(f"{line}\n" for line in out)


def _comment(rule: str) -> str | None:
    words = [m.group(1).strip('"') for m in _WORD.finditer(rule)]
    i = 0
    while i < len(words):
        if words[i] == "-m" and i < len(words) - 1:
            i += 2
        elif words[i] == "--comment" and i < len(words) - 1:
            return words[i + 1]
        else:
            i += 1
    return None


def parse(data: str) -> Dump:
    """``ParseIPTablesDump``: tables, chain declarations, ``-A`` rules and ``-X`` lines.

    Raises ValueError for what it rejects: a rule or ``-X`` for an undeclared chain, a
    rule added to a deleted chain, a chain deleted after rules were added, any other
    line, or a missing ``COMMIT``.
    """
    dump = Dump()
    state = "table"
    table = Table("")
    for raw in data.strip("\n").split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if state == "table":
            m = _TABLE.match(line)
            if m is None:
                raise ValueError(f"table {len(dump.tables) + 1} starts with {line!r}, not a table name")
            table = Table(m.group(1))
            dump.tables.append(table)
            state = "declarations"
            continue
        if state == "declarations":
            m = _CHAIN.match(line)
            if m is not None:
                table.chains.append(Chain(m.group(1), int(m.group(2) or 0), int(m.group(3) or 0)))
                continue
            state = "chains"
        if (m := _RULE.match(line)) is not None:
            chain = table.chain(m.group(1))
            if chain is None:
                raise ValueError(f"rule {line!r} adds to an undeclared chain")
            if chain.deleted:
                raise ValueError(f"rule {line!r} adds to a deleted chain")
            chain.rules.append(Rule(line, _comment(line)))
        elif (m := _DELETE.match(line)) is not None:
            chain = table.chain(m.group(1))
            if chain is None:
                raise ValueError(f"{line!r} deletes an undeclared chain")
            if chain.rules:
                raise ValueError(f"{line!r} deletes a chain after adding rules to it")
            chain.deleted = True
        elif line == "COMMIT":
            state = "table"
        else:
            raise ValueError(f"cannot parse {line!r}")
    if state != "table":
        raise ValueError("no COMMIT line at the end")
    return dump


def _service_name(comment: str) -> str:
    """The service name of ``orderByCommentServiceName``: the comment up to a space or colon."""
    return re.split(r"[ :]", comment, maxsplit=1)[0]


def _by_service_name(a: Rule, b: Rule) -> int:
    """``orderByCommentServiceName`` as a comparison (rules without a comment stay put)."""
    if a.comment is None or b.comment is None:
        return 0
    na, nb = _service_name(a.comment), _service_name(b.comment)
    return -1 if na < nb else (1 if nb < na else 0)


def _last_rule_then_name(a: Rule, b: Rule) -> int:
    """The nat KUBE-SERVICES order: the "must be the last rule" rule after all others."""
    a_last = a.comment is not None and "must be the last rule" in a.comment
    b_last = b.comment is not None and "must be the last rule" in b.comment
    if a_last or b_last:
        return int(a_last) - int(b_last)
    return _by_service_name(a, b)


def _chain_key(name: str) -> tuple[int, str]:
    if name == NODEPORTS:
        return (0, "")
    if name == SERVICES:
        return (1, "")
    return (2 if name.startswith("KUBE-") else 3, name)


def sort_rules(data: str) -> str:
    """``sortIPTablesRules``: ``data`` re-ordered so that Service order does not matter.

    Raises ValueError when ``data`` does not parse (:func:`parse`).
    """
    dump = parse(data)
    dump.tables.sort(key=lambda t: t.name)
    for t in dump.tables:
        t.chains.sort(key=lambda c: _chain_key(c.name))
        for chain_name in (NODEPORTS, SERVICES):
            chain = t.chain(chain_name)
            if chain is None or t.name not in ("filter", "nat"):
                continue
            order = _last_rule_then_name if (t.name, chain_name) == ("nat", SERVICES) else _by_service_name
            chain.rules = sorted(chain.rules, key=functools.cmp_to_key(order))
    return dump.text()


_BUILTIN_TARGETS = {"ACCEPT", "REJECT", "DROP", "MARK", "RETURN", "DNAT", "SNAT", "MASQUERADE"}
_ALWAYS_PRESENT = {"KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING",
                   "KUBE-FORWARD", "KUBE-MARK-MASQ", "KUBE-PROXY-FIREWALL", "KUBE-FIREWALL"}


def _matches(lines: list[str], pattern: str) -> set[str]:
    """``findAllMatches``: the first group of ``pattern`` searched in each line."""
    regex = re.compile(pattern)
    return {m.group(1) for line in lines if (m := regex.search(line)) is not None}


def _go_list(names: set[str]) -> str:
    """A set of names as Go's ``%v`` prints a slice: ``[a b]`` (sorted here)."""
    return "[" + " ".join(sorted(names)) + "]"


def check_jumps(data: str) -> str | None:
    """``checkIPTablesRuleJumps``: the first thing wrong with the chains of ``data``, or None.

    ``data`` is split into tables at ``COMMIT`` lines without further parsing (as
    ``parseIPTablesData``); then, table by table: chains jumped to or added to but never
    declared (``-X`` undeclares); chains jumped to that have no rules
    (``KUBE-NODEPORTS`` excepted); declared chains nothing jumps to (the top-level
    chains excepted). The message is kube-proxy's. Raises ValueError when ``data`` is
    not a ``filter`` and a ``nat`` table, each starting with its ``*name`` line and
    ending with ``COMMIT``.
    """
    raw_tables = data.lstrip("\n").split("COMMIT\n")
    if len(raw_tables) < 3 or raw_tables[-1] != "":
        raise ValueError(f"bad rule data ({len(raw_tables) - 1} tables)")
    tables: dict[str, list[str]] = {}
    for raw in raw_tables[:-1]:
        lines = raw.strip("\n").split("\n")
        if not lines[0].startswith("*"):
            raise ValueError(f"bad rule data (a table starts with {lines[0]!r})")
        tables[lines[0][1:]] = lines
    if not {"filter", "nat"} <= tables.keys():
        raise ValueError("bad rule data (no filter or no nat table)")
    for name, lines in tables.items():
        created = _matches(lines, r"^:([^ ]*)") - _matches(lines, r"-X ([^ ]*)")
        filled = _matches(lines, r"-A ([^ ]*)")
        jumped = _matches(lines, r"-j ([^ ]*)") - _BUILTIN_TARGETS
        if missing := (jumped - created) | (filled - created):
            return f"some chains in {name} are used but were not created: {_go_list(missing)}"
        if empty := jumped - filled - {NODEPORTS}:
            return f"some chains in {name} are jumped to but have no rules: {_go_list(empty)}"
        if extra := created - jumped - _ALWAYS_PRESENT:
            return f"some chains in {name} are created but not used: {_go_list(extra)}"
    return None
