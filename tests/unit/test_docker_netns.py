"""Entering real Docker namespaces by path is confined; the trace's client /30 never clashes."""

from __future__ import annotations

import ipaddress

import pytest

from netlab.errors import BadInput, MissingFeature
from netlab.kernel import clientns, netns
from netlab.kernel.netns import NetnsError


def test_real_path_accepts_docker_namespaces_and_the_root_only():
    assert netns.real_path("/var/run/docker/netns/ingress_sbox") == "/var/run/docker/netns/ingress_sbox"
    assert netns.real_path("/proc/1/ns/net") == "/proc/1/ns/net"
    for bad in ("/var/run/docker/netns/../../../etc/passwd", "/var/run/docker/netns/",
                "/var/run/docker/netns/a/b", "/var/run/netns/x", "/proc/2/ns/net",
                "/var/run/docker/netns/..", "/var/run/docker/netns/a\0b", "relative"):
        with pytest.raises(NetnsError):
            netns.real_path(bad)


def test_locate_keeps_names_plain():
    assert netns.locate("nl-dtrace-1") == "/var/run/netns/nl-dtrace-1"
    assert netns.locate("/var/run/docker/netns/1-abcdef0123") == "/var/run/docker/netns/1-abcdef0123"
    with pytest.raises(NetnsError):
        netns.locate("../x")
    with pytest.raises(NetnsError):           # removal stays confined to /var/run/netns
        netns.remove("/var/run/docker/netns/ingress_sbox")


def test_pick_subnet_avoids_addresses_routes_and_reserved_ranges():
    taken = ["169.254.16.1/30", "169.254.16.0/22", "10.0.0.0/8", "0.0.0.0/0", "::1/128"]
    net = clientns.pick_subnet(taken, seed=16 * 64)           # 169.254.16.0/30 first
    assert net == ipaddress.ip_network("169.254.20.0/30")
    assert clientns.pick_subnet([], seed=0) == ipaddress.ip_network("169.254.1.0/30")
    assert clientns.pick_subnet([], seed=169 * 64) == ipaddress.ip_network("169.254.170.0/30")
    with pytest.raises(MissingFeature, match="no free /30"):
        clientns.pick_subnet(["169.254.0.0/16"], seed=7)


def test_client_names_fit_interface_names():
    assert clientns.names_for(4194304) == ("nl-dtrace-4194304", "nldt4194304")
    with pytest.raises(ValueError):
        clientns.remove("nl-lab-node1", "x")        # never anything but a trace's client


@pytest.mark.parametrize("args,message", [
    (["192.168.77.1:5000"], "is an address, not a lab's node: a real Swarm node is traced with --docker"),
    (["--docker"], "trace --docker takes one NODE_ADDRESS:PORT"),
    (["--docker", "lab1", "192.168.77.1:5000"], "trace --docker takes one NODE_ADDRESS:PORT"),
    (["--docker", "192.168.77.1:5000", "--from", "hello-a.1"], "--from: a real node is traced"),
    (["--docker", "unix:///x.sock", "node1:5000"], "does not start with an IPv4 address"),
])
def test_cli_refuses(args, message):
    from click.testing import CliRunner

    from netlab.cli.main import cli
    result = CliRunner().invoke(cli, ["trace", *args])
    assert result.exit_code == BadInput.exit_code, result.output
    assert message in result.output
