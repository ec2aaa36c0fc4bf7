"""Run a command as root inside a throwaway VM whose kernel has IPVS.

virtme-ng (``vng``) boots Debian's kernel under qemu with the host filesystem
shared read-only, so the checkout and its venv are at the same paths in the
guest. A private temporary directory is shared read-write: it holds the script
the guest runs and the file the guest writes the command's exit status to. The
VM powers off when the command ends; this module returns that status.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping, Sequence

from netlab.errors import BadInput, MissingFeature, NetlabError
from netlab.vm import hostcache
from netlab.vm.detect import KvmDecision, KvmMode, decide_kvm, kvm_device_openable
from netlab.vm.guest import guest_env, guest_script
from netlab.vm.kernels import Kernel, find_kernel, kernel_from_path
from netlab.vm.process import GroupTimeout, run_group

QEMU_BINARY = "qemu-system-x86_64"
_SETUP_HINT = "run `sudo bash scripts/setup.sh` to install it"
_MEMORY = re.compile(r"[1-9][0-9]*[KMGTkmgt]?")


class VmTimeout(NetlabError):
    """The command was still running in the VM at the time limit; the VM was killed (exit 1)."""


class VmFailed(NetlabError):
    """The VM stopped before the command finished: kernel panic, out of memory, qemu error (exit 1)."""


@dataclass(frozen=True)
class VmSpec:
    """How to boot the VM. ``kernel=None`` means :func:`find_kernel`."""

    kernel: Path | None = None
    memory: str = "4G"
    cpus: int = 2
    kvm: KvmMode = "auto"
    timeout: float = 5400.0
    #: Host directories the guest may write to (the rest of the host is read-only there).
    rw_dirs: tuple[Path, ...] = field(default_factory=tuple)
    #: Serve Python's and the checkout's files from a cached 9p view (see hostcache).
    host_cache: bool = True

    def check(self) -> None:
        """Raise BadInput (exit 2) naming the first field that is out of range."""
        if not _MEMORY.fullmatch(self.memory):
            raise BadInput(f"--memory {self.memory!r}: give a size such as 4G or 2048M")
        if self.cpus < 1:
            raise BadInput(f"--cpus {self.cpus}: must be at least 1")
        if self.kvm not in ("auto", "on", "off"):
            raise BadInput(f"--kvm {self.kvm!r}: must be auto, on or off")
        if not self.timeout > 0:
            raise BadInput(f"--timeout {self.timeout:g}: must be more than 0 seconds")
        for directory in self.rw_dirs:
            if not directory.is_dir():
                raise BadInput(f"--rwdir {directory}: no such directory")


@dataclass(frozen=True)
class VmLaunch:
    """Everything resolved for one boot: the tools, the kernel and the KVM choice."""

    vng: Path
    kernel: Kernel
    kvm: KvmDecision
    spec: VmSpec

    def describe(self) -> str:
        """The one line printed before booting."""
        return (
            f"netlab vm: booting {self.kernel.version} ({self.kvm.reason}), "
            f"{self.spec.cpus} CPUs, {self.spec.memory} …"
        )


def find_vng(environ: Mapping[str, str] | None = None) -> Path:
    """Locate virtme-ng's ``vng``: next to the running Python (its venv) first, then PATH.

    Raises MissingFeature (exit 3) with a hint to run scripts/setup.sh.
    """
    environ = os.environ if environ is None else environ
    beside = Path(sys.executable).parent / "vng"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("vng", path=environ.get("PATH", os.defpath))
    if found:
        return Path(found)
    raise MissingFeature(f"virtme-ng (`vng`) is not installed; {_SETUP_HINT}")


def find_qemu(environ: Mapping[str, str] | None = None) -> Path:
    """Locate ``qemu-system-x86_64`` on PATH, as vng will.

    Raises MissingFeature (exit 3) with a hint to run scripts/setup.sh.
    """
    environ = os.environ if environ is None else environ
    found = shutil.which(QEMU_BINARY, path=environ.get("PATH", os.defpath))
    if not found:
        raise MissingFeature(f"qemu (`{QEMU_BINARY}`) is not installed; {_SETUP_HINT}")
    return Path(found)


def prepare_vm(spec: VmSpec, environ: Mapping[str, str] | None = None) -> VmLaunch:
    """Check the spec and resolve vng, qemu, the kernel and KVM for one boot.

    Raises BadInput for a bad spec or ``NETLAB_VM_KVM`` value, and
    MissingFeature when vng, qemu, a kernel with IPVS, or (with ``--kvm on``)
    ``/dev/kvm`` is missing.
    """
    environ = os.environ if environ is None else environ
    spec.check()
    vng = find_vng(environ)
    find_qemu(environ)
    kernel = find_kernel() if spec.kernel is None else kernel_from_path(spec.kernel)
    try:
        kvm = decide_kvm(spec.kvm, environ)
    except ValueError as err:
        raise BadInput(str(err)) from err
    if kvm.use_kvm and not kvm_device_openable():
        raise MissingFeature("KVM was asked for but /dev/kvm cannot be opened; use --kvm off")
    return VmLaunch(vng=vng, kernel=kernel, kvm=kvm, spec=spec)


def vng_argv(launch: VmLaunch, script: Path, shared_dir: Path) -> list[str]:
    """Build vng's argv: boot the kernel, share ``shared_dir`` and rw_dirs writable, run ``script``."""
    spec = launch.spec
    argv = [
        str(launch.vng),
        "--run", str(launch.kernel.path),
        "--user", "root",
        "--cpus", str(spec.cpus),
        "--memory", spec.memory,
        "--rwdir", str(shared_dir),
        # virtiofsd is tried first otherwise; Debian 12's (qemu's C one) takes
        # other options, so vng waits 3 s for it and falls back to 9p anyway.
        "--force-9p",
    ]
    for directory in spec.rw_dirs:
        argv += ["--rwdir", str(directory.resolve())]
    if not launch.kvm.use_kvm:
        argv.append("--disable-kvm")
    argv += ["--exec", f"/bin/sh {shlex.quote(str(script))}"]
    if spec.host_cache:
        # One "=" argument: vng's parser would take a leading "-" for an option.
        # vng wants --qemu-opts last.
        argv.append(f"--qemu-opts={hostcache.qemu_opts()}")
    return argv


