"""Run a command inside a throwaway VM whose kernel has IPVS (``netlab vm``)."""

from netlab.vm.detect import host_has_ipvs
from netlab.vm.kernels import Kernel, find_kernel
from netlab.vm.runner import VmFailed, VmSpec, VmTimeout, run_in_vm

__all__ = [
    "Kernel",
    "VmFailed",
    "VmSpec",
    "VmTimeout",
    "find_kernel",
    "host_has_ipvs",
    "run_in_vm",
]
