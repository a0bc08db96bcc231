"""Thin Prefect tasks of a mining run; each wraps one ``rosetta_core.run`` step and passes only
references (the run's location, model names, chunk numbers), never arrays.

Run names say what each task does (``extract mini-vit.mae chunk 3/16``), so the Prefect UI's
timeline shows which model or pair is slow.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect import task

from rosetta_core.data.image_source import ImageIndex
from rosetta_core.run import MineConfig, Run, plan_run
from rosetta_core.run import extraction, folding, outputs, statistics
from rosetta_core.zoo.plugins import load_plugins

RETRY = {"retries": 2, "retry_delay_seconds": 2}


def _chunk_name(verb: str):
    def name(parameters: dict) -> str:
        who = parameters.get("model")
        return f"{verb}{' ' + who if who else ''} chunk {parameters['chunk'] + 1}/{parameters['chunks']}"

    return name


def _pair_name(parameters: dict) -> str:
    a, b = parameters["a"], parameters["b"] or parameters["a"]
    return f"statistics {a} x {b}" + (" (shuffled null)" if parameters.get("null") else "")


def _merge_name(parameters: dict) -> str:
    first, stop = parameters["first"] + 1, parameters["stop"]
    return f"merge folds of chunks {first}-{stop}/{parameters['chunks']}"


def _prepare_name(parameters: dict) -> str:
    config = parameters["config"]
    return f"prepare {config.generator or 'images ' + str(config.images)} run"


@task(task_run_name=_prepare_name, **RETRY)
def prepare_run(where: str, config: MineConfig, overwrite: bool = False, device: str = "cpu",
                plugins: list[str] = (), index: ImageIndex | None = None) -> int:
    """Plan the run (load the models, probe their layers) and create the store; returns the
    number of image chunks. ``plugins``: the flow's plugin modules, imported on this worker;
    ``index``: an image run's files, as the flow listed and checked them."""
    load_plugins(plugins, option="plugins")
    plan = plan_run(config, device, index)
    extraction.prepare_store(Run(where, config), plan, overwrite=overwrite, index=index)
    return len(plan.chunks)


@task(task_run_name=_chunk_name("generate"), tags=["generate"], **RETRY)
def generate_chunk(where: str, chunk: int, chunks: int, device: str = "cpu", plugins: list[str] = ()) -> str:
    load_plugins(plugins, option="plugins")
    return extraction.generate_chunk(Run.open(where, mode="a"), chunk, device)


@task(task_run_name=_chunk_name("extract"), tags=["extract"], **RETRY)
def extract_chunk(where: str, model: str, chunk: int, chunks: int, device: str = "cpu", plugins: list[str] = ()) -> str:
    load_plugins(plugins, option="plugins")
    return extraction.extract_chunk(Run.open(where, mode="a"), model, chunk, device)


@task(task_run_name=_chunk_name("fold"), tags=["extract"], **RETRY)
def fold_chunk(where: str, chunk: int, chunks: int, device: str = "cpu", plugins: list[str] = (),
               fold_device: str | None = None) -> str:
    """A run that keeps no activations: one chunk's images, every model's maps and every pair's
    co-moments, folded on this worker (the maps never leave it); ``fold_device``: the engine
    that folds (the run's ``--stats-device``; an accelerator asks for the ``GPU`` resource too)."""
    load_plugins(plugins, option="plugins")
    return folding.fold_chunk(Run.open(where, mode="a"), chunk, device, fold_device)


@task(task_run_name=_merge_name, tags=["statistics"], **RETRY)
def merge_folds(where: str, first: int, mid: int, stop: int, chunks: int) -> str:
    """Merge the folded co-moments of chunks ``first:mid`` and ``mid:stop`` (every pair)."""
    return folding.merge_folds(Run.open(where, mode="a"), first, mid, stop)


#: the Dask resource of workers set apart for the statistics' reduction tasks (a local cluster
#: started with a memory limit: :func:`flows.cluster.statistics_cluster`); where some worker
#: offers it, those tasks ask for it
STATS = "STATS"


