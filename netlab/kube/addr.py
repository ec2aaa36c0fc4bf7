"""IPv4 addresses and CIDRs read the way kube-proxy reads them: "sloppily".

kube-proxy parses every address it takes from the API with ``k8s.io/utils/net``
``ParseIPSloppy`` / ``ParseCIDRSloppy`` (the pre-Go-1.17 parser, which reads a
leading-zero octet such as ``041`` as decimal 41) and writes rules with the parsed
value's ``String()``; ``pkg/proxy/iptables/proxier_test.go`` ``TestBadIPs`` checks that
``172.30.0.041`` becomes ``172.30.0.41``. Python's :mod:`ipaddress` refuses leading
zeros, so these helpers parse the octets themselves and hand back :mod:`ipaddress`
values. Only IPv4 is handled: the generator models an IPv4 kube-proxy.
"""

from __future__ import annotations

import ipaddress
import re

_DECIMAL = re.compile(r"[0-9]+")


def parse_ip(text: str) -> ipaddress.IPv4Address:
    """``ParseIPSloppy`` for IPv4: four dot-separated decimal octets, leading zeros allowed.

    Raises ValueError for anything else (an IPv6 address included).
    """
    parts = text.split(".")
    if len(parts) != 4 or not all(_DECIMAL.fullmatch(p) for p in parts):
        raise ValueError(f"not an IPv4 address: {text!r}")
    octets = [int(p, 10) for p in parts]
    if any(o > 255 for o in octets):
        raise ValueError(f"not an IPv4 address: {text!r}")
    return ipaddress.IPv4Address(bytes(octets))


def parse_cidr(text: str) -> ipaddress.IPv4Network:
    """``ParseCIDRSloppy`` for IPv4: ``address/prefix``, leading zeros allowed in both.

    The result is the network (host bits cleared), as Go's ``*net.IPNet`` prints it.
    Raises ValueError when ``text`` is not such a CIDR.
    """
    address, sep, prefix = text.partition("/")
    if not sep or not _DECIMAL.fullmatch(prefix) or int(prefix, 10) > 32:
        raise ValueError(f"not an IPv4 CIDR: {text!r}")
    return ipaddress.IPv4Network((parse_ip(address), int(prefix, 10)), strict=False)
