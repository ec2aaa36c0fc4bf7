"""netlab vm without booting anything: kernel finding, KVM choice, quoting, cleanup, CLI errors."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from netlab.cli.main import cli
from netlab.errors import BadInput, MissingFeature
from netlab.vm import guest, hostcache, process, runner
from netlab.vm.detect import KvmDecision, decide_kvm, has_module, host_has_ipvs
from netlab.vm.kernels import Kernel, find_kernel, kernel_from_path

IPVS_DIR = "kernel/net/netfilter/ipvs"


def _kernel(boot: Path, mods: Path, version: str, ipvs: str | None) -> None:
    """Make /boot/vmlinuz-<version> and a module tree; ``ipvs`` says how ip_vs is there."""
    boot.mkdir(exist_ok=True)
    (boot / f"vmlinuz-{version}").write_bytes(b"\x00")
    tree = mods / version
    (tree / "kernel/net/core").mkdir(parents=True, exist_ok=True)
    if ipvs == "file":
        (tree / IPVS_DIR).mkdir(parents=True)
        (tree / IPVS_DIR / "ip_vs.ko").write_bytes(b"")
    elif ipvs == "xz":
        (tree / IPVS_DIR).mkdir(parents=True)
        (tree / IPVS_DIR / "ip_vs.ko.xz").write_bytes(b"")
    elif ipvs == "dep":
        (tree / "modules.dep").write_text(
            "kernel/net/bridge/bridge.ko:\nkernel/net/other/ip_vs.ko.zst: kernel/x.ko\n"
        )
    elif ipvs == "builtin":
        (tree / "modules.builtin").write_text("kernel/net/netfilter/ipvs/ip_vs.ko\n")
    else:
        (tree / "modules.dep").write_text("kernel/net/netfilter/ipvs/ip_vs_rr.ko:\n")


# ---- finding the kernel ------------------------------------------------------


def test_find_kernel_takes_newest_with_ipvs(tmp_path):
    boot, mods = tmp_path / "boot", tmp_path / "modules"
    _kernel(boot, mods, "5.10.0-30-amd64", "file")
    _kernel(boot, mods, "6.1.0-9-amd64", "xz")
    _kernel(boot, mods, "6.1.0-56-amd64", "dep")  # 56 > 9: numbers compare as numbers
    _kernel(boot, mods, "6.5.0-1-amd64", None)  # newer, but without ip_vs
    (boot / "vmlinuz-6.9.0-1-amd64").write_bytes(b"\x00")  # no module tree at all
    found = find_kernel(boot, mods)
    assert found == Kernel(boot / "vmlinuz-6.1.0-56-amd64", "6.1.0-56-amd64")


def test_find_kernel_accepts_builtin_ipvs(tmp_path):
    boot, mods = tmp_path / "boot", tmp_path / "modules"
    _kernel(boot, mods, "6.1.0-1-amd64", "builtin")
    assert find_kernel(boot, mods).version == "6.1.0-1-amd64"


def test_find_kernel_without_ipvs_kernel_is_missing_feature_with_hint(tmp_path):
    boot, mods = tmp_path / "boot", tmp_path / "modules"
    _kernel(boot, mods, "6.5.0-1-amd64", None)
    with pytest.raises(MissingFeature, match="apt-get install linux-image-amd64"):
        find_kernel(boot, mods)
    with pytest.raises(MissingFeature):
        find_kernel(tmp_path / "no-boot", mods)


def test_kernel_from_path(tmp_path):
    boot, mods = tmp_path / "boot", tmp_path / "modules"
    _kernel(boot, mods, "6.1.0-56-amd64", "file")
    _kernel(boot, mods, "6.5.0-1-amd64", None)
    assert kernel_from_path(boot / "vmlinuz-6.1.0-56-amd64", mods).version == "6.1.0-56-amd64"
    with pytest.raises(BadInput):
        kernel_from_path(boot / "vmlinuz-nope", mods)
    with pytest.raises(MissingFeature):
        kernel_from_path(boot / "vmlinuz-6.5.0-1-amd64", mods)
    (tmp_path / "bzImage").write_bytes(b"\x00")
    assert kernel_from_path(tmp_path / "bzImage", mods).version == "bzImage"


def test_has_module_is_no_for_missing_tree(tmp_path):
    assert not has_module(tmp_path / "absent", "ip_vs")


# ---- host_has_ipvs ------------------------------------------------------------


def _proc(tmp_path: Path, ip_vs: bool, modules_disabled: str | None) -> Path:
    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True)
    (proc / "sys/kernel").mkdir(parents=True)
    if ip_vs:
        (proc / "net/ip_vs").write_text("")
    if modules_disabled is not None:
        (proc / "sys/kernel/modules_disabled").write_text(modules_disabled + "\n")
    return proc


def test_host_has_ipvs_when_proc_net_ip_vs_exists(tmp_path):
    proc = _proc(tmp_path, ip_vs=True, modules_disabled=None)
    assert host_has_ipvs(proc, tmp_path / "modules", "6.18.0")


@pytest.mark.parametrize(
    ("modules_disabled", "expected"), [("0", True), ("1", False), (None, False)]
)
def test_host_has_ipvs_from_modules_only_when_loading_allowed(tmp_path, modules_disabled, expected):
    mods = tmp_path / "modules"
    _kernel(tmp_path / "boot", mods, "6.1.0-56-amd64", "file")
    proc = _proc(tmp_path, ip_vs=False, modules_disabled=modules_disabled)
    assert host_has_ipvs(proc, mods, "6.1.0-56-amd64") is expected


def test_host_has_ipvs_false_without_modules(tmp_path):
    proc = _proc(tmp_path, ip_vs=False, modules_disabled="0")
    assert not host_has_ipvs(proc, tmp_path / "modules", "6.18.0")


# ---- KVM decision -------------------------------------------------------------


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags} hypervisor\n\n")
    return path


def _device(tmp_path: Path) -> Path:
    dev = tmp_path / "kvm"
    dev.write_bytes(b"")  # a regular file opens O_RDWR, like a usable /dev/kvm
    return dev


@pytest.mark.parametrize("flag", ["vmx", "svm"])
def test_auto_uses_kvm_with_flags_and_device(tmp_path, flag):
    got = decide_kvm("auto", {}, _cpuinfo(tmp_path, flag), _device(tmp_path))
    assert got == KvmDecision(True, "KVM")


def test_auto_emulates_without_cpu_flags_even_with_device(tmp_path):
    # The paravirtual nested /dev/kvm of the test machines: openable, no vmx/svm.
    got = decide_kvm("auto", {}, _cpuinfo(tmp_path, ""), _device(tmp_path))
    assert got == KvmDecision(False, "emulation, no usable KVM")


def test_auto_emulates_when_device_does_not_open(tmp_path):
    got = decide_kvm("auto", {}, _cpuinfo(tmp_path, "vmx"), tmp_path / "no-kvm")
    assert not got.use_kvm


def test_env_override_and_explicit_mode(tmp_path):
    cpu, dev = _cpuinfo(tmp_path, "vmx"), _device(tmp_path)
    assert not decide_kvm("auto", {"NETLAB_VM_KVM": "0"}, cpu, dev).use_kvm
    no_cpu = _cpuinfo(tmp_path, "")
    assert decide_kvm("auto", {"NETLAB_VM_KVM": "1"}, no_cpu, tmp_path / "none").use_kvm
    # --kvm on/off wins over the environment
    assert not decide_kvm("off", {"NETLAB_VM_KVM": "1"}, cpu, dev).use_kvm
    assert decide_kvm("on", {"NETLAB_VM_KVM": "0"}, no_cpu, dev).use_kvm
    with pytest.raises(ValueError):
        decide_kvm("auto", {"NETLAB_VM_KVM": "yes"}, cpu, dev)


# ---- the guest script and its quoting -----------------------------------------

TRICKY = ["a b", "", "$HOME", "'single'", '"double"', "`id`", "x;y", "*", "\\", "ünï", "-c"]


def _run_script(tmp_path: Path, argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run the guest script on the host with /bin/sh (no modules): (status, written status, stdout)."""
    status = tmp_path / "status"
    env = guest.guest_env({"PATH": os.environ["PATH"], "HOME": "/nowhere"}, None)
    text = guest.guest_script(argv, str(cwd), env, status, modules=())
    script = tmp_path / "run.sh"
    script.write_text(text)
    proc = subprocess.run(["/bin/sh", str(script)], capture_output=True, text=True, timeout=30)
    return proc.returncode, status.read_text().strip(), proc.stdout