@task(task_run_name=_pair_name, tags=["statistics"], **RETRY)
def pair_statistics(where: str, a: str, b: str | None, null: bool = False, stats_device: str | None = None,
                    memory_limit: str | int | None = None) -> dict:
    """Co-moments of a model pair, reduced on the Dask cluster this task runs on; with an
    accelerator ``stats_device`` its chunk tasks ask for the ``GPU`` resource (this task only
    waits for them, so it asks for none). ``memory_limit`` (bytes, or a size such as ``"24GB"``):
    the memory of one worker that runs the reduction tasks; default: the Dask workers' own limit,
    else 80% of this machine's RAM (of the GPU's memory for an accelerator ``stats_device``).
    Its tasks take at most :func:`~rosetta_core.engine.planner.task_budget` of it: a pair whose
    tasks would take more is reduced in blocks of units."""
    with _on_this_cluster() as client:
        gpu = bool(stats_device) and stats_device.split(":")[0] != "cpu"
        if client is not None and gpu:
            _require_gpu_workers(client, stats_device)
        workers = _workers(client)
        resources = {STATS: 1} if not gpu and any(w.get("resources", {}).get(STATS, 0) >= 1 for w in workers) else None
        budget = memory_budget(client, workers, memory_limit, stats_device, resources)
        return statistics.pair_statistics(Run.open(where, mode="a"), a, b, null, device=stats_device, budget=budget,
                                          resources=resources)


def _workers(client) -> list[dict]:
    """Every worker's scheduler record (none off a cluster)."""
    if client is None:
        return []
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # distributed before 2025: every worker listed
        info = client.scheduler_info()
    return [worker | {"address": address} for address, worker in info["workers"].items()]


def memory_budget(client, workers: list[dict], memory_limit: str | int | None, stats_device: str | None,
                  resources: dict | None) -> int:
    """The bytes one reduction task may take: ``memory_limit`` (or its default, see
    :func:`pair_statistics`) shared by the threads of a worker that runs those tasks (the
    workers offering ``resources``, else any; one task at a time on a GPU)."""
    from dask.utils import parse_bytes

    from rosetta_core.engine.planner import machine_memory_limit, task_budget

    gpu = bool(stats_device) and stats_device.split(":")[0] != "cpu"
    runs = [w for w in workers if all(w.get("resources", {}).get(k, 0) >= v for k, v in (resources or {}).items())]
    threads = 1 if gpu else max((int(w.get("nthreads") or 1) for w in runs), default=1)
    if memory_limit is not None:
        limit = parse_bytes(memory_limit) if isinstance(memory_limit, str) else int(memory_limit)
    elif gpu:
        limit = _gpu_memory_limit(client, workers, stats_device)
    else:
        limits = [int(w["memory_limit"]) for w in runs if w.get("memory_limit")]
        limit = min(limits) if limits else machine_memory_limit()
    return task_budget(limit, threads)


def _gpu_memory_limit(client, workers: list[dict], stats_device: str) -> int:
    """80% of the GPU's memory: here when this process sees CUDA, else on a GPU worker."""
    import torch

    from rosetta_core.engine.planner import machine_memory_limit

    if torch.cuda.is_available() or client is None:
        return machine_memory_limit(stats_device)
    gpu = [w["address"] for w in workers if w.get("resources", {}).get("GPU", 0) >= 1]
    return int(next(iter(client.run(machine_memory_limit, stats_device, workers=gpu[:1]).values())))


def _require_gpu_workers(client, stats_device: str) -> None:
    """A clear error instead of a wait without end when no worker offers the GPU resource."""
    resources = client.run_on_scheduler(lambda dask_scheduler: [dict(w.resources) for w in dask_scheduler.workers.values()])
    if not any(r.get("GPU", 0) >= 1 for r in resources):
        raise RuntimeError(f"--stats-device {stats_device}: no worker of the Dask cluster offers the GPU resource; "
                           "start GPU workers with `dask worker SCHEDULER --resources GPU=1` (or dask-cuda), "
                           "or leave --stats-device out to reduce on the CPUs")


@contextmanager
def _on_this_cluster() -> Iterator[object | None]:
    """Send dask graphs to the cluster of the Dask worker running this task (the flow's
    ``DaskTaskRunner``), leaving the worker's thread to the graph's own tasks while it waits;
    off a Dask worker, dask's local scheduler runs them. Yields the cluster's client (or None)."""
    from distributed import get_worker, rejoin, secede
    from prefect_dask import get_dask_client

    try:
        get_worker()
    except ValueError:
        yield None
        return
    with get_dask_client() as client:
        secede()
        try:
            yield client
        finally:
            rejoin()


@task(task_run_name="dictionary", **RETRY)
def write_dictionary(where: str) -> dict:
    content = outputs.write_dictionary(Run.open(where, mode="a"))
    return {"concepts": len(content["concepts"]), "rosetta_units": content["rosetta_units"]}


@task(task_run_name="report", **RETRY)
def render_report(where: str, plugins: list[str] = ()) -> str:
    """The HTML report (a run that keeps no activations runs its models on the example images:
    ``plugins`` are imported for them)."""
    from rosetta_core.report import render_report

    load_plugins(plugins, option="plugins")
    return str(render_report(where))


@task(task_run_name="manifest")
def write_manifest(where: str, seconds: dict) -> dict:
    run = Run.open(where, mode="a")
    return outputs.write_manifest(run, run.dictionary, seconds)
