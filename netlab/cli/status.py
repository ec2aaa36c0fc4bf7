"""``netlab status [LAB] [--json]``: nodes, services, tasks, namespaces, drift."""

from __future__ import annotations

import dataclasses
import gc
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import click

from netlab import lifecycle
from netlab.cli import common
from netlab.diff.drift import Allowance
from netlab.kernel import netns, procs
from netlab.kernel.interface import Kernel, LinuxKernel
from netlab.kernel.procs import ProcessInfo
from netlab.kernel.xtables import DESCRIPTION
from netlab.savecache import SaveFile
from netlab.state import LabState, StateStore


@dataclass(frozen=True)
class Readers:
    """What ``status`` reads from the machine; tests pass fakes (no root needed)."""

    kernel: Kernel = field(default_factory=LinuxKernel)
    netns_exists: Callable[[str], bool] = netns.exists
    process: Callable[[int], ProcessInfo | None] = procs.read   # /proc/<pid>, None if none


def readers() -> Readers:
    """The real readers (tests replace this with fakes)."""
    return Readers()


def status_doc(lab_name: str | None, with_readers: Readers | None = None) -> dict:
    """The status of a lab as one JSON-able document."""
    return status_of(common.lab_state(common.store(), lab_name), with_readers or readers())


def status_of(state: LabState, readers: Readers, store: StateStore | None = None) -> dict:
    """The status of the lab whose state is ``state`` (in ``store``, default the CLI's):
    its plan rebuilt from the state alone (never from the scenario file), compared
    with what ``readers`` see; the supervisor is running only when the recorded pid
    is this lab's (:func:`netlab.lifecycle.supervisor_serves`).

    Python's cycle collector is paused meanwhile: a 1,000-task lab makes a few
    hundred thousand small objects (links, neighbours, rules), none of them in
    a cycle that outlives the call, and the collector ran over them again and
    again, about a tenth of the whole. It runs as before once the call returns.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _status_of(state, readers, store)
    finally:
        if was_enabled:
            gc.enable()


def _status_of(state: LabState, readers: Readers, store: StateStore | None) -> dict:
    lab, a = state.model, state.allocations
    plan = common.plan_from_state(state)
    # A change under way (scale, node) has its plan's weights at 0 on the way: not drift.
    allow = Allowance(changing=not state.complete, links_down=lifecycle.links_down(lab))
    # The rules read are kept beside the state, so the next status reads again only
    # the namespaces whose rules changed (nft; see netlab.kernel.nftgen).
    memory = SaveFile(store or common.store(), state.lab)
    diffs = readers.kernel.drift(plan, state.iptables, allow, memory)
    pid = state.supervisor_pid
    manager = _manager(state, store or common.store(), readers)
    actual = {(r.name, r.node): r.state for r in state.actual_tasks
              if r.state in lifecycle.ACTIVE_STATES}
    health = manager.get("health", {})
    return {
        "lab": lab.name,
        "scenario": state.scenario,
        "complete": state.complete,
        "iptables": state.iptables,
        "iptables_backend": DESCRIPTION.get(state.iptables, state.iptables),
        "supervisor": {"pid": pid, "running": bool(pid) and lifecycle.supervisor_serves(
            state, store or common.store(), readers.process)},
        "manager": manager,
        "tasks_as": state.tasks,            # "namespaces" (netlab's app) or "containers"
        "docker": state.docker,
        "nodes": [{"name": n.name, "role": n.role, "availability": n.availability,
                   "state": n.state,
                   "lan_ip": str(a.nodes[n.name].lan_ip),
                   "ingress_sbox_ip": str(a.nodes[n.name].sandbox_ip),
                   "netns": state.targets.get(n.name)} for n in lab.nodes],
        "networks": [{"name": n.name, "subnet": str(n.subnet), "vni": a.networks[n.name].vni,
                      "mtu": n.mtu,
                      "lb": {node: str(ip) for node, ip in a.networks[n.name].lb.items()}}
                     for n in lab.networks],
        "services": [{"name": s.name, "replicas": s.replicas,
                      "ports": [dataclasses.asdict(p) for p in s.ports],
                      "fwmark": a.services[s.name].fwmark if s.name in a.services else None,
                      "vip": str(a.services[s.name].vip) if s.name in a.services else None,
                      "endpoint_mode": s.endpoint_mode,
                      "image": s.image,
                      # As docker service inspect's UpdateStatus (None: never updated).
                      "update_status": _update_status(state.updates.get(s.name)),
                      "networks": [_service_on(a, s.name, net) for net in s.networks]}
                     for s in lab.services],
        # A task's state: running, or starting (its health check not yet passed: no
        # traffic); its health as the manager's probes found it (None without a check).
        "tasks": [{"name": t.name, "service": t.service, "node": t.node,
                   "state": actual.get((t.name, t.node), "running"),
                   "health": (health.get(t.name, {}).get("health")
                              if lab.service(t.service).healthcheck is not None else None),
                   "ip": str(a.primary_ip(t.name, lab)),
                   "addresses": {net: str(ip) for net, ip in _task_addresses(a, t.name)},
                   "netns": state.targets.get(t.name),
                   "container": state.containers.get(state.targets.get(t.name, ""))}
                  for t in lab.tasks],
        # Every task the orchestrator made, shut-down ones included, as docker service ps.
        "history": [{"name": t.name, "service": t.service, "slot": t.slot, "node": t.node,
                     "state": t.state, "address": t.address, "ended_at": t.ended_at,
                     "ended_by": t.ended_by} for t in state.desired_tasks],
        "namespaces": [{"target": ns.target, "netns": ns.name, "role": ns.role,
                        "exists": readers.netns_exists(ns.name)} for ns in plan.netns],
        "drift": [_concrete(dataclasses.asdict(d), state) for d in diffs if d.kind != "user-rule"],
        # Rules a user added to DOCKER-USER: kept by up, as Docker keeps them; not drift.
        "user_rules": [{"netns": d.netns, "rule": d.detail} for d in diffs if d.kind == "user-rule"],
    }


def _manager(state: LabState, store: StateStore, readers: Readers) -> dict:
    """The lab's manager: its pid, whether it runs, the time scale, and (when it runs)
    each node's state as it sees it and the restarts waiting for their delay."""
    from netlab.manager import control
    running = lifecycle.manager_runs(state, store, readers.process)
    view = control.view(store, state.lab) if running else None
    return {"pid": state.manager_pid, "running": running, "time_scale": state.time_scale,
            "nodes": (view or {}).get("nodes", {}),
            "restarts_waiting": (view or {}).get("restarts_waiting", []),
            "slots_waiting": (view or {}).get("slots_waiting", []),
            "health": (view or {}).get("health", {}),
            # Each node's NetworkDB: the peers it suspects or holds failed (as the
            # manager sees it now), and the peers whose tasks its load balancers hide.
            "gossip": (view or {}).get("gossip", {}),
            "load_balancers_hide": {n: list(p) for n, p in state.gossip_failed.items()}}


