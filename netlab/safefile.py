"""Files in a directory held open by descriptor, touched as if someone hostile
planted things there: never following a symlink, never opening anything but a
regular file, creating only under fresh random names. The state store
(:mod:`netlab.state`) keeps its files with these."""

from __future__ import annotations

import errno
import os
import secrets
import stat

from netlab.errors import NetlabError


class NotRegular(Exception):
    """A file is not what may be read: a symlink, a directory, a device, too large."""


def create_temp(dfd: int, name: str, suffix: str, what: str = "file") -> tuple[str, int]:
    """A new private file ``.<name>.<random><suffix>`` in the directory, opened for writing.

    ``O_EXCL|O_NOFOLLOW``: something planted at that name (a symlink, a file)
    is never opened; another random name is tried. Raises NetlabError after
    a few tries, OSError for other failures.
    """
    for _ in range(8):
        tmp = f".{name}.{secrets.token_hex(8)}{suffix}"
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        except FileExistsError:
            continue
    raise NetlabError(f"cannot create a temporary {what} for {name}: every name tried "
                      "exists (hint: look for files planted in the state directory)")


def read_regular(dfd: int, name: str, max_bytes: int) -> bytes:
    """The bytes of regular file ``name``; raises NotRegular for a symlink, a
    non-regular file or one over ``max_bytes``, FileNotFoundError, OSError."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegular("it is a symbolic link") from None
        raise
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise NotRegular("it is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular("it is not a regular file")
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise NotRegular(f"it is larger than {max_bytes} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)

def lexists(name: str, dfd: int) -> bool:
    try:
        os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def unlink_quietly(name: str, dfd: int) -> int:
    """Unlink ``name`` (never following a symlink); 1 when it was removed, 0 otherwise."""
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            return 0
        os.unlink(name, dir_fd=dfd)
    except OSError:
        return 0
    return 1
