"""Provenance of a result file: which code, which command, which seeds, which machine, how long.

Every script that writes a result file (``bench/*.py --json FILE``, ``rosetta plan --json
FILE``) starts a record when it starts and puts the finished record under the key
``"provenance"`` of the file::

    prov = start(seeds={"images": 0})
    ...                                  # the measurement
    result["provenance"] = prov.finish()

The finished record (a JSON-ready dict):

- ``commit``: ``git rev-parse HEAD`` of the checkout the code was imported from, or ``None``
  when that is not a git checkout (an installed package); ``dirty``: whether tracked files
  differed from that commit, and ``changed_files`` which (at most :data:`MAX_CHANGED`; untracked
  files are not counted);
- ``command``: the exact command line, as a shell would take it (``python bench/mine.py --n
  256``, ``rosetta plan --json out.json``);
- ``seeds``: what the caller names (``{}`` when the measurement draws nothing at random);
- ``machine``: CPU model, logical CPUs and the CPUs this process may use, the threads torch
  uses when torch is loaded, the GPU's name when the device is a CUDA device, the platform,
  Python and library versions, and the load average at the start and at the end;
- ``started_utc`` (ISO 8601) and ``wall_seconds`` (start to :meth:`Provenance.finish`).

Nothing here raises because git or ``/proc/cpuinfo`` is missing: what cannot be read is
``None`` (a page generated from the file then says "commit not recorded").
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

#: the repository this package was imported from (``rosetta_core/evidence/provenance.py`` -> root)
REPO = Path(__file__).resolve().parents[2]
#: changed files listed in a dirty tree's record, at most
MAX_CHANGED = 50
#: libraries whose installed versions are recorded (read from package metadata, not imported)
VERSIONED = ("rosetta-neurons", "torch", "numpy", "timm", "open_clip_torch", "prefect", "dask")


def git_state(code: Path | str = REPO) -> dict:
    """``{"commit", "dirty", "changed_files"}`` of the git checkout ``code``; ``commit`` is
    ``None`` (and the others too) when ``code`` is not in a git checkout or git is missing."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=code, capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "changed_files": None}
    if head.returncode != 0 or status.returncode != 0:
        return {"commit": None, "dirty": None, "changed_files": None}
    changed = [line[3:] for line in status.stdout.splitlines() if line.strip()]
    return {"commit": head.stdout.strip(), "dirty": bool(changed), "changed_files": changed[:MAX_CHANGED]}


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _usable_cpus() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _gpu_name(device: str | None) -> str | None:
    """The name of CUDA device ``device`` (``"cuda"``, ``"cuda:1"``); ``None`` for any other."""
    if not device or not str(device).startswith("cuda"):
        return None
    try:
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    except Exception as err:  # noqa: BLE001 - a record, not a check: say what happened
        return f"unknown ({type(err).__name__}: {err})"


def machine(device: str | None = None) -> dict:
    """What ran it: ``cpu`` (model name), ``cpu_threads`` (logical CPUs), ``usable_threads`` (the
    CPUs this process may use), ``torch_threads`` (when torch is loaded), ``device`` and
    ``gpu`` (the name of a CUDA ``device``, else ``None``), ``platform``, ``python``,
    ``versions`` and ``load_average`` (1, 5, 15 min)."""
    torch = sys.modules.get("torch")
    return {
        "cpu": _cpu_model(),
        "cpu_threads": os.cpu_count(),
        "usable_threads": _usable_cpus(),
        "torch_threads": torch.get_num_threads() if torch is not None and hasattr(torch, "get_num_threads") else None,
        "device": device or "cpu",
        "gpu": _gpu_name(device),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": _versions(),
        "load_average": _load(),
    }


def command_line(argv: Sequence[str] | None = None, program: str | None = None) -> str:
    """The command as a shell takes it: ``program`` then ``argv`` (default ``sys.argv[1:]``).
    ``program`` defaults to ``python SCRIPT`` with ``sys.argv[0]`` relative to the repository
    when it lies inside it (``python bench/correlation.py``)."""
    if program is None:
        script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
        try:
            script = script.resolve().relative_to(REPO)
        except ValueError:
            pass
        program = f"python {shlex.quote(str(script))}"
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join([program, *map(shlex.quote, (str(a) for a in args))])


@dataclass
class Provenance:
    """A started record; :meth:`finish` adds the wall time and the end's load and returns the
    record. Build it with :func:`start`."""

    command: str
    seeds: dict
    device: str | None = None
    code: Path = REPO
    started_utc: str = ""
    _t0: float = field(default=0.0, repr=False)
    _git: dict = field(default_factory=dict, repr=False)
    _machine: dict = field(default_factory=dict, repr=False)

    def finish(self, **extra) -> dict:
        """The record, JSON-ready; ``extra`` entries are added to it (e.g. ``n_repeats``)."""
        wall = time.perf_counter() - self._t0
        mach = dict(self._machine)
        now = machine(self.device)
        mach["torch_threads"] = now["torch_threads"]  # benches set torch's threads after starting
        mach["gpu"] = mach["gpu"] or now["gpu"]
        mach["load_average_end"] = now["load_average"]
        return {**self._git, "command": self.command, "seeds": dict(self.seeds), "machine": mach,
                "started_utc": self.started_utc, "wall_seconds": round(wall, 3), **extra}


def start(argv: Sequence[str] | None = None, *, program: str | None = None, seeds: Mapping | None = None,
          device: str | None = None, code: Path | str = REPO) -> Provenance:
    """Start a record now: the commit and tree state of ``code``, the command (see
    :func:`command_line`), ``seeds`` (names -> values), the machine (``device``: where the work
    runs, ``"cpu"`` or a CUDA device) and the start time."""
    if seeds is not None and not isinstance(seeds, Mapping):
        raise TypeError(f"seeds must be a mapping of names to values (e.g. {{'images': 0}}), got {type(seeds).__name__}")
    prov = Provenance(command=command_line(argv, program), seeds=dict(seeds or {}), device=device, code=Path(code))
    prov.started_utc = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    prov._git = git_state(code)
    prov._machine = machine(device)
    prov._t0 = time.perf_counter()
    return prov
