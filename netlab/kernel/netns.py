"""Network namespaces: create, list, remove, and run code or open sockets inside one.

Entering a namespace uses ``setns(2)`` through ctypes (Python 3.11 has no
``os.setns``). python-iptables runs in a forked child (:func:`run_in`),
because libiptc caches tables per process. Everything else runs in threads,
as ``setns`` only moves the calling thread: sockets opened there stay in the
namespace, ``/proc/sys/net`` is that namespace's, and a process started
there is born in it (:func:`in_thread`, :func:`open_in_each`,
:func:`in_threads`). Namespaces are made by one thread too
(:func:`create_many`).
"""

from __future__ import annotations

import ctypes
import os
import pickle
import socket
import threading
import traceback
from collections.abc import Callable
from typing import TypeVar

from pyroute2 import config as pr_config
from pyroute2 import netns as pr_netns

from netlab.kernel import nsenter
# re-exported: the light half (names, paths, exec) lives in netnsdir, without pyroute2
from netlab.kernel.netnsdir import NETNS_DIR as NETNS_DIR
from netlab.kernel.netnsdir import NetnsError as NetnsError
from netlab.kernel.netnsdir import exists as exists
from netlab.kernel.netnsdir import leftover as leftover
from netlab.kernel.netnsdir import path as path

#: Where Docker keeps its namespaces (not under /var/run/netns: ``ip netns`` does not list them).
DOCKER_NETNS_DIR = "/var/run/docker/netns"
#: The root network namespace of the machine: a real Swarm node's own.
HOST_NETNS = "/proc/1/ns/net"
#: The same, as the trace names it (where dockerd programs DOCKER-INGRESS).
ROOT_NETNS = HOST_NETNS
T = TypeVar("T")


def real_path(given: str) -> str:
    """``given`` when it names one of Docker's namespaces or the root namespace
    (:func:`docker_path`: the only paths outside /var/run/netns netlab enters, to
    read or trace a real Swarm node, never to change it); raises NetnsError otherwise."""
    return docker_path(given)


def locate(ref: str) -> str:
    """The file of a namespace given by name (under /var/run/netns) or, when absolute,
    by a path :func:`real_path` accepts; raises NetnsError for anything else."""
    if isinstance(ref, str) and ref.startswith("/"):
        return real_path(ref)
    return path(ref)


def listed(prefix: str = "") -> list[str]:
    """Names under /var/run/netns starting with ``prefix``, sorted."""
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


#: Seconds pyroute2 waits for the helper child it forks to create a namespace
#: or open a socket in one. Its default (2 s) is too short for a kernel still
#: busy destroying a few hundred namespaces, above all under emulation, where
#: unshare(CLONE_NEWNET) has been seen to wait longer.
PYROUTE2_CHILD_TIMEOUT = 120


def patient_pyroute2() -> None:
    """Give pyroute2's namespace helpers :data:`PYROUTE2_CHILD_TIMEOUT` seconds to answer."""
    if pr_config.default_communicate_timeout < PYROUTE2_CHILD_TIMEOUT:
        pr_config.default_communicate_timeout = PYROUTE2_CHILD_TIMEOUT


def create(name: str) -> bool:
    """Create ``name`` unless it exists; True when it was created (NetnsError
    for a name that is not plain)."""
    if exists(name):
        return False
    patient_pyroute2()
    pr_netns.create(name)
    return True


MS_BIND, MS_REC, MS_SHARED = 0x1000, 0x4000, 0x100000


def _share_rundir(libc) -> None:
    """Make /var/run/netns a shared mount point, as ``ip netns add`` does (once)."""
    os.makedirs(NETNS_DIR, exist_ok=True)
    rundir = NETNS_DIR.encode()
    if libc.mount(b"", rundir, b"none", MS_SHARED | MS_REC, None) == 0:
        return
    if libc.mount(rundir, rundir, b"none", MS_BIND | MS_REC, None) != 0 or \
            libc.mount(b"", rundir, b"none", MS_SHARED | MS_REC, None) != 0:
        err = ctypes.get_errno()
        raise NetnsError(f"cannot make {NETNS_DIR} a shared mount: {os.strerror(err)}")


