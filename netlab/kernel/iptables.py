"""iptables through python-iptables (libiptc, the legacy backend), one namespace at a time.

These functions run *inside* the target namespace, in a child made by
:func:`netlab.kernel.netns.run_in`: libiptc caches tables per process and
reads whichever namespace the process is in. Each table is written with one
commit, which is atomic like ``iptables-restore``.
"""

from __future__ import annotations

import importlib.util
import os
import sysconfig
from dataclasses import dataclass

from netlab.plan.render import save_table
from netlab.plan.types import BUILTIN_CHAINS, ChainPolicy, Rule

BACKEND = "iptables-legacy (python-iptables/libiptc)"


@dataclass(frozen=True)
class TableSpec:
    """What one table of one namespace must hold."""

    table: str
    policies: tuple[ChainPolicy, ...]
    user_chains: tuple[str, ...]
    rules: tuple[Rule, ...]

    def save_text(self) -> str:
        """The table as ``iptables-legacy-save`` prints it (no counters)."""
        return save_table(self.table, {p.chain: p.policy for p in self.policies},
                          self.user_chains, self.rules)


def preload() -> None:
    """Import python-iptables once, in the parent, before forking per-namespace children.

    Left to itself, its import probes for libraries with ``gcc -Wl,-t`` and
    ``ldconfig -N -v``: under a second natively, minutes in an emulated VM
    over 9p, and it would repeat in every child. Pointing it at the library
    directories skips the probes; importing here lets the children inherit
    the loaded module. No table is opened here, so no namespace is read.
    """
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    for libdir in (f"/usr/lib/{multiarch}", "/usr/lib64", "/usr/lib"):
        if os.path.isdir(os.path.join(libdir, "xtables")):
            os.environ.setdefault("XTABLES_LIBDIR", os.path.join(libdir, "xtables"))
            spec = importlib.util.find_spec("iptc")
            if spec and spec.origin:
                site = os.path.dirname(os.path.dirname(spec.origin))
                os.environ.setdefault("IPTABLES_LIBDIR", f"{libdir}:{site}")
            break
    import iptc  # noqa: F401  (imported for its side effect: loaded once, inherited by children)


def _iptc():
    preload()
    import iptc
    return iptc


def _table(iptc, name: str):
    return iptc.Table({"filter": iptc.Table.FILTER, "nat": iptc.Table.NAT,
                       "mangle": iptc.Table.MANGLE}[name])


def _to_iptc(iptc, rule: Rule):
    r = iptc.Rule()
    if rule.src:
        r.src = rule.src
    if rule.dst:
        r.dst = rule.dst
    if rule.in_iface:
        r.in_interface = rule.in_iface
    if rule.out_iface:
        r.out_interface = rule.out_iface
    if rule.proto:
        r.protocol = rule.proto
    for match in rule.matches:
        m = r.create_match(match.name)
        for key, value in match.options:
            setattr(m, key.replace("-", "_"), value)
    m = r.create_match("comment")
    m.comment = rule.comment
    t = r.create_target(rule.target.name)
    for key, value in rule.target.options:
        setattr(t, key.replace("-", "_"), value)
    return r


def _mask_to_prefix(addr: str) -> str:
    """libiptc gives ``10.0.0.0/255.255.255.0``; iptables-save prints ``10.0.0.0/24``."""
    ip, _, mask = addr.partition("/")
    if not mask:
        return f"{ip}/32"
    if "." in mask:
        bits = sum(bin(int(o)).count("1") for o in mask.split("."))
        return f"{ip}/{bits}"
    return addr


def _save_rule(rule) -> str:
    """A libiptc rule as ``iptables-save`` prints it after ``-A CHAIN``."""
    parts: list[str] = []
    for flag, value in (("-s", rule.src), ("-d", rule.dst)):
        if value and not value.startswith("0.0.0.0"):
            parts += [flag, _mask_to_prefix(value)]
    if rule.in_interface:
        parts += ["-i", rule.in_interface]
    if rule.out_interface:
        parts += ["-o", rule.out_interface]
    if rule.protocol and rule.protocol != "ip":
        parts += ["-p", rule.protocol]
    for m in rule.matches:
        parts += ["-m", m.name]
        for key, values in m.get_all_parameters().items():
            parts.append(f"--{key}")
            for v in values:
                parts.append('"' + v + '"' if m.name == "comment" else v)
    t = rule.target
    parts += ["-j", t.name]
    for key, values in t.get_all_parameters().items():
        parts.append(f"--{key}")
        parts += list(values)
    return " ".join(parts)


