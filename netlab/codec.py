"""The lab's memory as JSON: the applied model, its allocations and its tasks.

Small explicit functions turn the frozen dataclasses of :mod:`netlab.model`
and :mod:`netlab.ipam` into JSON-able values and back (never pickle). The
readers trust nothing: every object must have exactly its keys, every value
its type and range, addresses must parse, names must be valid labels, and
what one part names (a task's node, an allocation's task) must exist in the
other. A problem raises :class:`Invalid` naming the path of the value
(``model.services[0].replicas``), which the state reader reports.
"""

from __future__ import annotations

import ipaddress
from typing import Any, get_args

from netlab import jsonread as jr
from netlab.ipam import (
    VNI_BASE, Allocations, NetworkAddresses, NodeAddresses, Pool, ServiceAddresses, TaskAddresses,
)
from netlab.jsonread import Invalid as Invalid  # re-exported: callers catch codec.Invalid
from netlab.jsonread import is_name
from netlab.model import (
    COUNT_MAX, DEFAULT_IMAGE, DURATION_MAX, Availability, Constraint, EndpointMode, FailureAction,
    HealthCheck, IngressNetwork, Lab, Node, NodeRole, NodeState, OverlayNetwork, Protocol,
    PublishedPort, PublishMode, RestartCondition, RestartPolicy, Service, Task, TaskRecord,
    TaskState, Underlay, UpdateConfig, UpdateOrder, normalized_image,
)

INT_MAX = 1 << 32
IPTABLES = ("auto", "nft", "legacy")
CONSTRAINT_KEYS = ("node.role", "node.hostname")
# A service's keys written after version 2 first was: an older file has none of them
# (each then is its default: netlab's app image, no environment, Swarm's policies).
SERVICE_OPTIONAL = ("networks", "endpoint_mode", "expose", "image", "env", "restart_policy",
                    "healthcheck", "update_config", "rollback_config")
RESTART_KEYS = ("condition", "delay", "max_attempts", "window")
HEALTH_KEYS = ("test", "port", "path", "interval", "timeout", "retries", "start_period")
UPDATE_KEYS = ("parallelism", "delay", "failure_action", "monitor", "max_failure_ratio", "order")
ENV_VALUE_MAX = 4096
TEST_MAX = 4096


# -- writing -------------------------------------------------------------------------------

def lab_to_json(lab: Lab) -> dict[str, Any]:
    """``lab`` as a JSON-able object (nodes, services and ports, networks, placement)."""
    return {
        "name": lab.name,
        "nodes": [{"name": n.name, "role": n.role, "availability": n.availability,
                   "state": n.state} for n in lab.nodes],
        "services": [{
            "name": s.name, "replicas": s.replicas,
            "ports": [{"published": p.published, "target": p.target, "protocol": p.protocol,
                       "mode": p.mode} for p in s.ports],
            "constraints": [{"key": c.key, "value": c.value, "equal": c.equal}
                            for c in s.constraints],
            "networks": list(s.networks), "endpoint_mode": s.endpoint_mode,
            "expose": list(s.expose),
            **service_extras_to_json(s),
        } for s in lab.services],
        "networks": [{"name": n.name, "subnet": str(n.subnet), "mtu": n.mtu}
                     for n in lab.networks],
        "ingress": {"name": lab.ingress.name, "subnet": str(lab.ingress.subnet),
                    "vni": lab.ingress.vni, "mtu": lab.ingress.mtu},
        "underlay": {"lan": str(lab.underlay.lan), "gwbridge": str(lab.underlay.gwbridge),
                     "data_path_port": lab.underlay.data_path_port,
                     "lan_mtu": lab.underlay.lan_mtu},
        "tasks": [_task_to_json(t, lab) for t in lab.tasks],
        "iptables": lab.iptables,
        **({"time_scale": lab.time_scale} if lab.time_scale is not None else {}),
    }