def test_guest_script_runs_argv_exactly(tmp_path):
    argv = [sys.executable, "-c", "import json, os, sys; print(json.dumps([os.getcwd()] + sys.argv[1:]))", *TRICKY]
    code, written, out = _run_script(tmp_path, argv, tmp_path)
    assert (code, written) == (0, "0")
    assert json.loads(out) == [str(tmp_path), *TRICKY]


def test_guest_script_exit_status_and_env(tmp_path):
    argv = ["sh", "-c", 'echo "$NETLAB_IN_VM"; exit 7']
    code, written, out = _run_script(tmp_path, argv, tmp_path)
    assert (code, written, out.strip()) == (7, "7", "1")


def test_first_word_is_never_an_assignment_or_keyword(tmp_path):
    assert guest.command_line(["A=1", "env"]) == "'A=1' env"
    assert guest.command_line(["if"]) == "'if'"
    assert guest.command_line(["it's"]) == "'it'\"'\"'s'"
    code, written, _ = _run_script(tmp_path, ["A=1", "env"], tmp_path)
    assert code == 127 and written == "127"  # "A=1" is looked up as a program
    with pytest.raises(ValueError):
        guest.command_line([])


def test_guest_script_loads_modules_quietly_and_reports_bad_cwd(tmp_path):
    text = guest.guest_script(["true"], "/x y", {"PATH": "/bin"}, tmp_path / "s")
    assert "modprobe -q \"$m\" >/dev/null 2>&1 || :" in text
    assert "for m in ip_vs ip_vs_rr xt_ipvs vxlan" in text
    assert "cd '/x y' ||" in text
    code, written, _ = _run_script(tmp_path, ["true"], tmp_path / "missing")
    assert (code, written) == (1, "1")


