"""The ``services:`` section, shaped like a Compose/stack file's services.

``deploy.replicas`` (default 1), ``deploy.placement.constraints``,
``deploy.endpoint_mode`` (vip, the default, or dnsrr), ``deploy.restart_policy``,
``deploy.update_config`` and ``deploy.rollback_config`` (see
:mod:`netlab.scenario.policies`), ``ports`` (see :mod:`netlab.scenario.ports`),
``networks`` (user overlay networks, list form), ``expose`` (tcp ports the
task app listens on for east-west traffic), ``image`` and ``environment``
(see :mod:`netlab.scenario.image`) and ``healthcheck`` (an HTTP check of the
task, see :mod:`netlab.scenario.health`). A service on no user network must
publish a port, on the ingress routing mesh or in host mode: its tasks are
on the ingress network.
"""

from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field
from types import MappingProxyType

from netlab.model import (
    DEFAULT_IMAGE, Constraint, EndpointMode, HealthCheck, RestartPolicy, Service, UpdateConfig,
)
from netlab.scenario.constraints import read_constraints
from netlab.scenario.fields import (
    check_keys, check_repeated, expect_list, expect_mapping, is_decimal, read_choice, read_int,
    read_str,
)
from netlab.scenario.health import read_healthcheck
from netlab.scenario.image import read_environment, read_image
from netlab.scenario.issues import IssueLog, field, item
from netlab.scenario.names import SERVICE, name_problem
from netlab.scenario.policies import read_restart_policy, read_update_config
from netlab.scenario.ports import PortSpec, read_ports
from netlab.scenario.yamltree import Entry, Pos

SERVICE_KEYS = ("deploy", "ports", "networks", "expose", "image", "environment", "healthcheck")
DEPLOY_KEYS = ("replicas", "placement", "endpoint_mode", "restart_policy", "update_config",
               "rollback_config")
ENDPOINT_MODES: tuple[EndpointMode, ...] = ("vip", "dnsrr")
PLACEMENT_KEYS = ("constraints",)
REPLICAS_MAX = 10_000
_APP = "netlab runs its own HTTP echo app in every task; remove it"
SERVICE_NOT_MODELLED = MappingProxyType({
    "replicas": "replicas goes under deploy: (deploy: {replicas: 2}), as in a stack file",
    "placement": "placement goes under deploy: (deploy: {placement: {constraints: [...]}})",
    "constraints": "constraints go under deploy.placement (deploy: {placement: {constraints: [...]}})",
    "command": _APP, "entrypoint": _APP,
    "restart": "netlab reads deploy.restart_policy (deploy: {restart_policy: {condition: "
               "on-failure}}), as a stack file writes it",
})

DEPLOY_NOT_MODELLED = MappingProxyType({
    "constraints": "constraints go under placement: (placement: {constraints: [...]})",
    "mode": "only replicated services are modelled; remove mode and set replicas",
})

PLACEMENT_NOT_MODELLED = MappingProxyType({
    "preferences": "placement preferences are not modelled; use constraints",
    "max_replicas_per_node": "max_replicas_per_node is not modelled; remove it",
})

EXAMPLE = 'services: {web: {deploy: {replicas: 2}, ports: ["8080:80"]}}'
_NO_PORT_HINT = ('this lab models the routing mesh; add ports: ["8080:80"], or attach it to a '
                 'network (networks: [backend]) for east-west traffic')
DNSRR_INGRESS = "port published with ingress mode can't be used with dnsrr mode"


@dataclass(frozen=True)
class ServiceSpec:
    """A valid service and where its parts were written (for cross-checks)."""

    service: Service
    path: str                       # services.<name>
    pos: Pos                        # the service's name
    replicas_pos: Pos | None        # None when replicas is the default
    constraints_pos: Pos | None     # None when there are no constraints


@dataclass(frozen=True)
class ServicesRead:
    """Valid services, every valid published port, and whether all was clean."""

    services: tuple[ServiceSpec, ...]
    ports: tuple[PortSpec, ...]
    clean: bool


@dataclass
class _Deploy:
    replicas: int | None = 1
    replicas_pos: Pos | None = None
    constraints: tuple[Constraint, ...] | None = ()
    constraints_pos: Pos | None = None
    endpoint_mode: EndpointMode | None = "vip"
    endpoint_mode_pos: Pos | None = None
    restart_policy: RestartPolicy | None = dataclass_field(default_factory=RestartPolicy)
    update_config: UpdateConfig | None = dataclass_field(default_factory=UpdateConfig)
    rollback_config: UpdateConfig | None = dataclass_field(default_factory=UpdateConfig)