def _task_to_json(t: Task, lab: Lab) -> dict[str, Any]:
    """A task; its image and env only when they are not its service's (a rolling
    update under way), so a file stays as it was for every other lab."""
    out: dict[str, Any] = {"service": t.service, "slot": t.slot, "node": t.node}
    if t.instance:
        out["instance"] = t.instance
    if not t.runs(lab.service(t.service)):
        out["image"], out["env"] = t.image, dict(t.env)
    return out


def _update_config(u: UpdateConfig) -> dict[str, Any]:
    return {"parallelism": u.parallelism, "delay": u.delay, "failure_action": u.failure_action,
            "monitor": u.monitor, "max_failure_ratio": u.max_failure_ratio, "order": u.order}


def service_extras_to_json(s: Service) -> dict[str, Any]:
    """What a Swarm manager needs of a service besides its network shape: image,
    environment, restart policy, health check, update and rollback configs."""
    r, h = s.restart_policy, s.healthcheck
    return {
        "image": s.image, "env": dict(s.env),
        "restart_policy": {"condition": r.condition, "delay": r.delay,
                           "max_attempts": r.max_attempts, "window": r.window},
        "healthcheck": None if h is None else {
            "test": list(h.test), "port": h.port, "path": h.path, "interval": h.interval,
            "timeout": h.timeout, "retries": h.retries, "start_period": h.start_period},
        "update_config": _update_config(s.update_config),
        "rollback_config": _update_config(s.rollback_config),
    }


def _pool(pool: Pool) -> dict[str, Any]:
    return {"subnet": str(pool.subnet), "next": pool.next}


def allocations_to_json(a: Allocations) -> dict[str, Any]:
    """``a`` as a JSON-able object: every address, mark, VNI and pool cursor."""
    return {
        "client_ip": str(a.client_ip),
        "nodes": {name: {"lan_ip": str(n.lan_ip), "sandbox_ip": str(n.sandbox_ip),
                         "gateway_ip": str(n.gateway_ip), "sandbox_gw_ip": str(n.sandbox_gw_ip)}
                  for name, n in a.nodes.items()},
        "services": {name: {"vip": str(s.vip), "fwmark": s.fwmark}
                     for name, s in a.services.items()},
        "tasks": {name: {"node": t.node,
                         "ingress_ip": None if t.ingress_ip is None else str(t.ingress_ip),
                         "gw_ip": str(t.gw_ip)}
                  for name, t in a.tasks.items()},
        "vnis": dict(a.vnis),
        "ingress": _pool(a.ingress),
        "lan": _pool(a.lan),
        "gwbridge": {name: _pool(p) for name, p in a.gwbridge.items()},
        "next_fwmark": a.next_fwmark,
        "networks": {name: {"vni": n.vni, "pool": _pool(n.pool),
                            "lb": {node: str(ip) for node, ip in n.lb.items()},
                            "vips": {s: {"vip": str(v.vip), "fwmark": v.fwmark}
                                     for s, v in n.vips.items()},
                            "tasks": {t: str(ip) for t, ip in n.tasks.items()}}
                     for name, n in a.networks.items()},
        "next_vni": a.next_vni,
    }


HISTORY_KEYS = ("address", "ended_at", "ended_by")   # optional: only an ended task has them


def tasks_to_json(tasks: tuple[TaskRecord, ...]) -> list[dict[str, Any]]:
    return [{"service": t.service, "slot": t.slot, "node": t.node, "state": t.state,
             **({"instance": t.instance} if t.instance else {}),
             **{k: getattr(t, k) for k in HISTORY_KEYS if getattr(t, k) is not None}}
            for t in tasks]


# -- reading -------------------------------------------------------------------------------

