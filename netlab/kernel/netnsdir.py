"""The named network namespaces under /var/run/netns, and running a command in one.

This is what ``netlab exec`` needs of the kernel: whether a namespace's file is
there, and ``ip netns exec NAME CMD...`` in place of this process. It imports
the standard library only (no pyroute2), so ``exec`` starts fast;
:mod:`netlab.kernel.netns` builds on it and re-exports its names.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

from netlab.errors import MissingFeature, NetlabError

NETNS_DIR = "/var/run/netns"


class NetnsError(NetlabError):
    """A namespace is missing or code inside it failed."""


def path(name: str) -> str:
    """``/var/run/netns/<name>``, for a plain file name only.

    Every function of :mod:`netlab.kernel.netns` goes through this, so no name
    (say one read back from a tampered state file) can point anywhere else: an
    absolute path, ``..``, a ``/`` or a NUL raises NetnsError. pyroute2 would
    otherwise treat a name with a ``/`` as a path of its own.
    """
    if (not isinstance(name, str) or not name or name in (".", "..") or "/" in name
            or "\0" in name or len(name) > 255):
        raise NetnsError(f"refusing network namespace name {str(name)[:80]!r}: "
                         f"not a plain name under {NETNS_DIR}")
    return os.path.join(NETNS_DIR, name)


def exists(name: str) -> bool:
    """True when ``name`` names a network namespace: its file is a namespace's bind
    mount, not the empty file a run killed between making it and mounting onto it
    leaves (see :func:`leftover`). Raises NetnsError for a name that is not plain."""
    try:
        st = os.stat(path(name))
    except FileNotFoundError:
        return False
    return st.st_dev == os.stat("/proc/self/ns/net").st_dev     # on nsfs, as every namespace


def leftover(name: str) -> bool:
    """True when ``name``'s file is there but names no namespace: ``create`` was
    killed after making the mount point and before the bind mount (NetnsError for a
    name that is not plain)."""
    return os.path.lexists(path(name)) and not exists(name)


def exec_in(name: str, command: Sequence[str]) -> None:
    """Replace this process with ``ip netns exec NAME COMMAND...``; never returns.

    Raises NetnsError for a name that is not plain, MissingFeature (exit 3)
    when the ``ip`` command is missing, and OSError when it cannot be run.
    """
    ns = os.path.basename(path(name))
    ip = shutil.which("ip")
    if ip is None:
        raise MissingFeature("the ip command is missing (hint: apt-get install iproute2)")
    os.execv(ip, [ip, "netns", "exec", ns, *command])
