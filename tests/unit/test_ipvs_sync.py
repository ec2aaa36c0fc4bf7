"""ipvs.sync with what the sandbox holds known (a change's plan before): nothing is
read, only the differences are written; without it, the services are read first."""

from __future__ import annotations

import pytest

from netlab.kernel import ipvs
from netlab.plan.types import IpvsDest, IpvsService


class FakeSession:
    """A pyroute2 IPVS session that records what it is asked to write."""

    def __init__(self, calls: list):
        self.calls = calls

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def service(self, cmd, service=None):
        self.calls.append(("service", cmd, service["fwmark"]))

    def dest(self, cmd, service=None, dest=None):
        self.calls.append(("dest", cmd, service["fwmark"], dest["addr"], dest["weight"]))


def _svc(fwmark: int, *dests: tuple[str, int]) -> IpvsService:
    return IpvsService("nl-x.node1-lb", fwmark, "rr",
                       tuple(IpvsDest(a, 0, w) for a, w in dests), "web")


@pytest.fixture
def calls(monkeypatch):
    made: list = []
    monkeypatch.setattr(ipvs, "_ipvs", lambda _ns: FakeSession(made))
    return made


def test_a_known_holding_writes_only_the_differences_and_reads_nothing(calls, monkeypatch):
    def no_read(_ns):
        raise AssertionError("read although what the sandbox holds was given")
    monkeypatch.setattr(ipvs, "read", no_read)
    holds = [_svc(0x100, ("10.0.0.5", 1), ("10.0.0.6", 1)), _svc(0x101, ("10.0.0.9", 1))]
    wanted = [_svc(0x100, ("10.0.0.5", 1), ("10.0.0.7", 0))]
    requests = ipvs._sync_here(wanted, holds)
    assert calls == [("dest", "add", 0x100, "10.0.0.7", 0),
                     ("dest", "del", 0x100, "10.0.0.6", 1),
                     ("service", "del", 0x101)]
    assert requests == 3


def test_without_a_holding_the_sandbox_is_read_first(calls, monkeypatch):
    read = []

    def reads(ns):
        read.append(ns)
        return [ipvs.ObservedService(0x100, "rr", (IpvsDest("10.0.0.5", 0, 1),))]
    monkeypatch.setattr(ipvs, "read", reads)
    requests = ipvs._sync_here([_svc(0x100, ("10.0.0.5", 1))])
    assert read == [None] and calls == [] and requests == 1
