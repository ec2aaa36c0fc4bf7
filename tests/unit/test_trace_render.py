"""``netlab trace`` renderers: text table, Mermaid sequence diagram, --repeat summary."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re

from netlab.trace.model import Backend, Hop, RepeatSummary, Request, Trace
from netlab.trace.render import (REPLY_SEPARATOR, is_round_robin, mermaid, repeat_json,
                                 repeat_text, text)

DNAT_RULE = ('-A DOCKER-INGRESS -p tcp -m tcp --dport 5000 -m comment --comment '
             '"netlab:hello-a:svc/hello-a:publish/5000" -j DNAT --to-destination 172.18.0.2:5000')

CLIENT = "192.168.56.2:40000"
NODE2 = "192.168.56.12:5000"
SBOX_GW = "172.18.0.2:5000"
SBOX_OV = "10.0.0.3:40000"
TASK = "10.0.0.5:5000"


def _hops() -> tuple[Hop, ...]:
    """The seed path: client → node2:5000 → ingress_sbox → VXLAN → hello-a.1 on node1, and back."""
    rows = [
        # node, netns, iface, dir, src, dst, proto, event, detail, rule, evidence, leg
        ("client", "client", "eth0", "out", CLIENT, NODE2, "tcp", "tx",
         "SYN sent by the client", None, ("capture",), "request"),
        ("lan", "lan", "veth-client", "in", CLIENT, NODE2, "tcp", "rx",
         "SYN on the LAN bridge from the client", None, ("capture",), "request"),
        ("lan", "lan", "veth-node2", "out", CLIENT, NODE2, "tcp", "tx",
         "SYN bridged towards node2", None, ("capture",), "request"),
        ("node2", "node2", "eth0", "in", CLIENT, NODE2, "tcp", "rx",
         "SYN arrives at node2", None, ("capture",), "request"),
        ("node2", "node2", None, None, CLIENT, SBOX_GW, "tcp", "dnat",
         "nat PREROUTING DOCKER-INGRESS: DNAT → 172.18.0.2:5000", DNAT_RULE,
         ("counter", "conntrack"), "request"),
        ("node2", "node2/ingress_sbox", "eth1", "in", CLIENT, SBOX_GW, "tcp", "rx",
         "SYN enters the ingress sandbox from docker_gwbridge", None, ("capture",), "request"),
        ("node2", "node2/ingress_sbox", None, None, CLIENT, SBOX_GW, "tcp", "mark",
         "mangle PREROUTING: MARK 0x100 (256)", "-A PREROUTING -p tcp --dport 5000 -j MARK "
         "--set-xmark 0x100/0xffffffff", ("counter",), "request"),
        ("node2", "node2/ingress_sbox", None, None, CLIENT, TASK, "tcp", "ipvs",
         "IPVS FWM 256 rr → 10.0.0.5:5000 (hello-a.1 on node1)", None, ("ipvs-conn",), "request"),
        ("node2", "node2/ingress_sbox", None, None, SBOX_OV, TASK, "tcp", "snat",
         "nat POSTROUTING: SNAT → 10.0.0.3 (client IP lost here)",
         "-A POSTROUTING -d 10.0.0.0/24 -m ipvs --ipvs -j SNAT --to-source 10.0.0.3",
         ("counter", "conntrack"), "request"),
        ("node2", "node2", "eth0", "out", "192.168.56.12:53211", "192.168.56.11:4789", "udp",
         "encap", "VXLAN encap VNI 4096 192.168.56.12 → 192.168.56.11 udp/4789", None,
         ("capture",), "request"),
        ("node1", "node1/ov-ingress", "vxlan0", "in", SBOX_OV, TASK, "tcp", "decap",
         "VXLAN decap VNI 4096 on node1", None, ("capture",), "request"),
        ("node1", "hello-a.1", "eth0", "in", SBOX_OV, TASK, "tcp", "rx",
         "SYN reaches the task", None, ("capture",), "request"),
        ("node1", "hello-a.1", None, None, SBOX_OV, "10.0.0.5:3000", "tcp", "redirect",
         "nat PREROUTING: REDIRECT 5000 → 3000",
         "-A PREROUTING -p tcp --dport 5000 -j REDIRECT --to-ports 3000",
         ("counter",), "request"),
        ("node1", "hello-a.1", None, None, SBOX_OV, "10.0.0.5:3000", "tcp", "deliver",
         "delivered to hello-a.1", None, ("conntrack",), "request"),
        # the reply
        ("node1", "hello-a.1", None, None, TASK, SBOX_OV, "tcp", "un-nat",
         "reverse REDIRECT: 3000 → 5000", None, ("conntrack",), "reply"),
        ("node1", "hello-a.1", "eth0", "out", TASK, SBOX_OV, "tcp", "tx",
         "SYN-ACK leaves the task", None, ("capture",), "reply"),
        ("node1", "node1", "eth0", "out", "192.168.56.11:41000", "192.168.56.12:4789", "udp",
         "encap", "VXLAN encap VNI 4096 192.168.56.11 → 192.168.56.12 udp/4789", None,
         ("capture",), "reply"),
        ("node2", "node2/ingress_sbox", None, None, SBOX_GW, CLIENT, "tcp", "un-nat",
         "conntrack: un-SNAT 10.0.0.3 → 192.168.56.2, un-IPVS 10.0.0.5 → 172.18.0.2",
         None, ("conntrack", "ipvs-conn"), "reply"),
        ("node2", "node2", None, None, NODE2, CLIENT, "tcp", "un-nat",
         "conntrack: un-DNAT 172.18.0.2:5000 → 192.168.56.12:5000", None,
         ("conntrack",), "reply"),
        ("client", "client", "eth0", "in", NODE2, CLIENT, "tcp", "rx",
         "SYN-ACK back at the client", None, ("capture",), "reply"),
    ]
    return tuple(
        Hop(seq=i, node=node, netns=netns, iface=iface, dir=dir_, src=src, dst=dst, proto=proto,
            event=event, detail=detail, rule=rule, evidence=evidence, leg=leg)
        for i, (node, netns, iface, dir_, src, dst, proto, event, detail, rule, evidence, leg)
        in enumerate(rows, 1))


def _request(service: str | None = "hello-a") -> Request:
    return Request(lab="hello-a", target="node2:5000", node="node2", dst=NODE2, proto="tcp",
                   src=CLIENT, from_="client", service=service)


def _delivered() -> Trace:
    return Trace(request=_request(), backend=Backend(task="hello-a.1", node="node1", ip="10.0.0.5"),
                 verdict="delivered", reason="delivered to hello-a.1 on node1", hops=_hops(),
                 reply={"task": "hello-a.1", "client": "10.0.0.3"},
                 capture_points=("client/eth0", "lan/veth-client", "node2/eth0",
                                 "node2/ingress_sbox/eth1", "hello-a.1/eth0"),
                 packets=12, elapsed_ms=42.5)


def _refused() -> Trace:
    hops = _hops()[:4] + (
        Hop(seq=5, node="node2", netns="node2", iface="eth0", dir="out", src=NODE2, dst=CLIENT,
            proto="tcp", event="rst", detail="node2 answers RST: nothing listens on 5001",
            rule=None, evidence=("capture",), leg="reply"),)
    return Trace(request=dataclasses.replace(_request(service=None), dst="192.168.56.12:5001",
                                             target="node2:5001"),
                 backend=None, verdict="refused", reason="RST from node2: no service on tcp/5001",
                 hops=hops, packets=5, elapsed_ms=3.0)


# --- text -------------------------------------------------------------------

def test_text_has_header_every_detail_and_footer():
    trace = _delivered()
    out = text(trace, width=400)
    assert out.splitlines()[0] == ("trace node2:5000 from client "
                                   "(192.168.56.2:40000 → 192.168.56.12:5000 tcp)")
    assert out.splitlines()[1] == "service hello-a"
    for hop in trace.hops:
        assert hop.detail in out
    assert DNAT_RULE in out
    assert "verdict: delivered: delivered to hello-a.1 on node1" in out
    assert "backend: hello-a.1 on node1 (10.0.0.5)" in out
    assert "12 packets captured at 5 points in 42.5 ms" in out
    assert "\x1b" not in out                                  # plain text, no escapes


def test_text_refers_to_the_rule_listed_in_full_under_the_table():
    lines = text(_delivered(), width=400).splitlines()
    i = next(n for n, line in enumerate(lines) if "DOCKER-INGRESS: DNAT" in line)
    assert "[r1]" in lines[i]
    assert any(line.startswith("  [r1] node2: ") and DNAT_RULE in line for line in lines)
    assert "node2" in lines[i] and "dnat" in lines[i]
    assert "counter, conntrack" in lines[i]
    assert "eth1 in" in next(line for line in lines if "enters the ingress sandbox" in line)


def test_text_separates_the_reply_leg():
    lines = text(_delivered(), width=400).splitlines()
    deliver = next(n for n, line in enumerate(lines) if "delivered to hello-a.1" in line)
    sep = next(n for n, line in enumerate(lines) if REPLY_SEPARATOR in line)
    first_reply = next(n for n, line in enumerate(lines) if "reverse REDIRECT" in line)
    assert deliver < sep < first_reply
    assert sum(REPLY_SEPARATOR in line for line in lines) == 1


def test_text_default_width_is_deterministic_and_bounded():
    out = text(_delivered())
    assert out == text(_delivered())
    assert max(len(line) for line in out.splitlines()) <= 160


def test_text_says_when_nothing_publishes_the_port():
    out = text(_refused(), width=400)
    assert "nothing publishes tcp/5001 on node2" in out
    assert "verdict: refused: RST from node2: no service on tcp/5001" in out
    assert "backend:" not in out and "saw the client" not in out


# --- mermaid ----------------------------------------------------------------

def test_mermaid_participants_arrows_and_notes():
    trace = _delivered()
    out = mermaid(trace)
    lines = out.splitlines()
    assert out.startswith("sequenceDiagram\n")
    netns = list(dict.fromkeys(h.netns for h in trace.hops))
    decls = [line.strip() for line in lines if line.strip().startswith("participant ")]
    assert decls == [f"participant P{i} as {n}" for i, n in enumerate(netns, 1)]
    alias = {n: f"P{i}" for i, n in enumerate(netns, 1)}

    arrows = [line.strip() for line in lines if ">>" in line]
    expected = [(a, b) for a, b in itertools.pairwise(trace.hops) if a.netns != b.netns]
    assert len(arrows) == len(expected)
    for line, (a, b) in zip(arrows, expected, strict=True):
        op = "-->>" if b.leg == "reply" else "->>"
        assert line.startswith(f"{alias[a.netns]}{op}{alias[b.netns]}: {b.src} → {b.dst}")
    assert any("->>" in a and "-->>" not in a for a in arrows)
    assert any("-->>" in a for a in arrows)
    assert f"{alias['node2']}->>{alias['node1/ov-ingress']}: {SBOX_OV} → {TASK} VXLAN VNI 4096" \
        in arrows
    assert (f"{alias['node2/ingress_sbox']}->>{alias['node2']}: "
            "192.168.56.12:53211 → 192.168.56.11:4789 VXLAN VNI 4096") in arrows

    assert (f"Note over {alias['node2']}: dnat: nat PREROUTING DOCKER-INGRESS: "
            "DNAT → 172.18.0.2:5000") in [line.strip() for line in lines]
    assert "Note over P" in out and "verdict:" not in out      # delivered: no verdict note
    assert "#" not in out and ";" not in out


def test_mermaid_not_delivered_ends_with_the_verdict():
    trace = _refused()
    lines = mermaid(trace).strip().splitlines()
    assert lines[-1].strip() == ("Note over P3: verdict: refused: "
                                 "RST from node2: no service on tcp/5001")
    assert any(line.strip().startswith("Note over P3: rst:") for line in lines)


def test_mermaid_escapes_labels():
    hop = dataclasses.replace(_refused().hops[-1], detail="a;b #1\nnext")
    trace = dataclasses.replace(_refused(), hops=_refused().hops[:-1] + (hop,))
    out = mermaid(trace)
    assert "rst: a,b no.1 next" in out
    assert not re.search(r"[;#]", out)


# --- repeat -----------------------------------------------------------------

def test_is_round_robin():
    assert is_round_robin([1, 2, 1, 2])
    assert not is_round_robin([1, 1, 2, 2])
    assert not is_round_robin([1, 2, None])
    assert is_round_robin([1, 1, 1])
    assert is_round_robin(["a", "b", "c", "a", "b"])
    assert not is_round_robin(["a", "b", "a", "c"])
    assert not is_round_robin([])


def test_repeat_text_round_robin():
    picks = ("hello-a.1", "hello-a.2") * 5
    out = repeat_text(RepeatSummary(target="node2:5000", picks=picks,
                                    verdicts=("delivered",) * 10))
    lines = out.splitlines()
    assert lines[0] == "10 requests to node2:5000: hello-a.1 ×5, hello-a.2 ×5"
    assert lines[1].startswith("picks: hello-a.1, hello-a.2, hello-a.1, ")
    assert "round robin: yes (cycle hello-a.1 → hello-a.2)" in lines
    assert "request " not in out


def test_repeat_text_lists_failures_and_is_not_round_robin():
    out = repeat_text(RepeatSummary(target="node2:5000", picks=("hello-a.1", "hello-a.2", None),
                                    verdicts=("delivered", "delivered", "dropped")))
    assert "round robin: no" in out
    assert "request 3: dropped" in out
    assert "(none) ×1" in out


def test_repeat_json_has_counts_and_traces():
    summary = RepeatSummary(target="node2:5000", picks=("hello-a.1", "hello-a.2", "hello-a.1"),
                            verdicts=("delivered",) * 3)
    doc = repeat_json(summary, [_delivered(), _refused()])
    assert doc["target"] == "node2:5000" and doc["repeat"] == 3
    assert doc["counts"] == {"hello-a.1": 2, "hello-a.2": 1}
    assert doc["picks"] == ["hello-a.1", "hello-a.2", "hello-a.1"]
    assert doc["round_robin"] is True
    assert doc["verdicts"] == ["delivered"] * 3
    assert len(doc["traces"]) == 2 and doc["traces"][1]["verdict"] == "refused"
    json.dumps(doc)


# --- model ------------------------------------------------------------------

def test_trace_to_json_renames_from_and_dumps():
    doc = _delivered().to_json()
    assert doc["request"]["from"] == "client" and "from_" not in doc["request"]
    assert doc["hops"][4]["rule"] == DNAT_RULE
    assert doc["hops"][4]["evidence"] == ["counter", "conntrack"]
    back = json.loads(json.dumps(doc))
    assert back["backend"] == {"task": "hello-a.1", "node": "node1", "ip": "10.0.0.5"}
    assert back["capture_points"][0] == "client/eth0"
