"""The backend app that plays every task of a lab: ``python -m netlab.workload.app``.

One process serves every endpoint of a lab. For each endpoint it opens a
socket *inside* the task's network namespace: a short-lived helper thread
joins the namespace (:mod:`netlab.kernel.sockets`; only that thread moves),
creates and binds the socket there and hands it back; sockets stay in the
namespace they were created in. One ``selectors`` loop then serves them all:

* TCP: read the request (at most 64 KiB, at most 5 s), answer ``200 OK`` with a
  JSON body naming service, task, node, task IP, port, the client address and
  port the socket saw (how a user sees the ingress SNAT hide the client) and
  the request path, then close. Anything that is not HTTP gets the same answer.
  A request that asks ``Connection: keep-alive`` keeps its connection for the
  next request (idle at most KEEPALIVE_IDLE seconds); when its task is
  removed, an idle kept connection is closed and a busy one after its answer.
* UDP: answer each datagram with the same JSON, from the address it was sent to.
* DNS: each task's embedded DNS server at ``127.0.0.11:<port>`` (UDP and
  TCP), answering its records (see :mod:`netlab.workload.dnsio` and
  :mod:`netlab.workload.dns`), as dockerd serves every container's.

SIGTERM/SIGINT close every socket and exit 0. SIGHUP re-reads the endpoints
file and opens/closes sockets for added/removed endpoints; a DNS server whose
records changed answers the new ones at once. After every
(re)load the app writes a status file (see :func:`status_path_for`) that the
supervisor waits on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from netlab.errors import NetlabError
from netlab.workload.http import (  # noqa: F401 - re-exported for callers and tests
    MAX_REQUEST, http_response, parse_request_line, reply_body, reply_fields, request_complete,
    wants_keepalive,
)
from netlab.workload.dns import Resolver
from netlab.workload.dnsio import DnsConn, DnsSocket, accept_dns, answer_datagrams, dns_sockets
from netlab.workload.endpoints import (
    AppEndpoint, DnsEndpoint, EndpointKey, Records, dns_from_json, endpoints_from_json,
)
from netlab.workload import faults as task_faults
from netlab.workload.sockets import IP_PKTINFO, open_socket, run_in_netns

REQUEST_TIMEOUT = 5.0  # seconds to read a request before answering anyway
LINGER = 1.0  # seconds to drain the client after answering, so close() sends FIN, not RST
KEEPALIVE_IDLE = 5.0  # seconds a kept connection may wait for its next request
MAX_CONNECTIONS = 512
BATCH = 64  # accepts/datagrams handled per readiness event, so no socket starves the rest

log = logging.getLogger("netlab.workload")


def status_path_for(endpoints_path: Path) -> Path:
    """Where the app reports each (re)load: ``<endpoints file>.status``."""
    return Path(endpoints_path).with_name(Path(endpoints_path).name + ".status")


# ---- the server loop ----------------------------------------------------------------

@dataclass
class _Listener:
    endpoint: AppEndpoint | DnsSocket
    sock: socket.socket
    netns_id: tuple[int, int]  # (st_dev, st_ino) of the namespace: a recreated netns differs
    resolver: Resolver | None = None  # a DNS socket's answers, replaced when its records change
    paused: bool = False              # a hung task's: not in the selector

    def bind(self, endpoint: AppEndpoint | DnsSocket,
             resolver_for: Callable[[DnsEndpoint], Resolver]) -> None:
        """Serve ``endpoint`` (same socket; its names or records may have changed); a DNS
        socket answers from ``resolver_for``'s resolver of its records."""
        if isinstance(endpoint, DnsSocket) and (
                self.resolver is None or self.endpoint != endpoint):
            self.resolver = resolver_for(endpoint.server)
        self.endpoint = endpoint


@dataclass(eq=False)  # hashed by identity: kept in a set
class _Conn:
    sock: socket.socket
    endpoint: AppEndpoint
    peer: tuple[str, int]
    deadline: float
    request: bytearray = field(default_factory=bytearray)
    out: bytes = b""
    state: str = "read"  # read -> write -> drain -> closed (read again when kept alive)
    peer_closed: bool = False
    keep: bool = False   # the request asked for keep-alive: read the next one after answering
    served: int = 0

    @property
    def idle(self) -> bool:
        """A kept connection waiting for its next request."""
        return self.state == "read" and self.served > 0 and not self.request