def _read_deploy(entry: Entry, path: str, log: IssueLog) -> _Deploy:
    """``deploy:`` (replicas, placement.constraints, endpoint_mode, restart_policy,
    update_config, rollback_config); a None field means it was bad."""
    deploy = _Deploy()
    body = expect_mapping(entry.value, path, log, "deploy: {replicas: 2}")
    if body is None:
        return deploy
    check_keys(body, path, log, DEPLOY_KEYS, known_elsewhere=DEPLOY_NOT_MODELLED)
    if (e := body.get("replicas")) is not None:
        deploy.replicas_pos = e.value.pos
        deploy.replicas = read_int(
            e.value, field(path, "replicas"), log, "replicas", 0, REPLICAS_MAX,
            f"replicas is a whole number from 0 to {REPLICAS_MAX}, as in docker service scale",
        )
    if (e := body.get("endpoint_mode")) is not None:
        deploy.endpoint_mode_pos = e.value.pos
        deploy.endpoint_mode = read_choice(e.value, field(path, "endpoint_mode"), log,
                                           "endpoint_mode", ENDPOINT_MODES)
    if (e := body.get("placement")) is not None:
        placement_path = field(path, "placement")
        placement = expect_mapping(e.value, placement_path, log,
                                   'placement: {constraints: ["node.role==manager"]}')
        if placement is not None:
            check_keys(placement, placement_path, log, PLACEMENT_KEYS,
                       known_elsewhere=PLACEMENT_NOT_MODELLED)
            if (c := placement.get("constraints")) is not None:
                deploy.constraints_pos = c.value.pos
                deploy.constraints = read_constraints(
                    c.value, field(placement_path, "constraints"), log)
    if (e := body.get("restart_policy")) is not None:
        deploy.restart_policy = read_restart_policy(e.value, field(path, "restart_policy"), log)
    if (e := body.get("update_config")) is not None:
        deploy.update_config = read_update_config(e.value, field(path, "update_config"), log)
    if (e := body.get("rollback_config")) is not None:
        deploy.rollback_config = read_update_config(e.value, field(path, "rollback_config"), log,
                                                    rollback=True)
    return deploy


def _read_networks(entry: Entry, path: str, known: tuple[str, ...] | None,
                   log: IssueLog) -> tuple[str, ...]:
    """``networks: [backend]``: names of top-level networks (unknown ones are reported
    when ``known`` is given), each once."""
    items = expect_list(entry.value, path, log, "networks: [backend]")
    out: list[str] = []
    for i, value in enumerate(items.items if items is not None else ()):
        name = read_str(value, item(path, i), log, "a network name", "backend")
        if name is None:
            continue
        if name == "ingress":
            log.add(item(path, i), "a service joins ingress by publishing a port in ingress mode",
                    "remove ingress from networks", value.pos)
        elif known is not None and name not in known:
            listed = ", ".join(known) if known else "none"
            log.add(item(path, i), f"unknown network {name!r}",
                    f"declare it under the top-level networks: (declared: {listed})", value.pos)
        elif name in out:
            log.add(item(path, i), f"network {name!r} is listed twice", "list it once", value.pos)
        else:
            out.append(name)
    return tuple(out)


def _read_expose(entry: Entry, path: str, log: IssueLog) -> tuple[int, ...]:
    """``expose: [80]``: tcp ports the task app listens on (numbers or "80")."""
    items = expect_list(entry.value, path, log, "expose: [80]")
    out: list[int] = []
    for i, value in enumerate(items.items if items is not None else ()):
        raw = getattr(value, "value", None)
        if isinstance(raw, str) and is_decimal(raw.removesuffix("/tcp")):
            port = int(raw.removesuffix("/tcp"))
            if 1 <= port <= 65535:
                out.append(port)
                continue
        number = read_int(value, item(path, i), log, "an exposed port", 1, 65535,
                          "a tcp port from 1 to 65535, e.g. 80")
        if number is not None and number not in out:
            out.append(number)
    return tuple(out)


