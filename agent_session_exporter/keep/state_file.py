"""The state file on disk: the lock that keeps a second exporter off it, its identity (to notice it
deleted or replaced), and its deletion for ``--reset-state``."""

from __future__ import annotations

import fcntl
import os
from typing import IO


class StateError(RuntimeError):
    """The state file cannot be used; the message names it. Never silently reset."""


def reset_state(path: str) -> None:
    """Delete the state file and its WAL companions (``--reset-state``)."""
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StateError(f"{path + suffix}: cannot delete the state file for --reset-state: {exc.strerror}") from None


def file_identity(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def lock_state_file(path: str) -> IO[str]:
    """An exclusive lock beside the state file, held while the process lives."""
    lock_path = path + ".lock"
    try:
        handle = open(lock_path, "a+", encoding="utf-8")
    except OSError as exc:
        raise StateError(f"{lock_path}: cannot open the state lock file: {exc.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise StateError(
            f"{path}: the state file is in use by another exporter process (pid {owner}); give each exporter its own state_path"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle
