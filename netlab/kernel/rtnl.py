"""rtnetlink in batches: plain sockets, messages packed with ``struct``, acks read in bulk.

What :mod:`netlab.kernel.links` writes with when it applies a plan. pyroute2
0.9 runs an asyncio loop per request (about 1-3 ms each) and forks a helper
per namespace to open its socket; here one ``AF_NETLINK`` socket per
namespace is opened by a thread that entered it (sockets stay in the
namespace they were made in), requests are queued and sent many to one
``send`` (the kernel handles every message of a buffer in turn), and the acks
are matched by sequence number. Dumps are parsed only as far as the caller
needs (:class:`Msg`: the fixed header's bytes and the attributes by type).

Only the message kinds netlab writes are packed: links (bridge, veth with its
peer born in another namespace, VXLAN born in the overlay namespace while its
UDP socket stays in the underlay one), IPv4 addresses and routes, permanent
neighbours and VXLAN FDB entries.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from pyroute2.netlink.exceptions import NetlinkError

NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_LINKINFO, IFLA_NET_NS_FD = 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFLA_VXLAN = {"vni": 1, "learning": 7, "proxy": 11, "l2miss": 13, "l3miss": 14, "port": 15}
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
NDA_DST, NDA_LLADDR = 1, 2
IFF_UP = 0x1
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
AF_BRIDGE = 7
RT_TABLE_MAIN, RTPROT_STATIC, RTN_UNICAST = 254, 4, 1
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
SOL_NETLINK, NETLINK_CAP_ACK = 270, 10

_HDR = struct.Struct("=IHHII")
IFINFO = struct.Struct("=BxHiII")
IFADDR = struct.Struct("=BBBBI")
RTMSG = struct.Struct("=BBBBBBBBI")
NDMSG = struct.Struct("=BxxxiHBB")
CHUNK = 32 * 1024       # bytes of requests per send: the acks of one chunk fit the receive buffer


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute (type ``kind``), padded to 4 bytes."""
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * (-n % 4)


def strz(text: str) -> bytes:
    return text.encode() + b"\0"


def mac(text: str) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


def ip4(text: str) -> bytes:
    return socket.inet_aton(text)


def u32(v: int) -> bytes:
    return struct.pack("=I", v)


def parse_attrs(buf: bytes | memoryview, off: int = 0, end: int | None = None) -> dict[int, bytes]:
    """The attributes in ``buf[off:end]`` by type (the nested flag dropped); later ones win."""
    end = len(buf) if end is None else end
    out: dict[int, bytes] = {}
    while off + 4 <= end:
        n, kind = struct.unpack_from("=HH", buf, off)
        if n < 4:
            break
        out[kind & 0x3FFF] = bytes(buf[off + 4:off + n])
        off += (n + 3) & ~3
    return out


@dataclass(frozen=True)
class Msg:
    """One message of a dump: its fixed header (bytes) and its attributes by type."""

    fixed: bytes
    attrs: dict[int, bytes]

    def text(self, kind: int) -> str | None:
        v = self.attrs.get(kind)
        return v.rstrip(b"\0").decode() if v is not None else None

    def u32(self, kind: int) -> int | None:
        v = self.attrs.get(kind)
        return struct.unpack("=I", v[:4])[0] if v is not None else None

    def ip(self, kind: int) -> str | None:
        v = self.attrs.get(kind)
        return socket.inet_ntoa(v[:4]) if v is not None and len(v) >= 4 else None

    def mac(self, kind: int) -> str | None:
        v = self.attrs.get(kind)
        return v.hex(":") if v is not None else None


@dataclass(frozen=True)
class LinkInfo:
    """One link as a dump shows it: what applying a plan compares."""

    index: int
    name: str
    kind: str | None
    master: int | None
    vxlan: tuple[tuple[str, int], ...] = ()


