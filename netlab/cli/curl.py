"""``netlab curl LAB NODE:PORT``: requests from the client to a node's published port;
``netlab curl LAB SERVICE:PORT --from TASK``: from a task to a service (east-west)."""

from __future__ import annotations

import dataclasses
import json
import sys

import click

from netlab.cli import common
from netlab.cli.params import Count, Duration
from netlab.client import curl as do_curl
from netlab.client import mixed_versions, parse_east_west, parse_target
from netlab.kernel.reader import LinuxReader
from netlab.workload.http import version_label


@click.command()
@click.argument("lab", callback=common.lab_name)
@click.argument("target", metavar="NODE:PORT|SERVICE:PORT")
@click.option("--count", "-n", default=1, show_default=True, type=Count(1, 1000, "5"),
              help="How many requests, one connection each.")
@click.option("--timeout", default=3.0, show_default=True, type=Duration(0.1, 60, "3"),
              help="Seconds to wait for each reply, connect included.")
@click.option("--from", "from_task", metavar="TASK", default=None,
              help="Send from this task (web.1) to SERVICE:PORT or VIP:PORT, east-west.")
@common.json_option("A JSON array, one object per reply.")
def curl(lab: str, target: str, count: int, timeout: float, from_task: str | None,
         as_json: bool) -> None:
    """HTTP requests from the client namespace to NODE's published PORT, or with --from
    from a task to a service by name (its VIP, or its tasks for dnsrr); one line per reply
    (with the task's version when the replies came from more than one)."""
    state = common.lab_state(common.store(), lab)
    reader = LinuxReader()
    if from_task is None:
        _node, ip, port = parse_target(state, target)
        replies = do_curl(reader, state.targets["client"], ip, port, target, count, timeout)
    else:
        ips, port = parse_east_west(state, from_task, target, reader)
        replies = do_curl(reader, state.targets[from_task], ips, port, target, count, timeout)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(r) for r in replies], indent=2))
    else:
        mixed = mixed_versions(r.version for r in replies if r.ok)
        for r in replies:
            if r.ok:
                version = f" {version_label(r.version)}" if mixed and r.version else ""
                click.echo(f"{r.seq:>3}  {target} -> {r.task}{version} on {r.node} "
                           f"(task {r.task_ip}) saw client {r.client}:{r.client_port}  "
                           f"{r.elapsed_ms} ms")
            else:
                click.echo(f"{r.seq:>3}  {target} -> failed: {r.error}")
    if not all(r.ok for r in replies):
        sys.exit(1)