def read_table(table: str) -> str:
    """The current content of ``table`` in this process's namespace, as save text."""
    iptc = _iptc()
    tbl = _table(iptc, table)
    tbl.refresh()
    builtin = BUILTIN_CHAINS[table]
    chains = {c.name: c for c in tbl.chains}
    user = sorted(n for n in chains if n not in builtin)
    lines = [f"*{table}"]
    lines += [f":{c} {chains[c].get_policy().name if c in chains else 'ACCEPT'}" for c in builtin]
    lines += [f":{c} -" for c in user]
    for name in (*builtin, *user):
        if name in chains:
            lines += [f"-A {name} {_save_rule(r)}" for r in chains[name].rules]
    lines.append("COMMIT")
    return "\n".join(lines)


def write_table(spec: TableSpec) -> bool:
    """Make ``spec.table`` hold exactly ``spec`` (one atomic commit).

    Returns False when the table already matched and nothing was written.
    Raises whatever libiptc raises (``iptc.IPTCError``) when the kernel refuses
    a rule, e.g. for a match it does not have.
    """
    if read_table(spec.table) == spec.save_text():
        return False
    iptc = _iptc()
    tbl = _table(iptc, spec.table)
    tbl.autocommit = False
    try:
        tbl.refresh()
        for chain in list(tbl.chains):
            chain.flush()
        for chain in list(tbl.chains):
            if not tbl.builtin_chain(chain.name):
                tbl.delete_chain(chain.name)
        for name in spec.user_chains:
            tbl.create_chain(name)
        pol = {p.chain: p.policy for p in spec.policies}
        for name in BUILTIN_CHAINS[spec.table]:
            iptc.Chain(tbl, name).set_policy(pol.get(name, "ACCEPT"))
        for rule in spec.rules:
            iptc.Chain(tbl, rule.chain).append_rule(_to_iptc(iptc, rule))
        tbl.commit()
    finally:
        tbl.autocommit = True
    return True


def write_sysctls(pairs: tuple[tuple[str, str], ...]) -> int:
    """Write ``net.*`` sysctls of this process's namespace; returns how many were written.

    Raises FileNotFoundError naming the key when the kernel lacks it (e.g.
    ``net.ipv4.vs.*`` without IPVS).
    """
    for key, value in pairs:
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)
    return len(pairs)


def configure(sysctls: tuple[tuple[str, str], ...], tables: tuple[TableSpec, ...]) -> int:
    """Sysctls then tables, inside one namespace; returns the number of commits made."""
    write_sysctls(sysctls)
    return sum(1 for spec in tables if write_table(spec))


@dataclass(frozen=True)
class RuleCounter:
    """One rule (or a built-in chain's policy, ``index`` 0) and its packet/byte counters."""

    table: str
    chain: str
    index: int            # 1-based position in the chain; 0 for the policy
    text: str             # "-A CHAIN ..." as iptables-save prints it; "-P CHAIN DROP" for a policy
    target: str
    packets: int
    bytes: int


def read_counters(tables: tuple[str, ...] = ("mangle", "nat", "filter")) -> list[RuleCounter]:
    """Every rule's counters in this process's namespace (and built-in chain policies)."""
    iptc = _iptc()
    out: list[RuleCounter] = []
    for name in tables:
        tbl = _table(iptc, name)
        tbl.refresh()
        for chain in tbl.chains:
            if tbl.builtin_chain(chain.name):
                policy = chain.get_policy().name
                pk, by = chain.get_counters()
                out.append(RuleCounter(name, chain.name, 0, f"-P {chain.name} {policy}",
                                       policy, pk, by))
            for i, rule in enumerate(chain.rules, 1):
                pk, by = rule.get_counters()
                out.append(RuleCounter(name, chain.name, i, f"-A {chain.name} {_save_rule(rule)}",
                                       rule.target.name, pk, by))
    return out


def read_tables(tables: tuple[str, ...]) -> dict[str, str]:
    """Save text of several tables of this process's namespace."""
    return {t: read_table(t) for t in tables}