def test_guest_env_keeps_path_venv_first_and_marks_vm():
    host = {"PATH": "/home/u/bin:/usr/bin", "SECRET": "x", "LANG": "C.UTF-8", "NETLAB_DEBUG": "1"}
    env = guest.guest_env(host, Path("/repo/.venv/bin"))
    path = env["PATH"].split(":")
    assert path[:3] == ["/repo/.venv/bin", "/home/u/bin", "/usr/bin"]
    assert "/usr/sbin" in path and "/sbin" in path and path.count("/usr/bin") == 1
    assert env["NETLAB_IN_VM"] == "1" and env["NETLAB_DEBUG"] == "1" and env["LANG"] == "C.UTF-8"
    assert "SECRET" not in env


# ---- vng's command line ---------------------------------------------------------


def _launch(use_kvm: bool, **spec) -> runner.VmLaunch:
    return runner.VmLaunch(
        vng=Path("/venv/bin/vng"),
        kernel=Kernel(Path("/boot/vmlinuz-6.1.0-56-amd64"), "6.1.0-56-amd64"),
        kvm=KvmDecision(use_kvm, "x"),
        spec=runner.VmSpec(**spec),
    )


def test_vng_argv_emulation(tmp_path):
    argv = runner.vng_argv(_launch(False, cpus=1, memory="2G", rw_dirs=(tmp_path,)), Path("/t/run.sh"), Path("/t"))
    assert argv[:3] == ["/venv/bin/vng", "--run", "/boot/vmlinuz-6.1.0-56-amd64"]
    assert "--disable-kvm" in argv
    assert argv[argv.index("--cpus") + 1] == "1"
    assert argv[argv.index("--memory") + 1] == "2G"
    assert argv[argv.index("--user") + 1] == "root"
    rw = [argv[i + 1] for i, a in enumerate(argv) if a == "--rwdir"]
    assert rw == ["/t", str(tmp_path)]
    assert argv[argv.index("--exec") + 1] == "/bin/sh /t/run.sh"


def test_vng_argv_adds_cached_view_last_unless_off():
    on = runner.vng_argv(_launch(False), Path("/t/r.sh"), Path("/t"))
    assert on[-1].startswith("--qemu-opts=-fsdev local,") and hostcache.MOUNT_TAG in on[-1]
    off = runner.vng_argv(_launch(False, host_cache=False), Path("/t/r.sh"), Path("/t"))
    assert not any(a.startswith("--qemu-opts") for a in off)


def test_cached_view_covers_python_and_checkout_but_not_writable_shares(tmp_path):
    repo, venv, rw = tmp_path / "repo", tmp_path / "repo/.venv", tmp_path / "out"
    stdlib, shared = tmp_path / "py/lib/python3.11", tmp_path / "tmp/netlab-vm-x"
    for d in (venv, rw, stdlib, shared):
        d.mkdir(parents=True)
    chosen = hostcache.choose_dirs([venv, stdlib, repo, Path("/")], [shared, rw])
    assert chosen == [str(repo), str(stdlib)]  # .venv is inside repo; / never
    # a candidate holding a writable share, or inside one, is left alone
    assert hostcache.choose_dirs([tmp_path, rw / "sub"], [rw]) == []
    lines = "\n".join(hostcache.mount_lines(chosen))
    assert "cache=loose" in lines and "findmnt -n -o TARGET --target" in lines
    assert hostcache.mount_lines([]) == []


