"""One mining run per output directory at a time: a lock file naming its holder."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["RunLocked", "run_lock"]


class RunLocked(RuntimeError):
    """Another process holds the run directory."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold ``<run_dir>/.lock`` (pid and host of the holder) for the ``with`` block.

    A second holder fails fast with :class:`RunLocked`. A lock left by a dead process on this
    host (e.g. after ``kill -9``) is taken over.
    """
    path = Path(run_dir) / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text() or "{}")
            except (OSError, json.JSONDecodeError):
                holder = {}
            same_host = holder.get("host") == me["host"]
            if same_host and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]):
                path.unlink(missing_ok=True)  # stale: its holder is gone
                continue
            raise RunLocked(
                f"{run_dir} is in use by another mining run (pid {holder.get('pid', '?')} on host "
                f"{holder.get('host', '?')}); wait for it, or remove {path} if that process is gone"
            ) from None
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
