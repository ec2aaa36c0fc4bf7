"""The supervisor's memory per task: what it holds once per lab rather than once per socket."""

from __future__ import annotations

import json
import socket

import pytest

from netlab.errors import NetlabError

from netlab.workload.app import Server, _Listener
from netlab.workload.dnsio import dns_sockets
from netlab.workload.endpoints import DnsEndpoint, dns_from_json, endpoints_to_json

NAMES = (("hello-a", ("10.0.1.2",)), ("tasks.hello-a", ("10.0.1.3", "10.0.1.4")))
OTHER = (("api", ("10.0.1.9",)),)


def dns(task: str, records=NAMES) -> DnsEndpoint:
    # Each server gets its own, equal, copy of the records, as parsing the endpoints file gives.
    return DnsEndpoint(f"nl-lab.{task}", task, "node1", 40000,
                       tuple((n, tuple(a)) for n, a in records))


def server(tmp_path) -> Server:
    return Server(tmp_path / "endpoints.json", tmp_path / "endpoints.json.status")


def listen(srv: Server, *servers: DnsEndpoint) -> list[_Listener]:
    """Bind a listener per DNS socket of ``servers`` as load() does (no namespace needed:
    nothing here is opened in one)."""
    out = []
    for sock_ep in dns_sockets(list(servers)):
        lst = _Listener(sock_ep, socket.socket(), (0, 0))
        lst.bind(sock_ep, srv._resolver_for)
        srv.listeners[sock_ep.key] = lst
        out.append(lst)
    return out


def done(srv: Server) -> None:
    """Close the unregistered placeholder sockets, then the server."""
    for lst in srv.listeners.values():
        lst.sock.close()
    srv.listeners.clear()
    srv.close()


def test_tasks_with_the_same_records_share_one_resolver(tmp_path):
    srv = server(tmp_path)
    try:
        listeners = listen(srv, *(dns(f"hello-a.{i}") for i in range(1, 51)))
        assert len(listeners) == 100                      # UDP and TCP of 50 tasks
        assert len({id(lst.resolver) for lst in listeners}) == 1
        assert len(srv.resolvers) == 1
        assert listeners[0].resolver.records["tasks.hello-a"] == ("10.0.1.3", "10.0.1.4")
    finally:
        done(srv)


def test_other_records_get_their_own_resolver_and_unused_ones_are_forgotten(tmp_path):
    srv = server(tmp_path)
    try:
        a, _, b, _ = listen(srv, dns("hello-a.1"), dns("api.1", OTHER))
        assert a.resolver is not b.resolver and len(srv.resolvers) == 2
        # api.1's records change (a reload): its sockets answer the new records at once.
        changed = dns("api.1", NAMES)
        for sock_ep in dns_sockets([changed]):
            srv.listeners[sock_ep.key].bind(sock_ep, srv._resolver_for)
        assert srv.listeners[b.endpoint.key].resolver is a.resolver
        srv._forget_unused_resolvers()
        assert list(srv.resolvers) == [dns("x").records]
    finally:
        done(srv)


def test_servers_read_from_the_file_with_equal_records_hold_one_table():
    servers = [dns(f"hello-a.{i}") for i in range(1, 4)] + [dns("api.1", OTHER)]
    read = dns_from_json(endpoints_to_json([], servers))
    assert read == servers
    assert read[0].records is read[1].records is read[2].records
    assert read[3].records is not read[0].records and read[3].records == OTHER


def test_the_file_holds_each_records_table_once():
    servers = [dns(f"hello-a.{i}") for i in range(1, 101)] + [dns("api.1", OTHER)]
    doc = json.loads(endpoints_to_json([], servers))
    assert doc["dns_tables"] == [{n: list(a) for n, a in NAMES}, {n: list(a) for n, a in OTHER}]
    assert {e["table"] for e in doc["dns"][:100]} == {0} and doc["dns"][100]["table"] == 1
    assert "records" not in doc["dns"][0]


def test_a_file_with_the_records_inline_still_reads():
    # As written before the tables: each server carries its records.
    servers = [dns("hello-a.1"), dns("api.1", OTHER)]
    old = {"version": 1, "endpoints": [], "dns": [s.to_dict() for s in servers]}
    assert dns_from_json(json.dumps(old)) == servers


@pytest.mark.parametrize("table", [2, -1, "0", None, True])
def test_a_server_naming_no_table_is_refused_by_name(table):
    doc = json.loads(endpoints_to_json([], [dns("hello-a.1"), dns("api.1", OTHER)]))
    doc["dns"][1]["table"] = table
    with pytest.raises(NetlabError, match=r"dns\[1\]: table must be an index into dns_tables "
                                          r"\(0 to 1\)"):
        dns_from_json(json.dumps(doc))
