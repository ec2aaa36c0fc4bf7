"""What the running kernel offers, checked before anything is changed.

A missing feature raises :class:`netlab.errors.MissingFeature` (exit 3) with
what to do, naming ``netlab vm``. The checks read ``/proc`` and ``/sys`` and
the module tree; they create nothing.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from netlab.errors import MissingFeature

VM_HINT = ("run it inside a VM whose kernel has it: "
           "netlab vm -- netlab up SCENARIO (scripts/demo.sh does this by itself)")


def _module_available(name: str) -> bool:
    """True when ``name`` is built in, loaded, or loadable from the module tree."""
    if Path(f"/sys/module/{name}").exists():
        return True
    try:
        if Path("/proc/sys/kernel/modules_disabled").read_text().strip() == "1":
            return False
    except OSError:
        return False
    moddir = Path("/lib/modules") / platform.release()
    dep = moddir / "modules.dep"
    if not dep.exists():
        return False
    needle = f"/{name}.ko"
    with dep.open() as f:
        return any(needle in line.split(":", 1)[0] for line in f)


def has_ipvs() -> bool:
    return Path("/proc/net/ip_vs").exists() or _module_available("ip_vs")


def has_xt_match(name: str) -> bool:
    try:
        if name in Path("/proc/net/ip_tables_matches").read_text().split():
            return True
    except OSError:
        pass
    return _module_available(f"xt_{name}")


def require_lab_features(backend: str) -> None:
    """Raise MissingFeature naming the first thing the kernel lacks for a lab
    whose rules are in ``backend`` (``nft`` or ``legacy``)."""
    if os.geteuid() != 0:
        raise MissingFeature("netlab must run as root to create network namespaces "
                             "(hint: sudo netlab …)")
    if not has_ipvs():
        raise MissingFeature(f"this kernel ({platform.release()}) has no IPVS (ip_vs); {VM_HINT}")
    if not (Path("/sys/module/vxlan").exists() or _module_available("vxlan")):
        raise MissingFeature(f"this kernel ({platform.release()}) has no VXLAN; {VM_HINT}")
    if backend == "legacy" and not (Path("/proc/net/ip_tables_names").exists()
                                    or _module_available("ip_tables")):
        raise MissingFeature("this kernel has no legacy iptables (ip_tables), which "
                             f"python-iptables needs (hint: --iptables nft); {VM_HINT}")
    if backend == "nft" and not (Path("/sys/module/nf_tables").exists()
                                 or _module_available("nf_tables")):
        raise MissingFeature("this kernel has no nf_tables, which iptables-nft needs "
                             f"(hint: --iptables legacy); {VM_HINT}")
    for match in ("ipvs", "addrtype", "conntrack", "state", "comment"):
        if not has_xt_match(match):
            raise MissingFeature(f"this kernel lacks the iptables match '{match}' "
                                 f"(xt_{match}); {VM_HINT}")
    require_bridge_netfilter()


def require_bridge_netfilter() -> None:
    """Raise MissingFeature unless ``net.bridge.bridge-nf-call-iptables`` exists.

    Docker's bridge driver loads ``br_netfilter`` so that enable_icc=false
    can drop bridged traffic. Loading it makes bridged frames in every
    namespace, the machine's own included, pass through iptables, so netlab
    never loads it: ``netlab vm`` loads it at boot, as dockerd would, and on
    a machine of the user's the user decides.
    """
    if Path("/proc/sys/net/bridge").exists():
        return
    raise MissingFeature(
        "br_netfilter is not loaded, so bridged traffic would skip iptables, as it does not "
        "on a Docker node (hint: modprobe br_netfilter, as dockerd does; it affects every "
        f"bridge on this machine; or {VM_HINT})")