def test_vng_argv_kvm_and_env():
    assert "--disable-kvm" not in runner.vng_argv(_launch(True), Path("/t/r.sh"), Path("/t"))
    env = runner.vng_env({"PATH": "/usr/bin", "HOME": "/root"}, Path("/venv/bin/vng"), Path("/t"))
    assert env["PATH"] == "/venv/bin:/usr/bin" and env["TMPDIR"] == "/t" and env["HOME"] == "/root"


def test_describe_names_kernel_and_mode():
    launch = runner.VmLaunch(
        vng=Path("/v"), kernel=Kernel(Path("/k"), "6.1.0-56-amd64"),
        kvm=KvmDecision(False, "emulation, no usable KVM"), spec=runner.VmSpec(),
    )
    assert launch.describe().startswith("netlab vm: booting 6.1.0-56-amd64 (emulation, no usable KVM)")


@pytest.mark.parametrize(
    "spec",
    [runner.VmSpec(memory="lots"), runner.VmSpec(memory="4G\n"), runner.VmSpec(cpus=0), runner.VmSpec(timeout=0),
     runner.VmSpec(kvm="maybe"), runner.VmSpec(rw_dirs=(Path("/no/such/dir"),))],  # type: ignore[arg-type]
)
def test_bad_spec_is_bad_input(spec):
    with pytest.raises(BadInput):
        spec.check()


# ---- the process group ----------------------------------------------------------


def _processes_with(marker: str) -> list[int]:
    """Pids of live (non-zombie) processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_run_group_relays_output_and_status(capfd):
    result = process.run_group(["sh", "-c", "echo out; echo err >&2; exit 5"], os.environ, 30)
    assert result.returncode == 5
    captured = capfd.readouterr()
    assert captured.out == "out\n" and captured.err == "err\n"


def test_run_group_kills_stragglers_after_normal_exit():
    marker = f"300.{secrets.randbelow(10**6):06d}"
    result = process.run_group(["sh", "-c", f"sleep {marker} >/dev/null 2>&1 & exit 4"], os.environ, 30)
    assert result.returncode == 4
    assert _processes_with(f"sleep\x00{marker}") == []


def test_run_group_timeout_kills_whole_group():
    marker = f"300.{secrets.randbelow(10**6):06d}"
    with pytest.raises(process.GroupTimeout):
        process.run_group(["sh", "-c", f"sleep {marker} & sleep {marker}; :"], os.environ, 1)
    assert _processes_with(f"sleep\x00{marker}") == []


# ---- the CLI ----------------------------------------------------------------------


@pytest.fixture
def no_tools(tmp_path, monkeypatch):
    """A world with no vng beside Python and an empty PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("NETLAB_IN_VM", raising=False)
    return bin_dir


def test_cli_without_vng_exits_3_with_setup_hint(no_tools):
    result = CliRunner().invoke(cli, ["vm", "--", "sh", "-c", "exit 7"])
    assert result.exit_code == 3, result.output
    assert "vng" in result.output and "scripts/setup.sh" in result.output
    assert "Traceback" not in result.output


def test_cli_without_qemu_exits_3(no_tools):
    vng = no_tools / "vng"
    vng.write_text("#!/bin/sh\nexit 99\n")
    vng.chmod(0o755)
    result = CliRunner().invoke(cli, ["vm", "--", "true"])
    assert result.exit_code == 3, result.output
    assert "qemu" in result.output


def test_cli_bad_memory_exits_2(no_tools):
    result = CliRunner().invoke(cli, ["vm", "--memory", "lots", "--", "true"])
    assert result.exit_code == 2, result.output


def test_cli_needs_a_command():
    assert CliRunner().invoke(cli, ["vm"]).exit_code == 2


def test_cli_inside_vm_runs_directly(monkeypatch):
    monkeypatch.setenv("NETLAB_IN_VM", "1")
    result = CliRunner().invoke(cli, ["vm", "--", "sh", "-c", "exit 7"])
    assert result.exit_code == 7

