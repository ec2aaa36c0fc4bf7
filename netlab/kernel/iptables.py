"""iptables in one namespace, with the backend the machine's ``iptables`` uses.

Docker writes its rules with whatever ``iptables`` is on the machine:
iptables-nft on Debian 12 and Ubuntu 22.04+, iptables-legacy elsewhere. A
user who reads or changes the replica with their own ``iptables`` must find
the rules there, so netlab does the same (:mod:`netlab.kernel.xtables` picks
the backend). Writing, per backend:

- ``nft``: the plan's tables as ``iptables-save`` text fed to
  ``iptables-nft-restore``, one call per namespace, each table one atomic
  commit (as kube-proxy and Docker feed ``iptables-restore``);
- ``legacy``: python-iptables (libiptc), one atomic commit per table; in a
  namespace made just now (nothing to read or keep), ``iptables-legacy-restore
  -w`` as for nft (:func:`restore_fresh`), so several run side by side.

Reading, for both: the backend's ``iptables-*-save -c``, parsed into save
text and per-rule counters, so what netlab reads is what a user's
``iptables-save`` prints. The functions run *inside* the target namespace:
in a thread that entered it (:func:`netlab.kernel.netns.in_threads`; the
tools it starts are born there), or, for python-iptables, in a child made by
:func:`netlab.kernel.netns.run_in`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sysconfig
from dataclasses import dataclass

from netlab.kernel.xtables import Backend, find_tool, restore_tool, save_tool
from netlab.plan.render import USER_CHAIN, TableSpec, normalize_save, user_rules, with_user_rules
from netlab.plan.types import BUILTIN_CHAINS, Rule

TOOL_TIMEOUT = 120.0   # seconds; an emulated VM is slow, a hung tool is a bug


class IptablesError(RuntimeError):
    """The backend's tool refused or failed; the message carries its stderr."""


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


# -- reading ---------------------------------------------------------------

