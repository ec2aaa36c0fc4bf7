"""Scenario file -> validated, placed :class:`netlab.model.Lab`, or every problem.

The whole file is read before anything is reported: each section is checked,
then the checks that span sections, and if any issue was recorded a
:class:`ScenarioError` carries all of them.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from netlab.model import Lab
from netlab.scenario.checks import (
    check_host_ports, check_mtu, check_network_sizes, check_placement, check_published_ports,
    check_scale, check_sizes, check_subnets,
)
from netlab.scenario.fields import check_keys, read_choice, kind_of, read_str
from netlab.scenario.issues import Issue, IssueLog, ScenarioError
from netlab.scenario.names import LAB, name_problem, suggest
from netlab.scenario.networks import read_networks
from netlab.scenario.overlays import assign_subnets, read_overlays, subnet_specs
from netlab.scenario.nodes import read_nodes
from netlab.scenario.services import read_services
from netlab.scenario.source import read_scenario_text
from netlab.scenario.yamltree import Entry, Mapping, Scalar, Value, YamlProblem, parse_document

TOP_KEYS = ("name", "nodes", "services", "networks", "ingress", "underlay", "iptables",
            "time_scale")
#: The scenario's default iptables backend (``up --iptables`` and NETLAB_IPTABLES win).
IPTABLES_CHOICES = ("auto", "nft", "legacy")
_NOT_MODELLED = "this lab does not model it; remove it"
TOP_NOT_MODELLED = MappingProxyType({
    "version": "the version key is obsolete in Compose too; remove it",
    "volumes": _NOT_MODELLED, "configs": _NOT_MODELLED, "secrets": _NOT_MODELLED,
})

MINIMAL_EXAMPLE = ('start from: {name: demo, nodes: {node1: {role: manager}}, '
                   'services: {web: {ports: ["8080:80"]}}}')


def _lab_name(entry: Entry | None, source_name: str, override: str | None, log: IssueLog) -> str:
    """The lab name: ``--name``, else the ``name:`` key, else the file's stem."""
    name = None
    if entry is not None:
        raw = getattr(entry.value, "raw", "my-lab")
        name = read_str(entry.value, "name", log, "the lab name", f'"{raw}"')
        if name is not None and (problem := name_problem(name, LAB)):
            log.add("name", problem[0], problem[1], entry.value.pos)
    if override is not None:
        if problem := name_problem(override, LAB):
            log.add("--name", problem[0], problem[1], None)
        return override
    if entry is not None:
        return name or ""  # an invalid name was reported above
    stem = Path(source_name).stem
    if problem := name_problem(stem, LAB):
        fixed = suggest(stem, LAB.max_len) or "my-lab"
        log.add("name", f"{problem[0]} (it comes from the file name)",
                f"add name: {fixed} to the file, or pass --name", None)
    return stem


def _build(text: str, source_name: str, name_override: str | None, log: IssueLog) -> Lab | None:
    """Every section, then the cross-section checks; the Lab when ``log`` stayed empty."""
    try:
        root = parse_document(text)
    except YamlProblem as problem:
        log.add("", problem.message, problem.hint, problem.pos)
        return None
    if root is None:
        log.add("", "the scenario is empty", MINIMAL_EXAMPLE, None)
        return None
    if not isinstance(root, Mapping):
        log.add("", f"the top level must be a mapping (name:, nodes:, services:), not {kind_of(root)}",
                MINIMAL_EXAMPLE, root.pos)
        return None
    check_keys(root, "", log, TOP_KEYS, known_elsewhere=TOP_NOT_MODELLED, extensions=True)
    name = _lab_name(root.get("name"), source_name, name_override, log)
    nodes = read_nodes(root.get("nodes"), root.pos, log)
    net = read_networks(root.get("ingress"), root.get("underlay"), log)
    overlays = read_overlays(root.get("networks"), net.underlay.lan_mtu, log)
    services = read_services(root.get("services"), log,
                             overlays.names if overlays.clean else None)
    iptables = None
    if (entry := root.get("iptables")) is not None:
        iptables = read_choice(entry.value, "iptables", log, "iptables backend", IPTABLES_CHOICES)
    time_scale = None
    if (entry := root.get("time_scale")) is not None:
        time_scale = _time_scale(entry.value, log)
    check_published_ports(services.ports, net.underlay.data_path_port, log)
    check_subnets(net.subnets + tuple(subnet_specs(overlays.networks)), log)
    check_mtu(net, log)
    placeable = nodes.clean and check_placement(nodes.nodes, services.services, log)
    # The plan's size is known from the counts alone: a lab too big to plan is
    # refused before a task is placed (placing is itself linear in the replicas).
    fits = (nodes.clean and services.clean
            and check_scale(len(nodes.nodes), services.services, overlays.names, log))
    tasks = None
    if placeable and fits:
        tasks = check_host_ports(nodes.nodes, services.services, log)
    check_sizes(net, len(nodes.nodes), services.services, tasks, log)
    if log.count() or tasks is None:
        return None
    try:
        networks = assign_subnets(overlays.networks, [s.network for s in net.subnets])
    except ValueError as err:
        log.add(f"networks.{err}", "swarmkit's default pool 10.0.0.0/8 has no free /24 left",
                "give the network a subnet under ipam.config", None)
        return None
    lab = Lab(
        name=name, nodes=nodes.nodes, services=tuple(s.service for s in services.services),
        ingress=net.ingress, underlay=net.underlay, tasks=tasks, iptables=iptables,
        networks=networks, time_scale=time_scale,
    )
    check_network_sizes(lab, overlays.networks, log)
    return None if log.count() else lab


def load_lab_from_text(text: str, source_name: str, name_override: str | None = None) -> Lab:
    """Validate scenario ``text`` (named ``source_name`` in messages) into a placed Lab.

    The lab name is ``name_override``, else the ``name:`` key, else the stem
    of ``source_name``. Raises ScenarioError listing every problem found.
    """
    log = IssueLog()
    lab = _build(text, source_name, name_override, log)
    if lab is None:
        issues = log.issues or [Issue("", "the scenario could not be read", "", None, None)]
        raise ScenarioError(source_name, issues)
    return lab


def load_lab(path: str | Path, name_override: str | None = None) -> Lab:
    """Read the scenario file at ``path`` and return its validated, placed Lab.

    Raises ScenarioError (a BadInput, exit 2) listing every problem, including
    a file that is missing, unreadable, not a regular file, over 1 MiB or not
    UTF-8 text (see :mod:`netlab.scenario.source`).
    """
    text = read_scenario_text(path)
    return load_lab_from_text(text, str(path), name_override)


def _time_scale(value: Value, log: IssueLog) -> float | None:
    """The scenario's ``time_scale`` (a netlab extension: how much faster or slower
    than swarmkit's timings the lab's manager runs; see netlab.manager.timings)."""
    from netlab.manager.timings import SCALE_MAX, SCALE_MIN, check_scale
    raw = value.value if isinstance(value, Scalar) else None
    try:
        return check_scale(raw)
    except ValueError:
        log.add("time_scale", f"time_scale must be a number from {SCALE_MIN:g} to {SCALE_MAX:g}, "
                f"not {kind_of(value) if raw is None else repr(raw)}",
                "write time_scale: 0.1 for a manager ten times faster than Swarm's", value.pos)
        return None
