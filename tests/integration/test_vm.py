"""``netlab vm`` for real.

On a host (NETLAB_IN_VM unset) these boot a throwaway VM (about 30 s under
plain emulation) and check the contract: the guest's exit status comes back
exactly, its output passes through, its kernel has IPVS, and no qemu is left
afterwards, even when the time limit kills it.

Inside the VM (NETLAB_IN_VM=1, as when scripts/test.sh runs the integration
tests there) booting again would be a VM in a VM; the test there checks the
promise the VM makes instead: IPVS is usable.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.leftovers import processes

REPO = Path(__file__).resolve().parents[2]
IN_VM = os.environ.get("NETLAB_IN_VM") == "1"


def _processes_mentioning(marker: str) -> list[str]:
    """Command lines of live processes that mention ``marker`` (qemu and vng name their temp dir)."""
    return [line.split(" ", 1)[1] for line in processes().splitlines() if marker in line]


def _netlab_vm_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "netlab", "vm", *args]


def _env(tmpdir: Path) -> dict[str, str]:
    """The caller's environment, with the VM's temporary files put under ``tmpdir``."""
    env = dict(os.environ, TMPDIR=str(tmpdir))
    env.pop("NETLAB_IN_VM", None)
    return env


if IN_VM:

    def test_ipvs_is_usable_inside_the_vm():
        out = subprocess.run(["ipvsadm", "-Ln"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "IP Virtual Server" in out.stdout
        assert Path("/proc/net/ip_vs").exists()

else:

    @dataclass(frozen=True)
    class Boot:
        proc: subprocess.CompletedProcess[str]
        tmpdir: Path
        seconds: float

    @pytest.fixture(scope="module")
    def boot(tmp_path_factory) -> Boot:
        """One real boot shared by the checks below (boots are slow under emulation)."""
        tmpdir = tmp_path_factory.mktemp("netlab-vm")
        script = (
            "echo guest-stdout-marker; echo guest-stderr-marker >&2; "
            "test -e /proc/net/ip_vs && echo guest-has-ipvs; "
            'echo "guest-cwd=$PWD in-vm=$NETLAB_IN_VM"; exit 7'
        )
        start = time.monotonic()
        proc = subprocess.run(
            _netlab_vm_argv("--", "sh", "-c", script),
            capture_output=True, text=True, cwd=REPO, env=_env(tmpdir), timeout=900,
        )
        return Boot(proc, tmpdir, time.monotonic() - start)

    def test_exit_status_comes_back_exactly(boot):
        assert boot.proc.returncode == 7, boot.proc.stderr

    def test_output_passes_through(boot):
        assert "guest-stdout-marker" in boot.proc.stdout
        assert "guest-stderr-marker" in boot.proc.stderr
        assert f"guest-cwd={REPO} in-vm=1" in boot.proc.stdout
        assert "netlab vm: booting " in boot.proc.stderr

    def test_guest_kernel_has_ipvs(boot):
        assert "guest-has-ipvs" in boot.proc.stdout, boot.proc.stdout

    def test_nothing_left_behind(boot):
        assert _processes_mentioning(str(boot.tmpdir)) == []
        assert list(boot.tmpdir.iterdir()) == []  # the VM's temp dir (and vng's) are gone

    def test_timeout_stops_the_vm_and_cleans_up(tmp_path):
        proc = subprocess.Popen(
            _netlab_vm_argv("--timeout", "20", "--", "sleep", "600"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=REPO, env=_env(tmp_path),
        )
        saw_qemu = False
        deadline = time.monotonic() + 300
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("netlab vm --timeout 20 was still running after 300 s")
            saw_qemu = saw_qemu or any(
                "qemu-system" in c for c in _processes_mentioning(str(tmp_path))
            )
            time.sleep(0.5)
        out, err = proc.communicate(timeout=120)
        assert saw_qemu, "the VM never started, so the cleanup was not exercised"
        assert proc.returncode == 1, err
        assert "still running in the VM after 20 s" in err
        assert _processes_mentioning(str(tmp_path)) == []
        assert list(tmp_path.iterdir()) == []