class Server:
    """Every socket of a lab and the one loop that serves them."""

    def __init__(self, endpoints_path: Path, status_path: Path) -> None:
        self.endpoints_path = endpoints_path
        self.status_path = status_path
        self.sel = selectors.DefaultSelector()
        self.listeners: dict[EndpointKey, _Listener] = {}
        self.conns: set[_Conn] = set()
        self.dns_conns: set[DnsConn] = set()
        # One resolver per distinct records table, shared by the UDP and TCP sockets of
        # every task that resolves the same names (all tasks on the same networks): a
        # resolver holds its own random generator and its tables (3 KiB with no records),
        # so one per socket was about half of the supervisor's memory per task.
        self.resolvers: dict[Records, Resolver] = {}
        # What netlab task did to some tasks' apps (see netlab.workload.faults).
        self.faults_path = task_faults.faults_path_for(endpoints_path)
        self.faults: dict[str, task_faults.Fault] = {}
        self.generation = 0
        self.running = True
        self._wake_r, self._wake_w = socket.socketpair()
        for s in (self._wake_r, self._wake_w):
            s.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, ("signal", None))

    # -- signals
    def install_signals(self) -> None:
        """Route SIGTERM, SIGINT and SIGHUP into the loop through a wakeup socket."""
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: None)

    def _on_signal(self) -> None:
        try:
            signums = self._wake_r.recv(256)
        except BlockingIOError:
            return
        if signal.SIGTERM in signums or signal.SIGINT in signums:
            log.info("stopping on signal")
            self.running = False
        elif signal.SIGHUP in signums:
            log.info("SIGHUP: reloading %s", self.endpoints_path)
            self.load_and_report()

    # -- (re)load
    def load(self) -> tuple[list[str], str]:
        """Converge the open sockets on the endpoints file; returns (errors, file digest)."""
        try:
            text = self.endpoints_path.read_text()
            digest = hashlib.sha256(text.encode()).hexdigest()
            found: list[AppEndpoint | DnsSocket] = [*endpoints_from_json(text),
                                                    *dns_sockets(dns_from_json(text))]
            wanted: dict[EndpointKey, AppEndpoint | DnsSocket] = {ep.key: ep for ep in found}
        except (OSError, NetlabError) as exc:
            return [f"cannot load {self.endpoints_path}: {exc}"], ""
        try:
            faults = task_faults.read(self.faults_path)
        except (OSError, ValueError) as exc:
            log.error("cannot read %s: %s (no task faults applied)", self.faults_path, exc)
            faults = {}
        self.faults = task_faults.current(faults, {
            ep.task: ep.task_ip for ep in wanted.values() if isinstance(ep, AppEndpoint)})
        # An exited task's app listens no more (a connection to it is refused).
        wanted = {k: ep for k, ep in wanted.items()
                  if not (isinstance(ep, AppEndpoint) and self._fault(ep) == "exited")}
        for key in [k for k in self.listeners if k not in wanted]:
            self._close_listener(key, "removed")
        by_netns: dict[str, list[AppEndpoint | DnsSocket]] = {}
        for ep in wanted.values():
            by_netns.setdefault(ep.netns_path, []).append(ep)
        errors: list[str] = []
        for path, eps in by_netns.items():
            errors += self._load_netns(path, eps)
        self._forget_unused_resolvers()
        for listener in self.listeners.values():
            self._pause(listener, isinstance(listener.endpoint, AppEndpoint)
                        and self._fault(listener.endpoint) == "hung")
        return errors, digest

    def _fault(self, ep: AppEndpoint) -> str | None:
        """The fault mode of ``ep``'s task, if it has one."""
        found = self.faults.get(ep.task)
        return found.mode if found is not None else None

    def _pause(self, listener: _Listener, paused: bool) -> None:
        """A hung task's listener accepts nothing (connections wait in its backlog,
        unanswered); it serves again when the fault is gone."""
        if paused == listener.paused:
            return
        listener.paused = paused
        if paused:
            self.sel.unregister(listener.sock)
        else:
            self.sel.register(listener.sock, selectors.EVENT_READ, ("listener", listener))
        log.info("%s: %s", "hung" if paused else "serving again", listener.endpoint)

    def _forget_unused_resolvers(self) -> None:
        """Drop the resolvers of records no DNS socket serves any more."""
        used = {lst.endpoint.server.records for lst in self.listeners.values()
                if isinstance(lst.endpoint, DnsSocket)}
        self.resolvers = {k: r for k, r in self.resolvers.items() if k in used}

    def _resolver_for(self, server: DnsEndpoint) -> Resolver:
        """The shared resolver of ``server``'s records (made on first use)."""
        found = self.resolvers.get(server.records)
        if found is None:
            found = self.resolvers[server.records] = Resolver(server.table)
        return found

    def _load_netns(self, path: str, eps: list[AppEndpoint | DnsSocket]) -> list[str]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            for ep in eps:
                if ep.key in self.listeners:
                    self._close_listener(ep.key, "its namespace is gone")
            return [f"{ep}: cannot open netns {path}: {exc.strerror}" for ep in eps]
        try:
            st = os.fstat(fd)
            netns_id = (st.st_dev, st.st_ino)
            to_open = []
            for ep in eps:
                current = self.listeners.get(ep.key)
                if current is not None and current.netns_id == netns_id:
                    current.bind(ep, self._resolver_for)  # same socket; names or records may change
                    continue
                if current is not None:
                    self._close_listener(ep.key, "its namespace was recreated")
                to_open.append(ep)
            if not to_open:
                return []

            def open_all() -> list[socket.socket | OSError]:
                out: list[socket.socket | OSError] = []
                for ep in to_open:
                    try:
                        out.append(open_socket(ep))
                    except OSError as exc:
                        out.append(exc)
                return out

            try:
                results = run_in_netns(fd, open_all)
            except OSError as exc:
                return [f"{ep}: cannot enter netns {path}: {exc.strerror or exc}" for ep in to_open]
        finally:
            os.close(fd)
        errors = []
        for ep, res in zip(to_open, results, strict=True):
            if isinstance(res, OSError):
                errors.append(f"{ep}: cannot listen: {res.strerror or res}")
                continue
            listener = _Listener(ep, res, netns_id)
            listener.bind(ep, self._resolver_for)
            self.listeners[ep.key] = listener
            self.sel.register(res, selectors.EVENT_READ, ("listener", listener))
            log.info("listening: %s", ep)
        return errors

    def _close_listener(self, key: EndpointKey, why: str) -> None:
        listener = self.listeners.pop(key)
        if not listener.paused:
            self.sel.unregister(listener.sock)
        listener.sock.close()
        for conn in [c for c in self.conns if c.endpoint.key == key]:
            conn.keep = False   # its task is gone: finish the answer under way, keep nothing
            if conn.idle:
                self._close(conn)
        log.info("closed: %s (%s)", listener.endpoint, why)

    def load_and_report(self) -> list[str]:
        """(Re)load, log errors and write the status file; returns the errors."""
        errors, digest = self.load()
        for err in errors:
            log.error("%s", err)
        self.generation += 1
        status = {
            "pid": os.getpid(), "generation": self.generation, "digest": digest,
            # How many sockets are open, not each: the file is read again and again
            # while a change waits for this reload (1,000 endpoints were 385 KB).
            "listening": len(self.listeners),
            "errors": errors,
        }
        tmp = self.status_path.with_name(self.status_path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(status) + "\n")   # C encoder: no indent (1,000 tasks)
        os.replace(tmp, self.status_path)
        log.info("ready %d (generation %d, %d error(s))", len(self.listeners), self.generation, len(errors))
        return errors

    # -- serving
    def serve(self) -> None:
        """Serve until SIGTERM/SIGINT."""
        while self.running:
            now = time.monotonic()
            deadlines = [c.deadline for c in self.conns] + [c.deadline for c in self.dns_conns]
            timeout = min(deadlines, default=now + 60.0) - now
            for key, mask in self.sel.select(max(timeout, 0.0)):
                kind, obj = key.data
                if kind == "signal":
                    self._on_signal()
                    break  # a reload may have closed sockets with pending events; select again
                if kind == "conn":
                    self._on_conn(obj)
                elif kind == "dnsconn":
                    if not obj.closed:
                        obj.on_ready(self.sel, mask)
                elif obj.resolver is not None:
                    self._serve_dns(obj)
                elif obj.endpoint.protocol == "tcp":
                    self._accept(obj)
                else:
                    self._answer_datagrams(obj)
            self._expire(time.monotonic())

    def _serve_dns(self, listener: _Listener) -> None:
        assert listener.resolver is not None
        if listener.endpoint.protocol == "udp":
            answer_datagrams(listener.sock, listener.resolver, BATCH)
        else:
            accept_dns(listener.sock, listener.resolver, self.sel, self.dns_conns,
                       MAX_CONNECTIONS, BATCH)

    def _accept(self, listener: _Listener) -> None:
        endpoint = listener.endpoint
        if not isinstance(endpoint, AppEndpoint):  # a DNS listener is _serve_dns's
            return
        for _ in range(BATCH):
            try:
                sock, peer = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE, ECONNABORTED...
                log.warning("accept on %s: %s", listener.endpoint, exc)
                return
            if len(self.conns) >= MAX_CONNECTIONS:
                sock.close()
                continue
            sock.setblocking(False)
            conn = _Conn(sock, endpoint, peer, time.monotonic() + REQUEST_TIMEOUT)
            self.conns.add(conn)
            self.sel.register(sock, selectors.EVENT_READ, ("conn", conn))

    def _on_conn(self, conn: _Conn) -> None:
        if conn.state == "write":
            self._flush(conn)
            return
        try:
            data = conn.sock.recv(MAX_REQUEST - len(conn.request) if conn.state == "read" else 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if conn.state == "drain":
            if not data:
                self._close(conn)
            return
        if not data and conn.idle:
            self._close(conn)   # the client closed its kept connection
            return
        conn.request += data
        conn.peer_closed = not data
        if conn.peer_closed or request_complete(bytes(conn.request)):
            self._respond(conn)

    def _respond(self, conn: _Conn) -> None:
        method, path, _ = parse_request_line(bytes(conn.request))
        body = reply_body(conn.endpoint, conn.peer[0], conn.peer[1], path)
        fault = self.faults.get(conn.endpoint.task)
        bare = path.split("?", 1)[0] if path is not None else None
        failing = bare is not None and (
            (fault is not None and fault.mode == "unhealthy" and bare == fault.path)
            or bare == conn.endpoint.failing_health)
        conn.keep = (not conn.peer_closed and conn.endpoint.key in self.listeners
                     and wants_keepalive(bytes(conn.request)))
        conn.out = http_response(body, head_only=method == "HEAD", keep_alive=conn.keep,
                                 status=503 if failing else 200)
        conn.state = "write"
        conn.deadline = time.monotonic() + LINGER
        self.sel.modify(conn.sock, selectors.EVENT_WRITE, ("conn", conn))
        self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        conn.out = conn.out[sent:]
        if conn.out:
            return
        if conn.keep:
            conn.state, conn.request, conn.served = "read", bytearray(), conn.served + 1
            conn.deadline = time.monotonic() + KEEPALIVE_IDLE
            self.sel.modify(conn.sock, selectors.EVENT_READ, ("conn", conn))
            return
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if conn.peer_closed:
            self._close(conn)
        else:
            conn.state = "drain"
            self.sel.modify(conn.sock, selectors.EVENT_READ, ("conn", conn))

    def _expire(self, now: float) -> None:
        for dconn in [c for c in self.dns_conns if c.closed or c.deadline <= now]:
            dconn.close(self.sel)
            self.dns_conns.discard(dconn)
        for conn in [c for c in self.conns if c.deadline <= now]:
            if conn.idle:
                self._close(conn)    # a kept connection idle too long
            elif conn.state == "read":
                self._respond(conn)  # a slow or silent client still gets its JSON
            else:
                self._close(conn)

    def _close(self, conn: _Conn) -> None:
        if conn in self.conns:
            self.conns.discard(conn)
            self.sel.unregister(conn.sock)
            conn.sock.close()

    def _answer_datagrams(self, listener: _Listener) -> None:
        endpoint = listener.endpoint
        if not isinstance(endpoint, AppEndpoint):  # a DNS listener is _serve_dns's
            return
        for _ in range(BATCH):
            try:
                _data, ancdata, _, peer = listener.sock.recvmsg(65535, socket.CMSG_SPACE(12))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("recv on %s: %s", listener.endpoint, exc)
                return
            body = reply_body(endpoint, peer[0], peer[1], None)
            # Answer from the address the datagram was sent to, so conntrack
            # matches the reply to the REDIRECTed flow even on a multi-homed task.
            anc = [
                (socket.IPPROTO_IP, IP_PKTINFO, struct.pack("=i4s4s", 0, cdata[8:12], bytes(4)))
                for level, kind, cdata in ancdata
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(cdata) >= 12
            ]
            try:
                listener.sock.sendmsg([body], anc, 0, peer)
            except OSError:
                try:  # e.g. a datagram sent to a broadcast address
                    listener.sock.sendto(body, peer)
                except OSError as exc:
                    log.warning("reply on %s to %s: %s", listener.endpoint, peer, exc)

    def close(self) -> None:
        """Close every connection and socket."""
        for conn in list(self.conns):
            self._close(conn)
        for dconn in self.dns_conns:
            dconn.close(self.sel)
        for key in list(self.listeners):
            self._close_listener(key, "stopping")
        self.sel.close()
        self._wake_r.close()
        self._wake_w.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point: load, report ready (or the errors, exit 1), serve until SIGTERM (exit 0)."""
    parser = argparse.ArgumentParser(prog="python -m netlab.workload.app", description=__doc__.split("\n")[0])
    parser.add_argument("--endpoints", required=True, type=Path, help="the endpoints JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO,
        format="%(asctime)s netlab-workload[%(process)d] %(levelname)s %(message)s",
    )
    server = Server(args.endpoints, status_path_for(args.endpoints))
    server.install_signals()
    try:
        if server.load_and_report():
            log.error("not all endpoints could listen; exiting")
            return 1
        server.serve()
    finally:
        server.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
