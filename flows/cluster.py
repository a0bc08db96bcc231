"""The Dask cluster a mining run's tasks go to: GPU resources for the tasks that run models on
an accelerator, and a watch that fails a run whose cluster has no worker left to run its tasks
(instead of waiting forever).

**GPU resources.** A task whose ``device`` parameter names an accelerator (``cuda``,
``cuda:1``, anything but ``cpu``) is submitted inside ``dask.annotate(resources={"GPU": 1})``
(prefect-dask passes Dask annotations on to the scheduler), so it runs only on a worker started
with ``--resources GPU=1``, and such a worker runs one of them at a time. In a mining run these
are the tasks that load models: planning, generation and extraction (and any later task that
takes the run's ``device``), and the folds of ``--activations none`` whose ``fold_device`` (the
run's ``--stats-device``) is an accelerator. Tasks without either (statistics, dictionary,
report) go to any worker.

**A memory limit.** A run given ``--memory-limit`` and no scheduler address starts
:func:`statistics_cluster`: the usual in-process workers for the flow's tasks (they load the
models), each offering the resource :data:`FLOW`, plus worker processes set apart for the
statistics' reduction tasks, each with that memory limit (Dask watches it) and the resource
:data:`~tasks.mining.STATS`. Every task of the flow asks for ``FLOW``, the reduction tasks
ask for ``STATS``: a statistics worker never imports torch or loads a model, so its memory is
its tasks' and the interpreter's.

**No workers.** A Dask scheduler keeps a task it cannot place waiting, forever by default: all
workers died and none came back (no nanny, a lost machine), or the task asks for a GPU that no
worker offers. :meth:`ClusterTaskRunner.check_workers`, called by :func:`flows.progress.drain`
while it waits, raises :class:`NoWorkers` once that has lasted :func:`no_workers_timeout`
seconds. Workers that come back within it (a nanny restarts a killed worker in seconds) are
fine: Dask reruns what they lost.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

import dask
from prefect_dask import DaskTaskRunner

__all__ = ["FLOW", "GPU", "ClusterTaskRunner", "NoWorkers", "local_cluster", "no_workers_timeout", "statistics_cluster",
           "uses_gpu"]

#: the Dask worker resource a task running models on an accelerator asks for, one per task
GPU = "GPU"
#: the resource of the flow's own workers in a :func:`statistics_cluster`, one per task
FLOW = "FLOW"
#: worker processes for the statistics in a :func:`statistics_cluster`
STATISTICS_WORKERS = 2
#: seconds a run waits for a worker able to run its tasks before it fails (environment variable)
NO_WORKERS_ENV = "ROSETTA_NO_WORKERS_TIMEOUT"
#: its default: long enough for a nanny's restart or an adaptive cluster's new worker
NO_WORKERS_DEFAULT = 300.0


class NoWorkers(RuntimeError):
    """The run's Dask cluster has had no worker able to run its tasks for too long."""


def uses_gpu(device: Any) -> bool:
    """Whether a task with this ``device`` parameter runs on an accelerator (not ``cpu``)."""
    return isinstance(device, str) and device.split(":")[0].strip().lower() not in ("", "cpu")


def no_workers_timeout() -> float:
    """:data:`NO_WORKERS_ENV` in seconds, or :data:`NO_WORKERS_DEFAULT`."""
    raw = os.environ.get(NO_WORKERS_ENV)
    if not raw:
        return NO_WORKERS_DEFAULT
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{NO_WORKERS_ENV}={raw!r} is not a number of seconds (e.g. 300)") from None
    if value <= 0:
        raise ValueError(f"{NO_WORKERS_ENV}={raw!r} must be a positive number of seconds")
    return value


def local_cluster(kwargs: dict[str, Any], device: str) -> dict[str, Any]:
    """The ``LocalCluster`` arguments of a run without a scheduler address: ``kwargs`` as they
    are on the CPU; on an accelerator, one worker whose threads share one ``GPU`` resource, so
    the model tasks take the GPU one at a time while another thread reduces statistics."""
    if not uses_gpu(device):
        return kwargs
    threads = kwargs.get("n_workers", 1) * kwargs.get("threads_per_worker", 1)
    return kwargs | {"n_workers": 1, "threads_per_worker": max(threads, 2), "resources": {GPU: 1}}


