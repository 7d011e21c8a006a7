"""A run folder's lock: one process computes a run at a time.

The lock is a file beside the run folder (`.<hash>.lock`) created with O_EXCL and holding the
holder's pid, host and start time. A second process gets a `RunLockedError` naming the holder. A
lock left by a process that is gone (same host, pid no longer alive) is stale and taken over; a
lock of another host cannot be checked from here and is reported with how to remove it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path


class RunLockedError(RuntimeError):
    """Another process holds the run folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _holder(lock: Path) -> dict:
    try:
        return json.loads(lock.read_text())
    except (OSError, ValueError):
        return {}  # being written, or garbage: treated as held by an unknown process


def _stale(holder: dict) -> bool:
    return (
        holder.get("host") == socket.gethostname()
        and isinstance(holder.get("pid"), int)
        and not _alive(holder["pid"])
    )


@contextmanager
def run_lock(lock: str | os.PathLike, what: str):
    """Hold the lock file `lock` (for `what`, named in messages) for the duration of the block."""
    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _holder(lock)
            if _stale(holder):
                lock.unlink(missing_ok=True)  # its process is gone
                continue
            who = (
                f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}"
                if holder
                else "an unknown process"
            )
            raise RunLockedError(
                f"{what} is being computed by {who}; wait for it to finish, or delete "
                f"{lock} if that process is gone"
            ) from None
        with os.fdopen(fd, "w") as f:
            json.dump(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                },
                f,
            )
        break
    else:
        raise RunLockedError(f"{what}: could not take the lock {lock}")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
