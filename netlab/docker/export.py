"""A real Swarm written as a netlab scenario: ``netlab swarm export``.

:func:`export` turns a :class:`~netlab.docker.snapshot.Snapshot` into
scenario YAML that ``netlab validate`` accepts: the nodes with their roles
(and availability when not active), the user overlay networks with their
subnets, each service with its replicas, published ports (``"P:T"``,
``/udp``, the long form for ``mode: host``), endpoint mode and networks,
the ingress network's subnet, VNI and MTU and this node's docker_gwbridge
subnet when they are not Docker's defaults. The file is checked with netlab's own scenario reader before it
is returned.

What a scenario cannot say is left out and said, in a comment at the top of
the file and as a warning: a global service is written as one replica per
eligible node; a service on no network netlab models, an sctp port, a
constraint other than ``node.role``/``node.hostname`` are left out; and
where netlab's scheduler would place a task on another node than the Swarm
did, the file says so (netlab places tasks itself; the scenario is not
wrong for it).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from netlab.docker.snapshot import RealNode, RealService, Snapshot
from netlab.errors import NetlabError
from netlab.model import IngressNetwork, Lab, Underlay
from netlab.scenario import ScenarioError
from netlab.scenario.loader import load_lab_from_text
from netlab.scenario.names import NODE_MAX

DEFAULT_NAME = "swarm"
_CONSTRAINT_KEYS = ("node.role", "node.hostname")


@dataclass(frozen=True)
class Export:
    """The scenario text, its lab, and what could not be said in it (one line each)."""

    text: str
    lab: Lab
    warnings: tuple[str, ...]


def _q(text: str) -> str:
    """A YAML scalar that reads back as the same string."""
    return json.dumps(text)


def _ports(svc: RealService, warn: list[str]) -> list[str]:
    out = []
    for p in svc.ports:
        if p.protocol not in ("tcp", "udp"):
            warn.append(f"service {svc.name}: port {p.published}:{p.target}/{p.protocol} left out "
                        "(netlab's task app serves tcp and udp only)")
            continue
        if not p.published:
            warn.append(f"service {svc.name}: target port {p.target} is not published; left out")
            continue
        if p.mode == "host":
            out.append(f"{{published: {p.published}, target: {p.target}, protocol: {p.protocol}, "
                       "mode: host}")
        else:
            out.append(_q(f"{p.published}:{p.target}" + ("/udp" if p.protocol == "udp" else "")))
    return out


def _constraints(svc: RealService, hostnames: dict[str, str], warn: list[str]) -> list[str]:
    """The constraints a scenario can hold, a hostname mapped to its node's name."""
    out = []
    for c in svc.constraints:
        text = c.replace(" ", "")
        op = "==" if "==" in text else "!=" if "!=" in text else None
        key, value = text.split(op, 1) if op else (text, "")
        if op is None or key not in _CONSTRAINT_KEYS:
            warn.append(f"service {svc.name}: constraint {c!r} left out (netlab models node.role "
                        "and node.hostname)")
            continue
        if key == "node.hostname":
            value = hostnames.get(value, value)
        out.append(_q(f"{key}{op}{value}"))
    return out


def _replicas(svc: RealService, nodes: tuple[RealNode, ...], warn: list[str]) -> int:
    if svc.replicas is not None:
        return svc.replicas
    eligible = [n for n in nodes if n.availability == "active" and n.state == "ready"]
    warn.append(f"service {svc.name} is global in the Swarm; written as {len(eligible)} "
                "replica(s), one per active node (netlab models replicated services)")
    return len(eligible)


def _service_lines(svc: RealService, snap: Snapshot, modelled: set[str],
                   warn: list[str]) -> list[str]:
    hostnames = {n.hostname: n.name for n in snap.nodes}
    ports = _ports(svc, warn)
    networks = [n for n in svc.networks if n in modelled]
    for n in svc.networks:
        if n not in modelled:
            warn.append(f"service {svc.name}: network {n} is not an overlay network; left out")
    if not ports and not networks:
        warn.append(f"service {svc.name} publishes no port and is on no overlay network: "
                    "left out (netlab models the mesh and overlay networks)")
        return []
    deploy = [f"replicas: {_replicas(svc, snap.nodes, warn)}"]
    if svc.endpoint_mode != "vip":
        deploy.append(f"endpoint_mode: {svc.endpoint_mode}")
    lines = [f"  {svc.name}:", f"    deploy: {{{', '.join(deploy)}}}"]
    if constraints := _constraints(svc, hostnames, warn):
        lines[-1] = lines[-1][:-1] + f", placement: {{constraints: [{', '.join(constraints)}]}}}}"
    if ports:
        lines.append(f"    ports: [{', '.join(ports)}]")
    if networks:
        lines.append(f"    networks: [{', '.join(networks)}]")
    return lines


