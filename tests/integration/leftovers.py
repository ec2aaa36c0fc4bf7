"""What a lab could leave behind on the machine, read with the standard tools.

:func:`root_snapshot` is the root network namespace as ``ip``, ``iptables-*-save``
and ``sysctl`` print it; :func:`machine_snapshot` adds the processes, the files
netlab keeps (its state directory, the named namespaces) and the mounts. Two
snapshots are compared key by key with :func:`changed`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

STATE = Path(os.environ.get("NETLAB_STATE_DIR", "/run/netlab"))
VOLATILE_SYSCTLS = ("net.netfilter.nf_conntrack_count", "stable_secret", "net.core.netdev_rss_key")


def _run(*cmd: str) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.stdout + p.stderr


def root_snapshot() -> dict[str, str]:
    """The root namespace as the standard tools print it."""
    def no_counters(text: str) -> str:
        return "\n".join(ln.split(" [")[0] if ln.startswith(":") else ln
                         for ln in text.splitlines() if not ln.startswith("#"))

    sysctls = "\n".join(ln for ln in _run("sysctl", "-a").splitlines()
                        if ln.startswith("net.") and not any(v in ln for v in VOLATILE_SYSCTLS))
    return {
        "links": _run("ip", "-d", "link", "show"),
        "addresses": _run("ip", "addr", "show"),
        "routes": _run("ip", "route", "show", "table", "all"),
        "rules": _run("ip", "rule", "show"),
        "iptables-legacy": no_counters(_run("iptables-legacy-save")),
        "iptables-nft": no_counters(_run("iptables-nft-save")),
        "sysctl": sysctls,
    }


def processes() -> str:
    """Every user-space process but this one, as ``pid cmdline`` lines (kernel
    threads and zombies have no command line and are left out)."""
    lines = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline:
            text = cmdline.replace(b"\0", b" ").decode(errors="replace")
            lines.append(f"{entry.name} {text}")
    return "\n".join(sorted(lines, key=lambda ln: int(ln.split()[0])))


def machine_snapshot() -> dict[str, str]:
    """:func:`root_snapshot` and the processes, netlab's files, named namespaces and mounts."""
    def listing(path: Path) -> str:
        return "\n".join(sorted(str(p) for p in path.rglob("*"))) if path.is_dir() else ""

    mounts = sorted(line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines())
    return {**root_snapshot(), "processes": processes(), "files": listing(STATE),
            "netns": listing(Path("/run/netns")), "mounts": "\n".join(mounts)}


def changed(before: dict[str, str], after: dict[str, str]) -> dict[str, tuple[list, list]]:
    """The keys whose text differs, each with the lines only before and only after."""
    out = {}
    for key in before:
        if before[key] != after.get(key):
            old, new = before[key].splitlines(), after.get(key, "").splitlines()
            out[key] = ([ln for ln in old if ln not in new], [ln for ln in new if ln not in old])
    return out
