"""The sysctls the plan writes per namespace role (what Docker writes, or relies on)."""

from __future__ import annotations

from netlab.plan import names

# A node's host namespace: forwarding, what the ingress setup and the bridge
# driver write (route_localnet on docker_gwbridge; bridged frames through
# iptables, which enforces enable_icc=false).
HOST_SYSCTLS = (
    ("net.ipv4.ip_forward", "1"),
    (f"net.ipv4.conf.{names.GWBRIDGE}.route_localnet", "1"),
    ("net.bridge.bridge-nf-call-iptables", "1"),
)
# IPv6 off, as Docker 20.10 leaves every namespace it makes: the sandboxes
# (ingress_sbox, lb-<net>), the overlay driver's network namespaces and the
# task containers; never the node's own (host) namespace. libnetwork (vendored
# at c5aa85f9 in moby v20.10.24), osl/namespace_linux.go: ``NewSandbox`` (the
# controller's sandboxes, controller.go ``NewSandbox``, and the overlay's
# ov_network.go ``initSandbox``; not the host's default sandbox, ``isDefault``)
# and ``GetSandboxForExternalKey`` (a container's, sandbox.go ``SetKey``) call
# ``setIPv6(path, "all", false)``: they set the sysctl
# net.ipv6.conf.all.disable_ipv6 to 1 there. The kernel copies a write to
# ``all`` into ``default`` and every interface (net/ipv6/addrconf.c
# ``addrconf_disable_ipv6``), so both read 1, as recorded from a real node
# (tests/fixtures/real-swarm/netns/*/sysctls.json); interfaces made or moved in
# afterwards inherit ``default``: no fe80::. (moby 26 stopped writing ``all``:
# a8f7c5ee "Detect IPv6 support in containers" disables IPv6 per interface.)
NO_IPV6 = (("net.ipv6.conf.all.disable_ipv6", "1"),
           ("net.ipv6.conf.default.disable_ipv6", "1"))
# ApplyOSTweaks for LB and ingress sandboxes, the SNAT's vs.conntrack, and
# forwarding for the un-SNATed replies.
LB_SYSCTLS = (
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.vs.conntrack", "1"),
    ("net.ipv4.vs.conn_reuse_mode", "0"),
    ("net.ipv4.vs.expire_nodest_conn", "1"),
    ("net.ipv4.vs.expire_quiescent_template", "1"),
)