def lab_from_json(value: Any, path: str = "model") -> Lab:
    """The Lab in ``value``, every field and cross-reference checked; raises Invalid."""
    doc = jr.obj(value, path, ("name", "nodes", "services", "ingress", "underlay", "tasks",
                             "iptables"), optional=("networks", "time_scale"))
    networks = []
    for i, raw in enumerate(jr.array(doc.get("networks", []), f"{path}.networks")):
        p = f"{path}.networks[{i}]"
        n = jr.obj(raw, p, ("name", "subnet", "mtu"))
        networks.append(OverlayNetwork(jr.name(n["name"], f"{p}.name"),
                                       jr.subnet(n["subnet"], f"{p}.subnet"),
                                       jr.integer(n["mtu"], f"{p}.mtu", 68, 65535)))
    known_networks = {n.name for n in networks}
    nodes = []
    for i, raw in enumerate(jr.array(doc["nodes"], f"{path}.nodes")):
        p = f"{path}.nodes[{i}]"
        # "state" came with netlab node; a file written before it has none (ready).
        n = jr.obj(raw, p, ("name", "role", "availability")
                 + (("state",) if isinstance(raw, dict) and "state" in raw else ()))
        nodes.append(Node(jr.name(n["name"], f"{p}.name"),
                          jr.choice(n["role"], f"{p}.role", get_args(NodeRole)),   # type: ignore[arg-type]
                          jr.choice(n["availability"], f"{p}.availability",
                                  get_args(Availability)),                       # type: ignore[arg-type]
                          jr.choice(n.get("state", "ready"), f"{p}.state",
                                  get_args(NodeState))))                         # type: ignore[arg-type]
    services = []
    for i, raw in enumerate(jr.array(doc["services"], f"{path}.services")):
        p = f"{path}.services[{i}]"
        s = jr.obj(raw, p, ("name", "replicas", "ports", "constraints"),
                 optional=SERVICE_OPTIONAL)
        ports = []
        for j, rp in enumerate(jr.array(s["ports"], f"{p}.ports")):
            pp = f"{p}.ports[{j}]"
            port = jr.obj(rp, pp, ("published", "target", "protocol", "mode"))
            ports.append(PublishedPort(
                jr.integer(port["published"], f"{pp}.published", 1, 65535),
                jr.integer(port["target"], f"{pp}.target", 1, 65535),
                jr.choice(port["protocol"], f"{pp}.protocol", get_args(Protocol)),  # type: ignore[arg-type]
                jr.choice(port["mode"], f"{pp}.mode", get_args(PublishMode))))     # type: ignore[arg-type]
        constraints = []
        for j, rc in enumerate(jr.array(s["constraints"], f"{p}.constraints")):
            pc = f"{p}.constraints[{j}]"
            c = jr.obj(rc, pc, ("key", "value", "equal"))
            if not isinstance(c["value"], str) or not c["value"] or len(c["value"]) > jr.NAME_MAX:
                raise Invalid(f"{pc}.value must be a short string")
            constraints.append(Constraint(jr.choice(c["key"], f"{pc}.key", CONSTRAINT_KEYS),
                                          c["value"], jr.boolean(c["equal"], f"{pc}.equal")))
        attached = tuple(jr.name(n, f"{p}.networks[{j}]")
                         for j, n in enumerate(jr.array(s.get("networks", []), f"{p}.networks")))
        for j, net in enumerate(attached):
            if net not in known_networks:
                raise Invalid(f"{p}.networks[{j}] is {net!r}, not a network of the lab")
        services.append(Service(jr.name(s["name"], f"{p}.name"),
                                jr.integer(s["replicas"], f"{p}.replicas", 0, INT_MAX),
                                tuple(ports), tuple(constraints), attached,
                                jr.choice(s.get("endpoint_mode", "vip"), f"{p}.endpoint_mode",
                                        get_args(EndpointMode)),  # type: ignore[arg-type]
                                tuple(jr.integer(x, f"{p}.expose[{j}]", 1, 65535) for j, x in
                                      enumerate(jr.array(s.get("expose", []), f"{p}.expose"))),
                                **_service_extras(s, p)))
    ing = jr.obj(doc["ingress"], f"{path}.ingress", ("name", "subnet", "vni", "mtu"))
    ingress = IngressNetwork(subnet=jr.subnet(ing["subnet"], f"{path}.ingress.subnet"),
                             vni=jr.integer(ing["vni"], f"{path}.ingress.vni", 1, (1 << 24) - 1),
                             mtu=jr.integer(ing["mtu"], f"{path}.ingress.mtu", 68, 65535),
                             name=jr.name(ing["name"], f"{path}.ingress.name"))
    und = jr.obj(doc["underlay"], f"{path}.underlay", ("lan", "gwbridge", "data_path_port", "lan_mtu"))
    underlay = Underlay(lan=jr.subnet(und["lan"], f"{path}.underlay.lan"),
                        gwbridge=jr.subnet(und["gwbridge"], f"{path}.underlay.gwbridge"),
                        data_path_port=jr.integer(und["data_path_port"],
                                            f"{path}.underlay.data_path_port", 1, 65535),
                        lan_mtu=jr.integer(und["lan_mtu"], f"{path}.underlay.lan_mtu", 68, 65535))
    iptables = doc["iptables"]
    if iptables is not None:
        jr.choice(iptables, f"{path}.iptables", IPTABLES)
    by_name = {s.name: s for s in services}
    raws = jr.array(doc["tasks"], f"{path}.tasks")
    tasks = []
    for i, (t, raw) in enumerate(zip(_records([_bare(r) for r in raws], f"{path}.tasks",
                                              with_state=False), raws, strict=True)):
        p = f"{path}.tasks[{i}]"
        svc = by_name.get(t.service)
        image = (_image(raw["image"], f"{p}.image") if "image" in raw
                 else svc.image if svc else DEFAULT_IMAGE)
        env = (_env(raw.get("env", {}), f"{p}.env") if "image" in raw
               else svc.env if svc else ())
        tasks.append(Task(t.service, t.slot, t.node, image, env, _instance(raw, p)))
    lab = Lab(name=jr.name(doc["name"], f"{path}.name"), nodes=tuple(nodes),
              services=tuple(services), ingress=ingress, underlay=underlay, tasks=tuple(tasks),
              iptables=iptables, networks=tuple(networks),
              time_scale=_time_scale(doc.get("time_scale"), f"{path}.time_scale"))
    _check_model(lab, path)
    return lab