def _update_status(u) -> dict | None:
    if u is None:
        return None
    return {"state": u.state, "started": u.started, "completed": u.completed,
            "message": u.message, "previous_image": u.previous_image}


def _concrete(drift: dict, state: LabState) -> dict:
    """A drift item whose hint names this lab's scenario and name."""
    hint = drift["hint"].replace("SCENARIO --name LAB", f"{state.scenario} --name {state.lab}")
    return {**drift, "hint": hint}


def _service_on(a, service: str, network: str) -> dict:
    """A service on a user network: its VIP and fwmark there (None for dnsrr)."""
    v = a.networks[network].vips.get(service)
    return {"network": network, "vip": str(v.vip) if v else None,
            "fwmark": v.fwmark if v else None}


def _task_addresses(a, task: str) -> list[tuple[str, str]]:
    """(network, address) of ``task`` on each overlay network, ingress first."""
    out = [] if a.tasks[task].ingress_ip is None else [("ingress", a.tasks[task].ingress_ip)]
    return out + [(net, na.tasks[task]) for net, na in a.networks.items() if task in na.tasks]


@click.command()
@click.argument("lab", required=False, callback=common.lab_name)
@common.json_option("One JSON document.")
def status(lab: str | None, as_json: bool) -> None:
    """Nodes, services, tasks, the netns of each target, and drift against the plan."""
    doc = status_doc(lab)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    sup = doc["supervisor"]
    click.echo(f"lab {doc['lab']}  ({doc['scenario']})  iptables: {doc['iptables_backend']}")
    click.echo(f"task apps: pid {sup['pid']} " + ("running" if sup["running"] else "NOT running")
               + ("  (tasks are containers: the app serves their DNS)"
                  if doc["tasks_as"] == "containers" else ""))
    mgr = doc["manager"]
    if mgr["pid"] is not None:
        click.echo(f"manager: pid {mgr['pid']} " + ("running" if mgr["running"] else
                                                  "NOT running (the lab serves; netlab up starts it)")
                   + ("" if mgr["time_scale"] == 1 else f"  time scale {mgr['time_scale']:g}"))
    for n in doc["nodes"]:
        seen = mgr["nodes"].get(n["name"], {}).get("state")
        click.echo(f"  node {n['name']:<10} {n['role']:<8} {n['state']:<5} {n['availability']:<6} "
                   f"lan {n['lan_ip']:<15} ingress_sbox {n['ingress_sbox_ip']}"
                   + (f"  manager sees: {seen}" if seen else ""))
    for viewer, peers in mgr["gossip"].items():
        hides = set(mgr["load_balancers_hide"].get(viewer, ()))
        click.echo(f"  node {viewer}'s NetworkDB: " + ", ".join(
            f"{p} {st}" + (" (its tasks out of this node's load balancers)" if p in hides else "")
            for p, st in peers.items()))
    for r in mgr["restarts_waiting"]:
        click.echo(f"  restart of {', '.join(r['tasks'])} (node {r['node']} down) in {r['in']:g} s")
    for r in mgr["slots_waiting"]:
        click.echo(f"  restart of {r['task']} (replacing the one that ended) in {r['in']:g} s")
    for n in doc["networks"]:
        click.echo(f"  network {n['name']:<10} {n['subnet']:<18} VNI {n['vni']}  lb "
                   + ", ".join(f"{node} {ip}" for node, ip in n["lb"].items()))
    for s in doc["services"]:
        ports = ", ".join(f"{p['published']}:{p['target']}/{p['protocol']}" for p in s["ports"])
        line = f"  service {s['name']} x{s['replicas']}" + (f"  {ports}" if ports else "")
        if s["vip"] is not None or not s["networks"]:
            line += f"  FWM {s['fwmark']}  VIP {s['vip']}"
        if s["networks"]:
            line += f"  endpoint_mode {s['endpoint_mode']}" + "".join(
                f"  {v['network']}: " + (f"VIP {v['vip']} FWM {v['fwmark']}" if v["vip"]
                                         else "no VIP (dnsrr)") for v in s["networks"])
        click.echo(line)
        if s["update_status"]:
            u = s["update_status"]
            click.echo(f"    image {s['image']}  update {u['state'].replace('_', ' ')}: "
                       f"{u['message']} (previous {u['previous_image']})")
    for t in doc["tasks"]:
        extra = "".join(f"  {net} {ip}" for net, ip in t["addresses"].items()
                        if net != "ingress" and ip != t["ip"])
        box = f"  container {t['container'][:12]}" if t["container"] else ""
        health = f" ({t['health']})" if t["health"] else ""
        click.echo(f"  task {t['name']:<14} on {t['node']:<10} {t['ip']:<15} "
                   f"{t['state']}{health}{extra}{box}"
                   + ("  no traffic until healthy" if t["state"] == "starting" else ""))
    if any(h["state"] != "running" for h in doc["history"]):
        click.echo("task history (slot, node, state):")
        for h in doc["history"]:
            how = "by netlab " if h["state"] == "shutdown" else ""    # failed: Docker's error
            ended = (f"  {h['address'] or ''} {h['ended_at'] or ''} {how}{h['ended_by']}"
                     if h["ended_by"] else "")
            click.echo(f"  {h['name']:<14} slot {h['slot']:<4} {h['node']:<10} {h['state']}{ended}")
    click.echo("namespaces:")
    for ns in doc["namespaces"]:
        click.echo(f"  {ns['target']:<24} {ns['netns']}" + ("" if ns["exists"] else "  MISSING"))
    for r in doc["user_rules"]:
        click.echo(f"  your rule in {r['netns']} (kept by up, as Docker keeps DOCKER-USER): {r['rule']}")
    if doc["drift"]:
        click.echo(f"drift: {len(doc['drift'])} difference(s) from the plan")
        for d in doc["drift"]:
            click.echo(f"  {d['target'] or d['netns']} {d['kind']}: {d['detail']}")
        click.echo("  hint: " + "; ".join(dict.fromkeys(d["hint"] for d in doc["drift"])))
    else:
        click.echo("drift: none (the kernel matches the plan)")
