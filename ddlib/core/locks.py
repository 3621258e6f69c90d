"""Cross-process locks and safe cleanup of stale temporary files, for stores several runs write.

Two notebooks (or two terminals) may generate the same expert store at once. The writer
holds :func:`file_lock` on ``<store>/.lock`` (an advisory ``fcntl.flock``, released by the
kernel when the process dies, even on ``kill -9``), so the second run waits and then finds
the first run's experts finished. Temporary files are named per process
(``.tmp-<name>.<pid>.<random>``, see :func:`ddlib.core.fileio.atomic_write`), and
:func:`clean_stale_temporaries` removes only those whose writer is gone: a dead PID, or a
PID reused by a process that started after the file was last written.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from pathlib import Path
from typing import Iterator

from ddlib.core.fileio import TMP_PREFIX

try:
    import fcntl
except ImportError:  # not POSIX (Windows): no advisory locks, concurrent generation is unsupported there
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "file_lock", "clean_stale_temporaries", "process_start_time"]

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"
# /proc gives process start times in clock ticks after a boot time with 1 s resolution: a file is
# only called older than its writer's process with this much margin.
_CLOCK_SLACK_S = 2.0
# Fallback "start of this process" where /proc is unavailable: the time ddlib.core.locks was imported.
_IMPORTED_AT = time.time()


def process_start_time(pid: int) -> float | None:
    """Start time of process ``pid`` in seconds since the epoch (Linux ``/proc``), or ``None`` if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat[stat.rindex(")") + 2:].split()[19])  # field 22 (starttime); fields from 3 follow ")"
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _writer_alive(pid: int, mtime: float) -> bool:
    """Whether process ``pid`` may still be writing a file last modified at ``mtime``."""
    if pid == os.getpid() or os.name != "posix":  # our own threads; on Windows os.kill would kill
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user
    started = process_start_time(pid)
    return started is None or mtime >= started - _CLOCK_SLACK_S  # else the PID was reused since


def _writer_pid(name: str) -> int | None:
    """The PID in ``.tmp-<name>.<pid>.<hex>``, or ``None`` for other names."""
    parts = name.rsplit(".", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def clean_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the ``.tmp-*`` files in ``folder`` that no running process is writing.

    A file named by :func:`~ddlib.core.fileio.atomic_write` is stale when its PID is dead, or
    alive but started after the file was last modified (PID reuse). A ``.tmp-*`` file
    without a PID in its name is stale when it is older than this process.

    Returns
    -------
    list of Path
        The files removed.
    """
    folder = Path(folder)
    ours = process_start_time(os.getpid()) or _IMPORTED_AT
    removed = []
    for path in sorted(folder.glob(TMP_PREFIX + "*")):
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:  # its writer finished meanwhile
            continue
        pid = _writer_pid(path.name)
        stale = not _writer_alive(pid, mtime) if pid is not None else mtime < ours - _CLOCK_SLACK_S
        if stale and path.is_file():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    if removed:
        logger.info("removed %d stale temporary file(s) in %s: %s", len(removed), folder,
                    [p.name for p in removed])
    return removed


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if needed) for the ``with`` block.

    Blocks while another process (or another thread's ``file_lock``) holds it, logging who
    holds it. The lock file is never deleted (deleting a lock file lets two runs lock two
    different files). Where the folder is read-only the block runs unlocked, with a warning
    (a run that then needs to write fails with the write's own error).

    Parameters
    ----------
    path : path
        The lock file, e.g. ``<store>/.lock``.
    what : str
        What is being locked, for the log ("trajectory store /x/y").
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        if error.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        logger.warning("cannot create the lock file %s (%s); %s is used without a lock", path, error, what)
        fd = None
    if fd is None:
        yield
        return
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                logger.warning("%s is being written by another run (pid %s); waiting for it to finish", what,
                               holder)
                fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock
