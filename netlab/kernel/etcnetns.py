"""``/etc/netns/<netns>/``: the files ``ip netns exec`` bind-mounts over ``/etc``.

This is how a task gets its own ``resolv.conf`` (nameserver 127.0.0.11) and
``hosts`` when a user runs a tool in it (``netlab exec``), as a container
gets the ones Docker writes. Only the files netlab names are written or
removed, then the directory if it is left empty; ``/etc/resolv.conf`` itself
is never touched.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from netlab.kernel.netns import path as netns_path
from netlab.plan.types import EtcFile

ETC_NETNS = Path("/etc/netns")
FILES = ("resolv.conf", "hosts")   # the only names netlab writes or removes


def _dir(netns: str, root: Path) -> Path:
    netns_path(netns)   # raises NetnsError for anything but a plain name
    return root / netns


def write(files: Iterable[EtcFile], root: Path = ETC_NETNS) -> int:
    """Write each file whose content differs (atomically, mode 0644); returns how many.

    Raises ValueError for a file name netlab does not own, NetnsError for a
    namespace name that is not plain, OSError when /etc/netns cannot be written.
    """
    done = 0
    for f in files:
        if f.name not in FILES:
            raise ValueError(f"refusing to write /etc/netns/{f.netns}/{f.name}")
        d = _dir(f.netns, root)
        target = d / f.name
        try:
            if target.read_text() == f.content:
                continue
        except OSError:
            pass
        d.mkdir(parents=True, exist_ok=True, mode=0o755)
        tmp = d / f".{f.name}.netlab-{os.getpid()}"
        tmp.write_text(f.content)
        tmp.chmod(0o644)
        os.replace(tmp, target)
        done += 1
    return done


def remove(netns: str, root: Path = ETC_NETNS) -> bool:
    """Remove netlab's files of ``netns`` and its directory if that leaves it empty.

    Returns True when something was removed. A file netlab did not write there
    (and so the directory) is left alone. Raises NetnsError for a name that is
    not plain.
    """
    d = _dir(netns, root)
    removed = False
    for name in FILES:
        try:
            (d / name).unlink()
            removed = True
        except FileNotFoundError:
            pass
    try:
        d.rmdir()
        removed = True
    except (FileNotFoundError, OSError):
        pass
    return removed


def read(netns: str, root: Path = ETC_NETNS) -> dict[str, str]:
    """netlab's files of ``netns`` as they are now: {name: content} (missing ones left out)."""
    out = {}
    for name in FILES:
        try:
            out[name] = (_dir(netns, root) / name).read_text()
        except OSError:
            pass
    return out
