"""A real Swarm node as recorded: a fake Engine client fed its API JSON, and its
namespaces read back from the standard tools' output (``ip -d -j``, ``ipvsadm -Ln``,
``iptables-save``, ``sysctl``), into the shapes netlab's readers give.

The recording lives in tests/fixtures/real-swarm-one-node/ (its README says how it was made): the Engine's JSON
(``info.json``, ``nodes.json``, ``networks.json``, ``services.json``,
``tasks.json``, ``containers.json``, ``containers-inspect.json``) and
``netns/<file>/`` per namespace (``_root`` is the host's).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from netlab.diff.drift import LinkSeen, NetnsSeen
from netlab.kernel.ipvs import ObservedService
from netlab.plan.render import normalize_save
from netlab.kernel.iptables import split_tables
from netlab.plan.types import Address, FdbEntry, IpvsDest, Neighbour, Route

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "real-swarm"


class RecordedEngine:
    """The Engine API calls netlab makes, answered from recorded JSON."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _load(self, name: str):
        return json.loads((self.root / name).read_text())

    def info(self):
        return self._load("info.json")

    def nodes(self, filters=None):
        return self._load("nodes.json")

    def networks(self, names=None, ids=None, filters=None):
        return self._load("networks.json")

    def services(self, filters=None, status=None):
        return self._load("services.json")

    def tasks(self, filters=None):
        return self._load("tasks.json")

    def containers(self, quiet=False, all=False, trunc=False, latest=False, since=None,  # noqa: A002
                   before=None, limit=-1, size=False, filters=None):
        out = self._load("containers.json")
        label = (filters or {}).get("label")
        return [c for c in out if label is None or label in (c.get("Labels") or {})]

    def inspect_container(self, container):
        return next(c for c in self._load("containers-inspect.json") if c["Id"] == container)


def netns_files(root: Path) -> list[str]:
    """The namespace files recorded under /var/run/docker/netns."""
    return json.loads((root / "netns-list.json").read_text())


def _json(path: Path) -> list:
    text = path.read_text().split("\n#stderr:")[0].strip()
    return json.loads(text) if text else []


def _links(items: list) -> tuple[LinkSeen, ...]:
    out = []
    for link in items:
        info = link.get("linkinfo") or {}
        kind = info.get("info_kind")
        vxlan: tuple = ()
        if kind == "vxlan":
            data = info.get("info_data") or {}
            vxlan = (("vni", data.get("id")), ("port", data.get("port")),
                     ("learning", int(bool(data.get("learning")))),
                     ("proxy", int(bool(data.get("proxy")))),
                     ("l2miss", int(bool(data.get("l2miss")))),
                     ("l3miss", int(bool(data.get("l3miss")))))
        if link.get("link_type") == "loopback":
            kind = None
        out.append(LinkSeen(link["ifname"], kind, link.get("mtu"), "UP" in link.get("flags", ()),
                            link.get("address"), link.get("master"), vxlan, link.get("ifindex", 0),
                            link.get("link_index")))
    return tuple(out)


def _addresses(key: str, items: list) -> tuple[Address, ...]:
    return tuple(Address(key, i["ifname"], f"{a['local']}/{a['prefixlen']}", a.get("broadcast"))
                 for i in items if i["ifname"] != "lo"
                 for a in i.get("addr_info", ()) if a.get("family") == "inet")


def _routes(key: str, items: list) -> tuple[Route, ...]:
    out = []
    for r in items:
        if r.get("protocol") == "kernel" or r.get("table", "main") != "main" \
                or r.get("type", "unicast") != "unicast":
            continue
        out.append(Route(key, r["dst"], r.get("gateway"), r.get("dev", "?")))
    return tuple(out)


def _neigh(key: str, text: str) -> tuple[Neighbour, ...]:
    out = []
    for line in text.splitlines():
        m = re.match(r"(\S+) dev (\S+) lladdr (\S+) PERMANENT", line)
        if m:
            out.append(Neighbour(key, m.group(2), m.group(1), m.group(3)))
    return tuple(out)


def _fdb(key: str, text: str) -> tuple[FdbEntry, ...]:
    out = []
    for line in text.splitlines():
        m = re.match(r"(\S+) dev (\S+) dst (\S+)", line)
        if m:
            out.append(FdbEntry(key, m.group(2), m.group(1), m.group(3)))
    return tuple(out)