def _ingress_lines(snap: Snapshot) -> list[str]:
    """``ingress:`` when the Swarm's ingress network is not Docker's default one."""
    default = IngressNetwork()
    net = next((n for n in snap.networks if n.ingress), None)
    if net is None:
        return []
    keys = []
    if net.subnet and ipaddress.ip_network(net.subnet, strict=False) != default.subnet:
        keys.append(f"subnet: {net.subnet}")
    if net.vni is not None and net.vni != default.vni:
        keys.append(f"vni: {net.vni}")
    if net.mtu is not None and net.mtu - 50 != default.mtu:
        keys.append(f"mtu: {net.mtu - 50}")
    return [f"ingress: {{{', '.join(keys)}}}"] if keys else []


def scenario_text(snap: Snapshot, name: str, warn: list[str]) -> str:
    """The scenario body (no header comment) for ``snap``; appends to ``warn``."""
    lines = [f"name: {name}", "", "nodes:"]
    for n in snap.nodes:
        extra = f", availability: {n.availability}" if n.availability != "active" else ""
        lines.append(f"  {n.name}: {{role: {n.role}{extra}}}"
                     + (f"   # hostname {n.hostname}" if n.name != n.hostname else ""))
        if n.name != n.hostname:
            warn.append(f"node {n.name} is the Swarm's {n.hostname or n.id[:12]} (its hostname "
                        f"made a node name: at most {NODE_MAX} characters, lowercase letters, "
                        "digits and '-', distinct)")
        if n.state != "ready":
            warn.append(f"node {n.name} is {n.state} in the Swarm; netlab starts every node ready")
    lines += _ingress_lines(snap)
    gwbridge = next((n.subnet for n in snap.networks if n.name == "docker_gwbridge" and n.subnet),
                    None)
    if gwbridge and ipaddress.ip_network(gwbridge) != Underlay().gwbridge:
        lines.append(f"underlay: {{gwbridge: {gwbridge}}}")
    overlays = [n for n in snap.networks if n.overlay and not n.ingress]
    if overlays:
        lines += ["", "networks:"]
        for net in overlays:
            lines.append(f"  {net.name}:")
            lines.append("    driver: overlay")
            if net.subnet:
                lines.append(f"    ipam: {{config: [{{subnet: {net.subnet}}}]}}")
            if net.mtu is not None:
                lines.append(f"    driver_opts: {{com.docker.network.driver.mtu: \"{net.mtu}\"}}")
    body: list[str] = []
    modelled = {n.name for n in overlays}
    for svc in snap.services:
        body += _service_lines(svc, snap, modelled, warn)
    lines += ["", "services:"] + body if body else ["", "services: {}"]
    return "\n".join(lines) + "\n"


def placement_notes(lab: Lab, snap: Snapshot) -> list[str]:
    """Where netlab's scheduler puts a task on another node than the Swarm did."""
    real = {t.name: t.node for t in snap.tasks}
    out = []
    for task in lab.tasks:
        node = real.get(task.name)
        if node is not None and node != task.node:
            out.append(f"task {task.name} runs on {node} in the Swarm; netlab's scheduler "
                       f"places it on {task.node}")
    missing = sorted(set(real) - {t.name for t in lab.tasks})
    if missing:
        out.append(f"tasks of the Swarm netlab does not place: {', '.join(missing)}")
    return out


def export(snap: Snapshot, name: str = DEFAULT_NAME) -> Export:
    """The scenario of ``snap`` as text and as netlab reads it. Raises NetlabError if
    netlab's own reader refuses what was written (a bug here, said with its issues)."""
    warn: list[str] = []
    body = scenario_text(snap, name, warn)
    try:
        lab = load_lab_from_text(body, "swarm export")
    except ScenarioError as err:
        raise NetlabError(f"swarm export wrote a scenario netlab refuses: {err}") from None
    warn += placement_notes(lab, snap)
    head = [f"# The Swarm of {snap.node(snap.this_node).hostname}"
            + (f" (cluster {snap.cluster_id[:12]})" if snap.cluster_id else "")
            + ", exported by `netlab swarm export`."]
    head += [f"# note: {w}" for w in warn]
    return Export("\n".join(head) + "\n" + body, lab, tuple(warn))