def _seconds(value: Any, path: str) -> float:
    return jr.number(value, path, 0.0, DURATION_MAX)


def _image(value: Any, path: str) -> str:
    if not isinstance(value, str) or normalized_image(value)[0] != value:
        raise Invalid(f"{path} is {str(value)[:40]!r}, not an image NAME:TAG")
    return value


def _env(value: Any, path: str) -> tuple[tuple[str, str], ...]:
    def is_variable(key: str) -> bool:
        return bool(key) and "=" not in key and key.isprintable() and not any(
            c.isspace() for c in key)
    env = jr.mapping(value, path, is_variable, "a variable name")
    for key, v in env.items():
        if not isinstance(v, str) or "\0" in v or len(v) > ENV_VALUE_MAX:
            raise Invalid(f"{path}[{key!r}] must be a string of at most {ENV_VALUE_MAX} "
                          "characters")
    return tuple(sorted(env.items()))


def _restart_policy(value: Any, path: str) -> RestartPolicy:
    r = jr.obj(value, path, RESTART_KEYS)
    return RestartPolicy(
        jr.choice(r["condition"], f"{path}.condition", get_args(RestartCondition)),  # type: ignore[arg-type]
        _seconds(r["delay"], f"{path}.delay"),
        jr.integer(r["max_attempts"], f"{path}.max_attempts", 0, COUNT_MAX),
        _seconds(r["window"], f"{path}.window"))


def _healthcheck(value: Any, path: str) -> HealthCheck | None:
    if value is None:
        return None
    h = jr.obj(value, path, HEALTH_KEYS)
    test = tuple(jr.array(h["test"], f"{path}.test"))
    for i, t in enumerate(test):
        if not isinstance(t, str) or "\0" in t or len(t) > TEST_MAX:
            raise Invalid(f"{path}.test[{i}] must be a string of at most {TEST_MAX} characters")
    if not test or test[0] not in ("CMD", "CMD-SHELL") or len(test) < 2:
        raise Invalid(f"{path}.test must be CMD or CMD-SHELL and the command")
    url_path = jr.text(h["path"], f"{path}.path", ENV_VALUE_MAX)
    if not url_path.startswith("/") or " " in url_path:
        raise Invalid(f"{path}.path must be a URL path starting with /")
    return HealthCheck(test, jr.integer(h["port"], f"{path}.port", 1, 65535), url_path,
                       _seconds(h["interval"], f"{path}.interval"),
                       _seconds(h["timeout"], f"{path}.timeout"),
                       jr.integer(h["retries"], f"{path}.retries", 0, COUNT_MAX),
                       _seconds(h["start_period"], f"{path}.start_period"))


