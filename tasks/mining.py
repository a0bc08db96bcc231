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


@task(task_run_name=_pair_name, tags=["statistics"], **RETRY)
def pair_statistics(where: str, a: str, b: str | None, null: bool = False, stats_device: str | None = None) -> dict:
    """Co-moments of a model pair, reduced on the Dask cluster this task runs on; with an
    accelerator ``stats_device`` its chunk tasks ask for the ``GPU`` resource (this task only
    waits for them, so it asks for none)."""
    with _on_this_cluster() as client:
        if client is not None and stats_device and stats_device.split(":")[0] != "cpu":
            _require_gpu_workers(client, stats_device)
        return statistics.pair_statistics(Run.open(where, mode="a"), a, b, null, device=stats_device)


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
