"""``netlab task LAB TASK kill|hang|unhealthy|healthy``: make a task fail as a real one does."""

from __future__ import annotations

import click

from netlab import tasks
from netlab.cli import common
from netlab.cli.params import Count

NEXT = {
    "kill": "the manager sees the exit at once: the task leaves every load balancer and a "
            "new one starts in its slot after the restart delay (per restart_policy)",
    "hang": "only a health check notices a hung app: with one, the task turns unhealthy "
            "after retries failed checks and is replaced; without, it stays in the load "
            "balancers and its requests time out, as on a Swarm",
    "unhealthy": "after retries failed checks the task is unhealthy: weight 0, stopped "
                 "after the gossip delay, replaced in its slot",
    "healthy": "its next health check passes",
}


@click.command()
@click.argument("lab", callback=common.lab_name)
@click.argument("task_name", metavar="TASK")
@click.argument("fault", metavar="kill|hang|unhealthy|healthy")
@click.option("--exit-code", type=Count(0, 255, "1"), default=None,
              help="kill: the code the app exits with (default 137, as docker kill; 0 ends the "
                   "task complete, which restart_policy on-failure does not restart)")
def task(lab: str, task_name: str, fault: str, exit_code: int | None) -> None:
    """Make TASK of LAB fail: its app exits (kill), stops answering (hang), fails its
    health check (unhealthy), or answers again (healthy).

    The lab's manager notices as Swarm does and acts on the service's
    restart_policy and healthcheck; watch it with ``netlab events LAB --follow``.
    """
    st = common.store()
    said = tasks.fault(lab, task_name, fault, st, exit_code, common.host())
    click.echo(said)
    click.echo(f"  {NEXT[fault]}")
    click.echo(f"  netlab events {lab} --follow")
