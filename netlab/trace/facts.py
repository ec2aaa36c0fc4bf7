"""What the plan says about a lab, indexed for naming things in a trace.

The correlator sees addresses, MACs, marks and interfaces; these tables turn
them into the scenario's words ("hello-a.1 on node1", "node2/ingress_sbox/eth1").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netlab.ipam import Allocations, mac_for
from netlab.codec import ENDED
from netlab.model import Lab, TaskRecord
from netlab.plan.types import Plan


@dataclass(frozen=True)
class LabFacts:
    """Lookup tables built from a lab's plan; no kernel access."""

    tasks_by_ip: dict[str, tuple[str, str]] = field(default_factory=dict)   # ip -> (task, node)
    owner_of_mac: dict[str, str] = field(default_factory=dict)              # mac -> "hello-a.1 on node1"
    scheduler: dict[tuple[str, int], str] = field(default_factory=dict)     # (netns, fwmark) -> "rr"
    planned_fdb: dict[tuple[str, str], str] = field(default_factory=dict)   # (netns, mac) -> dst
    peer: dict[tuple[str, str], str] = field(default_factory=dict)          # (netns, iface) -> label
    # (netns, iface) -> the far end's MAC
    peer_mac: dict[tuple[str, str], str] = field(default_factory=dict)
    target: dict[str, str] = field(default_factory=dict)                    # netns -> target
    role: dict[str, str] = field(default_factory=dict)                      # netns -> role
    node: dict[str, str] = field(default_factory=dict)                      # netns -> node it is on
    node_of_lan_ip: dict[str, str] = field(default_factory=dict)
    vxlan_port: int = 4789
    # (proto, port) -> (service, nodes running its tasks) for ports published in host mode
    host_published: dict[tuple[str, int], tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    # ip -> the last task that had it and ended (the state's history), for a task gone
    ended_by_ip: dict[str, TaskRecord] = field(default_factory=dict)
    node_state: dict[str, str] = field(default_factory=dict)                # node -> ready | down
    netns_of: dict[str, str] = field(default_factory=dict)                  # target -> netns
    lan_ip: dict[str, str] = field(default_factory=dict)                    # node -> its LAN address
    scenario: str = ""                                                      # the lab's scenario file
    # The addresses the plan has at weight 0: tasks still starting (no healthy check yet).
    starting: frozenset[str] = frozenset()


def lab_facts(lab: Lab, addr: Allocations, plan: Plan,
              history: tuple[TaskRecord, ...] = (), scenario: str = "") -> LabFacts:
    """Index ``plan`` (built from ``lab`` and its allocations ``addr``) and the task
    ``history`` of the lab's state for the correlator."""
    node_of = {t.name: t.node for t in lab.tasks}
    tasks_by_ip = {str(ip): (name, node_of[name]) for name in addr.tasks
                   for ip in addr.addresses_of(name)}
    owner = {mac_for(ip): f"{name} on {node_of[name]}" for name in addr.tasks
             for ip in addr.addresses_of(name)}
    owner.update({mac_for(n.sandbox_ip): f"{node}/ingress_sbox" for node, n in addr.nodes.items()})
    owner.update({mac_for(ip): f"{node}/lb-{net}" for net, na in addr.networks.items()
                  for node, ip in na.lb.items()})
    target = {ns.name: ns.target for ns in plan.netns}
    peer: dict[tuple[str, str], str] = {}
    peer_mac: dict[tuple[str, str], str] = {}
    for v in plan.veths:
        peer[(v.a.netns, v.a.name)] = f"{target[v.b.netns]}/{v.b.name}"
        peer[(v.b.netns, v.b.name)] = f"{target[v.a.netns]}/{v.a.name}"
        if v.b.mac:
            peer_mac[(v.a.netns, v.a.name)] = v.b.mac
        if v.a.mac:
            peer_mac[(v.b.netns, v.b.name)] = v.a.mac
    return LabFacts(
        tasks_by_ip=tasks_by_ip,
        owner_of_mac=owner,
        scheduler={(s.netns, s.fwmark): s.scheduler for s in plan.ipvs},
        planned_fdb={(f.netns, f.mac): f.dst for f in plan.fdb},
        peer=peer,
        peer_mac=peer_mac,
        target=target,
        role={ns.name: ns.role for ns in plan.netns},
        node={ns.name: ns.node or ns.target for ns in plan.netns},
        node_of_lan_ip={str(n.lan_ip): node for node, n in addr.nodes.items()},
        vxlan_port=lab.underlay.data_path_port,
        host_published={(p.protocol, p.published): (s.name, tuple(dict.fromkeys(
            t.node for t in lab.tasks_of(s.name)))) for s in lab.services for p in s.host_ports},
        ended_by_ip={t.address: t for t in history if t.address and t.state in ENDED},
        node_state={n.name: n.state for n in lab.nodes},
        netns_of={ns.target: ns.name for ns in plan.netns},
        lan_ip={node: str(n.lan_ip) for node, n in addr.nodes.items()},
        scenario=scenario,
        starting=frozenset(d.addr for s in plan.ipvs for d in s.dests if d.weight == 0),
    )