def _run(argv: list[str], stdin: str | None = None) -> str:
    exe = find_tool(argv[0])
    if exe is None:
        raise IptablesError(f"{argv[0]} is missing (hint: apt-get install iptables)")
    try:
        proc = subprocess.run([exe, *argv[1:]], input=stdin, capture_output=True, text=True,
                              timeout=TOOL_TIMEOUT, check=False)
    except FileNotFoundError as exc:
        raise IptablesError(f"{argv[0]} is missing (hint: apt-get install iptables)") from exc
    if proc.returncode != 0:
        raise IptablesError(f"{' '.join(argv[:2])} failed (exit {proc.returncode}): "
                            f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def save_output(backend: Backend, counters: bool = False) -> str:
    """What ``iptables-<backend>-save [-c]`` prints in this process's namespace."""
    return _run([save_tool(backend), *(["-c"] if counters else [])])


def split_tables(text: str) -> dict[str, str]:
    """Save text → {table: its block from ``*table`` to ``COMMIT``}, ``#`` lines dropped."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = out.setdefault(line[1:].strip(), [])
        if current is not None and line and not line.startswith("#"):
            current.append(line)
        if line == "COMMIT":
            current = None
    return {t: "\n".join(lines) for t, lines in out.items()}


def read_tables(backend: Backend, tables: tuple[str, ...]) -> dict[str, str]:
    """Save text (no counters) of each of ``tables`` in this namespace; "" for a table
    the backend does not hold."""
    have = split_tables(save_output(backend))
    return {t: normalize_save(have.get(t, "")) for t in tables}


_COUNTED = re.compile(r"^\[(\d+):(\d+)\] (-A (\S+) .*)$")
_POLICY = re.compile(r"^:(\S+) (\S+) \[(\d+):(\d+)\]$")


def parse_counters(text: str) -> list[RuleCounter]:
    """Rules and built-in policies with their counters, from ``iptables-save -c`` text."""
    out: list[RuleCounter] = []
    for table, block in split_tables(text).items():
        position: dict[str, int] = {}
        for line in block.splitlines():
            if m := _POLICY.match(line):
                chain, policy = m.group(1), m.group(2)
                if policy != "-":
                    out.append(RuleCounter(table, chain, 0, f"-P {chain} {policy}", policy,
                                           int(m.group(3)), int(m.group(4))))
            elif m := _COUNTED.match(line):
                chain = m.group(4)
                position[chain] = position.get(chain, 0) + 1
                words = m.group(3).split()
                target = words[words.index("-j") + 1] if "-j" in words else (
                    words[words.index("-g") + 1] if "-g" in words else "")
                out.append(RuleCounter(table, chain, position[chain], m.group(3), target,
                                       int(m.group(1)), int(m.group(2))))
    return out


def read_counters(backend: Backend) -> list[RuleCounter]:
    """Every rule's counters in this process's namespace (and built-in chain policies)."""
    return parse_counters(save_output(backend, counters=True))


class CounterRead:
    """The counters of several namespaces, read side by side.

    One ``nsenter --net=PATH iptables-<backend>-save -c`` per namespace is
    started at once (each exec is slow under emulation; two CPUs overlap
    them); :meth:`result` waits for all of them. Raises IptablesError when a
    tool is missing or fails; every process started is waited for.
    """

    def __init__(self, paths: dict[str, str], backend: Backend):
        nsenter, save = find_tool("nsenter"), find_tool(save_tool(backend))
        if nsenter is None or save is None:
            raise IptablesError(f"{'nsenter' if nsenter is None else save_tool(backend)} is missing "
                                "(hint: apt-get install util-linux iptables)")
        self._procs: dict[str, subprocess.Popen] = {}
        try:
            for name, path in paths.items():
                self._procs[name] = subprocess.Popen(
                    [nsenter, f"--net={path}", save, "-c"], stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        except OSError as exc:
            self._reap()
            raise IptablesError(f"cannot start {save_tool(backend)}: {exc}") from exc

    def _reap(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()

    def result(self) -> dict[str, list[RuleCounter]]:
        out: dict[str, list[RuleCounter]] = {}
        try:
            for name, proc in self._procs.items():
                stdout, stderr = proc.communicate(timeout=TOOL_TIMEOUT)
                if proc.returncode != 0:
                    raise IptablesError(f"iptables-save in {name} failed (exit {proc.returncode}): "
                                        f"{stderr.strip()}")
                out[name] = parse_counters(stdout)
        except subprocess.TimeoutExpired as exc:
            raise IptablesError(f"iptables-save took over {TOOL_TIMEOUT:.0f} s") from exc
        finally:
            self._reap()
        return out


class SaveRead:
    """The save text of several namespaces, read in the background, a few side by side.

    One ``iptables-<backend>-save`` per namespace, at most ``parallel`` at a
    time, each started by a pool thread that entered the namespace first (the
    tool is born there: no ``nsenter`` exec in between), started at once so
    the caller can read other things meanwhile; :meth:`result` waits for all
    of them. Raises IptablesError when the tool is missing.
    """

    def __init__(self, paths: dict[str, str], backend: Backend, parallel: int = 4):
        from concurrent.futures import ThreadPoolExecutor

        from netlab.kernel import nsenter
        save = find_tool(save_tool(backend))
        if save is None:
            raise IptablesError(f"{save_tool(backend)} is missing (hint: apt-get install iptables)")
        self._save, self._setns, self._enter = save, nsenter.libc_setns(), nsenter.enter
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="netlab-save")
        self._futures = {name: self._pool.submit(self._one, name, path)
                         for name, path in paths.items()}

    def _one(self, name: str, path: str) -> str:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise IptablesError(f"iptables-save in {name}: {exc.strerror}") from exc
        try:
            self._enter(fd, self._setns, name)
        except OSError as exc:
            raise IptablesError(f"iptables-save in {name}: {exc}") from exc
        finally:
            os.close(fd)
        try:
            proc = subprocess.run([self._save], capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                                  stdin=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise IptablesError(f"iptables-save in {name}: {exc}") from exc
        if proc.returncode != 0:
            raise IptablesError(f"iptables-save in {name} failed (exit {proc.returncode}): "
                                f"{proc.stderr.strip()}")
        return proc.stdout

    def result(self) -> dict[str, str | IptablesError]:
        """The save text of each namespace, or the error its tool gave."""
        out: dict[str, str | IptablesError] = {}
        for name, future in self._futures.items():
            try:
                out[name] = future.result()
            except IptablesError as err:
                out[name] = err
        self._pool.shutdown(wait=True)
        return out


# -- the user's own rules ---------------------------------------------------

#: The chain Docker leaves to its users: it creates it (``-j RETURN``) and
#: never flushes it, so rules a user put there survive dockerd restarts.
# -- writing ---------------------------------------------------------------

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


def _table(iptc, name: str):
    return iptc.Table({"filter": iptc.Table.FILTER, "nat": iptc.Table.NAT,
                       "mangle": iptc.Table.MANGLE}[name])


def _to_iptc(iptc, rule: Rule):
    """A planned rule as a python-iptables rule (a leading ``!`` negates, as libiptc reads it)."""
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


def _write_legacy(spec: TableSpec) -> None:
    """Replace ``spec.table`` with python-iptables, in one libiptc commit; the
    user's own DOCKER-USER rules are put back at the top of that chain."""
    preload()
    import iptc
    tbl = _table(iptc, spec.table)
    tbl.autocommit = False
    try:
        tbl.refresh()
        kept = []
        if spec.table == "filter" and USER_CHAIN in spec.user_chains and tbl.is_chain(USER_CHAIN):
            kept = [r for r in iptc.Chain(tbl, USER_CHAIN).rules
                    if not any(m.name == "comment" and (m.comment or "").startswith("netlab:")
                               for m in r.matches)]
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
        for rule in kept:
            iptc.Chain(tbl, USER_CHAIN).append_rule(rule)
        for rule in spec.rules:
            iptc.Chain(tbl, rule.chain).append_rule(_to_iptc(iptc, rule))
        tbl.commit()
    finally:
        tbl.autocommit = True


def write_tables(backend: Backend, specs: tuple[TableSpec, ...], fresh: bool = False) -> int:
    """Make each table of ``specs`` hold exactly its spec; returns the commits made.

    A table that already matches is not written; in a ``fresh`` namespace
    (just made, so holding nothing) the tables are not read first. Rules the
    user added to DOCKER-USER are kept, as Docker keeps them. Raises
    IptablesError (nft) or ``iptc.IPTCError`` (legacy) when the kernel
    refuses a rule, e.g. for a match it does not have.
    """
    if not specs:
        return 0
    want = {s.table: s.save_text() for s in specs}
    if not fresh:
        have = read_tables(backend, tuple(want))
        want = {t: with_user_rules(text, user_rules(have[t])) for t, text in want.items()}
        specs = tuple(s for s in specs if have[s.table] != want[s.table])
    if not specs:
        return 0
    if backend == "nft":
        _run([restore_tool(backend)], stdin="\n".join(want[s.table] for s in specs) + "\n")
    else:
        for spec in specs:
            _write_legacy(spec)
    return len(specs)


def restore_fresh(backend: Backend, sysctls: tuple[tuple[str, str], ...],
                  specs: tuple[TableSpec, ...]) -> int:
    """Sysctls, then every table of ``specs`` in one ``iptables-<backend>-restore``, in a
    namespace made just now (so holding no table to read first or keep rules of).

    Runs in a thread that entered the namespace: /proc/sys and the tool it
    starts are that namespace's. The restore tool is what Docker and
    kube-proxy feed; one call commits each table atomically, and, unlike a
    forked Python child per namespace, several run side by side. Returns the
    tables committed; raises IptablesError when the tool refuses.
    """
    write_sysctls(sysctls)
    if not specs:
        return 0
    argv = [restore_tool(backend)] + (["-w"] if backend == "legacy" else [])
    _run(argv, stdin="\n".join(s.save_text() for s in specs) + "\n")
    return len(specs)


def write_sysctls(pairs: tuple[tuple[str, str], ...]) -> int:
    """Write ``net.*`` sysctls of this process's namespace; returns how many were written.

    Keys under ``net.ipv6`` are skipped where the kernel has no IPv6 at all
    (what they would switch off is absent). Raises FileNotFoundError naming
    the key when the kernel lacks it (e.g. ``net.ipv4.vs.*`` without IPVS).
    """
    written = 0
    for key, value in pairs:
        if key.startswith("net.ipv6.") and not os.path.isdir("/proc/sys/net/ipv6"):
            continue
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)
        written += 1
    return written


def configure(backend: Backend, sysctls: tuple[tuple[str, str], ...],
              tables: tuple[TableSpec, ...], fresh: bool = False) -> int:
    """Sysctls then tables, inside one namespace (``fresh``: just made, see
    :func:`write_tables`); returns the number of commits made."""
    write_sysctls(sysctls)
    return write_tables(backend, tables, fresh)
