"""The load generator: bounded HTTP/1.1 GETs from ``concurrency`` workers on one asyncio loop.

The loop knows nothing of namespaces: the caller runs :func:`run` in a thread
that joined the source namespace (see :func:`netlab.kernel.netns.in_thread`),
so every socket the loop opens lives there. Each request is a new TCP
connection by default; with ``keepalive`` a worker reuses its connection as
long as the server keeps it open (it asks for ``Connection: keep-alive`` and
reconnects when an answer says ``Connection: close``). A request that finds
its reused connection closed before any byte of the answer is retried once
on a new connection, as HTTP clients do for an idempotent GET.

Every request ends as an :class:`Outcome`: ok (status 200 and the app's JSON
body) or failed with a kind from :data:`KINDS`.
"""

from __future__ import annotations

import asyncio
import errno
import json
import threading
import time
from dataclasses import dataclass

#: Failure kinds; ``http NNN`` is added for a status other than 200.
KINDS = ("refused", "reset", "timeout", "unreachable", "short reply", "bad reply", "error")
MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class LoadSpec:
    """What to send: where, how many, how many at once, for how long."""

    ip: str
    port: int
    host: str                     # the Host header (the target as the user wrote it)
    requests: int | None = 1000   # stop after this many (None: only the duration bounds it)
    concurrency: int = 10
    duration: float | None = None  # seconds; stop issuing after it (None: only requests)
    timeout: float = 3.0          # per request, connect included
    keepalive: bool = False

    def __post_init__(self) -> None:
        if self.requests is None and self.duration is None:
            raise ValueError("a load needs a number of requests or a duration")


@dataclass(frozen=True)
class Outcome:
    """One request: when it started (wall clock, epoch seconds), how long it took, how it ended."""

    started: float
    elapsed_ms: float
    ok: bool
    kind: str | None = None       # the failure kind (None when ok)
    detail: str | None = None     # the error's own words
    task: str | None = None       # who answered: the app's task and node
    node: str | None = None
    version: str | None = None    # and its image's tag, when the app says it

    @property
    def ended(self) -> float:
        return self.started + self.elapsed_ms / 1000


class Failed(Exception):
    """A request failed; ``kind`` is one of KINDS or ``http NNN``."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class _Closed(Exception):
    """A reused connection was closed before any byte of the answer."""


def run(spec: LoadSpec, stop: threading.Event | None = None
        ) -> tuple[list[Outcome], float, float]:
    """Send the load of ``spec`` (no new request once ``stop`` is set); returns the
    outcomes in completion order and the run's start and end (epoch seconds).
    Never raises for a failed request."""
    return asyncio.run(_drive(spec, stop or threading.Event()))


async def _drive(spec: LoadSpec, stop: threading.Event
                 ) -> tuple[list[Outcome], float, float]:
    outcomes: list[Outcome] = []
    started = time.time()
    deadline = time.monotonic() + spec.duration if spec.duration is not None else None
    issued = 0

    def more() -> bool:
        return ((spec.requests is None or issued < spec.requests)
                and (deadline is None or time.monotonic() < deadline) and not stop.is_set())

    async def worker() -> None:
        nonlocal issued
        conn: _Conn | None = None
        try:
            while more():
                issued += 1
                outcome, conn = await _one(spec, conn)
                outcomes.append(outcome)
        finally:
            if conn is not None:
                conn.close()

    await asyncio.gather(*(worker() for _ in range(spec.concurrency)))
    return outcomes, started, time.time()


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        self.writer.close()


async def _one(spec: LoadSpec, conn: _Conn | None) -> tuple[Outcome, _Conn | None]:
    """One request (on ``conn`` when given); returns its outcome and the connection to reuse."""
    wall, t0 = time.time(), time.monotonic()

    def done(**kw) -> Outcome:
        return Outcome(wall, round((time.monotonic() - t0) * 1000, 3), **kw)

    try:
        body, conn = await asyncio.wait_for(_exchange(spec, conn), spec.timeout)
    except TimeoutError:
        if conn is not None:
            conn.close()
        return done(ok=False, kind="timeout", detail=f"no answer within {spec.timeout} s"), None
    except Failed as failed:
        return done(ok=False, kind=failed.kind, detail=str(failed)), None
    except OSError as exc:
        return done(ok=False, kind=kind_of(exc), detail=str(exc)), None
    version = body.get("version")
    return done(ok=True, task=body.get("task"), node=body.get("node"),
                version=version if isinstance(version, str) else None), conn


async def _exchange(spec: LoadSpec, conn: _Conn | None) -> tuple[dict, _Conn | None]:
    """GET / on ``conn`` (or a new connection); a reused connection found closed is
    replaced once. Returns the JSON body and the connection when it stays open."""
    if conn is not None:
        try:
            return await _request(spec, conn)
        except (_Closed, ConnectionResetError, BrokenPipeError):
            conn.close()
    reader, writer = await asyncio.open_connection(spec.ip, spec.port)
    try:
        return await _request(spec, _Conn(reader, writer))
    except _Closed:
        raise Failed("short reply", "the connection closed before any answer") from None


async def _request(spec: LoadSpec, conn: _Conn) -> tuple[dict, _Conn | None]:
    keep = "keep-alive" if spec.keepalive else "close"
    try:
        conn.writer.write(f"GET / HTTP/1.1\r\nHost: {spec.host}\r\nUser-Agent: netlab-load\r\n"
                          f"Connection: {keep}\r\n\r\n".encode())
        await conn.writer.drain()
        status, headers, body = await read_response(conn.reader)
    except BaseException:
        conn.close()
        raise
    if not spec.keepalive or headers.get("connection", "").lower() == "close":
        conn.close()
        reuse = None
    else:
        reuse = conn
    if status != 200:
        if reuse is not None:
            reuse.close()
        raise Failed(f"http {status}", f"HTTP status {status}")
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        if reuse is not None:
            reuse.close()
        raise Failed("bad reply", f"not the app's JSON: {body[:60]!r}")
    return doc, reuse


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """(status, headers in lower case, body) of one HTTP/1.x answer.

    The body is Content-Length bytes, or everything until the server closes.
    Raises _Closed when nothing at all came, Failed("short reply") when the
    answer stops early, Failed("bad reply") when it is not HTTP.
    """
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise _Closed from None
        raise Failed("short reply", f"the answer stopped after {len(exc.partial)} bytes "
                     "of its head") from None
    except asyncio.LimitOverrunError:
        raise Failed("bad reply", "an answer head over 64 KiB") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise Failed("bad reply", f"not an HTTP answer: {lines[0][:60]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit() or int(length) > MAX_BODY:
            raise Failed("bad reply", f"Content-Length {length[:20]!r}")
        try:
            body = await reader.readexactly(int(length))
        except asyncio.IncompleteReadError as exc:
            raise Failed("short reply", f"{len(exc.partial)} of {length} body bytes") from None
    else:
        body = await reader.read(MAX_BODY)
    return int(parts[1]), headers, body


def kind_of(exc: OSError) -> str:
    """The failure kind of a socket error."""
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if isinstance(exc, TimeoutError) or exc.errno == errno.ETIMEDOUT:
        return "timeout"
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    return "error"
