"""``netlab swarm export`` and ``netlab swarm diff``: a real Swarm node, read through its Engine."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass

import click

from netlab.cli import common
from netlab.diff.drift import NetnsSeen
from netlab.docker import connect as dconnect
from netlab.docker.adopt import adopt
from netlab.docker.export import DEFAULT_NAME, export
from netlab.docker.nodediff import NodeDiff, compare_node
from netlab.docker.snapshot import Snapshot, read_snapshot
from netlab.errors import BadInput
from netlab.kernel import xtables
from netlab.model import Lab
from netlab.plan.build import build_plan
from netlab.scenario.names import LAB, name_problem

DOCKER_HELP = "The Engine: unix:///PATH or tcp://HOST:PORT (default: $DOCKER_HOST, else the local socket)."
MANAGER_HELP = ("On a worker: a manager's Engine (unix:///PATH or tcp://HOST:PORT, never a default), "
                "where the Swarm's nodes, services and tasks are read; this node's namespaces "
                "are still read here.")


@dataclass(frozen=True)
class Engine:
    """How the swarm verbs reach a real node (tests pass recorded fakes, no root)."""

    snapshot: Callable[[str | None, str | None], Snapshot]
    read: Callable[[dict[str, str], dict[str, list[str]], str], dict[str, NetnsSeen]]


def _snapshot(url: str | None, manager: str | None = None) -> Snapshot:
    client = dconnect.connect(url)
    mclient = dconnect.connect(manager, "--manager") if manager is not None else None
    try:
        return read_snapshot(client, manager=mclient)
    except Exception as err:  # noqa: BLE001 - the Engine went away or refused mid-read
        import docker
        import requests
        if isinstance(err, docker.errors.APIError) and err.status_code == 503:
            raise dconnect.swarm_error_503() from None
        if isinstance(err, (docker.errors.DockerException, requests.exceptions.RequestException)):
            raise dconnect.unreachable(dconnect.docker_url(url), err) from None
        raise


def _read(files: dict[str, str], sysctls: dict[str, list[str]], backend: str) -> dict[str, NetnsSeen]:
    from netlab.kernel.observe import read_real
    return read_real(files, sysctls, backend)  # type: ignore[arg-type]


def engine() -> Engine:
    """The real Engine and kernel readers (tests replace this)."""
    return Engine(_snapshot, _read)


@click.group()
def swarm() -> None:
    """A real Docker Swarm: export it as a scenario, diff a node against a plan."""


@swarm.command("export")
@click.option("--docker", "url", metavar="URL", default=None, help=DOCKER_HELP,
              callback=dconnect.docker_option)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the scenario to FILE instead of stdout.")
@click.option("--name", default=DEFAULT_NAME, show_default=True, help="The lab's name.")
@common.json_option("One JSON document: the scenario text, the lab, the warnings.")
def export_cmd(url: str | None, output: str | None, name: str, as_json: bool) -> None:
    """The running Swarm as a netlab scenario (nodes, networks, services, ports)."""
    if problem := name_problem(name, LAB):
        raise BadInput(f"--name: {problem[0]} (hint: {problem[1]})")
    url = dconnect.docker_url(url)   # --docker, else $DOCKER_HOST: refused before any Engine
    out = export(engine().snapshot(url, None), name)
    for w in out.warnings:
        click.echo(f"warning: {w}", err=True)
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(out.text)
    if as_json:
        click.echo(json.dumps({"scenario": out.text, "file": output, "lab": out.lab.name,
                               "nodes": [dataclasses.asdict(n) for n in out.lab.nodes],
                               "services": [s.name for s in out.lab.services],
                               "warnings": list(out.warnings)}, indent=2))
    elif not output:
        click.echo(out.text, nl=False)
    else:
        click.echo(f"wrote {output}: {len(out.lab.nodes)} node(s), {len(out.lab.services)} "
                   f"service(s), {len(out.lab.networks)} network(s)", err=True)


def _lab(source: str) -> tuple[Lab, str]:
    """The lab to compare with: a scenario file, else a lab that is up (its model)."""
    if os.path.exists(source):
        return common.load(source), source
    state = common.lab_state(common.store(), source)
    return state.model, f"lab {source}"


def _node(lab: Lab, snap: Snapshot, node: str | None) -> str:
    wanted = node or snap.this_node
    names = [n.name for n in lab.nodes]
    if wanted not in names:
        real = ", ".join(n.name for n in snap.nodes)
        raise BadInput(f"{'--node' if node else 'SCENARIO_OR_LAB'}: no scenario node is named "
                       f"{wanted!r}; the scenario has {', '.join(names)}, the Swarm has {real} "
                       f"(this node: {snap.this_node}) (hint: pass --node NAME: the scenario node "
                       "this real node plays)")
    return wanted


def diff_of(source: str, url: str | None, node: str | None, iptables: str | None,
            eng: Engine, manager: str | None = None) -> tuple[NodeDiff, str]:
    """The real node at ``url`` against its node in ``source`` (scenario or lab); on a
    worker, the Swarm's nodes, services and tasks are read from ``manager``."""
    lab, where = _lab(source)
    snap = eng.snapshot(url, manager)
    scen_node = _node(lab, snap, node)
    backend = xtables.choose(iptables)
    first = build_plan(lab)
    keys = sorted({s.key for s in first.sysctls})
    files = {sb.target: sb.path for sb in snap.sandboxes if sb.target}
    seen = eng.read(files, dict.fromkeys(files, keys), backend)
    adopted = adopt(lab, snap, scen_node, seen)
    plan = build_plan(adopted.lab, adopted.allocations)
    notes = adopted.notes + tuple(f"task {t} runs in the Swarm; the scenario has no slot for it"
                                  for t in adopted.extra_tasks)
    return compare_node(plan, scen_node, snap, seen, notes, adopted.owners()), where


