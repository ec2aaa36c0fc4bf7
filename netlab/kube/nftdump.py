"""How kube-proxy's nftables tests compare rule sets: sort, then diff.

kube-proxy walks its Services in map order, so its nftables tests never compare text as
it comes. ``pkg/proxy/nftables/helpers_test.go`` (v1.32) normalises both the expected
text and ``knftables.Fake.Dump()`` first; this module is that normalisation, ported:

- :func:`sort_transaction` is ``sortNFTablesTransaction``: blank lines and ``#`` lines
  dropped, then a stable sort by object type (table, chain, rule, set, map, element,
  anything else), then by object name (the fifth word), rules keeping their order
  within a chain, other lines of one object ordered by the whole line;
- :func:`diff_transaction` is ``diffNFTablesTransaction`` (what
  ``assertNFTablesTransactionEqual`` fails on): ``None`` when the sorted texts are
  equal, else a unified diff of them;
- :func:`diff_chain` is ``diffNFTablesChain``: one chain's rules, in order, against a
  newline-separated expectation (surrounding whitespace trimmed).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

_OBJECT_ORDER = {"table": 10, "chain": 9, "rule": 8, "set": 7, "map": 6, "element": 5}
"""``objectOrder``: higher sorts first; any other word counts 0."""


def _sort_key(line: str) -> tuple[int, str, str]:
    words = line.split(" ")
    if len(words) < 5:
        # Go's comparator calls such a line equal to everything; kube-proxy's
        # transactions never have one (every line is "add TYPE ip kube-proxy NAME ...").
        raise ValueError(f"not an nftables object line: {line!r}")
    kind, name = words[1], words[4]
    return -_OBJECT_ORDER.get(kind, 0), name, "" if kind == "rule" else line


def sort_transaction(text: str) -> str:
    """``sortNFTablesTransaction``: the lines of ``text`` in the tests' standard order.

    Lines are split on ``\\n`` and must not start with whitespace (the tests
    ``dedent`` their expectations). Raises ValueError for a non-blank, non-comment line
    of fewer than five words.
    """
    lines = [line for line in text.split("\n") if line and not line.startswith("#")]
    return "\n".join(sorted(lines, key=_sort_key))


def diff_transaction(expected: str, result: str) -> str | None:
    """``diffNFTablesTransaction``: ``None`` if the two sort alike, else their diff.

    Raises ValueError as :func:`sort_transaction` does.
    """
    want, got = sort_transaction(expected), sort_transaction(result)
    if want == got:
        return None
    return "\n".join(difflib.unified_diff(want.split("\n"), got.split("\n"), "expected", "result",
                                          lineterm=""))


def diff_chain(rules: Sequence[str], expected: str) -> str | None:
    """``diffNFTablesChain``: ``None`` if ``rules`` (one chain's rule texts, in order)
    are the lines of ``expected`` with surrounding whitespace trimmed, else their diff.

    Raises nothing.
    """
    want, got = expected.strip(), "\n".join(rules)
    if want == got:
        return None
    return "\n".join(difflib.unified_diff(want.split("\n"), got.split("\n"), "expected", "result",
                                          lineterm=""))
