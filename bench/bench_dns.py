"""Benchmark: the embedded DNS server's cost per query, on loopback, no lab needed.

Prints, from one run: queries/s that :class:`netlab.workload.dns.Resolver`
answers in-process (an A of a known name, an NXDOMAIN, a 20-address A), and
the median round trip of a UDP query through the app's serving function on a
127.0.0.1 socket (a selector loop in a thread, as in the app). Traffic stays
on this namespace's loopback.

    .venv/bin/python bench/bench_dns.py [--queries 20000]
"""

from __future__ import annotations

import argparse
import selectors
import socket
import statistics
import threading
import time

from dnslib import DNSRecord

from netlab.workload.dns import Resolver
from netlab.workload.dnsio import answer_datagrams

TABLE = {"api": ("10.0.1.2",), "tasks.web": tuple(f"10.0.2.{i}" for i in range(1, 21))}


def per_second(resolver: Resolver, name: str, n: int) -> float:
    data = DNSRecord.question(name).pack()
    start = time.perf_counter()
    for _ in range(n):
        resolver.answer(data)
    return n / (time.perf_counter() - start)


def udp_round_trips(n: int) -> list[float]:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    stop = threading.Event()
    resolver = Resolver(TABLE)

    def serve() -> None:
        sel = selectors.DefaultSelector()
        sel.register(server, selectors.EVENT_READ)
        while not stop.is_set():
            if sel.select(0.1):
                answer_datagrams(server, resolver, 64)
        sel.close()

    thread = threading.Thread(target=serve)
    thread.start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(5)
    data = DNSRecord.question("api").pack()
    out = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            client.sendto(data, server.getsockname())
            client.recv(512)
            out.append(time.perf_counter() - t)
    finally:
        stop.set()
        thread.join()
        client.close()
        server.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=20000)
    n = parser.parse_args().queries
    r = Resolver(TABLE)
    print(f"in-process answers/s: A known {per_second(r, 'api', n):,.0f}, "
          f"NXDOMAIN {per_second(r, 'tasks.nope', n):,.0f}, "
          f"A x20 shuffled {per_second(r, 'tasks.web', n):,.0f}")
    rtts = udp_round_trips(min(n, 5000))
    print(f"UDP round trip on loopback: median {statistics.median(rtts) * 1e6:.0f} us, "
          f"p99 {sorted(rtts)[int(len(rtts) * 0.99)] * 1e6:.0f} us over {len(rtts)} queries")


if __name__ == "__main__":
    main()
