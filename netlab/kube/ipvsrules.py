"""The ``iptables-restore`` input kube-proxy's IPVS mode writes beside its IPVS services.

Ports ``Proxier.createAndLinkKubeChain`` (the chain declarations, :func:`chain_lines`),
``Proxier.writeIptablesRules`` and ``Proxier.acceptIPVSTraffic`` of
``pkg/proxy/ipvs/proxier.go`` (:func:`render`): given the ipsets' contents after a sync,
the nat and filter rules, word for word as kube-proxy writes them to its line buffers
(``proxyutil.LineBuffer``: each write is one line of space-joined words). The jump rules
it adds to the built-in chains with ``EnsureRule`` (outside the restore input) are not
part of this text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from netlab.kube import ipset
from netlab.kube.ipset import Entry
from netlab.kube.ipvsobjects import IPVSNode

NAT_CHAINS = ("KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-NODE-PORT", "KUBE-LOAD-BALANCER",
              "KUBE-MARK-MASQ")
"""The nat half of ``iptablesChains``, in order."""
FILTER_CHAINS = ("KUBE-FORWARD", "KUBE-NODE-PORT", "KUBE-PROXY-FIREWALL",
                 "KUBE-SOURCE-RANGES-FIREWALL", "KUBE-IPVS-FILTER", "KUBE-IPVS-OUT-FILTER")
"""The filter half of ``iptablesChains``, in order."""


def chain_lines(chains: Sequence[str]) -> str:
    """What ``createAndLinkKubeChain`` writes for one table: a ``:CHAIN - [0:0]`` line each."""
    return "".join(f":{c} - [0:0]\n" for c in chains)


def _line(*words: str | Sequence[str]) -> str:
    return " ".join(w if isinstance(w, str) else " ".join(w) for w in words)


def render(node: IPVSNode, sets: Mapping[str, Sequence[Entry]],
           no_node_access: Sequence[Entry] = ()) -> str:
    """The restore input of one sync: ``*nat`` chains and rules, then ``*filter`` ones.

    ``sets`` maps each set name to its entries (a missing name counts as empty);
    ``no_node_access`` are the load-balancer entries whose source ranges leave the node
    out (``lbNoNodeAccessIPPortProtocolEntries``). Raises nothing.
    """
    def empty(name: str) -> bool:
        return not sets.get(name)

    def comment(name: str) -> str:
        return ipset.spec(name).quoted_comment()

    nat: list[str] = []
    flt: list[str] = []
    nat.append(_line("-A", "KUBE-SERVICES", "-s", "127.0.0.0/8", "-j", "RETURN"))
    for m in ipset.SET_MATCHES:
        if empty(m.name):
            continue
        args = ["-A", m.from_chain]
        if m.protocol:
            args += ["-p", m.protocol]
        args += ["-m", "comment", "--comment", comment(m.name), "-m", "set", "--match-set",
                 m.name, m.match_type]
        (flt if m.table == "filter" else nat).append(_line(args, "-j", m.to))

    if not empty(ipset.CLUSTER_IP):
        args = ["-A", "KUBE-SERVICES", "-m", "comment", "--comment", comment(ipset.CLUSTER_IP),
                "-m", "set", "--match-set", ipset.CLUSTER_IP]
        if node.masquerade_all:
            nat.append(_line(args, "dst,dst", "-j", "KUBE-MARK-MASQ"))
        elif node.local_detector_cidr is not None:
            # LocalTrafficDetector.IfNotLocal() of the detector by cluster CIDR
            nat.append(_line(args, "dst,dst", "!", "-s", node.local_detector_cidr,
                             "-j", "KUBE-MARK-MASQ"))
        else:
            nat.append(_line(args, "src,dst", "-j", "KUBE-MARK-MASQ"))

    def external_ip_rules(args: list[str]) -> None:
        nat.append(_line(args, "-m", "physdev", "!", "--physdev-is-in", "-m", "addrtype", "!",
                         "--src-type", "LOCAL", "-j", "ACCEPT"))
        nat.append(_line(args, "-m", "addrtype", "--dst-type", "LOCAL", "-j", "ACCEPT"))

    if not empty(ipset.EXTERNAL_IP):
        args = ["-A", "KUBE-SERVICES", "-m", "comment", "--comment", comment(ipset.EXTERNAL_IP),
                "-m", "set", "--match-set", ipset.EXTERNAL_IP, "dst,dst"]
        nat.append(_line(args, "-j", "KUBE-MARK-MASQ"))
        external_ip_rules(args)
    if not empty(ipset.EXTERNAL_IP_LOCAL):
        external_ip_rules(["-A", "KUBE-SERVICES", "-m", "comment", "--comment",
                           comment(ipset.EXTERNAL_IP_LOCAL), "-m", "set", "--match-set",
                           ipset.EXTERNAL_IP_LOCAL, "dst,dst"])

    nat.append(_line("-A", "KUBE-SERVICES", "-m", "addrtype", "--dst-type", "LOCAL",
                     "-j", "KUBE-NODE-PORT"))
    nat.append(_line("-A", "KUBE-LOAD-BALANCER", "-j", "KUBE-MARK-MASQ"))
    flt.append(_line("-A", "KUBE-SOURCE-RANGES-FIREWALL", "-j", "DROP"))
    for e in no_node_access:
        flt.append(_line("-A", "KUBE-IPVS-OUT-FILTER", "-s", e.ip, "-m", "ipvs", "--vaddr", e.ip,
                         "--vproto", e.protocol, "--vport", str(e.port), "-j", "DROP"))
    # acceptIPVSTraffic: both sets are hash:ip,port, so "dst,dst"
    for name in (ipset.CLUSTER_IP, ipset.LOAD_BALANCER):
        if not empty(name):
            nat.append(_line("-A", "KUBE-SERVICES", "-m", "set", "--match-set", name, "dst,dst",
                             "-j", "ACCEPT"))
    mark = f"{node.masquerade_mark}/{node.masquerade_mark}"
    flt.append(_line("-A", "KUBE-FORWARD", "-m", "comment", "--comment",
                     '"kubernetes forwarding rules"', "-m", "mark", "--mark", mark, "-j", "ACCEPT"))
    flt.append(_line("-A", "KUBE-FORWARD", "-m", "comment", "--comment",
                     '"kubernetes forwarding conntrack rule"', "-m", "conntrack", "--ctstate",
                     "RELATED,ESTABLISHED", "-j", "ACCEPT"))
    flt.append(_line("-A", "KUBE-NODE-PORT", "-m", "comment", "--comment",
                     comment(ipset.HEALTH_CHECK_NODE_PORT), "-m", "set", "--match-set",
                     ipset.HEALTH_CHECK_NODE_PORT, "dst", "-j", "ACCEPT"))
    for name, match in ((ipset.LOAD_BALANCER, "dst,dst"), (ipset.CLUSTER_IP, "dst,dst"),
                        (ipset.EXTERNAL_IP, "dst,dst"), (ipset.EXTERNAL_IP_LOCAL, "dst,dst"),
                        (ipset.HEALTH_CHECK_NODE_PORT, "dst")):
        flt.append(_line("-A", "KUBE-IPVS-FILTER", "-m", "set", "--match-set", name, match,
                         "-j", "RETURN"))
    flt.append(_line("-A", "KUBE-IPVS-FILTER", "-m", "conntrack", "--ctstate", "NEW", "-m", "set",
                     "--match-set", ipset.IPVS_IPS, "dst", "-j", "REJECT"))
    nat.append(_line("-A", "KUBE-POSTROUTING", "-m", "mark", "!", "--mark", mark, "-j", "RETURN"))
    nat.append(_line("-A", "KUBE-POSTROUTING", "-j", "MARK", "--xor-mark", node.masquerade_mark))
    masq = ["-A", "KUBE-POSTROUTING", "-m", "comment", "--comment",
            '"kubernetes service traffic requiring SNAT"', "-j", "MASQUERADE"]
    if node.random_fully:
        masq.append("--random-fully")
    nat.append(_line(masq))
    nat.append(_line("-A", "KUBE-MARK-MASQ", "-j", "MARK", "--or-mark", node.masquerade_mark))
    nat.append("COMMIT")
    flt.append("COMMIT")
    return ("*nat\n" + chain_lines(NAT_CHAINS) + "".join(f"{line}\n" for line in nat)
            + "*filter\n" + chain_lines(FILTER_CHAINS) + "".join(f"{line}\n" for line in flt))
