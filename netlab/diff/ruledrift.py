"""iptables drift: one table's save text in the kernel against the plan's, chain by chain.

Pure functions over ``iptables-save`` text (no kernel access), so every kind
of rule drift is unit-tested without root. Within a chain, order matters as
it does to the kernel: a rule present in both but at another place is
reported with both positions ("DOCKER-INGRESS rule 2 is X, the plan has it
at 1"). The rules found in order are the longest run that keeps the plan's
order, so one moved rule is one report, not one per rule it shifted.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict, deque
from dataclasses import dataclass, field

from netlab.diff.drift import Drift
from netlab.plan.render import USER_CHAIN, user_rules, with_user_rules


@dataclass(frozen=True)
class SavedTable:
    """One table as ``iptables-save`` prints it: policies, user chains, rules in order."""

    policies: dict[str, str] = field(default_factory=dict)      # built-in chain -> policy
    user_chains: tuple[str, ...] = ()
    rules: dict[str, tuple[str, ...]] = field(default_factory=dict)   # chain -> "-A CHAIN …"


def parse_table(text: str) -> SavedTable:
    """Save text of one table (``*table`` … ``COMMIT``; counters already stripped)."""
    policies: dict[str, str] = {}
    user: list[str] = []
    rules: dict[str, list[str]] = defaultdict(list)
    for line in text.splitlines():
        if line.startswith(":"):
            words = line[1:].split()
            if len(words) >= 2 and words[1] != "-":
                policies[words[0]] = words[1]
            elif words:
                user.append(words[0])
        elif line.startswith("-A "):
            rules[line.split()[1]].append(line)
    return SavedTable(policies, tuple(user), {c: tuple(r) for c, r in rules.items()})


def _in_order(positions: list[int]) -> set[int]:
    """Indices into ``positions`` forming its longest strictly increasing run (kept in place)."""
    tails: list[int] = []          # smallest tail value of a run of each length
    tail_at: list[int] = []        # index into positions of that tail
    prev = [-1] * len(positions)
    for i, p in enumerate(positions):
        k = bisect_left(tails, p)
        if k == len(tails):
            tails.append(p)
            tail_at.append(i)
        else:
            tails[k], tail_at[k] = p, i
        prev[i] = tail_at[k - 1] if k else -1
    keep: set[int] = set()
    i = tail_at[-1] if tail_at else -1
    while i != -1:
        keep.add(i)
        i = prev[i]
    return keep


def chain_drift(netns: str, target: str, table: str, chain: str,
                want: tuple[str, ...], have: tuple[str, ...]) -> list[Drift]:
    """The rules of one chain: missing, not in the plan, and out of order (1-based positions)."""
    out: list[Drift] = []
    where: dict[str, deque[int]] = defaultdict(deque)
    for i, line in enumerate(want, 1):
        where[line].append(i)
    common: list[tuple[int, int, str]] = []     # (kernel position, plan position, rule)
    for k, line in enumerate(have, 1):
        if where[line]:
            common.append((k, where[line].popleft(), line))
        else:
            out.append(Drift(netns, "iptables", f"{table}: {chain} rule {k} is not in the plan: {line}",
                             target, f"{table} {chain} rule {k}", "absent", line))
    for line, left in where.items():
        for i in left:
            out.append(Drift(netns, "iptables", f"{table}: {chain} rule {i} of the plan is missing: "
                             f"{line}", target, f"{table} {chain} rule {i}", line, "absent"))
    keep = _in_order([i for _, i, _ in common])
    for n, (k, i, line) in enumerate(common):
        if n not in keep:
            out.append(Drift(netns, "iptables",
                             f"{table}: {chain} rule {k} is {line}, the plan has it at {i}",
                             target, f"{table} {chain} rule {k}", f"at position {i}",
                             f"at position {k}"))
    return out


def table_drift(netns: str, target: str, table: str, want_text: str,
                have_text: str) -> list[Drift]:
    """Every difference in one table: built-in chain policies, user chains, each chain's rules.

    ``want_text`` is the plan's save text (with the user's DOCKER-USER rules
    already put in, see :func:`netlab.plan.render.with_user_rules`); ""
    for a table the plan does not program, where any rule, user chain or
    policy other than ACCEPT is drift.
    """
    if want_text == have_text:
        return []     # the kernel prints what the plan says: the common case, parsed for nothing
    want, have = parse_table(want_text), parse_table(have_text)
    out: list[Drift] = []
    planned = want.policies if want_text else dict.fromkeys(have.policies, "ACCEPT")
    for chain, w in planned.items():
        h = have.policies.get(chain, "absent")
        if w != h:
            out.append(Drift(netns, "iptables", f"{table}: chain {chain} policy is {h}, the plan "
                             f"has {w}", target, f"{table} {chain} policy", w, h))
    for chain in want.user_chains:
        if chain not in have.user_chains:
            out.append(Drift(netns, "iptables", f"{table}: chain {chain} is missing", target,
                             f"{table} chain {chain}", "present", "absent"))
    for chain in have.user_chains:
        if chain not in want.user_chains:
            out.append(Drift(netns, "iptables", f"{table}: chain {chain} is not in the plan",
                             target, f"{table} chain {chain}", "absent", "present"))
    chains = list(want.policies) + list(want.user_chains)
    chains += [c for c in list(have.policies) + list(have.user_chains) + list(have.rules)
               if c not in chains]
    for chain in dict.fromkeys(chains):
        out += chain_drift(netns, target, table, chain, want.rules.get(chain, ()),
                           have.rules.get(chain, ()))
    return out


def rules_drift(netns: str, target: str, want: dict[str, str],
                have: dict[str, str]) -> list[Drift]:
    """Every table of one namespace: ``want`` maps each planned table to its save
    text, ``have`` each table the kernel printed. Rules the user put in
    DOCKER-USER are notes (kind ``user-rule``), placed where Docker keeps them."""
    out: list[Drift] = []
    for table, text in want.items():
        got = have.get(table, "")
        kept = user_rules(got)
        out += [Drift(netns, "user-rule", line, target, f"{table} {USER_CHAIN}", "absent", line,
                      "yours: kept by netlab up, as Docker keeps DOCKER-USER") for line in kept]
        out += table_drift(netns, target, table, with_user_rules(text, kept), got)
    for table, got in have.items():
        if table not in want:
            out += table_drift(netns, target, table, "", got)
    return out
