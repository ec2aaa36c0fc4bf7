"""The ``netlab`` command: a thin Click group; each verb family is its own module."""

from __future__ import annotations

import json
import resource
import sys

import click

from netlab.cli.common import JSON_ERRORS
from netlab.errors import NetlabError


class NetlabGroup(click.Group):
    """A group that turns NetlabError into one line on stderr and its exit code.

    When the command was given ``--json``, the error is also printed on
    stdout as one JSON document (:meth:`NetlabError.details`).
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NetlabError as err:
            if ctx.meta.get(JSON_ERRORS):
                click.echo(json.dumps(err.details(), indent=2))
            click.echo(f"Error: {err}", err=True)
            sys.exit(err.exit_code)


@click.group(cls=NetlabGroup)
@click.version_option(package_name="netlab")
def cli() -> None:
    """Docker Swarm's ingress routing mesh, rebuilt in network namespaces."""


def _register() -> None:
    from netlab.cli import curl, lab, load, node, scale, status, swarm, trace, validate, vm
    for command in (validate.validate, lab.plan, lab.up, lab.down, status.status,
                    scale.scale, node.node, lab.exec_, curl.curl, load.load, trace.trace, lab.graph,
                    vm.vm, swarm.swarm):
        cli.add_command(command)


_register()


def raise_open_files_limit() -> None:
    """Lift this process's soft limit on open files to its hard limit.

    Applying a plan holds a few descriptors per namespace at once (netlink
    sockets, namespace files), so a lab of a few hundred namespaces passes
    the usual soft limit of 1024 and ``scale`` failed with "Too many open
    files". dockerd's unit sets ``LimitNOFILE=infinity`` for the same reason.
    The hard limit is left alone; a refusal leaves the soft one as it was.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def main() -> None:
    raise_open_files_limit()
    cli(prog_name="netlab")
