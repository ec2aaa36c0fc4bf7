"""What runs inside the guest: its environment and the one-shot shell script.

The host writes the script into a private temporary directory that the guest
mounts read-write; the guest runs it with ``/bin/sh``, and it leaves the
command's exit status in a file next to itself, so the host can tell "the
command exited N" from "the VM died before the command finished".
"""

from __future__ import annotations

import shlex
from pathlib import Path
from collections.abc import Mapping, Sequence

#: Modules loaded (best effort, silently) before the command runs: IPVS and
#: the netfilter (both iptables backends), VXLAN, veth and bridge pieces the
#: routing mesh uses, and br_netfilter, which dockerd loads on a Docker host.
GUEST_MODULES: tuple[str, ...] = (
    "ip_vs", "ip_vs_rr", "xt_ipvs", "vxlan", "veth", "bridge", "br_netfilter",
    "iptable_nat", "iptable_mangle", "iptable_filter", "nf_tables", "nft_compat",
    "nft_chain_nat", "xt_comment", "xt_conntrack", "xt_state", "xt_addrtype", "xt_mark",
    "xt_REDIRECT", "xt_MASQUERADE", "nf_conntrack_netlink",
)

#: Host variables handed to the guest as they are (when set).
PASSTHROUGH_ENV: tuple[str, ...] = (
    "TERM", "LANG", "LC_ALL", "LC_CTYPE", "PYTHONPATH", "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE", "NO_COLOR", "FORCE_COLOR", "CI",
)

#: Directories the guest PATH always ends with, so modprobe, ip, ipvsadm and
#: iptables resolve even when the host PATH was a user's (no sbin).
_SYSTEM_PATH: tuple[str, ...] = (
    "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin",
)


def guest_path(host_path: str, venv_bin: Path | None) -> str:
    """Build the guest PATH: the venv's bin first, then the host PATH, then the system dirs.

    The venv comes first so ``python`` and ``netlab`` in the guest are the
    ones that started ``netlab vm``. Duplicates and empty entries are dropped.
    """
    entries: list[str] = []
    if venv_bin is not None:
        entries.append(str(venv_bin))
    entries.extend(host_path.split(":"))
    entries.extend(_SYSTEM_PATH)
    seen: set[str] = set()
    result: list[str] = []
    for entry in entries:
        if entry and entry not in seen:
            seen.add(entry)
            result.append(entry)
    return ":".join(result)


def guest_env(host_env: Mapping[str, str], venv_bin: Path | None) -> dict[str, str]:
    """Choose the variables the guest command sees.

    PATH (see :func:`guest_path`), ``NETLAB_IN_VM=1``, every ``NETLAB_*``
    variable of the host, and the few in :data:`PASSTHROUGH_ENV`. Everything
    else starts fresh in the guest (HOME is /root there).
    """
    env = {k: v for k, v in host_env.items() if k in PASSTHROUGH_ENV or k.startswith("NETLAB_")}
    env["PATH"] = guest_path(host_env.get("PATH", ""), venv_bin)
    env["NETLAB_IN_VM"] = "1"
    return env


def command_line(argv: Sequence[str]) -> str:
    """Quote ``argv`` as one shell command line that runs exactly that argv.

    Each word is quoted with :func:`shlex.join`'s rules, and the first word
    is always put in single quotes as well, so a program named like an
    assignment (``A=1``) or a keyword (``if``) is still run as a program.

    Raises ValueError for an empty argv.
    """
    if not argv:
        raise ValueError("argv must name a command")
    first = "'" + argv[0].replace("'", "'\"'\"'") + "'"
    return " ".join([first, shlex.join(argv[1:])]).rstrip()


def guest_script(
    argv: Sequence[str],
    cwd: str,
    env: Mapping[str, str],
    status_file: Path,
    modules: Sequence[str] = GUEST_MODULES,
    prelude: Sequence[str] = (),
) -> str:
    """Write the ``/bin/sh`` script the guest runs: env, modules, ``prelude``, cd, the command.

    The script exits with the command's status and also writes it to
    ``status_file`` (a path the guest can write). ``prelude`` lines (such as
    the cached view's mounts) run before the ``cd``. Raises ValueError for an
    empty argv.
    """
    q = shlex.quote
    status = q(str(status_file))
    lines = [
        "#!/bin/sh",
        "# Written by `netlab vm`: runs once in the guest, which then powers off.",
    ]
    lines += [f"export {name}={q(value)}" for name, value in sorted(env.items())]
    if modules:
        lines.append(
            f"for m in {' '.join(q(m) for m in modules)}; do "
            'modprobe -q "$m" >/dev/null 2>&1 || :; done'
        )
    lines += list(prelude)
    lines += [
        f"cd {q(cwd)} || {{ echo {q(f'netlab vm: cannot enter {cwd} in the guest')} >&2;"
        f" echo 1 > {status}; exit 1; }}",
        command_line(argv),
        "status=$?",
        f'echo "$status" > {status}',
        'exit "$status"',
        "",
    ]
    return "\n".join(lines)
