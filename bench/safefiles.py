"""Files and folders bench writes, made without following a symbolic link.

A run folder (or the data cache) can be copied, shared or tampered with. A link planted where
bench expects its own file or folder would make a write land wherever the link points: a
resumed run appending to ``~/.bashrc``, a profiler writing its trace into someone else's
folder. Every write in a run folder goes through these few functions instead:

- a folder is made one level at a time, and each level must be a real folder, not a link;
- a file is opened with ``O_NOFOLLOW`` (a link there fails with ``ELOOP``);
- a whole file is replaced atomically: written to a fresh temporary file beside it
  (``mkstemp``: ``O_CREAT | O_EXCL``, which never follows a link), then renamed over the name,
  which replaces a directory entry and never follows one; a link already at the name is
  refused first, so a user learns about it rather than having it silently replaced;
- a folder handed to a tool that writes whatever it likes inside (a profiler) is made fresh
  (``mkdir`` fails when anything, a link included, is already there) and private (0700), so
  nothing inside can have been planted beforehand.

Errors are ``OSError`` with ``errno`` and ``filename`` set (``ELOOP`` for a link, ``ENOTDIR``
for something that is not a folder), so callers word them as they word any file problem.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import IO

# How many numbered names ``fresh_dir`` tries (name, name.2, ...) before giving up: a cell
# retried this many times in one run folder is not a case to plan for.
MAX_FRESH_TRIES = 100


def _refuse_link(path: Path) -> None:
    raise OSError(errno.ELOOP, "is a symbolic link", str(path))


def check_not_link(path: Path) -> bool:
    """True when ``path`` exists (and is not a link); OSError(ELOOP) when it is a link."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode):
        _refuse_link(path)
    return True


def make_dir(path: Path, mode: int = 0o755) -> Path:
    """``path`` as a real folder: made if absent; OSError if it is a link or not a folder."""
    try:
        os.mkdir(path, mode)  # never follows a link at the last component: EEXIST
        return path
    except FileExistsError:
        pass
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        _refuse_link(path)
    if not stat.S_ISDIR(info.st_mode):
        raise OSError(errno.ENOTDIR, "is not a folder", str(path))
    return path


def make_dirs(base: Path, rel: str | Path, mode: int = 0o755) -> Path:
    """``base/rel`` made one level at a time below ``base`` (which must exist), refusing a
    link at any level; ``rel`` must stay below ``base`` (no ``..``, not absolute)."""
    parts = Path(rel).parts
    if Path(rel).is_absolute() or ".." in parts:
        raise OSError(errno.EINVAL, "leaves the folder it must stay in", str(rel))
    folder = Path(base)
    for part in parts:
        folder = make_dir(folder / part, mode)
    return folder


def fresh_dir(parent: Path, name: str) -> Path:
    """A new, empty, private (0700) folder ``parent/name``, or ``name.2``, ``name.3``... when
    that exists: nothing inside can have been planted, whatever the tool writing there does."""
    check_not_link(parent)
    for n in range(1, MAX_FRESH_TRIES + 1):
        path = parent / (name if n == 1 else f"{name}.{n}")
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue
    raise OSError(
        errno.EEXIST, f"{MAX_FRESH_TRIES} folders of this name already exist", str(parent / name)
    )


def open_for_writing(path: Path, append: bool = False) -> IO[bytes]:
    """``path`` opened for writing (created if absent; appended to, or truncated) without
    following a link; OSError(ELOOP) for a link, OSError(EISDIR/EINVAL) for a non-file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    fd = os.open(path, flags | (os.O_APPEND if append else 0), 0o644)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device there: never write it
            raise OSError(errno.EINVAL, "is not a regular file", str(path))
        if not append:
            os.ftruncate(fd, 0)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "ab" if append else "wb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` whole (a reader sees the old file or the new, never half);
    OSError(ELOOP) when ``path`` is a link, which is left as it is."""
    check_not_link(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def links_below(
    root: Path, names: tuple[str, ...] | None = None, limit: int = 100_000
) -> Path | None:
    """The first symbolic link at ``root/NAME`` for NAME in ``names`` (every entry when None)
    or anywhere below those, never descending through a link; None when there is none.
    ``limit`` bounds the entries looked at (a folder bench wrote holds a few hundred)."""
    pending = [root / n for n in names] if names is not None else [root]
    seen = 0
    while pending:
        path = pending.pop()
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode):
            return path
        if stat.S_ISDIR(info.st_mode):
            try:
                entries = os.scandir(path)
            except FileNotFoundError:  # removed since it was listed
                continue
            with entries:
                for entry in entries:
                    seen += 1
                    if seen > limit:
                        raise OSError(errno.EFBIG, f"holds more than {limit:,} entries", str(root))
                    if entry.is_symlink():
                        return Path(entry.path)
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
    return None
