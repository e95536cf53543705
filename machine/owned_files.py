"""Opening the files a VM writes beside its .vmx, safely in a directory other users can write.

A VM's directory may be shared (a world-writable sticky directory such as
/tmp), where another user can plant a file under the name the VM is about to
use: a symbolic link to one of the victim's files (the VM would append to it,
or truncate it, and run as root, any file), a file of their own (they would
read the log), a FIFO (an open or a read would block the VM).  So every file
a VM and the tools around it create, append to or read there (the script's
log, the background VM's own log and pid file, a QEMU VM's console) is
opened without following a symbolic link (`O_NOFOLLOW`), without blocking
(`O_NONBLOCK`), with `O_EXCL` where it must be new, and then checked on the
open descriptor: a regular file of this user's with one link, or a character
device (a log may go to /dev/null or /dev/full; devices cannot be planted by
other users).  Anything else is refused with `UnusableFile`, which says what
was found.  (Once such a file is this user's, other users cannot replace it:
the directory is the user's, or sticky.)
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from .errors import MachineError

_NOFOLLOW = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class UnusableFile(MachineError):
    """A file where a VM's file should be is not one the VM may use (a link, another user's ...)."""


def _refuse(path: Path, what: str, found: str) -> UnusableFile:
    return UnusableFile(f"{what} {path} {found}: refusing to use it (another user may have planted it there; "
                       f"remove it, or keep the VM in a directory only you can write)")


def _checked(fd: int, path: Path, what: str, devices: bool) -> int:
    """`fd` if it is a regular file of this user's with one link (or a character device, if
    `devices`); otherwise it is closed and UnusableFile raised."""
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            if st.st_uid != os.getuid():
                raise _refuse(path, what, f"belongs to another user (uid {st.st_uid})")
            if st.st_nlink != 1:
                raise _refuse(path, what, f"has {st.st_nlink} hard links")
        elif not (devices and stat.S_ISCHR(st.st_mode)):
            raise _refuse(path, what, "is not a regular file")
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _opened(path: Path, flags: int, what: str, mode: int = 0o600) -> int:
    try:
        return os.open(path, flags | _NOFOLLOW, mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            target = _link_target(path)
            raise _refuse(path, what, f"is a symbolic link{target}") from None
        if e.errno == errno.ENXIO:  # a FIFO nobody reads
            raise _refuse(path, what, "is not a regular file") from None
        raise


def _link_target(path: Path) -> str:
    try:
        return f" (to {os.readlink(path)})"
    except OSError:
        return ""


def open_append(path: Path | str, what: str) -> int:
    """A descriptor appending to `path` (created 0600 if absent): a log.  Raises UnusableFile for
    a planted file, OSError for other failures."""
    path = Path(path)
    fd = _opened(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, what)
    return _checked(fd, path, what, devices=True)


def open_truncated(path: Path | str, what: str, mode: int = 0o644) -> int:
    """A descriptor writing `path` from empty (created with `mode` if absent; emptied only once
    it is known to be this user's).  Raises UnusableFile for a planted file, OSError otherwise."""
    path = Path(path)
    fd = _checked(_opened(path, os.O_WRONLY | os.O_CREAT, what, mode), path, what, devices=True)
    if stat.S_ISREG(os.fstat(fd).st_mode):
        os.ftruncate(fd, 0)
    return fd


def create_new(path: Path | str, what: str) -> int:
    """A descriptor writing the new file `path` (0600); FileExistsError if anything is there
    (a symbolic link included)."""
    path = Path(path)
    fd = _opened(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, what)
    return _checked(fd, path, what, devices=False)


def read_owned(path: Path | str, what: str, limit: int = 1 << 16) -> bytes | None:
    """The first `limit` bytes of `path`, a regular file of this user's; None if there is none.
    Raises UnusableFile for anything else (a link, another user's file, a FIFO ...)."""
    path = Path(path)
    try:
        fd = _opened(path, os.O_RDONLY, what)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except PermissionError as e:
        raise UnusableFile(f"cannot read {what} {path}: {e.strerror}") from None
    fd = _checked(fd, path, what, devices=False)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)
