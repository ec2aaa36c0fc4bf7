"""A cached view of the host's Python and checkout inside the guest.

virtme-ng shares the host's root with 9p and no caching, so every stat and
open in the guest is a round trip to qemu; under plain emulation a Python
start-up that imports pyroute2 then takes minutes. qemu is given a second,
read-only 9p export of ``/``; the guest mounts it with ``cache=loose`` and
bind-mounts the directories Python reads (the venv, the standard library, the
checkout) from it over the same paths. Measured on the 2-core test machine,
under load: ``python -c "import netlab.cli.main"`` 130 s without, 27 s with.

Only directories that sit on the plain read-only root in the guest are
covered, so nothing that was writable there (virtme's overlays, ``--rwdir``)
changes; the host does not change these directories while the VM runs.
"""

from __future__ import annotations

import shlex
import sys
import sysconfig
from pathlib import Path
from collections.abc import Iterable, Sequence

MOUNT_TAG = "netlab-hostfs"
GUEST_MOUNT = "/run/netlab-vm/hostfs"


def qemu_opts() -> str:
    """The ``--qemu-opts`` value for vng that adds the read-only export of ``/``."""
    return (
        "-fsdev local,id=netlabfs,path=/,security_model=none,readonly=on,multidevs=remap "
        f"-device virtio-9p-pci,fsdev=netlabfs,mount_tag={MOUNT_TAG}"
    )


def python_dirs() -> list[Path]:
    """The directories this Python reads its code from: its prefix (the venv) and stdlib."""
    paths = sysconfig.get_paths()
    found = [Path(sys.prefix), Path(paths["stdlib"]), Path(paths["platstdlib"])]
    return [p for p in found if p.is_absolute()]


def _inside(path: Path, other: Path) -> bool:
    """Say whether ``path`` is ``other`` or below it."""
    return path == other or other in path.parents


def choose_dirs(candidates: Iterable[Path], keep_out: Iterable[Path]) -> list[str]:
    """Pick the directories to cover, as absolute path strings, parents before children.

    Leaves out ``/`` and anything inside, or containing, a ``keep_out`` path
    (the writable shares), and a directory already covered by a chosen parent.
    """
    blocked = [p.resolve() for p in keep_out]
    chosen: list[Path] = []
    for path in sorted({c.resolve() for c in candidates}, key=lambda p: len(p.parts)):
        if path == Path("/") or any(_inside(path, b) or _inside(b, path) for b in blocked):
            continue
        if any(_inside(path, c) for c in chosen):
            continue
        chosen.append(path)
    return [str(p) for p in chosen]


def mount_lines(dirs: Sequence[str]) -> list[str]:
    """Shell lines for the guest script that mount the cached view (silently, best effort).

    A directory is covered only when ``findmnt`` says it lies on the guest's
    root mount, i.e. it is read-only 9p there anyway.
    """
    if not dirs:
        return []
    q = shlex.quote
    mount = q(GUEST_MOUNT)
    return [
        f"if mkdir -p {mount} && mount -t 9p -o ro,trans=virtio,version=9p2000.L,"
        f"cache=loose,msize=524288 {MOUNT_TAG} {mount} >/dev/null 2>&1; then",
        f"  for d in {' '.join(q(d) for d in dirs)}; do",
        '    [ -d "$d" ] && [ "$(findmnt -n -o TARGET --target "$d" 2>/dev/null)" = / ] '
        f'&& mount --bind {mount}"$d" "$d" >/dev/null 2>&1 || :',
        "  done",
        "fi",
    ]