def vng_env(environ: Mapping[str, str], vng: Path, shared_dir: Path) -> dict[str, str]:
    """Environment for vng on the host.

    vng runs its helpers (``virtme-run``) by name, so its own bin directory
    goes first on PATH; TMPDIR points into ``shared_dir`` so the temporary
    files vng makes are removed with it even when vng is killed.
    """
    path = os.pathsep.join(p for p in (str(vng.parent), environ.get("PATH", "")) if p)
    return dict(environ, PATH=path, TMPDIR=str(shared_dir))


def _read_status(path: Path) -> int | None:
    """Read the exit status the guest wrote, or None when it wrote none."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _run_here(argv: Sequence[str], cwd: str) -> int:
    """Run ``argv`` directly, as the shell would: we are already inside a netlab VM.

    Returns its status (127 when it is not found, 128+N when killed by signal N).
    Raises OSError when it exists but cannot be started.
    """
    print("netlab vm: already inside a netlab VM; running the command directly", file=sys.stderr)
    try:
        code = subprocess.run(list(argv), cwd=cwd, check=False).returncode
    except FileNotFoundError:
        print(f"netlab vm: {argv[0]}: command not found", file=sys.stderr)
        return 127
    return 128 - code if code < 0 else code


def run_in_vm(
    argv: Sequence[str], spec: VmSpec, cwd: str, *, announce: bool = True
) -> int:
    """Boot a throwaway VM, run ``argv`` as root in ``cwd`` there, and return its exit status.

    The guest first loads the IPVS, netfilter, VXLAN, veth and bridge modules
    (quietly, best effort), sees the host PATH with this venv's bin first and
    ``NETLAB_IN_VM=1``. Its stdout and stderr are relayed to ours. Nothing is
    left running and the temporary directory is removed, whatever happens.
    Inside a netlab VM already (``NETLAB_IN_VM=1``) the command runs directly.

    Raises BadInput (empty argv, missing cwd, bad spec), MissingFeature (no
    vng, qemu or kernel with IPVS), VmTimeout (past ``spec.timeout``), VmFailed
    (the VM stopped before the command finished), and lets KeyboardInterrupt
    and process.Terminated through after cleaning up.
    """
    if not argv:
        raise BadInput("give the command to run in the VM after `--`")
    cwd = os.path.abspath(cwd)
    if not os.path.isdir(cwd):
        raise BadInput(f"{cwd}: no such directory")
    if os.environ.get("NETLAB_IN_VM") == "1":
        return _run_here(argv, cwd)
    launch = prepare_vm(spec)
    if announce:
        print(launch.describe(), file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="netlab-vm-") as tmp:
        shared = Path(tmp)
        status_file = shared / "status"
        script = shared / "run.sh"
        venv_bin = Path(sys.executable).parent
        prelude: list[str] = []
        if spec.host_cache:
            dirs = hostcache.choose_dirs(
                [*hostcache.python_dirs(), Path(cwd)], [shared, *spec.rw_dirs]
            )
            prelude = hostcache.mount_lines(dirs)
        script.write_text(
            guest_script(
                argv, cwd, guest_env(os.environ, venv_bin), status_file, prelude=prelude
            ),
            encoding="utf-8",
            errors="surrogateescape",
        )
        host_env = vng_env(os.environ, launch.vng, shared)
        try:
            result = run_group(vng_argv(launch, script, shared), host_env, spec.timeout)
        except GroupTimeout as err:
            raise VmTimeout(
                f"the command was still running in the VM after {spec.timeout:g} s; "
                "the VM was stopped (raise --timeout if it needs longer)"
            ) from err
        except OSError as err:
            raise MissingFeature(f"cannot start {launch.vng}: {err}; {_SETUP_HINT}") from err
        status = _read_status(status_file)
    if status is None:
        raise VmFailed(
            f"the VM stopped before the command finished (vng exit {result.returncode}): "
            "a kernel panic, too little --memory, or a qemu error printed above"
        )
    return status
