"""Thin Prefect tasks of a mining run; each wraps one rosetta_core function and passes only
references (run directory or URL, model names, chunk numbers), never arrays."""

from __future__ import annotations

from prefect import task

from rosetta_core.run import location, mining, results
from rosetta_core.run.store import RunStore

RETRY = {"retries": 2, "retry_delay_seconds": 2}


def _open(run_dir: str) -> tuple[RunStore, mining.RunPlan]:
    store = RunStore(location.join(run_dir, "store.zarr"))
    return store, mining.load_plan(store)


@task(name="prepare-run", **RETRY)
def prepare_run(run_dir: str, config: dict, overwrite: bool = False, device: str = "cpu") -> int:
    """Plan the run (layers, shapes) and create the store; returns the number of chunks."""
    cfg = mining.MineConfig(**(config | {"encoders": tuple(config["encoders"])}))
    plan = mining.plan_run(cfg, device)
    store = RunStore(location.join(run_dir, "store.zarr"))
    mining.init_store(store, plan, overwrite=overwrite)
    return len(plan.chunks)


@task(name="generate-chunk", tags=["generate"], **RETRY)
def generate_chunk(run_dir: str, chunk: int, device: str = "cpu") -> str:
    store, plan = _open(run_dir)
    return mining.generate_chunk(store, plan, chunk, device)


@task(name="extract-chunk", tags=["extract"], **RETRY)
def extract_chunk(run_dir: str, model: str, chunk: int, device: str = "cpu") -> str:
    store, plan = _open(run_dir)
    return mining.extract_chunk(store, plan, model, chunk, device)


@task(name="pair-statistics", tags=["statistics"], **RETRY)
def pair_statistics(run_dir: str, a: str, b: str | None, null: bool = False, dask_address: str | None = None) -> dict:
    """Co-moments of a model pair reduced on the Dask cluster at ``dask_address``."""
    store, plan = _open(run_dir)
    if dask_address is None:
        return results.pair_statistics(store, plan, a, b, null)
    from distributed import Client

    with Client(dask_address, set_as_default=True):
        return results.pair_statistics(store, plan, a, b, null)


@task(name="write-dictionary", **RETRY)
def write_dictionary(run_dir: str) -> dict:
    store, plan = _open(run_dir)
    content = results.write_dictionary(run_dir, store, plan)
    return {"concepts": len(content["concepts"]), "rosetta_units": content["rosetta_units"]}


@task(name="render-report", **RETRY)
def render(run_dir: str) -> str:
    from rosetta_core.report import render_report

    return str(render_report(run_dir))


@task(name="write-manifest")
def write_manifest(run_dir: str, seconds: dict) -> dict:
    import json

    store, plan = _open(run_dir)
    dictionary = json.loads(location.read_text(location.join(run_dir, "dictionary.json")))
    return results.write_manifest(run_dir, store, plan, dictionary, seconds)