def render(result: NodeDiff, where: str) -> str:
    lines = [f"swarm diff: node {result.hostname} ({result.real_node}) against {result.node} of "
             f"{where}: {len(result.differences)} difference(s), {len(result.known)} known"]
    lines += [f"note: {n}" for n in result.notes]
    for x in result.differences:
        lines.append(f"  {x.target:<22} {x.kind:<9} {x.object}")
        lines.append(f"      plan: {x.plan}")
        lines.append(f"      real: {x.real}")
        lines.append(f"      behind: {x.behind}" + (f" [{x.path}]" if x.path else ""))
    if result.known:
        lines.append("known (not counted):")
        by_why: dict[str, list] = {}
        for k in result.known:
            by_why.setdefault(k.why, []).append(k)
        for why, items in by_why.items():
            lines.append(f"  - {why}:")
            for k in items:
                lines.append(f"      {k.target or k.path}: {k.object}")
    return "\n".join(lines)


@swarm.command("diff")
@click.argument("source", metavar="SCENARIO_OR_LAB")
@click.option("--docker", "url", metavar="URL", default=None, help=DOCKER_HELP,
              callback=dconnect.docker_option)
@click.option("--manager", metavar="URL", default=None, help=MANAGER_HELP,
              callback=dconnect.manager_option)
@click.option("--node", default=None, help="The scenario node this real node plays "
              "(default: the one named like it).")
@click.option("--iptables", type=click.Choice(xtables.CHOICES), default=None,
              help="The backend Docker's rules are in (default: the machine's iptables).")
@common.json_option("One JSON document: differences, known ones, notes.")
def diff(source: str, url: str | None, manager: str | None, node: str | None,
         iptables: str | None, as_json: bool) -> None:
    """This real Swarm node against its node in SCENARIO_OR_LAB's plan; exit 1 when
    they differ."""
    url = dconnect.docker_url(url)   # --docker, else $DOCKER_HOST: refused before any Engine
    result, where = diff_of(source, url, node, iptables, engine(), manager)
    if as_json:
        click.echo(json.dumps({"node": result.node, "real_node": result.real_node,
                               "hostname": result.hostname, "against": where,
                               "equal": result.equal,
                               "differences": [dataclasses.asdict(x) for x in result.differences],
                               "namespaces": [dataclasses.asdict(c) for c in result.namespaces],
                               "known": [dataclasses.asdict(k) for k in result.known],
                               "notes": list(result.notes)}, indent=2))
    else:
        click.echo(render(result, where))
    raise SystemExit(0 if result.equal else 1)

