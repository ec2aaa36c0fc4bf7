"""The embedded DNS server's answers, from queries built with dnslib (no sockets)."""

from __future__ import annotations

import random
import struct

from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from netlab.workload.dns import RESP_TTL, Resolver, frame, split_frames

TABLE = {
    "api": ("10.0.1.2",),
    "tasks.api": ("10.0.1.5", "10.0.1.6", "10.0.1.7"),
    "web": ("10.0.1.9",),
}


def ask(resolver: Resolver, name: str, qtype: str = "A", **kw) -> DNSRecord:
    q = DNSRecord.question(name, qtype)
    out = resolver.answer(q.pack(), **kw)
    assert out is not None
    reply = DNSRecord.parse(out)
    assert reply.header.id == q.header.id and reply.header.qr == 1
    return reply


def test_a_for_a_known_name_with_docker_s_ttl() -> None:
    reply = ask(Resolver(TABLE), "api")
    assert reply.header.rcode == RCODE.NOERROR and reply.header.ra == 1
    assert [(str(rr.rdata), rr.ttl, rr.rtype) for rr in reply.rr] == [("10.0.1.2", RESP_TTL, QTYPE.A)]


def test_names_are_case_insensitive_and_the_trailing_dot_is_optional() -> None:
    r = Resolver({"Api": ("10.0.1.2",)})
    for name in ("API", "api.", "aPi"):
        assert [str(rr.rdata) for rr in ask(r, name).rr] == ["10.0.1.2"]


def test_several_addresses_are_all_answered_and_shuffled_like_shuffleaddr() -> None:
    r = Resolver(TABLE, rng=random.Random(7))
    orders = {tuple(str(rr.rdata) for rr in ask(r, "tasks.api").rr) for _ in range(30)}
    assert all(sorted(o) == ["10.0.1.5", "10.0.1.6", "10.0.1.7"] for o in orders)
    assert len(orders) > 1


def test_an_unknown_name_in_the_swarm_s_scope_is_nxdomain() -> None:
    r = Resolver(TABLE)
    for name in ("db", "tasks.x", "TASKS.db."):
        reply = ask(r, name)
        assert reply.header.rcode == RCODE.NXDOMAIN and reply.rr == []


def test_an_empty_table_answers_nxdomain_as_the_ingress_network_gives_no_discovery() -> None:
    assert ask(Resolver({}), "hello-a").header.rcode == RCODE.NXDOMAIN


def test_external_names_are_refused_never_forwarded() -> None:
    r = Resolver(TABLE)
    for name, qtype in (("example.com", "A"), ("www.example.com", "AAAA"),
                        ("8.8.8.8.in-addr.arpa", "PTR")):
        reply = ask(r, name, qtype)
        assert reply.header.rcode == RCODE.REFUSED and reply.rr == []


def test_aaaa_for_a_known_name_is_noerror_without_answer() -> None:
    reply = ask(Resolver(TABLE), "api", "AAAA")
    assert reply.header.rcode == RCODE.NOERROR and reply.rr == []


def test_ptr_answers_the_name_of_a_table_address() -> None:
    r = Resolver({"tasks.web": ("10.0.1.9",), "web.1": ("10.0.1.9",), "api": ("10.0.1.2",),
                  "tasks.api": ("10.0.1.5", "10.0.1.6")})
    for ip, name in (("10.0.1.2", "api."), ("10.0.1.9", "tasks.web."), ("10.0.1.6", "tasks.api.")):
        reply = ask(r, ".".join(reversed(ip.split("."))) + ".in-addr.arpa", "PTR")
        assert reply.header.rcode == RCODE.NOERROR
        assert [(str(rr.rdata), rr.rtype) for rr in reply.rr] == [(name, QTYPE.PTR)]


def test_ptr_prefers_a_name_that_holds_the_address_alone() -> None:
    r = Resolver({"tasks.api": ("10.0.1.5", "10.0.1.6"), "api.1": ("10.0.1.5",)})
    reply = ask(r, "5.1.0.10.in-addr.arpa", "PTR")
    assert [str(rr.rdata) for rr in reply.rr] == ["api.1."]


def test_a_garbled_body_gets_formerr_with_the_query_s_id() -> None:
    data = DNSRecord.question("api").pack()[:-3]
    out = Resolver(TABLE).answer(data)
    assert out is not None
    reply = DNSRecord.parse(out)
    assert reply.header.rcode == RCODE.FORMERR and reply.header.id == struct.unpack("!H", data[:2])[0]


def test_short_junk_and_responses_are_dropped() -> None:
    r = Resolver(TABLE)
    assert r.answer(b"") is None and r.answer(b"\x01\x02\x03") is None
    response = DNSRecord.question("api").reply().pack()
    assert r.answer(response) is None


def test_random_bytes_never_raise() -> None:
    r, rng = Resolver(TABLE), random.Random(1)
    for _ in range(2000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 60)))
        out = r.answer(data)
        assert out is None or DNSRecord.parse(out).header.qr == 1


def test_a_non_query_opcode_is_notimp() -> None:
    q = DNSRecord.question("api")
    q.header.opcode = 2  # STATUS
    reply = DNSRecord.parse(Resolver(TABLE).answer(q.pack()))
    assert reply.header.rcode == RCODE.NOTIMP


def test_a_udp_reply_too_big_is_truncated_and_edns_raises_the_limit() -> None:
    many = {"tasks.big": tuple(f"10.0.{i // 250}.{i % 250 + 1}" for i in range(60))}
    r = Resolver(many)
    reply = ask(r, "tasks.big")
    assert reply.header.tc == 1 and reply.rr == []
    assert len(ask(r, "tasks.big", max_size=None).rr) == 60        # TCP: no limit
    q = DNSRecord.question("tasks.big")
    q.add_ar(EDNS0(udp_len=4096))
    full = DNSRecord.parse(r.answer(q.pack()))
    assert full.header.tc == 0 and len(full.rr) == 60


def test_tcp_framing_splits_messages_and_keeps_a_partial_one() -> None:
    a, b = DNSRecord.question("api").pack(), DNSRecord.question("web").pack()
    stream = frame(a) + frame(b)
    assert split_frames(stream) == ([a, b], b"")
    assert split_frames(stream[:-1]) == ([a], frame(b)[:-1])
    assert split_frames(b"\x00") == ([], b"\x00")
    assert struct.unpack("!H", frame(a)[:2])[0] == len(a)
