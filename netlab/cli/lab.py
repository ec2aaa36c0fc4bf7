"""``netlab plan | up | down | exec``: a lab's desired state and its life."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from netlab.cli import common, params
from netlab.docker import connect as dconnect
from netlab.docker.tasks import MODES, TASK_IMAGE
from netlab.errors import BadInput, NetlabError
from netlab.kernel import xtables
from netlab.plan import names

if TYPE_CHECKING:
    from netlab.ipam import Allocations
    from netlab.kernel.apply import ApplyStats
    from netlab.model import Lab
    from netlab.plan.types import Plan


@click.command()
@click.argument("scenario")  # the loader says what is wrong with a path
@click.option("--name", callback=common.lab_name, help="Lab name (default: the scenario's name).")
@common.json_option("One JSON document.")
def plan(scenario: str, name: str | None, as_json: bool) -> None:
    """Print the desired kernel state of SCENARIO, per namespace (no root needed)."""
    from netlab.plan.build import build_plan
    from netlab.plan.render import plan_json, plan_text
    p = build_plan(common.load(scenario, name))
    if as_json:
        click.echo(plan_json(p))
    else:
        click.echo(plan_text(p), nl=False)  # plan_text ends with a newline


@click.command()
@click.argument("scenario")  # the loader says what is wrong with a path
@click.option("--name", callback=common.lab_name, help="Lab name (default: the scenario's name).")
@click.option("--iptables", "iptables", type=click.Choice(xtables.CHOICES), default=None,
              help="The iptables backend for the rules (default: $NETLAB_IPTABLES, else the "
                   "scenario's iptables:, else auto: the one the machine's iptables uses).")
@click.option("--tasks", "tasks", type=click.Choice(MODES), default="namespaces",
              show_default=True,
              help="How tasks run: namespaces served by netlab's app, or real Docker "
                   "containers (image netlab/task:latest, scripts/task-image.sh) whose "
                   "namespaces netlab wires.")
@click.option("--docker", "docker", default=None, metavar="URL", callback=dconnect.docker_option,
              help="The Docker daemon of --tasks containers (default: "
                   "unix:///var/run/docker.sock).")
@click.option("--time-scale", "time_scale", type=params.TimeScale(), default=None,
              help="Scale the manager's timings (swarmkit's: heartbeat every 5 s, a node down "
                   "after 3 periods without one, restart delay 5 s): 0.1 is ten times faster "
                   "(default: the scenario's x-netlab time_scale, else the lab's, else 1).")
def up(scenario: str, name: str | None, iptables: str | None, tasks: str,
       docker: str | None, time_scale: float | None) -> None:
    """Build the lab of SCENARIO, or converge it if it is up."""
    from netlab import lifecycle
    lab = common.load(scenario, name)
    backend = xtables.choose(iptables, lab.iptables)
    if docker is not None and tasks != "containers":
        raise BadInput("--docker: only tasks run as containers use Docker "
                       "(hint: add --tasks containers)")
    if tasks == "containers":
        dconnect.docker_url(docker)   # --docker or $DOCKER_HOST, refused before anything is made
    click.echo(f"netlab up: {lab.name} from {scenario} (iptables: {backend}, tasks: {tasks})",
               err=True)
    result = lifecycle.up(lab, os.path.abspath(scenario), common.store(), backend,
                          common.progress, common.host(), tasks=tasks, docker=docker,
                          time_scale=time_scale if time_scale is not None else lab.time_scale)
    click.echo("\n".join(summary_lines(result.lab, result.allocations, result.plan,
                                        result.stats, backend)))
    if tasks == "containers":
        click.echo(f"  tasks run as containers of {TASK_IMAGE} (docker ps --filter "
                   f"label=netlab.lab={lab.name})")


def summary_lines(lab: Lab, a: Allocations, plan: Plan, stats: ApplyStats,
                  backend: str) -> list[str]:
    """What ``up`` prints: the lab, each node's addresses, each service's mark, VIP and tasks."""
    lines = [f"lab {lab.name} is up: {len(lab.nodes)} nodes, {len(lab.services)} services, "
             f"{len(lab.tasks)} tasks, {len(plan.netns)} namespaces "
             f"({stats.seconds:.2f} s, {stats.netlink_requests} netlink requests, "
             f"{stats.iptables_commits} iptables commits, iptables {backend})"]
    for node in lab.nodes:
        na = a.nodes[node.name]
        lines.append(f"  node {node.name:<10} {node.role:<8} lan {na.lan_ip!s:<15} "
                     f"ingress_sbox {na.sandbox_ip}")
    for svc in lab.services:
        sa = a.services.get(svc.name)
        ports = ", ".join(f"{p.published}:{p.target}/{p.protocol}"
                          + (" (host mode)" if p.mode == "host" else "") for p in svc.ports)
        tasks = ", ".join(f"{t.name}@{t.node} {a.primary_ip(t.name, lab)}"
                          for t in lab.tasks_of(svc.name))
        mark = f"FWM {sa.fwmark} ({sa.fwmark:#x}) VIP {sa.vip}" if sa else ""
        for net in svc.networks:
            v = a.networks[net].vips.get(svc.name)
            mark += (f"  {net}: FWM {v.fwmark} VIP {v.vip}" if v else f"  {net}: dnsrr")
        lines.append(f"  service {svc.name}: {ports}  {mark}  tasks: {tasks or 'none'}")
    if lab.services and lab.services[0].ingress_ports:
        port = lab.services[0].ingress_ports[0].published
        lines.append(f"try: netlab curl {lab.name} {lab.nodes[-1].name}:{port} --count 4")
    return lines


@click.command()
@click.argument("lab", required=False, callback=common.lab_name)
@click.option("--all", "all_labs", is_flag=True,
              help="Every lab with a valid state file here; other nl- namespaces are listed, not removed.")
def down(lab: str | None, all_labs: bool) -> None:
    """Remove everything LAB owns (namespaces, processes, state); succeeds on leftovers."""
    from netlab import lifecycle
    st = common.store()
    if all_labs and lab:
        raise BadInput("LAB: name a lab or pass --all, not both")
    if all_labs:
        result = lifecycle.down_all(st, common.host())
        results, unowned = result.downed, result.unowned
        for report in result.corrupt:
            click.echo(f"netlab down: {report}", err=True)
    elif lab:
        results, unowned = ((lab, lifecycle.down(lab, st, common.host())),), ()
    else:
        raise BadInput("LAB: name the lab to remove, or pass --all")
    for name, r in results:
        if r.corrupt:
            click.echo(f"netlab down: {r.corrupt}", err=True)
        if r.containers_left:
            click.echo(f"netlab down: {r.containers_left}", err=True)
        click.echo(f"lab {name} is down: {r.netns_removed} namespaces removed"
                   + (f", {r.containers_removed} task containers removed"
                      if r.containers_removed else "")
                   + (", task apps stopped" if r.supervisor_stopped else "")
                   + (", state removed" if r.state_removed else ""))
    if all_labs and not results:
        click.echo("no lab with a valid state file here")
    if unowned:
        owners = sorted({owner for n in unowned if (owner := names.lab_of(n))})
        hint = ", ".join(f"netlab down {owner}" for owner in owners) or "netlab down LAB"
        click.echo(f"left {len(unowned)} nl- namespaces that no state file here claims: "
                   f"{' '.join(unowned)} (hint: {hint})")


def resolve_netns(lab: str, target: str, targets: dict[str, str]) -> str:
    """The netns of a target (``node1``, ``node1/ingress_sbox``, ``hello-a.1`` …)."""
    if target in targets:
        return targets[target]
    raise BadInput(f"TARGET: {target!r} is not part of lab {lab} "
                   f"(hint: one of {', '.join(sorted(targets))})")


@click.command(name="exec", context_settings={"ignore_unknown_options": True,
                                              "allow_interspersed_args": False})
@click.argument("lab", callback=common.lab_name)
@click.argument("target")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(lab: str, target: str, cmd: tuple[str, ...]) -> None:
    """Run CMD inside TARGET's namespace: node1, node1/ingress_sbox, node1/ov-ingress,
    hello-a.1, client or lan.

    Everything after TARGET is CMD, its options too (netlab exec LAB node1 ls
    --help runs ls --help); a -- before CMD is optional. Exits with CMD's status;
    1 when TARGET's namespace is gone though the lab is up.
    """
    from netlab.kernel import netnsdir
    if target == "--" and cmd:   # netlab exec LAB -- TARGET CMD...
        target, cmd = cmd[0], cmd[1:]
    elif cmd[:1] == ("--",):
        cmd = cmd[1:]
    if not cmd:
        raise BadInput(f"CMD: name the command to run (hint: netlab exec {lab} {target} -- ip addr)")
    state = common.store().require_targets(lab)   # not the model: exec reads no more
    ns = resolve_netns(lab, target, state.targets)
    if not netnsdir.exists(ns):
        raise NetlabError(f"TARGET: the namespace {ns} of {target} is gone though lab {lab} is up "
                          f"(hint: netlab status {lab} shows what is missing; netlab up "
                          f"{state.scenario} --name {lab} rebuilds it)")
    netnsdir.exec_in(ns, cmd)


def _looks_like_path(arg: str) -> bool:
    """True when ``arg`` can only be a file: lab names hold no ``/`` and no ``.yaml``."""
    return "/" in arg or arg.endswith((".yaml", ".yml"))


@click.command()
@click.argument("lab_or_scenario", metavar="LAB|SCENARIO")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid",
              show_default=True)
def graph(lab_or_scenario: str, fmt: str) -> None:
    """Draw the plumbing of a lab (or of a scenario file): namespaces, bridges, veths, VXLAN.

    LAB|SCENARIO is a scenario file when it holds a / or ends in .yaml or .yml;
    otherwise it is the lab of that name when one is up, and only then a file
    of that name in the current directory (write ./NAME for the file).
    """
    from netlab.plan.build import build_plan
    from netlab.plan.graph import render
    arg = lab_or_scenario
    st = common.store()
    if _looks_like_path(arg):
        plan_ = build_plan(common.load(arg))
    elif names.is_lab(arg) and (arg in st.labs() or not os.path.lexists(arg)):
        plan_ = common.plan_from_state(common.lab_state(st, arg))
    elif os.path.lexists(arg):
        plan_ = build_plan(common.load(arg))
    else:
        raise BadInput(f"LAB|SCENARIO: {arg!r} is neither a scenario file nor a lab "
                       "name (hint: a path to a YAML file, or a lab from netlab status)")
    click.echo(render(plan_, fmt), nl=False)
