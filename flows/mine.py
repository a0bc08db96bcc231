"""The mining flow: generate, extract, reduce, match, report (composes tasks only)."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from rosetta_core.run import location
from rosetta_core.run.mining import DEFAULT_ENCODERS, MineConfig
from rosetta_core.run.lock import run_lock
from tasks import mining as t


class MineParams(BaseModel):
    """Parameters of a mining run, shared by the CLI, the flow and the deployments."""

    model_config = ConfigDict(extra="forbid")

    generator: str = "mini-gen"
    encoders: list[str] = Field(default_factory=lambda: list(DEFAULT_ENCODERS))
    n: int = Field(1600, description="images to generate and correlate over")
    k: int = Field(5, description="best-buddy K (paper Eq. 3)")
    seed: int = 0
    class_index: int | None = None
    out: str = Field("runs/mini-gen", description="run directory, or an fsspec URL (s3://bucket/runs/x) shared by all workers")
    weights: str = Field("trained", description="'trained', 'random' (null control) or a weights file")
    dask_address: str | None = Field(None, description="existing Dask scheduler; default: a LocalCluster")
    device: str = "cpu"
    chunk_size: int = 100
    dtype: Literal["float16", "float32"] = "float16"
    center: Literal["global", "position"] = "global"
    overwrite: bool = False
    layers: dict[str, list[str]] = Field(
        default_factory=dict, description="model -> glob patterns of the layers to hook (default: every layer)"
    )

    def mine_config(self) -> MineConfig:
        return MineConfig(
            generator=self.generator, encoders=tuple(self.encoders), n=self.n, k=self.k, seed=self.seed,
            chunk_size=self.chunk_size, dtype=self.dtype, center=self.center, weights=self.weights,
            class_index=self.class_index, layers={m: tuple(p) for m, p in self.layers.items()},
        )

    def config(self) -> dict:
        """The run's identity as recorded in its store and manifest."""
        return self.mine_config().identity()


def _mine_config(params: MineParams) -> dict:
    cfg = params.config()
    cfg.pop("code_version")
    return cfg


def _drain(futures, stage: str) -> list:
    results = []
    with tqdm(total=len(futures), desc=stage, unit="task") as bar:
        for future in as_completed(futures):
            results.append(future.result())
            bar.update()
    return results


@contextmanager
def _without_main_script():
    """Start processes without re-running this process's main script in each of them.

    multiprocessing's "spawn" (how Dask starts LocalCluster workers) re-imports the parent's
    ``__main__`` in every child. For ``rosetta`` that loads torch, timm and the model zoos:
    about 400 MB per worker that the reductions never use (they import rosetta_core's numpy
    code by name). Only the cluster start is affected; ``__main__`` is restored afterwards.
    """
    import sys

    main = sys.modules.get("__main__")
    saved = {key: getattr(main, key) for key in ("__file__", "__spec__") if hasattr(main, key)}
    try:
        if "__file__" in saved:
            del main.__file__
        if "__spec__" in saved:
            main.__spec__ = None
        yield
    finally:
        for key, value in saved.items():
            setattr(main, key, value)


@contextmanager
def _dask(address: str | None):
    """The scheduler address to reduce on: the given one, or a LocalCluster for this run."""
    if address:
        yield address
        return
    from distributed import LocalCluster

    env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with _without_main_script():
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, env=env)
    with cluster:
        yield cluster.scheduler_address


def _run_dir(out: str) -> str:
    """The run's location as passed to every task: a URL as given, a local path normalised."""
    return out.rstrip("/") if location.is_url(out) else str(Path(out))


def _finished(run_dir: str, params: MineParams) -> dict | None:
    if params.overwrite:
        return None
    try:
        content = json.loads(location.read_text(location.join(run_dir, "manifest.json")))
    except (FileNotFoundError, IsADirectoryError):
        return None
    return content if content.get("config") == params.config() else None


@flow(name="mine", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=2))
def mine(params: MineParams = MineParams()) -> dict:
    """Mine Rosetta Neurons of ``params.generator`` against ``params.encoders``."""
    run_dir = _run_dir(params.out)
    done = _finished(run_dir, params)
    if done is not None:
        print(f"{run_dir} is already complete (manifest.json matches this configuration); nothing to do")
        return done["summary"]
    seconds: dict[str, float] = {}
    with run_lock(run_dir):
        start = time.perf_counter()
        n_chunks = t.prepare_run(run_dir, _mine_config(params), params.overwrite, params.device)
        seconds["prepare"] = time.perf_counter() - start
        stage = time.perf_counter()
        _drain([t.generate_chunk.submit(run_dir, c, params.device) for c in range(n_chunks)], "images")
        seconds["generate"] = time.perf_counter() - stage
        stage = time.perf_counter()
        jobs = [t.extract_chunk.submit(run_dir, m, c, params.device) for m in params.encoders for c in range(n_chunks)]
        _drain(jobs, "models")
        seconds["extract"] = time.perf_counter() - stage
        stage = time.perf_counter()
        pairs = [(params.generator, e, False) for e in params.encoders] + [(params.generator, None, False)]
        pairs.append((params.generator, params.encoders[0], True))  # the shuffled null
        with _dask(params.dask_address) as address, tqdm(total=len(pairs), desc="pairs", unit="pair") as bar:
            for a, b, null in pairs:
                t.pair_statistics(run_dir, a, b, null, address)
                bar.update()
        seconds["statistics"] = time.perf_counter() - stage
        stage = time.perf_counter()
        counts = t.write_dictionary(run_dir)
        report = t.render(run_dir)
        seconds["dictionary_and_report"] = time.perf_counter() - stage
        manifest = t.write_manifest(run_dir, seconds)
    summary = manifest["summary"]
    _artifact(run_dir, report, summary, counts)
    _print_summary(run_dir, report, summary)
    return summary


def _viewing(report: str) -> str:
    """How to open a report stored at a URL: a pre-signed https address on S3."""
    if not location.is_url(report):
        return ""
    url = location.view_url(report)
    return f" (open in a browser, valid 7 days: {url})" if url else " (copy it to a local file to open it)"


def _artifact(run_dir: str, report: str, summary: dict, counts: dict) -> None:
    rows = "\n".join(
        f"| {pair} | {count} | {summary['mean_best_buddy_correlation'][pair]:.3f} |"
        for pair, count in summary["best_buddies"].items()
        if summary["mean_best_buddy_correlation"][pair] is not None
    )
    null = "\n".join(f"- shuffled null {k}: {v['best_buddies']} best buddies, mean r {v['mean_correlation'] or 0:.3f}" for k, v in summary["null"].items())
    create_markdown_artifact(
        key="mining-summary",
        markdown=(
            f"# Mining run `{run_dir}`\n\n{counts['concepts']} concepts from {counts['rosetta_units']} Rosetta units "
            f"(centring: {summary['center']}).\n\n| pair | best buddies | mean r |\n|---|---|---|\n{rows}\n\n{null}\n\n"
            f"Report: `{report if location.is_url(report) else Path(report).resolve()}`{_viewing(report)}\n"
        ),
        description="Rosetta Neurons mining summary",
    )


def _print_summary(run_dir: str, report: str, summary: dict) -> None:
    print(f"run: {run_dir}")
    for pair, count in summary["best_buddies"].items():
        mean = summary["mean_best_buddy_correlation"][pair]
        print(f"  {pair}: {count} best buddies, mean r {mean if mean is None else round(mean, 3)}")
    for pair, null in summary["null"].items():
        print(f"  shuffled null {pair}: {null['best_buddies']} best buddies, mean r {round(null['mean_correlation'] or 0, 3)}")
    print(f"  Rosetta units: {summary['rosetta_units']}, concepts: {summary['concepts']}")
    print(f"  report: {report}{_viewing(report)}")
