"""A run folder's lock: one process computes a run at a time.

The lock is a file beside the run folder (`.<hash>.lock`) created with O_EXCL and holding the
holder's pid, host, start time, and what identifies that process start beyond its pid: a random
token drawn once per process, the kernel's boot id and the process's start in clock ticks after
boot (/proc, where there is one). A second process gets a `RunLockedError` naming the holder.

A lock left by a process that is gone is stale and taken over: on the same host, its pid is not
alive, or it is alive but is another process (another start time or boot: pids are reused, and a
restarted container starts its processes at the same small pids), or it is this process's pid
without this process's token. A lock of another host cannot be checked from here and is
reported with how to remove it.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from cgm.errors import RunLockedError

_TOKEN = secrets.token_hex(8)  # this process start's own (a forked child has another pid)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """When process `pid` started, in clock ticks after boot (/proc/<pid>/stat field 22), or None
    where that cannot be read (no /proc, no such process)."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat or ")" not in stat:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return fields[19] if len(fields) > 19 else None


def boot_id() -> str | None:
    """The kernel's id of this boot (Linux), or None."""
    return _read("/proc/sys/kernel/random/boot_id")


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
    """Whether the lock's holder is a process of this host that no longer runs."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or isinstance(pid, bool) or not isinstance(pid, int):
        return False
    if pid == os.getpid():  # this pid: held by this very process start, or left by an earlier one
        return holder.get("token") != _TOKEN
    if not _alive(pid):
        return True
    if holder.get("boot_id") and boot_id() and holder["boot_id"] != boot_id():
        return True  # written before a reboot: its pid is another process now
    started = process_start(pid)
    return bool(holder.get("process_start") and started and holder["process_start"] != started)


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
                    "token": _TOKEN,
                    "boot_id": boot_id(),
                    "process_start": process_start(os.getpid()),
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
