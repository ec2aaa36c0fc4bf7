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


IP_VS = """IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
FWM  00000100 rr
  -> 0A000006:0000      Masq    0      0          0
  -> 0A000005:0000      Masq    1      2          0
FWM  00000101 rr
TCP  0A000002:0050 rr
  -> 0A000009:0050      Masq    1      0          0
"""


def test_status_reads_ipvs_from_proc_as_netlink_would(tmp_path, monkeypatch):
    from netlab.kernel import procfs
    from netlab.plan.types import IpvsDest
    (tmp_path / "ip_vs").write_text(IP_VS)
    monkeypatch.setattr(procfs, "IP_VS", str(tmp_path / "ip_vs"))
    assert ipvs.read_here() == [
        ipvs.ObservedService(0x100, "rr", (IpvsDest("10.0.0.5", 0, 1, "Masq"),
                                           IpvsDest("10.0.0.6", 0, 0, "Masq"))),
        ipvs.ObservedService(0x101, "rr", ())]      # services by address are not netlab's


def test_no_proc_ip_vs_is_a_missing_feature(tmp_path, monkeypatch):
    from netlab.kernel import procfs
    monkeypatch.setattr(procfs, "IP_VS", str(tmp_path / "absent"))
    with pytest.raises(MissingFeature) as err:
        ipvs.read_here()
    assert err.value.exit_code == 3 and "netlab vm" in str(err.value)