def _update_config_from(value: Any, path: str, rollback: bool) -> UpdateConfig:
    u = jr.obj(value, path, UPDATE_KEYS)
    actions = ("pause", "continue") if rollback else get_args(FailureAction)
    return UpdateConfig(
        jr.integer(u["parallelism"], f"{path}.parallelism", 0, COUNT_MAX),
        _seconds(u["delay"], f"{path}.delay"),
        jr.choice(u["failure_action"], f"{path}.failure_action", actions),  # type: ignore[arg-type]
        _seconds(u["monitor"], f"{path}.monitor"),
        jr.number(u["max_failure_ratio"], f"{path}.max_failure_ratio", 0.0, 1.0),
        jr.choice(u["order"], f"{path}.order", get_args(UpdateOrder)))  # type: ignore[arg-type]


def _service_extras(s: dict[str, Any], path: str) -> dict[str, Any]:
    """A service's image, env, policies and health check; each absent one (a file
    written before them) its default."""
    out: dict[str, Any] = {"image": _image(s.get("image", DEFAULT_IMAGE), f"{path}.image"),
                           "env": _env(s.get("env", {}), f"{path}.env"),
                           "healthcheck": _healthcheck(s.get("healthcheck"), f"{path}.healthcheck")}
    if "restart_policy" in s:
        out["restart_policy"] = _restart_policy(s["restart_policy"], f"{path}.restart_policy")
    for key in ("update_config", "rollback_config"):
        if key in s:
            out[key] = _update_config_from(s[key], f"{path}.{key}", key == "rollback_config")
    return out


