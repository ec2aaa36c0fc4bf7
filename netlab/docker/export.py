"""A real Swarm written as a netlab scenario: ``netlab swarm export``.

:func:`export` turns a :class:`~netlab.docker.snapshot.Snapshot` into
scenario YAML that ``netlab validate`` accepts: the nodes with their roles
(and availability when not active), the user overlay networks with their
subnets, each service with its replicas, published ports (``"P:T"``,
``/udp``, the long form for ``mode: host``), endpoint mode and networks,
the ingress network's subnet, VNI and MTU and this node's docker_gwbridge
subnet when they are not Docker's defaults; a service's image, restart
policy, health check, update and rollback configs when they are not the
defaults (:func:`_manager_lines`). The file is checked with netlab's own scenario reader before it
is returned.

What a scenario cannot say is left out and said, in a comment at the top of
the file and as a warning: a global service is written as one replica per
eligible node; a service on no network netlab models, an sctp port, a
constraint other than ``node.role``/``node.hostname``, an image netlab does
not read (a digest alone), a health check that is not an HTTP GET of the
task netlab can make are left out; and
where netlab's scheduler would place a task on another node than the Swarm
did, the file says so (netlab places tasks itself; the scenario is not
wrong for it). A service's environment is not exported: its values may be
secrets, or Swarm templates (``{{.Node.Hostname}}``) only Swarm fills in.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from typing import Any

from netlab.docker.snapshot import RealNode, RealService, Snapshot
from netlab.docker.tasks import TASK_IMAGE
from netlab.errors import NetlabError
from netlab.model import (
    COUNT_MAX, DEFAULT_IMAGE, DURATION_MAX, IngressNetwork, Lab, Underlay, normalized_image,
)
from netlab.scenario import ScenarioError
from netlab.scenario.loader import load_lab_from_text
from netlab.scenario.health import accepted_test
from netlab.scenario.names import NODE_MAX

DEFAULT_NAME = "swarm"
_CONSTRAINT_KEYS = ("node.role", "node.hostname")
_NS = 1_000_000_000
_RESTART_DELAY_NS = 5 * _NS       # swarmkit's api/defaults/service.go, Task.Restart.Delay
_MONITOR_NS = 5 * _NS             # and Update.Monitor, Rollback.Monitor


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
    if constraints := _constraints(svc, hostnames, warn):
        deploy.append(f"placement: {{constraints: [{', '.join(constraints)}]}}")
    manager, deploy_more = _manager_lines(svc, warn)
    lines = [f"  {svc.name}:", f"    deploy: {{{', '.join(deploy + deploy_more)}}}"]
    if ports:
        lines.append(f"    ports: [{', '.join(ports)}]")
    if networks:
        lines.append(f"    networks: [{', '.join(networks)}]")
    return lines + manager


def _duration(ns: int) -> str:
    """Nanoseconds as compose writes a duration: ``5s``, ``1m30s``, ``500ms``, ``0s``."""
    if ns % _NS:
        for unit, size in (("ms", 1_000_000), ("us", 1000), ("ns", 1)):
            if ns % size == 0:
                return f"{ns // size}{unit}"
    hours, rest = divmod(ns // _NS, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") \
        + (f"{seconds}s" if seconds else "")
    return text or "0s"


def _ns(raw: dict[str, Any], key: str, what: str, warn: list[str]) -> int | None:
    """``raw[key]``, a duration in nanoseconds the scenario can hold; None when it is
    absent, or not one (then said in ``warn``)."""
    value = raw.get(key)
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= DURATION_MAX * _NS:
        warn.append(f"{what} {key} {value!r} left out (not a duration netlab reads)")
        return None
    return value


def _count(raw: dict[str, Any], key: str, what: str, warn: list[str]) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= COUNT_MAX:
        warn.append(f"{what} {key} {value!r} left out (not a count netlab reads)")
        return None
    return value


def _restart(svc: RealService, warn: list[str]) -> list[str]:
    """``restart_policy:`` keys that differ from Swarm's defaults. As the Engine reads
    ``TaskTemplate.RestartPolicy`` (moby ``daemon/cluster/convert/service.go``,
    ``restartPolicyToGRPC``): no condition is any, no delay swarmkit's 5s."""
    raw, what, keys = svc.restart, f"service {svc.name}: restart policy", []
    if raw is None:
        return []
    condition = raw.get("Condition") or "any"
    if condition not in ("none", "on-failure", "any"):
        warn.append(f"{what} condition {condition!r} left out")
    elif condition != "any":
        keys.append(f"condition: {condition}")
    delay = _ns(raw, "Delay", what, warn)
    if delay is not None and delay != _RESTART_DELAY_NS:
        keys.append(f"delay: {_duration(delay)}")
    if attempts := _count(raw, "MaxAttempts", what, warn):
        keys.append(f"max_attempts: {attempts}")
    if window := _ns(raw, "Window", what, warn):
        keys.append(f"window: {_duration(window)}")
    return [f"restart_policy: {{{', '.join(keys)}}}"] if keys else []