def _ipvs(text: str) -> tuple[ObservedService, ...]:
    out, current, dests = [], None, []
    for line in text.splitlines():
        if m := re.match(r"FWM\s+(\d+)\s+(\S+)", line):
            if current:
                out.append(ObservedService(current[0], current[1], tuple(dests)))
            current, dests = (int(m.group(1)), m.group(2)), []
        elif current and (m := re.match(r"\s+->\s+([\d.]+):(\d+)\s+(\S+)\s+(\d+)", line)):
            dests.append(IpvsDest(m.group(1), int(m.group(2)), int(m.group(4)), m.group(3)))
    if current:
        out.append(ObservedService(current[0], current[1], tuple(dests)))
    return tuple(out)


def _sysctls(text: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for line in text.splitlines():
        if " = " in line:
            k, v = line.split(" = ", 1)
            out[k.strip()] = v.strip()
    return out


def recorded_seen(root: Path, file: str, key: str, backend: str = "nft") -> NetnsSeen:
    """One recorded namespace (``file``: its name under netns/) as netlab reads one."""
    d = root / "netns" / file
    text = (d / "iptables-save.txt").read_text().split("\n#stderr:")[0]
    tables = {t: normalize_save(body) for t, body in split_tables(text).items()}
    return NetnsSeen(_links(_json(d / "ip-link.json")), _addresses(key, _json(d / "ip-addr.json")),
                     _routes(key, _json(d / "ip-route.json")),
                     _neigh(key, (d / "ip-neigh.txt").read_text()),
                     _fdb(key, (d / "bridge-fdb.txt").read_text()),
                     _sysctls((d / "sysctl.txt").read_text()), tables,
                     _ipvs((d / "ipvsadm.txt").read_text()))


# -- the lead's recording (scripts/capture-real-swarm.py): tests/fixtures/real-swarm ----------

TWO_NODES = FIXTURES


class CapturedEngine(RecordedEngine):
    """The Engine of scripts/capture-real-swarm.py's recording (``api/``): networks and
    containers are saved as their inspect documents."""

    def __init__(self, root: Path) -> None:
        super().__init__(root / "api")

    def containers(self, quiet=False, all=False, trunc=False, latest=False, since=None,  # noqa: A002
                   before=None, limit=-1, size=False, filters=None):
        label = (filters or {}).get("label")
        return [{"Id": c["Id"], "Names": [c["Name"]], "Labels": c["Config"].get("Labels") or {}}
                for c in self._load("containers.json")
                if label is None or label in (c["Config"].get("Labels") or {})]

    def inspect_container(self, container):
        return next(c for c in self._load("containers.json") if c["Id"] == container)


def captured_netns_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "netns").iterdir() if p.name != "host")


def _captured_ipvs(text: str) -> tuple[ObservedService, ...]:
    """``ipvsadm -Sn`` lines (``-A -f 256 -s rr``, ``-a -f 256 -r 10.0.0.5:0 -m -w 1``)."""
    services: dict[int, tuple[str, list[IpvsDest]]] = {}
    fwd = {"-m": "Masq", "-g": "Route", "-i": "Tunnel"}
    for line in text.splitlines():
        w = line.split()
        if w[:2] == ["-A", "-f"]:
            services[int(w[2])] = (w[w.index("-s") + 1], [])
        elif w[:2] == ["-a", "-f"]:
            addr, port = w[w.index("-r") + 1].rsplit(":", 1)
            forward = next(fwd[x] for x in w if x in fwd)
            services[int(w[2])][1].append(IpvsDest(addr, int(port), int(w[w.index("-w") + 1]),
                                                   forward))
    return tuple(ObservedService(m, s, tuple(d)) for m, (s, d) in services.items())


def captured_seen(root: Path, file: str, key: str) -> NetnsSeen:
    """One namespace of scripts/capture-real-swarm.py's recording (``host``: the root one)."""
    d = root / "netns" / file
    text = (d / "iptables-save.txt").read_text()
    tables = {t: normalize_save(body) for t, body in split_tables(text).items()}
    neigh = tuple(Neighbour(key, n["dev"], n["dst"], n.get("lladdr", "none"))
                  for n in _json(d / "neigh.json") if "PERMANENT" in n.get("state", ()))
    fdb = tuple(FdbEntry(key, f["ifname"], f["mac"], f["dst"])
                for f in _json(d / "fdb.json") if f.get("dst"))
    return NetnsSeen(_links(_json(d / "link.json")), _addresses(key, _json(d / "addr.json")),
                     _routes(key, _json(d / "route.json")), neigh, fdb,
                     json.loads((d / "sysctls.json").read_text()), tables,
                     _captured_ipvs((d / "ipvsadm.txt").read_text()))
