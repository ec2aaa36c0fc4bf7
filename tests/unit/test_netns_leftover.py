"""A namespace's mount point left empty by a killed run is no namespace: exists() is
False, leftover() True, so up makes it again and down removes it."""

from __future__ import annotations

import pytest

from netlab.kernel import netnsdir


@pytest.fixture
def netns_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(netnsdir, "NETNS_DIR", str(tmp_path))
    return tmp_path


def test_an_empty_file_is_a_leftover_not_a_namespace(netns_dir):
    (netns_dir / "nl-x.node1").touch()
    assert not netnsdir.exists("nl-x.node1")
    assert netnsdir.leftover("nl-x.node1")


def test_a_missing_name_is_neither(netns_dir):
    assert not netnsdir.exists("nl-x.node2") and not netnsdir.leftover("nl-x.node2")


def test_a_namespace_file_is_a_namespace(netns_dir):
    # /proc/self/ns/net is this process's namespace, on nsfs as every bind mount of one.
    (netns_dir / "nl-x.node3").symlink_to("/proc/self/ns/net")
    assert netnsdir.exists("nl-x.node3") and not netnsdir.leftover("nl-x.node3")
