"""The state store of labs: ``<store>/<lab>.json`` (store ``/run/netlab``, mode 0700).

It is the lab's memory: the applied model (nodes, services, ports,
placement), its allocations (addresses, marks, VNIs, pool cursors), the
desired and actual tasks, the scenario it came from, the namespaces the lab
owns (written *before* any is created, so ``down`` can clean up after an
``up`` killed halfway) and the workload supervisor's pid. ``status``,
``trace``, ``graph``, ``exec`` and ``curl`` work from it alone. A lab whose tasks run as
containers (``up --tasks containers``) also records the Docker URL and each task's
container id, so ``scale`` and ``down`` remove the containers it made, by id, and its change log
(see :mod:`netlab.changelog`) says when each change started and converged. The document
carries a ``version``; a file of another version is reported as corrupt
(``netlab down LAB`` still removes its lab). The store is passed in, never
global.

The store is written and read as if someone hostile could name the lab or
plant files:

- every file name is built from a lab name that :func:`netlab.plan.names.is_lab`
  accepts (a DNS label: no ``/``, ``.``, ``*``), and opened relative to a
  descriptor of the store directory;
- the directory is created 0700 and must stay a real directory (not a
  symlink) owned by the caller with no group or other access, else
  :class:`UnsafeStore`;
- a state file is written to a randomly named temporary file opened
  ``O_CREAT|O_EXCL|O_NOFOLLOW`` with mode 0600, then renamed over the old one;
- a state file is read with ``O_NOFOLLOW``, must be a regular file of at most
  :data:`MAX_BYTES`, and every field is checked (types, unknown keys, the lab's
  own name, namespaces under ``nl-<lab>.``, the model and allocations by
  :mod:`netlab.codec`, in :mod:`netlab.statedoc`). One that fails is moved aside to
  ``<lab>.json.corrupt-<UTC time>`` (never deleted) and reported as
  :class:`CorruptState`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeVar, overload

from netlab import safefile, statedoc
from netlab.errors import BadInput
from netlab.plan import names
from netlab.statedoc import VERSION, LabState, to_json

__all__ = ["VERSION", "CorruptState", "LabState", "StateStore", "UnsafeStore", "check_lab",
           "to_json"]

DEFAULT_ROOT = Path("/run/netlab")
T = TypeVar("T")
MAX_BYTES = 16 * 1024 * 1024   # a 10,000-task lab's state is about 1 MB
_SUFFIX = ".json"
_TMP_SUFFIX = ".tmp"
_LOCK_SUFFIX = ".lock"


class UnsafeStore(BadInput):
    """The state directory is a symlink, not a directory, someone else's or open to others."""


class CorruptState(BadInput):
    """A state file failed its checks; it was moved aside (``moved_to``) when possible."""

    def __init__(self, message: str, lab: str, moved_to: str | None) -> None:
        super().__init__(message)
        self.lab = lab
        self.moved_to = moved_to


def _dumps(doc: dict[str, Any]) -> str:
    """``doc`` as JSON, one top-level key a line: json's C encoder serves only
    documents without indent, and ``indent=2`` made a 1,000-task lab's state
    cost a change some 12 ms per save in the pure-Python one."""
    if not doc:
        return "{}\n"
    return "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items()) + "\n}\n"


def check_lab(lab: object, what: str = "LAB") -> str:
    """``lab`` if it is a valid lab name; raises BadInput naming ``what`` otherwise.

    Checked before a lab name is joined to any path.
    """
    if names.is_lab(lab):
        return lab  # type: ignore[return-value]  # is_lab checked the type
    raise BadInput(f"{what}: {lab!r} is not a lab name (hint: a lab name is a DNS label of at "
                   f"most {names.LAB_MAX} characters: lowercase letters, digits and '-', "
                   f"starting and ending with a letter or digit)")


def state_root(environ: Mapping[str, str] = os.environ) -> Path:
    """The store directory: ``$NETLAB_STATE_DIR``, else :data:`DEFAULT_ROOT`.

    An empty or relative NETLAB_STATE_DIR raises BadInput (exit 2) naming it,
    rather than being read as unset or as relative to the current directory:
    an empty value is most often a script's unset variable
    (``NETLAB_STATE_DIR=$DIR``), and falling back to /run/netlab would let
    ``netlab down --all`` act on the machine's labs instead of the intended
    private ones; a relative one would make the store follow the current
    directory, so a lab brought up in one directory is unknown in the next.
    """
    value = environ.get("NETLAB_STATE_DIR")
    if value is None:
        return DEFAULT_ROOT
    if not value:
        raise BadInput("NETLAB_STATE_DIR: is set but empty (hint: unset it to use "
                       f"{DEFAULT_ROOT}, or set it to an absolute path)")
    if not os.path.isabs(value):
        raise BadInput(f"NETLAB_STATE_DIR: {value[:80]!r} is a relative path (hint: an absolute "
                       f"path, such as $PWD/{value[:80]}, or unset it to use {DEFAULT_ROOT})")
    return Path(value)


