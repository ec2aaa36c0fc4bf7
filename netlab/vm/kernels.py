"""Find a kernel image that the VM can boot and that has IPVS as a module."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from netlab.errors import BadInput, MissingFeature
from netlab.vm.detect import has_module

_INSTALL_HINT = (
    "install Debian's kernel, which has IPVS as a module: "
    "`apt-get install linux-image-amd64` (or run `sudo bash scripts/setup.sh`)"
)


@dataclass(frozen=True)
class Kernel:
    """A bootable kernel image and the release its modules are filed under."""

    path: Path
    version: str


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Order kernel releases naturally: 6.1.0-56 after 6.1.0-9, numbers before words."""
    parts = re.findall(r"\d+|[A-Za-z]+", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def find_kernel(
    boot_dir: Path = Path("/boot"), modules_root: Path = Path("/lib/modules")
) -> Kernel:
    """Pick the newest ``boot_dir/vmlinuz-<ver>`` whose ``modules_root/<ver>`` has ``ip_vs``.

    The VM boots that image and loads IPVS from the matching module tree
    (which the guest sees, since the host filesystem is shared).

    Raises MissingFeature (exit 3) with an install hint when there is none.
    """
    candidates: list[Kernel] = []
    for image in boot_dir.glob("vmlinuz-*"):
        version = image.name.removeprefix("vmlinuz-")
        if image.is_file() and has_module(modules_root / version, "ip_vs"):
            candidates.append(Kernel(image, version))
    if not candidates:
        raise MissingFeature(
            f"no kernel in {boot_dir} has IPVS modules in {modules_root}; {_INSTALL_HINT}"
        )
    return max(candidates, key=lambda k: _version_key(k.version))


def kernel_from_path(
    image: Path, modules_root: Path = Path("/lib/modules")
) -> Kernel:
    """Describe a kernel image the user named with ``--kernel``.

    The release is read from a ``vmlinuz-<ver>`` file name; other names keep
    the file name as their label (virtme-ng then finds modules on its own).

    Raises BadInput (exit 2) when the file does not exist, and
    MissingFeature (exit 3) when its module tree lacks ``ip_vs``.
    """
    if not image.is_file():
        raise BadInput(f"--kernel {image}: no such file")
    if not image.name.startswith("vmlinuz-"):
        return Kernel(image, image.name)
    version = image.name.removeprefix("vmlinuz-")
    if not has_module(modules_root / version, "ip_vs"):
        raise MissingFeature(
            f"--kernel {image}: {modules_root / version} has no ip_vs module; {_INSTALL_HINT}"
        )
    return Kernel(image, version)
