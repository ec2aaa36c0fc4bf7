"""A kernel without IPVS is a missing feature (exit 3, saying what to do), never a
pyroute2 traceback: ``status`` reads IPVS in every sandbox."""

from __future__ import annotations

import errno

import pyroute2
import pytest
from pyroute2.netlink.exceptions import NetlinkError

from netlab.errors import MissingFeature
from netlab.kernel import ipvs


def _no_family(*_a, **_k):
    raise NetlinkError(errno.ENOENT, "No such file or directory")


def _refused(*_a, **_k):
    raise NetlinkError(errno.EPERM, "Operation not permitted")


def test_no_ipvs_family_is_a_missing_feature_naming_netlab_vm(monkeypatch):
    monkeypatch.setattr(pyroute2, "IPVS", _no_family)
    with pytest.raises(MissingFeature) as err:
        ipvs.read(None)
    assert err.value.exit_code == 3
    assert "has no IPVS" in str(err.value) and "netlab vm" in str(err.value)


def test_other_netlink_refusals_are_not_called_a_missing_ipvs(monkeypatch):
    monkeypatch.setattr(pyroute2, "IPVS", _refused)
    with pytest.raises(NetlinkError):
        ipvs.read(None)