def _read_service(entry: Entry, log: IssueLog,
                  known_networks: tuple[str, ...] | None = ()) -> tuple[ServiceSpec | None, list[PortSpec]]:
    """One service (None if anything in it is wrong) and its usable ports."""
    name = entry.key
    assert name is not None
    path = field("services", name)
    before = log.count()
    problem = name_problem(name, SERVICE)
    if problem:
        log.add(path, problem[0], problem[1], entry.key_pos)
    body = expect_mapping(entry.value, path, log, f'{name}: {{ports: ["8080:80"]}}')
    if body is None:
        return None, []
    check_keys(body, path, log, SERVICE_KEYS, known_elsewhere=SERVICE_NOT_MODELLED)
    deploy = _Deploy()
    if (e := body.get("deploy")) is not None:
        deploy = _read_deploy(e, field(path, "deploy"), log)
    ports: list[PortSpec] = []
    written = 0
    networks: tuple[str, ...] = ()
    networks_ok = True
    if (n := body.get("networks")) is not None:
        ahead = log.count()
        networks = _read_networks(n, field(path, "networks"), known_networks, log)
        networks_ok = log.count() == ahead
    expose: tuple[int, ...] = ()
    if (x := body.get("expose")) is not None:
        expose = _read_expose(x, field(path, "expose"), log)
    ports_ok = True
    if (e := body.get("ports")) is not None:
        ahead = log.count()
        ports, written = read_ports(e.value, field(path, "ports"), name, log)
        ports_ok = log.count() == ahead
    image = DEFAULT_IMAGE
    if (i := body.get("image")) is not None:
        image = read_image(i.value, field(path, "image"), log) or image
    env: tuple[tuple[str, str], ...] = ()
    if (v := body.get("environment")) is not None:
        env = read_environment(v.value, field(path, "environment"), log) or ()
    healthcheck: HealthCheck | None = None
    if (h := body.get("healthcheck")) is not None:
        app_ports = tuple(dict.fromkeys([p.port.target for p in ports if p.port.protocol == "tcp"]
                                        + list(expose)))
        healthcheck = read_healthcheck(h.value, field(path, "healthcheck"), log,
                                       app_ports if ports_ok else None)
    if deploy.endpoint_mode == "dnsrr" and any(p.port.mode == "ingress" for p in ports):
        log.add(field(field(path, "deploy"), "endpoint_mode"),
                f"EndpointSpec: {DNSRR_INGRESS}",
                "Swarm refuses it the same way: publish the port with mode: host, or use "
                "endpoint_mode: vip (the default)", deploy.endpoint_mode_pos)
    if written == 0 and not networks and networks_ok:
        where = e.value.pos if e is not None else entry.key_pos
        log.add(field(path, "ports") if e is not None else path,
                "the service publishes no port through the ingress routing mesh",
                _NO_PORT_HINT, where)
    if (log.count() != before or deploy.replicas is None or deploy.constraints is None
            or deploy.endpoint_mode is None or deploy.restart_policy is None
            or deploy.update_config is None or deploy.rollback_config is None):
        return None, ports
    service = Service(name, deploy.replicas, tuple(p.port for p in ports), deploy.constraints,
                      networks, deploy.endpoint_mode, expose, image, env, deploy.restart_policy,
                      healthcheck, deploy.update_config, deploy.rollback_config)
    return ServiceSpec(service, path, entry.key_pos, deploy.replicas_pos, deploy.constraints_pos), ports


def read_services(entry: Entry | None, log: IssueLog,
                  networks: tuple[str, ...] | None = ()) -> ServicesRead:
    """Every valid service of the ``services:`` entry (None or empty: no services).

    Records an issue for each bad or repeated name and each bad field, and
    for a network not in ``networks`` (the top-level ones; None: they could
    not be read, so names are not checked).
    """
    if entry is None:
        return ServicesRead((), (), True)
    section = expect_mapping(entry.value, "services", log, EXAMPLE)
    if section is None:
        return ServicesRead((), (), False)
    before = log.count()
    check_repeated(section, "services", log, "service name")
    services: list[ServiceSpec] = []
    ports: list[PortSpec] = []
    for service_entry in section.entries:
        if service_entry.key is None:
            log.add("services", "a service name must be a plain name, not a list or mapping",
                    EXAMPLE, service_entry.key_pos)
            continue
        spec, its_ports = _read_service(service_entry, log, networks)
        ports.extend(its_ports)
        if spec is not None:
            services.append(spec)
    return ServicesRead(tuple(services), tuple(ports), log.count() == before)