def _unique(names: list[str], path: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise Invalid(f"{path} names {name!r} twice")
        seen.add(name)


def _check_model(lab: Lab, path: str) -> None:
    """Names are unique and every task is a slot of its service on a node of the lab.

    A service holds tasks in at most its number of replicas of slots (two in a
    slot while a start-first update replaces one), whose slots may
    have gaps: a scale-down removes tasks by node balance, not by slot
    (see :func:`netlab.model.scale`), as Swarm does, and a task that failed
    leaves its slot empty until the manager restarts it (or for good, under
    restart_policy condition none or past max_attempts).
    """
    _unique([n.name for n in lab.nodes], f"{path}.nodes")
    _unique([n.name for n in lab.networks], f"{path}.networks")
    _unique([s.name for s in lab.services], f"{path}.services")
    _unique([t.name for t in lab.tasks], f"{path}.tasks")
    nodes = {n.name for n in lab.nodes}
    replicas = {s.name: s.replicas for s in lab.services}
    for i, t in enumerate(lab.tasks):
        if t.service not in replicas:
            raise Invalid(f"{path}.tasks[{i}] is {t.name}, not a slot of a service of the lab")
        if t.node not in nodes:
            raise Invalid(f"{path}.tasks[{i}].node is {t.node!r}, not a node of the lab")
    for name, count in replicas.items():
        slots = {t.slot for t in lab.tasks_of(name)}
        if len(slots) > count:
            raise Invalid(f"{path}.tasks holds {len(slots)} slots of {name}, "
                          f"more than its {count} replicas")


def _history(t: dict[str, Any], p: str) -> dict[str, str]:
    """The optional history fields of a task record (address, ended_at, ended_by), checked."""
    out: dict[str, str] = {}
    if "address" in t:
        out["address"] = str(jr.ipv4(t["address"], f"{p}.address"))
    for key in ("ended_at", "ended_by"):
        if key in t:
            v = t[key]
            if not isinstance(v, str) or not v or len(v) > 200 or not v.isprintable():
                raise Invalid(f"{p}.{key} must be a short line of text")
            out[key] = v
    return out


def _bare(raw: Any) -> Any:
    """A model task without its optional spec (image, env, instance), for :func:`_records`."""
    return {k: v for k, v in raw.items() if k not in ("image", "env", "instance")} \
        if isinstance(raw, dict) else raw


def _instance(raw: Any, p: str) -> int:
    """A task's optional instance (0, or 1 for the second task of a slot)."""
    return jr.integer(raw.get("instance", 0), f"{p}.instance", 0, 1) \
        if isinstance(raw, dict) else 0


def _records(value: Any, path: str, with_state: bool = True) -> tuple[TaskRecord, ...]:
    out = []
    keys = ("service", "slot", "node", "state") if with_state else ("service", "slot", "node")
    for i, raw in enumerate(jr.array(value, path)):
        p = f"{path}[{i}]"
        extra = tuple(k for k in (*HISTORY_KEYS, "instance")
                      if with_state and isinstance(raw, dict) and k in raw)
        t = jr.obj(raw, p, keys + extra)
        out.append(TaskRecord(jr.name(t["service"], f"{p}.service"),
                              jr.integer(t["slot"], f"{p}.slot", 1, INT_MAX),
                              jr.name(t["node"], f"{p}.node"),
                              jr.choice(t["state"], f"{p}.state", get_args(TaskState))  # type: ignore[arg-type]
                              if with_state else "running", **_history(t, p),
                              instance=_instance(t, p)))
    return tuple(out)


# Task states after which a task never runs again (swarmkit: state > RUNNING).
ENDED = ("complete", "shutdown", "failed", "rejected", "remove", "orphaned")


def tasks_from_json(value: Any, path: str, lab: Lab | None = None) -> tuple[TaskRecord, ...]:
    """Task records, whose services and nodes are ``lab``'s when it is given; raises Invalid.

    Actual tasks are read without a lab: while a change is applied they are
    what ran before it, which the new model may no longer hold. Only tasks
    not shut down must have distinct names: the history keeps a removed
    ``web.3`` while a later scale-up runs a new ``web.3``, as swarmkit keeps
    old tasks of a slot.
    """
    records = _records(value, path)
    if lab is None:
        return records
    _unique([t.name for t in records if t.state not in ENDED], path)
    nodes = {n.name for n in lab.nodes}
    services = {s.name for s in lab.services}
    for i, t in enumerate(records):
        if t.service not in services or t.node not in nodes:
            raise Invalid(f"{path}[{i}] is {t.name} on {t.node}, not a service and node of the lab")
    return records


def _pool_from(value: Any, path: str) -> Pool:
    p = jr.obj(value, path, ("subnet", "next"))
    return Pool(jr.subnet(p["subnet"], f"{path}.subnet"), jr.integer(p["next"], f"{path}.next", 1, INT_MAX))


def allocations_from_json(value: Any, lab: Lab, path: str = "allocations") -> Allocations:
    """The Allocations in ``value`` for ``lab``: every address parses and every node,
    published service and task of the lab has its addresses; raises Invalid."""
    doc = jr.obj(value, path, ("client_ip", "nodes", "services", "tasks", "vnis", "ingress",
                             "lan", "gwbridge", "next_fwmark"), optional=("networks", "next_vni"))
    nodes = {}
    for name, raw in jr.mapping(doc["nodes"], f"{path}.nodes", is_name, "a node name").items():
        p = f"{path}.nodes[{name!r}]"
        n = jr.obj(raw, p, ("lan_ip", "sandbox_ip", "gateway_ip", "sandbox_gw_ip"))
        nodes[name] = NodeAddresses(*(jr.ipv4(n[k], f"{p}.{k}") for k in
                                      ("lan_ip", "sandbox_ip", "gateway_ip", "sandbox_gw_ip")))
    services = {}
    for name, raw in jr.mapping(doc["services"], f"{path}.services", is_name, "a service name").items():
        p = f"{path}.services[{name!r}]"
        s = jr.obj(raw, p, ("vip", "fwmark"))
        services[name] = ServiceAddresses(jr.ipv4(s["vip"], f"{p}.vip"),
                                          jr.integer(s["fwmark"], f"{p}.fwmark", 1, INT_MAX - 1))
    tasks = {}
    for name, raw in jr.mapping(doc["tasks"], f"{path}.tasks", jr.is_task_name, "a task name").items():
        p = f"{path}.tasks[{name!r}]"
        t = jr.obj(raw, p, ("node", "ingress_ip", "gw_ip"))
        tasks[name] = TaskAddresses(jr.name(t["node"], f"{p}.node"),
                                    None if t["ingress_ip"] is None
                                    else jr.ipv4(t["ingress_ip"], f"{p}.ingress_ip"),
                                    jr.ipv4(t["gw_ip"], f"{p}.gw_ip"))
    vnis = {name: jr.integer(v, f"{path}.vnis[{name!r}]", 1, (1 << 24) - 1)
            for name, v in jr.mapping(doc["vnis"], f"{path}.vnis", is_name, "a network name").items()}
    gwbridge = {name: _pool_from(raw, f"{path}.gwbridge[{name!r}]")
                for name, raw in jr.mapping(doc["gwbridge"], f"{path}.gwbridge", is_name,
                                      "a node name").items()}
    a = Allocations(client_ip=jr.ipv4(doc["client_ip"], f"{path}.client_ip"), nodes=nodes,
                    services=services, tasks=tasks, vnis=vnis,
                    ingress=_pool_from(doc["ingress"], f"{path}.ingress"),
                    lan=_pool_from(doc["lan"], f"{path}.lan"), gwbridge=gwbridge,
                    next_fwmark=jr.integer(doc["next_fwmark"], f"{path}.next_fwmark", 1, INT_MAX),
                    networks=_networks_from(doc.get("networks", {}), f"{path}.networks"),
                    next_vni=jr.integer(doc.get("next_vni", VNI_BASE), f"{path}.next_vni", 1, 1 << 24))
    _check_covers(a, lab, path)
    return a


def _networks_from(value: Any, path: str) -> dict[str, NetworkAddresses]:
    out = {}
    for name, raw in jr.mapping(value, path, is_name, "a network name").items():
        p = f"{path}[{name!r}]"
        n = jr.obj(raw, p, ("vni", "pool", "lb", "vips", "tasks"))
        vips = {}
        for s, rv in jr.mapping(n["vips"], f"{p}.vips", is_name, "a service name").items():
            v = jr.obj(rv, f"{p}.vips[{s!r}]", ("vip", "fwmark"))
            vips[s] = ServiceAddresses(jr.ipv4(v["vip"], f"{p}.vips[{s!r}].vip"),
                                       jr.integer(v["fwmark"], f"{p}.vips[{s!r}].fwmark", 1, INT_MAX - 1))
        out[name] = NetworkAddresses(
            jr.integer(n["vni"], f"{p}.vni", 1, (1 << 24) - 1), _pool_from(n["pool"], f"{p}.pool"),
            {k: jr.ipv4(v, f"{p}.lb[{k!r}]")
             for k, v in jr.mapping(n["lb"], f"{p}.lb", is_name, "a node name").items()},
            vips,
            {k: jr.ipv4(v, f"{p}.tasks[{k!r}]")
             for k, v in jr.mapping(n["tasks"], f"{p}.tasks", jr.is_task_name, "a task name").items()})
    return out


def _check_covers(a: Allocations, lab: Lab, path: str) -> None:
    """Every object of ``lab`` that needs addresses has them, on the right node."""
    for node in lab.nodes:
        if node.name not in a.nodes:
            raise Invalid(f"{path}.nodes has no addresses for node {node.name}")
    for service in lab.services:
        if service.ingress_ports and service.name not in a.services:
            raise Invalid(f"{path}.services has no VIP for service {service.name}")
    for task in lab.tasks:
        ta = a.tasks.get(task.name)
        if ta is None or ta.node != task.node:
            raise Invalid(f"{path}.tasks has no addresses for task {task.name} on {task.node}")
        if (ta.ingress_ip is not None) != lab.service(task.service).on_ingress:
            raise Invalid(f"{path}.tasks[{task.name!r}].ingress_ip does not match whether "
                          "its service is on ingress")
    _check_networks(a, lab, path)
    if lab.ingress.name not in a.vnis:
        raise Invalid(f"{path}.vnis has no VNI for network {lab.ingress.name}")
    ingress = [(f"nodes[{n.name!r}].sandbox_ip", a.nodes[n.name].sandbox_ip) for n in lab.nodes]
    ingress += [(f"services[{s!r}].vip", a.services[s].vip) for s in sorted(a.services)]
    ingress += [(f"tasks[{t.name!r}].ingress_ip", ip) for t in lab.tasks
                if (ip := a.tasks[t.name].ingress_ip) is not None]
    _distinct_in(ingress, lab.ingress.subnet, path)
    _distinct_in([(f"nodes[{n.name!r}].lan_ip", a.nodes[n.name].lan_ip) for n in lab.nodes]
                 + [("client_ip", a.client_ip)], lab.underlay.lan, path)
    for node in lab.nodes:
        _distinct_in([(f"nodes[{node.name!r}].sandbox_gw_ip", a.nodes[node.name].sandbox_gw_ip)]
                     + [(f"tasks[{t.name!r}].gw_ip", a.tasks[t.name].gw_ip)
                        for t in lab.tasks_on(node.name)], lab.underlay.gwbridge, path)


def _check_networks(a: Allocations, lab: Lab, path: str) -> None:
    """Every user network has its VNI and addresses: an LB endpoint per node, a VIP per
    vip-mode service on it, an address per task; all distinct hosts of its subnet."""
    vnis = [lab.ingress.vni]
    for net in lab.networks:
        na = a.networks.get(net.name)
        p = f"{path}.networks[{net.name!r}]"
        if na is None:
            raise Invalid(f"{path}.networks has no addresses for network {net.name}")
        if na.vni in vnis:
            raise Invalid(f"{p}.vni is {na.vni}, as is another network's")
        vnis.append(na.vni)
        addrs = []
        for node in lab.nodes:
            if node.name not in na.lb:
                raise Invalid(f"{p}.lb has no address for node {node.name}")
            addrs.append((f"networks[{net.name!r}].lb[{node.name!r}]", na.lb[node.name]))
        for s in lab.services_on(net.name):
            if s.endpoint_mode == "vip":
                if s.name not in na.vips:
                    raise Invalid(f"{p}.vips has no VIP for service {s.name}")
                addrs.append((f"networks[{net.name!r}].vips[{s.name!r}]", na.vips[s.name].vip))
            for t in lab.tasks_of(s.name):
                if t.name not in na.tasks:
                    raise Invalid(f"{p}.tasks has no address for task {t.name}")
                addrs.append((f"networks[{net.name!r}].tasks[{t.name!r}]", na.tasks[t.name]))
        _distinct_in(addrs, net.subnet, path)


def _distinct_in(addresses: list[tuple[str, ipaddress.IPv4Address]],
                 subnet: ipaddress.IPv4Network, path: str) -> None:
    """Each address is a host of ``subnet`` and no two are the same; raises Invalid."""
    seen: dict[ipaddress.IPv4Address, str] = {}
    for where, ip in addresses:
        if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address):
            raise Invalid(f"{path}.{where} is {ip}, not a host of {subnet}")
        if ip in seen:
            raise Invalid(f"{path}.{where} is {ip}, as is {path}.{seen[ip]}")
        seen[ip] = where


def _time_scale(value: Any, path: str) -> float | None:
    if value is None:
        return None
    from netlab.manager.timings import check_scale
    try:
        return check_scale(value)
    except ValueError as err:
        raise Invalid(f"{path}: {err}") from None
