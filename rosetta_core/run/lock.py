"""One mining run per output location at a time: a lock file (or object) naming its holder.

The lock is ``<run>/.lock``, created only if absent: ``O_CREAT | O_EXCL`` on a local disk,
a conditional PUT (``If-None-Match: *``) on S3, so two machines starting a run on the same
``s3://`` URL cannot both get it. It holds the holder's pid, host, process start (boot id and start
time, where ``/proc`` has them) and a random token, and is deleted when the run ends. A lock
left by a process that died on *this* host (e.g. ``kill -9``, or a machine's Prefect worker
killed with its flow run) is taken over: its pid is gone, a zombie, or now another process's
(a different start). One left by a dead process on another host cannot be checked from here,
so the error says which object to delete.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import location

__all__ = ["RunLocked", "run_lock"]


class RunLocked(RuntimeError):
    """Another process holds the run directory."""


def _process(pid: int) -> tuple[str, str] | None:
    """``(state, start)`` of process ``pid`` from Linux's ``/proc``: its state letter (``Z``
    for a zombie) and ``"<boot id>:<start time in ticks>"``, which no later process with the
    same pid shares. None where there is no ``/proc`` or no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state is field 3, starttime field 22
    return fields[0], f"{boot}:{fields[19]}"


def _alive(pid: int, started: str | None = None) -> bool:
    """Whether process ``pid`` runs (a zombie does not) and, given the ``started`` it recorded,
    is still that process and not a later one that got its pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now = _process(pid)
    if now is None:
        return True
    state, start = now
    return state not in ("Z", "X") and (started is None or start == started)


def _holder(path: str) -> dict:
    try:
        holder = json.loads(location.read_text(path) or "{}")
    except (OSError, json.JSONDecodeError):
        return {}
    return holder if isinstance(holder, dict) else {}


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[str | Path]:
    """Hold ``<run_dir>/.lock`` for the ``with`` block; yields the lock's path or URL.

    A second holder fails fast with :class:`RunLocked`, naming the pid and host of the first.
    """
    path = location.join(run_dir, ".lock")
    me = {"pid": os.getpid(), "host": socket.gethostname(), "token": uuid.uuid4().hex,
          "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    own = _process(os.getpid())
    if own is not None:
        me["started"] = own[1]
    for _ in range(2):
        if location.create_new(path, json.dumps(me)):
            break
        holder = _holder(path)
        same_host = holder.get("host") == me["host"]
        if same_host and isinstance(holder.get("pid"), int) and not _alive(holder["pid"], holder.get("started")):
            location.remove(path)  # stale: its holder is gone
            continue
        raise RunLocked(
            f"{run_dir} is in use by another mining run (pid {holder.get('pid', '?')} on host "
            f"{holder.get('host', '?')}, since {holder.get('since', '?')}); wait for it, or delete "
            f"{path} if that process is gone"
        )
    else:
        raise RunLocked(f"could not take {path}: another process took it over at the same time; try again")
    try:
        yield path if location.is_url(path) else Path(path)
    finally:
        if _holder(path).get("token") == me["token"]:
            location.remove(path)