@dataclass(frozen=True)
class StateStore:
    """Reads and writes lab state files under ``root`` (default: :func:`state_root`,
    read when the store is made; raises BadInput for a bad NETLAB_STATE_DIR)."""

    root: Path = field(default_factory=lambda: state_root())

    def path(self, lab: str) -> Path:
        """Where ``lab``'s state file is; raises BadInput for an invalid lab name."""
        return self.root / (check_lab(lab) + _SUFFIX)

    def log_path(self, lab: str) -> Path:
        """The workload supervisor's log of ``lab``; raises BadInput for an invalid lab name."""
        return self.root / f"{check_lab(lab)}.log"

    # -- writing

    def save(self, state: LabState) -> None:
        """Write ``state`` atomically (a private temporary file renamed over the old one).

        Raises UnsafeStore when the directory is unsafe, BadInput for an
        invalid lab name, NetlabError when no temporary file can be created,
        OSError when the disk refuses.
        """
        name = check_lab(state.lab) + _SUFFIX
        self._replace(name, _dumps(to_json(state)).encode(), "state file", durable=True)

    def _replace(self, name: str, data: bytes, what: str, durable: bool) -> None:
        """Put ``data`` in the store's file ``name`` atomically: a private temporary
        file (mode 0600) renamed over it, flushed to disk first when ``durable``.
        Raises UnsafeStore, NetlabError (no temporary file: ``what`` names it),
        OSError when the disk refuses."""
        dfd = self._open_dir(create=True)
        try:
            tmp, fd = safefile.create_temp(dfd, name, _TMP_SUFFIX, what)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    if durable:
                        f.flush()
                        os.fsync(f.fileno())
                os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                safefile.unlink_quietly(tmp, dfd)
                raise
        finally:
            os.close(dfd)

    def remove(self, lab: str) -> bool:
        """Delete ``lab``'s state file (only that name); True when there was one.

        Anything else at that name (a directory) is moved aside instead.
        """
        name = check_lab(lab) + _SUFFIX
        dfd = self._open_dir(create=False)
        if dfd is None:
            return False
        try:
            try:
                os.unlink(name, dir_fd=dfd)
                return True
            except FileNotFoundError:
                return False
            except (IsADirectoryError, PermissionError):
                return self._quarantine(dfd, lab) is not None
        finally:
            os.close(dfd)

    def remove_files(self, lab: str, file_names: list[str]) -> int:
        """Delete the files of ``lab`` named exactly in ``file_names`` (direct
        children of the store starting with ``<lab>.``, never the state file);
        returns how many there were. Symlinks are removed, never followed;
        directories are left alone. Raises BadInput for a name outside that set.
        """
        prefix = check_lab(lab) + "."
        for name in file_names:
            if (not name.startswith(prefix) or "/" in name or "\0" in name
                    or name == prefix + _SUFFIX[1:]):
                raise BadInput(f"refusing to remove {name!r}: not a file of lab {lab}")
        dfd = self._open_dir(create=False)
        if dfd is None:
            return 0
        removed = 0
        try:
            for name in file_names:
                removed += safefile.unlink_quietly(name, dfd)
            for name in os.listdir(dfd):   # temporaries a killed save left behind
                if _is_temp_of(lab, name):
                    removed += safefile.unlink_quietly(name, dfd)
        finally:
            os.close(dfd)
        return removed

    def has_files(self, lab: str, file_names: list[str]) -> bool:
        """True when any of ``file_names`` (as for :meth:`remove_files`) exists."""
        dfd = self._open_dir(create=False)
        if dfd is None:
            return False
        try:
            return any(safefile.lexists(name, dfd) for name in file_names if "/" not in name)
        finally:
            os.close(dfd)

    def _check_file_name(self, lab: str, name: str) -> None:
        prefix = check_lab(lab) + "."
        if (not name.startswith(prefix) or "/" in name or "\0" in name
                or name == prefix + _SUFFIX[1:]):
            raise BadInput(f"refusing to touch {name!r}: not a file of lab {lab}")

    def write_file(self, lab: str, name: str, data: bytes) -> None:
        """Replace ``lab``'s file ``name`` (``<lab>.<something>``, never the state
        file) with ``data`` atomically, mode 0600, without fsync: for what can
        be rebuilt (a cache). Raises BadInput for another name, UnsafeStore,
        NetlabError, OSError as :meth:`save`."""
        self._check_file_name(lab, name)
        self._replace(name, data, name, durable=False)

    def append_file(self, lab: str, name: str, data: bytes) -> None:
        """Append ``data`` to ``lab``'s file ``name`` (as for :meth:`write_file`),
        created with mode 0600 if missing; one ``write`` with O_APPEND, so lines
        of several writers never mix. Raises BadInput, UnsafeStore, OSError."""
        self._check_file_name(lab, name)
        dfd = self._open_dir(create=True)
        try:
            fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        finally:
            os.close(dfd)

    def read_file(self, lab: str, name: str, max_bytes: int = MAX_BYTES) -> bytes | None:
        """The bytes of ``lab``'s file ``name`` (as for :meth:`write_file`); None when
        it is absent, or not a regular file of at most ``max_bytes``. Raises
        BadInput for another name, UnsafeStore, OSError when it cannot be read."""
        self._check_file_name(lab, name)
        dfd = self._open_dir(create=False)
        if dfd is None:
            return None
        try:
            return safefile.read_regular(dfd, name, max_bytes)
        except (FileNotFoundError, safefile.NotRegular):
            return None
        finally:
            os.close(dfd)

    # -- one change at a time

    @contextmanager
    def locked(self, lab: str, waiting: Callable[[str], None] = lambda _m: None) -> Iterator[None]:
        """Hold ``lab``'s change lock while the block runs: ``up``, ``down``, ``scale``,
        ``node`` (and whatever else changes a lab) take it, so two changes of one
        lab, from two shells, run one after the other, never interleaved.

        The lock is ``flock`` on ``<lab>.lock`` in the store (mode 0600); the
        kernel drops it when its holder dies, so a killed change never blocks
        the next. ``waiting`` is told once when another holds it. The file goes
        when the lab's state file is gone at release (after ``down``, or an
        ``up`` refused before it saved anything); a waiter that then gets the
        removed file's lock notices and takes the new file's. Raises UnsafeStore
        and BadInput as :meth:`save`, OSError when the file cannot be made.
        """
        name = check_lab(lab) + _LOCK_SUFFIX
        dfd = self._open_dir(create=True)
        try:
            fd = self._lock(dfd, name, lab, waiting)
            try:
                yield
            finally:
                try:
                    if not safefile.lexists(check_lab(lab) + _SUFFIX, dfd):
                        safefile.unlink_quietly(name, dfd)
                finally:
                    os.close(fd)      # closing releases the lock
        finally:
            os.close(dfd)

    @staticmethod
    def _lock(dfd: int, name: str, lab: str, waiting: Callable[[str], None]) -> int:
        told = False
        while True:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=dfd)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if not told:
                        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                        waiting(f"waiting for another change of lab {lab} to end"
                                + (f" (pid {holder})" if holder.isdigit() else ""))
                        told = True
                    fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    same = os.stat(name, dir_fd=dfd, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)      # removed while we waited: lock the file that is there now

    # -- reading

    def load(self, lab: str) -> LabState | None:
        """The state of ``lab``, or None when it has no state file.

        Raises BadInput for an invalid lab name, UnsafeStore for an unsafe
        directory, BadInput when the file cannot be read (permissions), and
        CorruptState, after moving the file aside, when it fails a check.
        """
        return self._read(lab, statedoc.parse)

    def load_targets(self, lab: str) -> statedoc.Targets | None:
        """The scenario, namespaces and targets of ``lab`` (what ``exec`` needs), or
        None when it has no state file: read as :meth:`load` reads, those fields
        checked alike, the model left undecoded. Raises what :meth:`load` raises."""
        return self._read(lab, statedoc.parse_targets)

    def require(self, lab: str) -> LabState:
        """The state of ``lab``, which must be up; raises BadInput when it is not a
        lab name or no such lab is up, and what :meth:`load` raises."""
        return self.load(lab) or self._not_up(lab)

    def require_targets(self, lab: str) -> statedoc.Targets:
        """:meth:`load_targets` of ``lab``, which must be up; raises as :meth:`require`."""
        return self.load_targets(lab) or self._not_up(lab)

    def _not_up(self, lab: str) -> NoReturn:
        known = self.labs()
        raise BadInput(f"LAB: no lab named {lab!r} is up (hint: "
                       + (f"known labs: {', '.join(known)})" if known else "netlab up SCENARIO)"))

    def _read(self, lab: str, parse: Callable[[str, bytes], T]) -> T | None:
        """``parse(lab, raw)`` of ``lab``'s state file, or None when there is none;
        raises as :meth:`load`."""
        check_lab(lab)
        dfd = self._open_dir(create=False)
        if dfd is None:
            return None
        try:
            try:
                raw = safefile.read_regular(dfd, lab + _SUFFIX, MAX_BYTES)
            except FileNotFoundError:
                return None
            except safefile.NotRegular as bad:
                raise self._corrupt(dfd, lab, str(bad)) from None
            except OSError as exc:
                raise BadInput(f"cannot read {self.path(lab)}: {exc.strerror} "
                               "(hint: run as the user who brought the lab up, e.g. sudo)") from None
            try:
                return parse(lab, raw)
            except statedoc.Bad as bad:
                raise self._corrupt(dfd, lab, str(bad)) from None
        finally:
            os.close(dfd)

    def labs(self) -> list[str]:
        """The labs with a state file here, by name (other files are not labs)."""
        dfd = self._open_dir(create=False)
        if dfd is None:
            return []
        try:
            entries = os.listdir(dfd)
        finally:
            os.close(dfd)
        return sorted(n[:-len(_SUFFIX)] for n in entries
                      if n.endswith(_SUFFIX) and names.is_lab(n[:-len(_SUFFIX)]))

    # -- helpers

    @overload
    def _open_dir(self, create: Literal[True]) -> int: ...
    @overload
    def _open_dir(self, create: Literal[False]) -> int | None: ...

    def _open_dir(self, create: bool) -> int | None:
        """A descriptor of the store directory after checking it is safe.

        Creates it (0700) when ``create``; otherwise returns None when it is
        missing. Raises UnsafeStore.
        """
        root = str(self.root)
        hint = "(hint: remove it, or set NETLAB_STATE_DIR to a private directory)"
        not_yours = ("(hint: run netlab as the user who owns it, e.g. with sudo, or set "
                     "NETLAB_STATE_DIR to a private directory)")
        if create:
            try:
                os.makedirs(os.path.dirname(root) or ".", exist_ok=True)
                os.mkdir(root, 0o700)
            except FileExistsError:
                pass
            except OSError as exc:
                raise UnsafeStore(f"cannot create the state directory {root}: {exc.strerror} "
                                  f"{hint}") from None
        try:
            dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            if create:
                raise UnsafeStore(f"the state directory {root} vanished {hint}") from None
            return None
        except OSError as exc:
            if os.path.islink(root):   # O_DIRECTORY makes Linux say ENOTDIR for a symlink
                what = "is a symbolic link"
            elif exc.errno == errno.EACCES:
                raise UnsafeStore(f"the state directory {root} cannot be read: permission denied "
                                  f"{not_yours}") from None
            else:
                what = ("is not a directory" if exc.errno == errno.ENOTDIR
                        else f"cannot be opened: {exc.strerror}")
            raise UnsafeStore(f"the state directory {root} {what}; refusing to use it {hint}") from None
        st = os.fstat(dfd)
        problem = None
        if st.st_uid != os.geteuid():
            problem = (f"is owned by uid {st.st_uid}, not by you (uid {os.geteuid()}); "
                       f"refusing to use it {not_yours}")
        elif st.st_mode & 0o077:
            problem = (f"is open to other users (mode {stat.S_IMODE(st.st_mode):04o}, not 0700); "
                       f"refusing to use it (hint: chmod 700 {root}, or set NETLAB_STATE_DIR "
                       "to a private directory)")
        if problem:
            os.close(dfd)
            raise UnsafeStore(f"the state directory {root} {problem}")
        return dfd

    def _quarantine(self, dfd: int, lab: str) -> str | None:
        """Rename ``<lab>.json`` aside to ``<lab>.json.corrupt-<UTC time>``; the new name or None."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        for n in range(100):
            aside = f"{lab}{_SUFFIX}.corrupt-{stamp}" + (f"-{n}" if n else "")
            if safefile.lexists(aside, dfd):
                continue
            try:
                os.rename(lab + _SUFFIX, aside, src_dir_fd=dfd, dst_dir_fd=dfd)
            except OSError:
                return None
            return aside
        return None

    def _corrupt(self, dfd: int, lab: str, reason: str) -> CorruptState:
        aside = self._quarantine(dfd, lab)
        where = (f"moved aside to {self.root / aside}" if aside
                 else "could not be moved aside")
        return CorruptState(f"the state file {self.path(lab)} is corrupt ({reason}); {where} "
                            f"(hint: netlab down {lab} removes what is left of the lab)",
                            lab, aside)


def _is_temp_of(lab: str, name: str) -> bool:
    """True for a temporary file :meth:`StateStore.save` made for ``lab``."""
    head = f".{lab}{_SUFFIX}."
    token = name[len(head):-len(_TMP_SUFFIX)]
    return (name.startswith(head) and name.endswith(_TMP_SUFFIX) and len(token) == 16
            and all(c in "0123456789abcdef" for c in token))
