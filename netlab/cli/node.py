"""``netlab node LAB NODE down|up|drain|active``: a node fails, comes back, is drained."""

from __future__ import annotations

import click

from netlab import converge
from netlab.cli import common
from netlab.cli.scale import change_lines

SAID = {"down": "is down (cut off the LAN)", "up": "is up (back on the LAN)",
        "drain": "is drained", "active": "is active"}


@click.command()
@click.argument("lab", callback=common.lab_name)
@click.argument("node_name", metavar="NODE")
@click.argument("action", metavar="down|up|drain|active")
def node(lab: str, node_name: str, action: str) -> None:
    """Fail, bring back, drain or reactivate NODE of LAB; its tasks restart elsewhere
    as Swarm's do (none move back on up or active)."""
    result = converge.node(lab, node_name, action, common.store(), common.progress,
                            common.host())
    click.echo(f"node {node_name} {SAID[action]}")
    click.echo("\n".join(change_lines(result, "converged")))
