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
# Namespaces whose networks have no IPv6 (sandboxes, overlays, tasks): every
# interface made or moved in after this is written gets no IPv6 (no fe80::).
NO_IPV6 = (("net.ipv6.conf.default.disable_ipv6", "1"),)
# ApplyOSTweaks for LB and ingress sandboxes, the SNAT's vs.conntrack, and
# forwarding for the un-SNATed replies.
LB_SYSCTLS = (
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.vs.conntrack", "1"),
    ("net.ipv4.vs.conn_reuse_mode", "0"),
    ("net.ipv4.vs.expire_nodest_conn", "1"),
    ("net.ipv4.vs.expire_quiescent_template", "1"),
)