def statistics_cluster(memory_limit: str | int, statistics_workers: int = STATISTICS_WORKERS, **kwargs: Any):
    """A ``LocalCluster`` of ``kwargs`` (the flow's workers, each offering :data:`FLOW` on top
    of its own ``resources``) plus ``statistics_workers`` worker processes with ``memory_limit``
    each (bytes or a size such as ``"1GB"``), one thread each, offering
    :data:`~tasks.mining.STATS` (see the module's docstring). Each is a Dask nanny and its
    worker started as ``python -m dask spec``, not spawned from this process: a spawned process
    imports this one's main module again (the CLI's imports torch). The scheduler listens on
    TCP (worker processes cannot reach an in-process one)."""
    from distributed import LocalCluster
    from distributed.deploy.subprocess import SubprocessWorker

    from tasks.mining import STATS

    resources = dict(kwargs.pop("resources", None) or {}) | {FLOW: 1}
    cluster = LocalCluster(**kwargs, resources=resources, protocol="tcp://", host="127.0.0.1")
    try:
        for i in range(statistics_workers):
            cluster.worker_spec[f"statistics-{i}"] = {"cls": SubprocessWorker, "options": {
                "worker_class": "distributed.Nanny", "name": f"statistics-{i}",
                "worker_kwargs": {"nthreads": 1, "memory_limit": memory_limit, "resources": {STATS: 1}}}}
        cluster.sync(cluster._correct_state)
        cluster.wait_for_workers(len(cluster.worker_spec), timeout=120)
    except BaseException:
        cluster.close()
        raise
    return cluster


class ClusterTaskRunner(DaskTaskRunner):
    """prefect-dask's ``DaskTaskRunner`` (same arguments) that asks for the :data:`GPU`
    resource for tasks on an accelerator and can tell a waiting flow that its tasks have no
    worker (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gpu_runs: set = set()
        self._stuck_since: float | None = None

    def submit(self, task, parameters, wait_for=None, dependencies=None):
        wanted = {FLOW: 1} if self.cluster_class is statistics_cluster else {}
        if uses_gpu(parameters.get("device")) or uses_gpu(parameters.get("fold_device")):
            wanted[GPU] = 1
        if not wanted:
            return super().submit(task, parameters, wait_for, dependencies)
        with dask.annotate(resources=wanted):
            future = super().submit(task, parameters, wait_for, dependencies)
        if GPU in wanted:
            self._gpu_runs.add(future.task_run_id)
        return future

    def check_workers(self, waiting: Iterable) -> None:
        """Raise :class:`NoWorkers` when, for :func:`no_workers_timeout` seconds in a row, no
        worker of the cluster could run the ``waiting`` futures (none at all, or none offering
        the GPU that some of them ask for)."""
        waiting = list(waiting)
        gpu = any(f.task_run_id in self._gpu_runs for f in waiting)
        workers = self._workers()
        able = [w for w in workers if not gpu or w.get("resources", {}).get(GPU, 0) >= 1]
        if able or not waiting:
            self._stuck_since = None
            return
        now = time.monotonic()
        if self._stuck_since is None:
            self._stuck_since = now
        limit = no_workers_timeout()
        if now - self._stuck_since < limit:
            return
        where = f"the Dask cluster at {self.client.scheduler.address}"
        if gpu and workers:
            raise NoWorkers(
                f"no worker of {where} offers the {GPU} resource that tasks on an accelerator ask for "
                f"(waited {limit:.0f} s; {len(waiting)} tasks waiting); start GPU workers with "
                f"`dask worker {self.client.scheduler.address} --resources {GPU}=1` (one per GPU, "
                f"CUDA_VISIBLE_DEVICES set), or run with --device cpu"
            )
        raise NoWorkers(
            f"{where} has had no worker for {limit:.0f} s while {len(waiting)} tasks wait (its workers died "
            f"or were stopped, and none came back); start workers (`dask worker {self.client.scheduler.address}`) "
            f"and run again: finished chunks and pairs are kept. {NO_WORKERS_ENV} sets how long to wait"
        )

    def _workers(self) -> list[dict]:
        """Every worker's scheduler record (``n_workers=-1``: newer clients list 5 by default)."""
        try:
            info = self.client.scheduler_info(n_workers=-1)
        except TypeError:  # distributed before 2025: no n_workers, every worker listed
            info = self.client.scheduler_info()
        return list(info["workers"].values())
