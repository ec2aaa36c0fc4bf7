"""``netlab node LAB NODE down|up|drain|active``: a node fails, comes back, is drained."""

from __future__ import annotations

import click

from netlab import converge
from netlab.cli import common
from netlab.cli.scale import change_lines
from netlab.errors import BadInput

SAID = {"down": "is down (cut off the LAN)", "up": "is up (back on the LAN)",
        "drain": "is drained", "active": "is active"}


@click.command()
@click.argument("lab", callback=common.lab_name)
@click.argument("node_name", metavar="NODE")
@click.argument("action", metavar="down|up|drain|active")
@click.option("--detach", "-d", is_flag=True,
              help="drain|active: return once asked; the change converges in the background "
                   "(its output in the lab's log).")
def node(lab: str, node_name: str, action: str, detach: bool) -> None:
    """Fail, bring back, drain or reactivate NODE of LAB; its tasks restart elsewhere
    as Swarm's do (none move back on up or active).

    On a lab with a manager (every lab ``up`` made since it has one), ``down``
    and ``up`` only cut the node off the LAN or bring it back: the manager
    notices its heartbeats stop or return, as a Swarm's does, and restarts
    its tasks (watch it with ``netlab events LAB --follow``).
    """
    st = common.store()
    if action in ("down", "up") and common.lab_state(st, lab).manager_pid:
        from netlab.manager.gossip import GossipTimings
        from netlab.manager.timings import Timings
        port = converge.cut(lab, node_name, action, st, common.progress, common.host())
        t = Timings.scaled(common.lab_state(st, lab).time_scale)
        click.echo(f"node {node_name} is {'cut off' if action == 'down' else 'back on'} the LAN "
                   f"({port} {action})")
        if action == "down":
            g = GossipTimings.scaled(t.scale)
            click.echo(f"  the other nodes' NetworkDB holds it failed after a probe "
                       f"({g.probe_interval:g} s) and {g.suspicion_mult * g.probe_interval:g} s "
                       "suspect, and takes its tasks out of their load balancers")
            click.echo(f"  the manager marks it down after {t.grace_multiplier} heartbeat periods "
                       f"without one ({t.grace_multiplier * (t.heartbeat_period - t.heartbeat_epsilon):g}"
                       f"-{t.grace_multiplier * (t.heartbeat_period + t.heartbeat_epsilon):g} s "
                       f"after its last), and restarts its tasks {t.restart_delay:g} s later"
                       + ("" if t.scale == 1 else f" (time scale {t.scale:g})"))
        else:
            click.echo("  its peers' NetworkDB rejoins it within a second, and the manager "
                       "marks it ready at its next heartbeat (none of its old tasks move back)")
        click.echo(f"  netlab events {lab} --follow")
        return
    if detach and action in ("drain", "active"):
        state = common.lab_state(st, lab)
        if node_name not in {n.name for n in state.model.nodes}:
            raise BadInput(f"NODE: lab {lab} has no node {node_name!r} "
                           f"(hint: one of {', '.join(n.name for n in state.model.nodes)})")
        from netlab.cli.detach import run_detached
        pid = run_detached(st, lab, ["node", lab, node_name, action])
        click.echo(f"node {node_name}: {action} in the background (pid {pid}; its output goes "
                   f"to {st.log_path(lab)})")
        return
    result = converge.node(lab, node_name, action, st, common.progress, common.host())
    click.echo(f"node {node_name} {SAID[action]}")
    click.echo("\n".join(change_lines(result, "converged")))