def _update(svc: RealService, rollback: bool, warn: list[str]) -> list[str]:
    """``update_config:`` (or ``rollback_config:``) keys that differ from swarmkit's
    defaults, as the Engine reads ``UpdateConfig`` (``updateConfigToGRPC``): no
    failure action is pause, no order stop-first, a monitor of 0 swarmkit's 5s."""
    raw = svc.rollback if rollback else svc.update
    section = "rollback_config" if rollback else "update_config"
    what, keys = f"service {svc.name}: {section}", []
    if raw is None:
        return []
    parallelism = _count(raw, "Parallelism", what, warn)
    if parallelism is not None and parallelism != 1:
        keys.append(f"parallelism: {parallelism}")
    if delay := _ns(raw, "Delay", what, warn):
        keys.append(f"delay: {_duration(delay)}")
    action = raw.get("FailureAction") or "pause"
    if action not in (("pause", "continue") if rollback else ("pause", "continue", "rollback")):
        warn.append(f"{what} failure action {action!r} left out")
    elif action != "pause":
        keys.append(f"failure_action: {action}")
    monitor = _ns(raw, "Monitor", what, warn)
    if monitor and monitor != _MONITOR_NS:
        keys.append(f"monitor: {_duration(monitor)}")
    ratio = raw.get("MaxFailureRatio") or 0
    if type(ratio) not in (int, float) or not 0 <= ratio <= 1:
        warn.append(f"{what} max failure ratio {ratio!r} left out")
    elif ratio:
        keys.append(f"max_failure_ratio: {ratio:g}")
    order = raw.get("Order") or "stop-first"
    if order not in ("stop-first", "start-first"):
        warn.append(f"{what} order {order!r} left out")
    elif order != "stop-first":
        keys.append(f"order: {order}")
    return [f"{section}: {{{', '.join(keys)}}}"] if keys else []


def _image(svc: RealService, warn: list[str]) -> list[str]:
    """``image:`` unless it is netlab's own app (or its container image); a digest is
    dropped (netlab names images by tag)."""
    if not svc.image:
        return []
    name = svc.image.partition("@")[0]
    image, why = normalized_image(name)
    if image is None:
        warn.append(f"service {svc.name}: image {svc.image[:80]!r} left out ({why})")
        return []
    if image in (DEFAULT_IMAGE, TASK_IMAGE):
        return []
    return [f"    image: {_q(image)}"]


def _healthcheck(svc: RealService, warn: list[str]) -> list[str]:
    """``healthcheck:`` when its test is an HTTP GET of the task netlab can make, on a
    port the exported service's app listens on; 0 durations and retries are the
    Engine's defaults and not written."""
    raw = svc.healthcheck
    if raw is None:
        return []
    test = raw.get("Test") or []
    if not isinstance(test, list) or not all(isinstance(t, str) for t in test) \
            or test[:1] == ["NONE"] or not test:
        return []
    targets = {p.target for p in svc.ports if p.protocol == "tcp" and p.published}
    found = accepted_test(test)
    if found is None or found[0] not in targets:
        warn.append(f"service {svc.name}: health check {' '.join(test)[:120]!r} left out "
                    "(netlab makes a check's HTTP GET itself: curl -f or wget of "
                    "http://localhost:PORT/PATH on a published target port)")
        return []
    what = f"service {svc.name}: health check"
    keys = [f"test: {json.dumps(test)}"]
    for key, name in (("Interval", "interval"), ("Timeout", "timeout"),
                      ("StartPeriod", "start_period")):
        ns = _ns(raw, key, what, warn)
        if ns and ns >= 1_000_000:      # the Engine refuses less than 1ms
            keys.append(f"{name}: {_duration(ns)}")
    if retries := _count(raw, "Retries", what, warn):
        keys.append(f"retries: {retries}")
    return [f"    healthcheck: {{{', '.join(keys)}}}"]


def _manager_lines(svc: RealService, warn: list[str]) -> tuple[list[str], list[str]]:
    """A service's lines for its image and health check, and its ``deploy:`` keys for
    the restart policy and update and rollback configs; each only when it is not the
    default."""
    deploy = _restart(svc, warn) + _update(svc, False, warn) + _update(svc, True, warn)
    return _image(svc, warn) + _healthcheck(svc, warn), deploy


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
