"""Which iptables backend a lab uses: the one the machine's ``iptables`` command uses.

Docker programs its rules through whatever ``iptables`` is installed, so on
Debian 12 and Ubuntu 22.04+ (iptables-nft) they live in nf_tables, and on
older systems in the legacy xtables tables. netlab does the same so that a
user's own ``iptables -t mangle -S`` inside a namespace shows the replica.

The choice, most specific first: ``--iptables`` on ``up``, the
``NETLAB_IPTABLES`` environment variable, the scenario's ``iptables:`` key,
then ``auto`` (ask ``iptables -V``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Literal, TypeGuard, get_args

from netlab.errors import BadInput, MissingFeature

Backend = Literal["nft", "legacy"]
BACKENDS: tuple[Backend, ...] = get_args(Backend)
CHOICES: tuple[str, ...] = ("auto", *BACKENDS)
ENV = "NETLAB_IPTABLES"

DESCRIPTION = {
    "nft": "nft (iptables-nft: rules written with iptables-nft-restore)",
    "legacy": "legacy (iptables-legacy: rules written with python-iptables/libiptc)",
}


def save_tool(backend: Backend) -> str:
    return f"iptables-{backend}-save"


def restore_tool(backend: Backend) -> str:
    return f"iptables-{backend}-restore"


def find_tool(name: str) -> str | None:
    """The path of ``name`` on PATH or in the sbin directories (sudo may drop them)."""
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None)


def parse_version(text: str) -> Backend | None:
    """``iptables v1.8.9 (nf_tables)`` → nft, ``(legacy)`` → legacy; None when unknown.

    iptables before 1.8 prints no backend and is legacy.
    """
    m = re.search(r"\((nf_tables|legacy)\)", text)
    if m:
        return "nft" if m.group(1) == "nf_tables" else "legacy"
    if re.match(r"iptables v1\.[0-7]\.", text.strip()):
        return "legacy"
    return None


def is_backend(value: object) -> TypeGuard[Backend]:
    """True for a backend's name ("nft" or "legacy")."""
    return value in BACKENDS


def detect() -> Backend:
    """The backend of the machine's ``iptables`` command.

    Raises MissingFeature (exit 3) when there is no ``iptables`` or it does
    not say which backend it is.
    """
    exe = find_tool("iptables")
    if exe is None:
        raise MissingFeature("the iptables command is missing (hint: apt-get install iptables, "
                             "or choose a backend: netlab up --iptables nft|legacy)")
    proc = subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=30, check=False)
    found = parse_version(proc.stdout + proc.stderr)
    if found is None:
        raise MissingFeature(f"cannot tell which backend {exe} uses ({proc.stdout.strip()!r}); "
                             "choose one: netlab up --iptables nft|legacy")
    return found


def choose(flag: str | None, scenario: str | None = None) -> Backend:
    """The backend for a lab: ``flag``, else $NETLAB_IPTABLES, else ``scenario``, else auto.

    Raises BadInput (exit 2) for an unknown value in the environment, and
    MissingFeature (exit 3) when the chosen backend's tools are missing.
    """
    for value, where in ((flag, "--iptables"), (os.environ.get(ENV) or None, ENV),
                         (scenario, "iptables")):
        if value is None:
            continue
        if value == "auto":
            backend = detect()
        elif is_backend(value):
            backend = value
        else:
            raise BadInput(f"{where}: {value!r} is not an iptables backend "
                           f"(hint: one of {', '.join(CHOICES)})")
        break
    else:
        backend = detect()
    for tool in (save_tool(backend), restore_tool(backend)):
        if find_tool(tool) is None:
            raise MissingFeature(f"{tool} is missing for the {backend} backend "
                                 "(hint: apt-get install iptables)")
    return backend