def link_info(m: Msg) -> LinkInfo:
    """A link message's index, name, kind, master and VXLAN attributes."""
    _fam, _type, index, _flags, _change = IFINFO.unpack(m.fixed)
    kind: str | None = None
    vxlan: tuple[tuple[str, int], ...] = ()
    info = m.attrs.get(IFLA_LINKINFO)
    if info is not None:
        nested = parse_attrs(info)
        raw = nested.get(IFLA_INFO_KIND)
        kind = raw.rstrip(b"\0").decode() if raw is not None else None
        data = nested.get(IFLA_INFO_DATA)
        if kind == "vxlan" and data is not None:
            d = parse_attrs(data)
            got = []
            for key, t in IFLA_VXLAN.items():
                if t in d:
                    v = d[t]
                    got.append((key, struct.unpack(">H", v[:2])[0] if key == "port"
                                else (struct.unpack("=I", v[:4])[0] if key == "vni" else v[0])))
            order = ("vni", "port", "learning", "proxy", "l2miss", "l3miss")
            vxlan = tuple(sorted(got, key=lambda kv: order.index(kv[0])))
    return LinkInfo(index, m.text(IFLA_IFNAME) or "", kind, m.u32(IFLA_MASTER), vxlan)


@dataclass
class Rtnl:
    """One rtnetlink socket inside one namespace, with requests queued for one batch.

    ``queue`` packs a request; ``flush`` sends what is queued and waits for
    every ack, raising NetlinkError (errno, what the request was) for the
    first refusal. ``dump`` flushes, then asks and reads a whole table.
    """

    netns: str
    sock: socket.socket
    requests: int = 0
    _seq: int = 0
    _out: bytearray = field(default_factory=bytearray)
    _what: dict[int, str] = field(default_factory=dict)
    _fine: dict[int, tuple[int, ...]] = field(default_factory=dict)

    def queue(self, mtype: int, flags: int, body: bytes, what: str,
              fine: tuple[int, ...] = ()) -> None:
        """Queue one request; an answer with an errno in ``fine`` is not a refusal
        (a deletion of something already gone). No ack is asked for: the kernel
        answers a refusal all the same, and :meth:`flush` ends each batch with one
        request that is acked."""
        self._seq += 1
        if fine:
            self._fine[self._seq] = fine
        self._out += _HDR.pack(_HDR.size + len(body), mtype, flags | NLM_F_REQUEST,
                               self._seq, 0) + body
        self._what[self._seq] = what
        self.requests += 1
        if len(self._out) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        """Send what is queued; raises NetlinkError for the first request refused.

        rtnetlink handles every message of one ``send`` in order before the call
        returns, answering only refusals; the batch ends with an acked request
        for the loopback (harmless), so the first ack with its sequence number
        means every answer to the batch has been read.
        """
        if not self._out:
            return
        self._seq += 1
        barrier = self._seq
        self._out += _HDR.pack(_HDR.size + IFINFO.size, RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK,
                               barrier, 0) + IFINFO.pack(0, 0, 1, 0, 0)
        data, self._out = bytes(self._out), bytearray()
        self.sock.send(data)
        failed: NetlinkError | None = None
        done = False
        while not done:
            for mtype, seq, body in self._read():
                if mtype != NLMSG_ERROR:
                    continue
                if seq == barrier:
                    done = True
                    continue
                what = self._what.get(seq)
                code = -struct.unpack_from("=i", body)[0]
                if code in self._fine.get(seq, ()):
                    continue
                if code and failed is None and what is not None:
                    failed = NetlinkError(code, f"{what} in {self.netns}: {os.strerror(code)}")
        self._what.clear()
        self._fine.clear()
        if failed is not None:
            raise failed

    def _read(self) -> list[tuple[int, int, memoryview]]:
        buf = memoryview(self.sock.recv(1 << 20))
        out, off = [], 0
        while off + _HDR.size <= len(buf):
            n, mtype, _flags, seq, _pid = _HDR.unpack_from(buf, off)
            if n < _HDR.size:
                break
            out.append((mtype, seq, buf[off + _HDR.size:off + n]))
            off += (n + 3) & ~3
        return out

    def dump(self, mtype: int, fixed: bytes,
             keep: Callable[[memoryview], bool] | None = None) -> list[Msg]:
        """Every object of a GET request (``fixed``: its header, which filters some);
        with ``keep``, only the objects whose fixed header it accepts (the others'
        attributes are never parsed: a large table costs little where few matter)."""
        self.flush()
        self._seq += 1
        seq = self._seq
        self.requests += 1
        self.sock.send(_HDR.pack(_HDR.size + len(fixed), mtype, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
                       + fixed)
        out: list[Msg] = []
        size = len(fixed)
        while True:
            for kind, s, body in self._read():
                if s != seq:
                    continue
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", body)[0]
                    raise NetlinkError(code, f"dump {mtype} in {self.netns}: {os.strerror(code)}")
                if keep is None or keep(body[:size]):
                    out.append(Msg(bytes(body[:size]), parse_attrs(body, size)))

    def close(self) -> None:
        self.sock.close()


def open_socket() -> socket.socket:
    """An rtnetlink socket in the calling thread's namespace (acks carry no payload)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                         socket.NETLINK_ROUTE)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    try:
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
    except OSError:
        pass
    sock.bind((0, 0))
    return sock


# -- requests ----------------------------------------------------------------

def link_body(index: int = 0, name: str | None = None, *, up: bool | None = None,
              mtu: int | None = None,
              address: str | None = None, master: int | None = None, kind: str | None = None,
              data: bytes = b"", netns_fd: int | None = None) -> bytes:
    """An ifinfomsg with the attributes given (``data``: IFLA_INFO_DATA's payload;
    ``up`` None leaves the state as it is, False sets the link down)."""
    body = IFINFO.pack(0, 0, index, IFF_UP if up else 0, 0 if up is None else IFF_UP)
    if name is not None:
        body += attr(IFLA_IFNAME, strz(name))
    if mtu is not None:
        body += attr(IFLA_MTU, u32(mtu))
    if address:
        body += attr(IFLA_ADDRESS, mac(address))
    if master is not None:
        body += attr(IFLA_MASTER, u32(master))
    if netns_fd is not None:
        body += attr(IFLA_NET_NS_FD, u32(netns_fd))
    if kind is not None:
        info = attr(IFLA_INFO_KIND, strz(kind)) + (attr(IFLA_INFO_DATA, data) if data else b"")
        body += attr(IFLA_LINKINFO, info)
    return body


def veth_data(peer: bytes) -> bytes:
    """IFLA_INFO_DATA of a veth whose peer is ``peer`` (a :func:`link_body`)."""
    return attr(VETH_INFO_PEER, peer)


def vxlan_data(vni: int, port: int, learning: bool, proxy: bool, l2miss: bool,
               l3miss: bool) -> bytes:
    return (attr(IFLA_VXLAN["vni"], u32(vni)) + attr(IFLA_VXLAN["port"], struct.pack(">H", port))
            + attr(IFLA_VXLAN["learning"], bytes([int(learning)]))
            + attr(IFLA_VXLAN["proxy"], bytes([int(proxy)]))
            + attr(IFLA_VXLAN["l2miss"], bytes([int(l2miss)]))
            + attr(IFLA_VXLAN["l3miss"], bytes([int(l3miss)])))


def addr_body(index: int, cidr: str, broadcast: str | None = None) -> bytes:
    ip, plen = cidr.split("/")
    body = IFADDR.pack(socket.AF_INET, int(plen), 0, 0, index)
    body += attr(IFA_LOCAL, ip4(ip)) + attr(IFA_ADDRESS, ip4(ip))
    if broadcast:
        body += attr(IFA_BROADCAST, ip4(broadcast))
    return body


def route_body(dst: str, gateway: str | None, oif: int, proto: int = RTPROT_STATIC,
               scope: int | None = None, rtype: int = RTN_UNICAST) -> bytes:
    """A main-table IPv4 route (``dst``: a CIDR, ``0.0.0.0/0`` for the default)."""
    ip, plen = dst.split("/")
    if scope is None:
        scope = RT_SCOPE_UNIVERSE if gateway else RT_SCOPE_LINK
    body = RTMSG.pack(socket.AF_INET, int(plen), 0, 0, RT_TABLE_MAIN, proto, scope, rtype, 0)
    body += attr(RTA_TABLE, u32(RT_TABLE_MAIN))
    if int(plen):
        body += attr(RTA_DST, ip4(ip))
    if gateway:
        body += attr(RTA_GATEWAY, ip4(gateway))
    if oif:
        body += attr(RTA_OIF, u32(oif))
    return body


def neigh_body(index: int, ip: str, lladdr: str | None) -> bytes:
    body = NDMSG.pack(socket.AF_INET, index, NUD_PERMANENT, 0, 0) + attr(NDA_DST, ip4(ip))
    return body + (attr(NDA_LLADDR, mac(lladdr)) if lladdr else b"")


def fdb_body(index: int, lladdr: str, dst: str) -> bytes:
    return (NDMSG.pack(AF_BRIDGE, index, NUD_PERMANENT, NTF_SELF, 0)
            + attr(NDA_LLADDR, mac(lladdr)) + attr(NDA_DST, ip4(dst)))
