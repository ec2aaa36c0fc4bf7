"""``status`` keeps the nft save texts it read (issue 17), and still sees every change.

The kept texts (``<lab>.iptables-saves`` beside the state file) are used
only while a namespace's nf_tables generation has not moved. A rule deleted
with the machine's own ``iptables`` (iptables-nft here, as on Debian 12)
between two ``status`` runs must show as drift in that namespace and no
other; ``down`` removes the file.
"""

from __future__ import annotations

import shlex
import subprocess

from netlab.state import StateStore

from tests.integration.conftest import netlab, sh


def test_a_rule_deleted_between_two_status_runs_shows_and_down_removes_the_kept_file(lab_up):
    assert "nf_tables" in subprocess.run(["iptables", "-V"], capture_output=True,
                                         text=True).stdout
    lab = lab_up("hello-a.yaml")
    kept = StateStore().root / f"{lab.name}.iptables-saves"
    assert lab.status()["drift"] == []
    assert kept.is_file() and kept.stat().st_mode & 0o777 == 0o600
    assert lab.status()["drift"] == []                  # from the kept texts: still none
    task = lab.netns("hello-a.1")
    rule = next(line for line in sh(task, "iptables-save", "-t", "nat").splitlines()
                if line.startswith("-A "))
    sh(task, "iptables", "-t", "nat", "-D", *shlex.split(rule)[1:])
    drift = lab.status()["drift"]
    assert [(d["target"], d["kind"], d["kernel"]) for d in drift] == \
        [("hello-a.1", "iptables", "absent")], drift
    assert drift[0]["plan"] == rule
    netlab("down", lab.name)
    assert not kept.exists()
