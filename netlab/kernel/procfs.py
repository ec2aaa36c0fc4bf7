"""The IPVS tables of ``/proc/net``: the one parser of ``ip_vs`` and of ``ip_vs_conn``.

``/proc/thread-self/net/...`` is the reading thread's own namespace's, so a
thread (or a forked child) that entered a namespace reads that namespace's
tables. The parsers are pure; the readers return empty tables where the
kernel has no IPVS.
"""

from __future__ import annotations

from netlab.kernel.records import IpvsConn, IpvsDestination, IpvsTable

IP_VS = "/proc/thread-self/net/ip_vs"
IP_VS_CONN = "/proc/thread-self/net/ip_vs_conn"


def _hex_addr(ip_hex: str, port_hex: str) -> str:
    ip = ".".join(str(int(ip_hex[i:i + 2], 16)) for i in range(0, 8, 2))
    return f"{ip}:{int(port_hex, 16)}"


def parse_ip_vs_conn(text: str) -> tuple[IpvsConn, ...]:
    """``/proc/net/ip_vs_conn`` as records (IPv4 lines; the header is skipped)."""
    out = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 8 or len(f[1]) != 8:
            continue
        out.append(IpvsConn(f[0].lower(), _hex_addr(f[1], f[2]), _hex_addr(f[3], f[4]),
                            _hex_addr(f[5], f[6]), f[7]))
    return tuple(out)


def parse_ip_vs(text: str) -> IpvsTable:
    """``/proc/net/ip_vs`` (what ``ipvsadm -Ln`` prints, in hex): each firewall-mark
    service's scheduler (``FWM 00000100 rr``) and destinations with their weights.
    Services by address are skipped."""
    schedulers: dict[int, str] = {}
    out = []
    fwmark = None
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        if f[0] == "FWM" and len(f) >= 2:
            fwmark = int(f[1], 16)
            if len(f) >= 3:
                schedulers[fwmark] = f[2]
        elif f[0] in ("TCP", "UDP", "SCTP"):
            fwmark = None
        elif f[0] == "->" and fwmark is not None and len(f) >= 6 and ":" in f[1] \
                and len(f[1].split(":")[0]) == 8:
            ip_hex, port_hex = f[1].split(":")
            ip, _, port = _hex_addr(ip_hex, port_hex).rpartition(":")
            out.append(IpvsDestination(fwmark, ip, int(port), f[2], int(f[3]), int(f[4]),
                                       int(f[5])))
    return IpvsTable(schedulers, tuple(out))


def read_ip_vs_conn() -> tuple[IpvsConn, ...]:
    """The IPVS connection table of the calling thread's namespace; () without IPVS."""
    try:
        with open(IP_VS_CONN) as f:
            return parse_ip_vs_conn(f.read())
    except FileNotFoundError:
        return ()


def read_ip_vs() -> IpvsTable:
    """The IPVS services of the calling thread's namespace; empty without IPVS."""
    try:
        with open(IP_VS) as f:
            return parse_ip_vs(f.read())
    except FileNotFoundError:
        return IpvsTable()
