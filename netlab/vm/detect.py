"""Read-only checks of the machine: does this kernel have IPVS, can qemu use KVM.

Nothing here loads a module, opens a VM or changes anything; every check only
reads files, so it is safe to call from the CLI, the scripts and unit tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Mapping
from typing import Literal

KvmMode = Literal["auto", "on", "off"]

#: Where Debian's kernels keep the IPVS core module inside /lib/modules/<ver>.
_IPVS_SUBDIR = Path("kernel/net/netfilter/ipvs")
_MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")


def has_module(modules_dir: Path, name: str) -> bool:
    """Say whether the module tree ``modules_dir`` (/lib/modules/<ver>) provides ``name``.

    A module counts when its ``.ko`` file (plain or compressed) is in the tree
    or when ``modules.builtin`` lists it as built in. The usual IPVS directory
    is looked at first; ``modules.dep`` and ``modules.builtin`` cover the rest
    without walking thousands of files. Never raises: an unreadable or
    missing tree is simply "no".
    """
    if not modules_dir.is_dir():
        return False
    if name.startswith("ip_vs"):
        for suffix in _MODULE_SUFFIXES:
            if (modules_dir / _IPVS_SUBDIR / f"{name}{suffix}").is_file():
                return True
    wanted = tuple(f"/{name}{suffix}" for suffix in _MODULE_SUFFIXES)
    for index in ("modules.dep", "modules.builtin"):
        try:
            text = (modules_dir / index).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            path = line.split(":", 1)[0].strip()
            if path.endswith(wanted) or path == f"{name}.ko":
                return True
    return False


def module_loading_allowed(proc_sys: Path = Path("/proc/sys")) -> bool:
    """Say whether the running kernel accepts new modules.

    True only when ``kernel/modules_disabled`` exists and reads 0. A kernel
    built without module support has no such file, so it counts as "no".
    Never raises.
    """
    try:
        return (proc_sys / "kernel/modules_disabled").read_text().strip() == "0"
    except OSError:
        return False


def host_has_ipvs(
    proc: Path = Path("/proc"),
    modules_root: Path = Path("/lib/modules"),
    release: str | None = None,
) -> bool:
    """Say whether the running kernel can do IPVS natively, without loading anything.

    True when ``/proc/net/ip_vs`` exists (IPVS is built in or already loaded),
    or when the running kernel's module tree has ``ip_vs`` and the kernel
    still accepts modules (so ``modprobe ip_vs`` would work). The arguments
    exist for tests; callers pass nothing. Never raises.
    """
    if (proc / "net/ip_vs").exists():
        return True
    release = release or os.uname().release
    return has_module(modules_root / release, "ip_vs") and module_loading_allowed(
        proc / "sys"
    )


@dataclass(frozen=True)
class KvmDecision:
    """Whether qemu should use KVM, and the words that explain why."""

    use_kvm: bool
    #: Short text for the boot line, e.g. ``emulation, no usable KVM``.
    reason: str


def cpu_has_virt_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Say whether the CPU advertises hardware virtualisation (vmx or svm). Never raises."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = line.partition(":")[2].split()
            if "vmx" in flags or "svm" in flags:
                return True
    return False


def kvm_device_openable(device: Path = Path("/dev/kvm")) -> bool:
    """Say whether ``device`` can be opened read-write (as qemu would). Never raises."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def decide_kvm(
    mode: KvmMode,
    environ: Mapping[str, str] | None = None,
    cpuinfo: Path = Path("/proc/cpuinfo"),
    device: Path = Path("/dev/kvm"),
) -> KvmDecision:
    """Decide between KVM and plain emulation for one VM boot.

    ``mode`` ``on``/``off`` (the ``--kvm`` option) wins. In ``auto``, the
    environment variable ``NETLAB_VM_KVM=1``/``0`` decides next; otherwise
    KVM is used only when the CPU shows vmx/svm *and* ``/dev/kvm`` opens. A
    nested, paravirtual ``/dev/kvm`` without those flags cannot boot a stock
    kernel (qemu aborts on MSR 0x10a or hangs), hence both checks.

    Raises ValueError for an unknown mode or a ``NETLAB_VM_KVM`` value other
    than 0/1 (the CLI turns these into BadInput).
    """
    environ = os.environ if environ is None else environ
    if mode == "on":
        return KvmDecision(True, "KVM, --kvm on")
    if mode == "off":
        return KvmDecision(False, "emulation, --kvm off")
    if mode != "auto":
        raise ValueError(f"kvm mode must be auto, on or off, not {mode!r}")
    override = environ.get("NETLAB_VM_KVM", "").strip()
    if override == "1":
        return KvmDecision(True, "KVM, NETLAB_VM_KVM=1")
    if override == "0":
        return KvmDecision(False, "emulation, NETLAB_VM_KVM=0")
    if override:
        raise ValueError(f"NETLAB_VM_KVM must be 0 or 1, not {override!r}")
    if cpu_has_virt_flags(cpuinfo) and kvm_device_openable(device):
        return KvmDecision(True, "KVM")
    return KvmDecision(False, "emulation, no usable KVM")
