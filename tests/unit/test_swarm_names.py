"""Hostnames made node names: unique and recognisable when shortened, said in the export."""

from __future__ import annotations

import copy

from netlab.docker.export import export
from netlab.docker.snapshot import read_snapshot, scenario_names
from netlab.scenario import load_lab_from_text
from netlab.scenario.names import NODE, name_problem
from tests.unit.recorded import TWO_NODES, CapturedEngine, captured_netns_files


class RenamedEngine(CapturedEngine):
    """The recorded two-node Swarm with its nodes' hostnames replaced."""

    def __init__(self, hostnames: dict[str, str]) -> None:
        super().__init__(TWO_NODES)
        self.hostnames = hostnames

    def nodes(self, filters=None):
        out = copy.deepcopy(super().nodes(filters))
        for n in out:
            host = n["Description"]["Hostname"]
            n["Description"]["Hostname"] = self.hostnames.get(host, host)
        return out


def _valid_distinct(names: list[str]) -> bool:
    return len(set(names)) == len(names) and all(name_problem(n, NODE) is None for n in names)


def test_two_long_hostnames_sharing_a_prefix_keep_their_tails():
    names = scenario_names(["swarm-manager", "swarm-worker1", "swarm-worker2"])
    assert names == ["swarm-mana", "swarm-wor1", "swarm-wor2"]
    assert _valid_distinct(names)


def test_a_shortened_name_never_takes_an_existing_short_one():
    # "swarm-work" is a valid hostname of its own, wherever it comes in the list.
    for hosts in (["swarm-worker1", "swarm-work", "swarm-worker2"],
                  ["swarm-work", "swarm-worker1", "swarm-worker2"]):
        names = scenario_names(hosts)
        assert names[hosts.index("swarm-work")] == "swarm-work"
        assert sorted(names) == ["swarm-wor1", "swarm-wor2", "swarm-work"]
    # Two hostnames that differ only in what gets cut stay two names.
    assert _valid_distinct(scenario_names(["averyveryverylongname"] * 2 + ["averyveryv"]))
    assert scenario_names(["host", "host.example"]) == ["host", "host-examp"]


def test_names_are_idempotent_and_stable():
    hosts = ["swarm-manager", "swarm-worker1", "swarm-worker2", "Node_7", "db.example.org"]
    names = scenario_names(hosts)
    assert scenario_names(names) == names
    assert scenario_names(hosts) == names
    assert names[3:] == ["node-7", "db"]


def test_export_of_a_recorded_swarm_with_long_hostnames_says_what_each_was():
    engine = RenamedEngine({"node1": "swarm-manager", "node2": "swarm-worker2"})
    snap = read_snapshot(engine, lambda: captured_netns_files(TWO_NODES))
    assert [(n.hostname, n.name) for n in snap.nodes] == [("swarm-manager", "swarm-mana"),
                                                          ("swarm-worker2", "swarm-wor2")]
    out = export(snap)
    lab = load_lab_from_text(out.text, "export")
    assert [n.name for n in lab.nodes] == ["swarm-mana", "swarm-wor2"]
    assert "  swarm-wor2: {role: worker}   # hostname swarm-worker2\n" in out.text
    assert any("swarm-wor2 is the Swarm's swarm-worker2" in w for w in out.warnings)
    assert "# note: node swarm-mana is the Swarm's swarm-manager" in out.text
    assert export(read_snapshot(engine, lambda: captured_netns_files(TWO_NODES))).text == out.text
