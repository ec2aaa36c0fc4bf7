"""``netlab vm [OPTIONS] -- CMD...``: run CMD as root in a throwaway VM whose kernel has IPVS."""

from __future__ import annotations

import os
from pathlib import Path

import click

from netlab.cli.params import Count, Duration
from netlab.vm.process import Terminated
from netlab.vm.runner import VmSpec, run_in_vm


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.option("--memory", default="4G", show_default=True, help="Guest memory (qemu -m).")
@click.option("--cpus", type=Count(1, 64, "2"), default=2, show_default=True,
              help="Guest CPUs.")
@click.option(
    "--kernel",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Kernel image to boot [default: newest /boot/vmlinuz-* with ip_vs modules].",
)
@click.option(
    "--kvm",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="Use KVM; auto uses it only when it can boot a stock kernel "
    "(override with NETLAB_VM_KVM=0/1).",
)
@click.option(
    "--timeout", type=Duration(1, 7 * 86400, "1800"), default=5400.0, show_default=True,
    help="Seconds before the VM is stopped.",
)
@click.option(
    "--rwdir",
    "rw_dirs",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Host directory the guest may write to (repeatable); the rest is read-only there.",
)
@click.option(
    "--host-cache/--no-host-cache",
    default=True,
    show_default=True,
    help="Serve the venv, the standard library and the checkout from a cached "
    "read-only view (much faster Python in the guest).",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def vm(
    ctx: click.Context,
    memory: str,
    cpus: int,
    kernel: Path | None,
    kvm: str,
    timeout: float,
    rw_dirs: tuple[Path, ...],
    host_cache: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND as root inside a throwaway VM whose kernel has IPVS.

    The host filesystem is visible read-only at the same paths, so the
    checkout and its venv work there; the guest sees NETLAB_IN_VM=1. Exits
    with COMMAND's exit status and leaves nothing running.

    Example: netlab vm -- .venv/bin/python -m pytest tests/integration -q
    """
    spec = VmSpec(
        kernel=kernel,
        memory=memory,
        cpus=cpus,
        kvm=kvm,  # type: ignore[arg-type]  # click.Choice guarantees the literal
        timeout=timeout,
        rw_dirs=rw_dirs,
        host_cache=host_cache,
    )
    try:
        status = run_in_vm(list(command), spec, os.getcwd())
    except KeyboardInterrupt:
        click.echo("netlab vm: interrupted; the VM was stopped", err=True)
        ctx.exit(130)
    except Terminated as term:
        click.echo("netlab vm: terminated; the VM was stopped", err=True)
        ctx.exit(128 + term.signum)
    ctx.exit(status)