def create_many(names: list[str]) -> list[str]:
    """Create each of ``names`` that does not exist; returns those created, in order.

    One short-lived thread makes them all: ``unshare(CLONE_NEWNET)`` moves
    only that thread into a new namespace, which a bind mount of
    ``/proc/thread-self/ns/net`` names, as ``ip netns add`` does, without a
    forked helper per namespace (pyroute2's way). Raises NetnsError for a name
    that is not plain or when the kernel refuses (the mount point of the
    namespace that failed is removed; those made before stay, and are returned
    by a second call as existing). An empty mount point a killed run left (see
    :func:`netlab.kernel.netnsdir.leftover`) is removed and made again.
    """
    todo = [n for n in names if not exists(n)]
    if not todo:
        return []
    for name in todo:
        if leftover(name):       # an empty mount point of a killed run: made again below
            os.unlink(path(name))
    libc = ctypes.CDLL(None, use_errno=True)
    _share_rundir(libc)
    made: list[str] = []
    failure: list[str] = []

    def work() -> None:
        for name in todo:
            target = path(name)
            try:
                os.close(os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
            except FileExistsError:
                continue
            except OSError as exc:
                failure.append(f"cannot create {target}: {exc.strerror}")
                return
            if libc.unshare(nsenter.CLONE_NEWNET) != 0 or libc.mount(
                    b"/proc/thread-self/ns/net", target.encode(), b"none", MS_BIND, None) != 0:
                err = ctypes.get_errno()
                os.unlink(target)
                failure.append(f"cannot create network namespace {name}: {os.strerror(err)}")
                return
            made.append(name)

    thread = threading.Thread(target=work, name="netlab-netns-create", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise NetnsError(failure[0])
    return made


def open_in_each(names: list[str], fn: Callable[[], T]) -> dict[str, T]:
    """``fn()`` run inside each namespace of ``names`` by one short-lived thread that
    enters them in turn: how sockets are opened in many namespaces without a
    thread or a fork each. Raises NetnsError when one is missing or cannot be
    entered, or ``fn`` raises OSError there (what was opened before is closed
    when it has a ``close``)."""
    if not names:
        return {}
    fds: dict[str, int] = {}
    try:
        for n in names:
            try:
                fds[n] = os.open(path(n), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise NetnsError(f"network namespace {n} does not exist") from None
            except OSError as exc:
                raise NetnsError(f"cannot open network namespace {n}: {exc.strerror}") from None
        setns = nsenter.libc_setns()

        def visit() -> dict[str, T]:
            out: dict[str, T] = {}
            try:
                for n, fd in fds.items():
                    nsenter.enter(fd, setns, n)
                    out[n] = fn()
            except BaseException:
                for v in out.values():
                    getattr(v, "close", lambda: None)()
                raise
            return out
        # a fresh thread: it ends in the last namespace, and no other code runs in it
        fd0 = next(iter(fds.values()))
        try:
            return nsenter.in_thread(fd0, visit, "netns batch")
        except OSError as exc:
            raise NetnsError(str(exc)) from exc
    finally:
        for fd in fds.values():
            os.close(fd)


def in_threads(names: list[str], fn: Callable[[str], T], workers: int = 8,
               lenient: bool = False) -> dict[str, T]:
    """``fn(name)`` inside each namespace of ``names``, by up to ``workers`` threads
    side by side, each entering the namespace of its next job (what it reads in
    /proc/sys and the processes it starts are that namespace's). Returns
    {name: result}; raises NetnsError when a namespace is missing or cannot be
    entered, and the first exception ``fn`` raised (after every job ended).
    """
    if not names:
        return {}
    from concurrent.futures import ThreadPoolExecutor
    setns = nsenter.libc_setns()

    def job(name: str) -> T:
        try:
            fd = os.open(path(name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NetnsError(f"network namespace {name} does not exist") from None
        try:
            try:
                nsenter.enter(fd, setns, name)
            except OSError as exc:
                raise NetnsError(f"in {name}: {exc}") from None
        finally:
            os.close(fd)
        return fn(name)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names))),
                            thread_name_prefix="netlab-ns") as pool:
        futures = {name: pool.submit(job, name) for name in names}
        out: dict[str, T] = {}
        first: BaseException | None = None
        for name, fut in futures.items():
            try:
                out[name] = fut.result()
            except NetnsError as exc:
                if lenient:
                    out[name] = exc      # type: ignore[assignment]
                else:
                    first = first or exc
            except BaseException as exc:   # noqa: BLE001 - re-raised below, once all ended
                first = first or exc
    if first is not None:
        raise first
    return out


def in_threads_lenient(names: list[str], fn: Callable[[str], T],
                       workers: int = 4) -> dict[str, T | NetnsError]:
    """:func:`in_threads`, but a namespace that is missing or cannot be entered (or
    where ``fn`` raises NetnsError) gives its NetnsError as its result instead of
    raising: a reader's way, where a namespace may vanish while it reads. Other
    exceptions propagate."""
    return in_threads(names, fn, workers, lenient=True)


def remove(name: str) -> bool:
    """Remove ``name`` if it exists; True when it was removed (NetnsError for a
    name that is not plain: nothing outside /var/run/netns is ever touched)."""
    if leftover(name):           # the empty mount point of a killed run
        os.unlink(path(name))
        return True
    if not exists(name):
        return False
    try:
        pr_netns.remove(name)
    except FileNotFoundError:
        return False
    return True


def run_in(name: str, func: Callable[..., T], *args, **kwargs) -> T:
    """Run ``func(*args, **kwargs)`` in a forked child inside netns ``name``.

    The return value (or exception) comes back pickled. Raises NetnsError
    when the namespace is missing or the child dies without answering.
    """
    if not exists(name):
        raise NetnsError(f"network namespace {name} does not exist")
    setns = nsenter.libc_setns()
    nsfd = os.open(path(name), os.O_RDONLY | os.O_CLOEXEC)

    def inside() -> T:
        nsenter.enter(nsfd, setns, name)
        return func(*args, **kwargs)
    try:
        return run_in_current(inside)
    except NetnsError as exc:
        raise NetnsError(f"in {name}: {exc}") from None
    finally:
        os.close(nsfd)


def run_in_each(names: list[str], func: Callable[[str], T]) -> dict[str, T]:
    """``func(name)`` inside each namespace of ``names``, all in one forked child.

    One fork for many namespaces: the child enters them in turn (setns may be
    repeated by a single-threaded process). Returns {name: result}. Raises
    NetnsError when a namespace is missing or ``func`` fails in one.
    """
    return run_in_each_path({n: path(n) for n in names}, func)


def run_in_each_path(paths: dict[str, str], func: Callable[[str], T]) -> dict[str, T]:
    """:func:`run_in_each` for namespaces given as {key: namespace file}: ``func(key)``
    inside each, all in one forked child. Raises NetnsError as it does."""
    names = list(paths)
    missing = [n for n in names if not os.path.exists(paths[n])]
    if missing:
        raise NetnsError(f"network namespace {missing[0]} does not exist")
    fds = []
    try:
        for n in names:
            fds.append(os.open(paths[n], os.O_RDONLY | os.O_CLOEXEC))
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        raise NetnsError(f"cannot open network namespace {n}: {exc.strerror}") from None
    setns = nsenter.libc_setns()
    try:
        def visit() -> dict[str, T]:
            out = {}
            for name, fd in zip(names, fds, strict=True):
                nsenter.enter(fd, setns, name)
                out[name] = func(name)
            return out
        return run_in_current(visit)
    finally:
        for fd in fds:
            os.close(fd)


def run_in_current(func: Callable[[], T]) -> T:
    """``func()`` in a forked child of this process; the result comes back pickled.

    Raises NetnsError when the child fails or dies without answering.
    """
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(rfd)
        code = 0
        reply: tuple[object, ...]
        try:
            reply = ("ok", func())
        except BaseException as exc:  # noqa: BLE001 - shipped to the parent
            reply = ("err", f"{type(exc).__name__}: {exc}", traceback.format_exc())
            code = 1
        try:
            with os.fdopen(wfd, "wb") as out:
                pickle.dump(reply, out)
        finally:
            os._exit(code)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as inp:
        data = inp.read()
    os.waitpid(pid, 0)
    if not data:
        raise NetnsError("the helper process died without answering")
    payload = pickle.loads(data)
    if payload[0] == "err":
        raise NetnsError(payload[1])
    return payload[1]


def in_thread(name: str, fn: Callable[[], T]) -> T:
    """``fn()`` in a short-lived thread inside netns ``name``; what it opens stays there.

    Raises NetnsError when the namespace is missing or cannot be entered, or
    when ``fn`` raises OSError.
    """
    return in_thread_path(path(name), fn, name)


def in_thread_path(ns_file: str, fn: Callable[[], T], what: str | None = None) -> T:
    """:func:`in_thread` for a namespace given by its file (/var/run/netns/x, one of
    Docker's, /proc/1/ns/net). Raises NetnsError as it does."""
    name = what or ns_file
    try:
        fd = os.open(ns_file, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NetnsError(f"network namespace {name} does not exist") from None
    except OSError as exc:
        raise NetnsError(f"cannot open network namespace {name}: {exc.strerror}") from None
    try:
        return nsenter.in_thread(fd, fn, name)
    except OSError as exc:
        raise NetnsError(f"in {name}: {exc}") from exc
    finally:
        os.close(fd)


def docker_path(file: str) -> str:
    """``file`` when it names a namespace of a real Docker node: a plain file directly
    under /var/run/docker/netns, or /proc/1/ns/net (the node's own namespace, read
    only). Anything else raises NetnsError, so a reader of a real node can enter
    nothing but Docker's namespaces and the host's."""
    if file == HOST_NETNS:
        return file
    head, _, name = str(file).rpartition("/")
    if head != DOCKER_NETNS_DIR:
        raise NetnsError(f"refusing network namespace {str(file)[:80]!r}: not under "
                         f"{DOCKER_NETNS_DIR}")
    path(name)   # a plain name: raises otherwise
    return file


def in_thread_at(file: str, fn: Callable[[], T]) -> T:
    """``fn()`` in a short-lived thread inside the real Docker namespace ``file``
    (see :func:`docker_path`). Raises NetnsError when it is refused, missing or
    cannot be entered, or when ``fn`` raises OSError."""
    return in_thread_path(docker_path(file), fn, os.path.basename(file))


def socket_in(name: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM,
              proto: int = 0) -> socket.socket:
    """A socket created inside netns ``name`` (by a thread that enters it).

    Raises NetnsError when the namespace is missing or cannot be entered.
    """
    return in_thread(name, lambda: socket.socket(family, kind, proto))


def adopt(name: str, pid: int) -> None:
    """Name the network namespace of process ``pid`` ``name``, as ``ip netns attach``
    does (a bind mount of ``/proc/<pid>/ns/net`` on ``/var/run/netns/<name>``).

    How a task run as a container becomes the task's namespace: the container
    keeps its own namespace, netlab configures it as one it made. Raises
    NetnsError when ``name`` exists already, is not plain, or the mount fails
    (the empty mount point is removed then).
    """
    target = path(name)
    if os.path.exists(target):
        raise NetnsError(f"network namespace {name} exists already: cannot adopt "
                         f"the one of process {pid}")
    try:
        pr_netns.attach(name, int(pid))
    except OSError as exc:
        if os.path.exists(target) and not os.path.ismount(target):
            os.unlink(target)
        raise NetnsError(f"cannot adopt the network namespace of process {pid} "
                         f"as {name}: {exc}") from None


def _listening_tcp_ports() -> set[int]:
    """TCP ports with a socket in state LISTEN in this namespace (/proc/net/tcp and tcp6)."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as lines:
                next(lines, None)
                for line in lines:
                    cols = line.split()
                    if len(cols) > 3 and cols[3] == "0A":      # TCP_LISTEN
                        ports.add(int(cols[1].rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            continue        # no IPv6 in this kernel
    return ports


def listening_tcp_ports(name: str) -> set[int]:
    """The TCP ports something listens on inside namespace ``name``: how netlab
    sees that a task run as a container serves. Raises NetnsError when the
    namespace is missing."""
    return run_in(name, _listening_tcp_ports)
