"""The errors bad input ends in, and the one boundary that turns them into a one-line message.

`UserError` marks an error caused by what the user gave (a file, a folder, a parameter, a cached
run), not by the code: the CLI prints it as `error: <message>` with exit code 2, and so does every
other anticipated failure listed in `expected` (a ValueError of a config, a missing or unreadable
file, a full disk, too little memory). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import functools
import os
from pathlib import Path


class UserError(Exception):
    """A failure caused by the input (names the file or field and what was expected)."""


class DataError(UserError, RuntimeError):
    """A dataset that cannot be used: no readable video, an empty split, a file that is not one."""


class PathError(UserError, ValueError):
    """A path no file system can hold (a NUL byte, a name or path over the length limits)."""


class CacheError(UserError, ValueError):
    """A cached run (result.json, config.json, checkpoint.pt) that fails its integrity check."""


class RunLockedError(RuntimeError):
    """Another process holds the run folder (`cgm.experiments.lock`)."""


class NonFiniteLossError(RuntimeError):
    """The loss or the weights became NaN or Inf; the run stopped before updating the weights or
    writing a checkpoint (`cgm.train`)."""


def expected() -> tuple[type[BaseException], ...]:
    """The exception types bad input ends in."""
    return (
        UserError,
        ValueError,
        OSError,
        MemoryError,
        RunLockedError,
        NonFiniteLossError,
        FloatingPointError,
    )


def message(err: BaseException) -> str:
    """What went wrong, for an error of `expected()`: one line naming the file or field (an
    expected layout, where one is shown, on the indented lines after it)."""
    if isinstance(err, MemoryError):
        detail = f": {err}" if str(err) else ""
        return (
            f"out of memory{detail}; lower batch_size, size, clip_len or the number of clips "
            "(--set batch_size=..., --set size=...)"
        )
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {err.filename}" if err.filename else ""
        return f"the disk is full{where} ({err.strerror}); free space and run again"
    if isinstance(err, OSError) and err.filename is not None and str(err.filename) not in str(err):
        return f"{err} ({err.filename})"
    return str(err).strip() or type(err).__name__


def user_errors(fn):
    """Decorator for the notebooks' helpers: a full disk or too little memory is re-raised as a
    UserError saying so and what to do, without the chained traceback of the allocator or the
    file write; every other error passes unchanged (those of bad input already name the file or
    parameter; a bug keeps its traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MemoryError as err:
            raise UserError(message(err)) from None
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise UserError(message(err)) from None
            raise

    return wrapper


# Linux limits: a name of at most 255 bytes, a path of at most 4096 bytes.
NAME_MAX, PATH_MAX = 255, 4096


def check_path(path, what: str):
    """`path` as a pathlib.Path, or a PathError naming `what` when no file system can hold it: a
    NUL byte, a name over 255 bytes or a path over 4096 bytes (checked before anything opens it)."""
    text = os.fsencode(path)
    if b"\0" in text:
        raise PathError(f"{what} {os.fsdecode(text)!r} contains a NUL byte, which no file name may hold")
    if len(text) > PATH_MAX:
        raise PathError(f"{what} is {len(text)} bytes long; paths may be at most {PATH_MAX} bytes")
    longest = max(text.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        raise PathError(
            f"{what}: the name {os.fsdecode(longest[:40])!r}... is {len(longest)} bytes long; file and "
            f"folder names may be at most {NAME_MAX} bytes"
        )
    return Path(os.fsdecode(text))
