"""The mining flow: validate, then generate, extract, reduce, match and report (composes tasks
only). The Python API, the CLI (`rosetta mine`) and the `mine` deployment all run this flow
with the same :class:`~rosetta_core.run.MineConfig`, so they all get the same checks and the
same one-line errors before anything is computed."""

from __future__ import annotations

import os
import re
import time

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact

from rosetta_core.data.image_source import ImageIndex
from rosetta_core.run import MineConfig, Run, location
from rosetta_core.run.concept_checks import companion_location
from rosetta_core.run.folding import fold_steps
from rosetta_core.zoo.plugins import load_plugins
from tasks import mining as t

from flows import cluster, progress  # absolute: a deployment loads this file by path, outside the package

#: the cluster a run starts when it is given no Dask scheduler address: 2 worker threads in the
#: flow's process. Measured on 2 loaded cores (rosetta mine --n 256): 60 s with threads against
#: 131-137 s with 2 worker processes, which each import torch and load every model again
#: (bench/results/mine-local-cluster.json). Give --dask-address for separate worker machines.
LOCAL_CLUSTER = {
    "n_workers": 2,
    "threads_per_worker": 1,
    "processes": False,
    "dashboard_address": ":0",  # a free port: runs side by side never fight over 8787
}


def default_out(config: MineConfig) -> str:
    """``runs/<generator>``, or ``runs/<source name>`` for an image run."""
    if config.images is not None:
        from rosetta_core.data.image_source import source_label

        return f"runs/{source_label(config.images)}"
    return f"runs/{config.generator}"


def task_runner(dask_address: str | None, device: str = "cpu", stats_device: str | None = None,
                memory_limit: str | None = None) -> cluster.ClusterTaskRunner:
    """The Dask cluster the run's tasks go to: the scheduler at ``dask_address``, or a
    :data:`LOCAL_CLUSTER` in this process that lives as long as the run (on an accelerator,
    one worker with one ``GPU`` resource: :func:`flows.cluster.local_cluster`). Tasks that run
    models on an accelerator ask for the ``GPU`` resource (:mod:`flows.cluster`). With a
    ``memory_limit`` and the statistics on the CPUs, the local cluster also starts worker
    processes with that limit for the statistics (:func:`flows.cluster.statistics_cluster`)."""
    if dask_address:
        return cluster.ClusterTaskRunner(address=dask_address)
    gpu = device if cluster.uses_gpu(device) else (stats_device or device)  # the local worker offers the GPU either way
    kwargs = cluster.local_cluster(LOCAL_CLUSTER, gpu)
    if memory_limit is not None and not cluster.uses_gpu(stats_device):
        return cluster.ClusterTaskRunner(cluster_class=cluster.statistics_cluster,
                                         cluster_kwargs=kwargs | {"memory_limit": memory_limit})
    return cluster.ClusterTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=kwargs)


def check_memory_limit(memory_limit: str | int | None) -> None:
    """``None`` or a size Dask reads (``24GB``, ``1.5 GiB``, bytes), at least 1 MB."""
    from dask.utils import parse_bytes

    if memory_limit is None:
        return
    try:
        value = parse_bytes(memory_limit) if isinstance(memory_limit, str) else int(memory_limit)
    except (ValueError, TypeError):
        value = None
    if value is None or value < 10**6:
        raise ValueError(f"memory_limit={memory_limit!r} is not a memory size of at least 1 MB; valid: e.g. 24GB, 1.5GiB, "
                         "or none for the Dask workers' own limit (else 80% of RAM)")


def check_stats_device(stats_device: str | None) -> None:
    """``None``, ``cpu`` or ``cuda[:N]`` (whether CUDA is there is the GPU workers' business)."""
    if stats_device is not None and not re.fullmatch(r"cpu|cuda(:\d+)?", str(stats_device)):
        raise ValueError(f"stats_device={stats_device!r} is not a device of the statistics engine; valid: cpu, cuda, "
                         "cuda:N, or none for the numpy engine")


@flow(name="mine", on_running=[progress.announce_ui])
def mine(config: MineConfig = MineConfig(), out: str | None = None, device: str = "cpu",
         dask_address: str | None = None, overwrite: bool = False, plugins: list[str] = [],
         stats_device: str | None = None, memory_limit: str | None = None) -> dict:
    """Mine Rosetta Neurons of ``config.generator`` against ``config.encoders`` (or, with
    ``config.images``, of the encoders against each other on those images) into ``out`` (a
    directory or an fsspec URL such as ``s3://bucket/runs/x``; default ``runs/<generator>`` or
    ``runs/<source name>``).

    ``device``: where the models run; ``dask_address``: an existing Dask scheduler (default: a
    local cluster for this run); ``overwrite``: discard a run of another configuration at
    ``out`` (a finished run of this configuration is kept); ``plugins``: modules that register
    more models (``--plugin``), imported here and by every task; ``stats_device``: None
    reduces the pair statistics with the numpy engine on the workers' CPUs, a torch device
    (``cuda``) with the torch engine there (tasks ask for the ``GPU`` resource);
    ``memory_limit``: the memory of one worker that reduces statistics (``24GB``; default: the
    Dask workers' own limit, else 80% of RAM, of the GPU's memory for GPU statistics): a pair
    whose tasks would exceed 80% of it is reduced in blocks of units, and a local cluster starts
    worker processes with that limit for the statistics. Returns ``{"location", "report", "summary", "status"}``; ``status`` is
    ``"complete"`` when the run was already finished and nothing was computed."""
    load_plugins(plugins, option="plugins")
    check_stats_device(stats_device)
    check_memory_limit(memory_limit)
    run = Run(out or default_out(config), config)
    run.validate(overwrite)  # the one place every caller's input is checked
    logger = get_run_logger()
    done = run.finished()  # this configuration (and data) is complete there: --overwrite has nothing to discard
    if done is not None:
        logger.info(f"{run.location} is already complete (manifest.json matches this configuration); nothing to do")
        return {"location": run.location, "report": run.report_path, "summary": done["summary"], "status": "complete"}
    index = None
    if config.images is not None:
        index = run.image_index  # listed, hashed and decode-checked by run.validate
        logger.info(f"images: {len(index.files)} readable files in {config.images}"
                    + (f", {len(index.skipped)} skipped (listed in manifest.json)" if index.skipped else ""))
    companion, before = _companion(run, overwrite), {}
    with run.lock():
        if companion is not None:  # first: the run's dictionary reads the companion's tables
            logger.info(f"random-init companion: {companion.location} (every model but the anchor at random init)")
            began = time.perf_counter()
            with companion.lock():
                stages = compute.with_options(task_runner=task_runner(dask_address, device, stats_device, memory_limit),
                                              flow_run_name="random-init companion")
                stages(companion.location, companion.config, device, overwrite, plugins, index, stats_device, memory_limit)
            before["random_init_companion"] = time.perf_counter() - began
        stages = compute.with_options(task_runner=task_runner(dask_address, device, stats_device, memory_limit))
        summary, counts = stages(run.location, config, device, overwrite, plugins, index, stats_device, memory_limit,
                                 before)
    _artifact(run, summary, counts)
    logger.info(f"report: {run.report_path}{_viewing(run.report_path)}")
    return {"location": run.location, "report": run.report_path, "summary": summary, "status": "computed"}


def _companion(run: Run, overwrite: bool) -> Run | None:
    """The run's random-init companion still to mine (checked like the run itself), or None:
    not asked for (``random_init=False``), every other model random already, or finished."""
    config = run.config.random_init_companion()
    if config is None:
        return None
    companion = Run(companion_location(run.location), config)
    if config.images is not None:
        companion.__dict__["image_index"] = run.image_index  # the same files: listed and hashed once
    companion.validate(overwrite)
    return None if companion.finished() is not None else companion


@flow(name="mine-stages")
def compute(where: str, config: MineConfig, device: str = "cpu", overwrite: bool = False,
            plugins: list[str] = [], index: ImageIndex | None = None,
            stats_device: str | None = None, memory_limit: str | None = None,
            seconds_before: dict[str, float] | None = None) -> tuple[dict, dict]:
    """The stages of a mining run on the flow's Dask cluster; the caller holds the run's lock.
    ``index``: an image run's files (the flow listed them); ``memory_limit``: see :func:`mine`;
    ``seconds_before``: stages the flow ran before this one (the random-init companion), recorded
    first in the manifest's ``seconds``."""
    logger = get_run_logger()
    seconds: dict[str, float] = dict(seconds_before or {})
    start = time.perf_counter()
    n_chunks = progress.drain([t.prepare_run.submit(where, config, overwrite, device, plugins, index)], "prepare")[0]
    seconds["prepare"] = time.perf_counter() - start

    if config.activations == "none":
        stage = time.perf_counter()
        done = progress.drain(_fold(where, n_chunks, device, plugins, stats_device), "fold")
        seconds["fold"] = time.perf_counter() - stage
        logger.info(f"fold: {n_chunks} chunks, every model and pair folded, no activations kept "
                    f"({done.count('computed')} tasks computed, {done.count('skipped')} already done)")
    else:
        _generate_and_extract(where, config, n_chunks, device, plugins, seconds)

    stage = time.perf_counter()
    pairs = config.pairs  # every other model, the anchor itself, a shuffled null per other model
    jobs = [t.pair_statistics.submit(where, a, b, null, stats_device, memory_limit) for a, b, null in pairs]  # all at once: Dask interleaves them
    for i, got in progress.completed(jobs, "statistics"):
        (a, b, null), mean = pairs[i], got["mean_correlation"]
        logger.info(f"statistics {Run.pair_name(a, b, null)}: {got['best_buddies']} best buddies, mean r "
                    f"{'-' if mean is None else f'{mean:.3f}'} ({got['status']})")
    seconds["statistics"] = time.perf_counter() - stage

    stage = time.perf_counter()
    counts = progress.drain([t.write_dictionary.submit(where)], "dictionary")[0]
    logger.info(f"dictionary: {counts['concepts']} concepts from {counts['rosetta_units']} Rosetta units")
    progress.drain([t.render_report.submit(where, plugins)], "report")
    seconds["dictionary_and_report"] = time.perf_counter() - stage
    manifest = t.write_manifest.submit(where, seconds).result()
    return manifest["summary"], counts


def _generate_and_extract(where: str, config: MineConfig, n_chunks: int, device: str, plugins: list[str],
                          seconds: dict[str, float]) -> None:
    """The activations of every model, one task per (model, chunk), into the store."""
    logger = get_run_logger()
    if config.generator is not None:
        stage = time.perf_counter()
        done = progress.drain([t.generate_chunk.submit(where, c, n_chunks, device, plugins) for c in range(n_chunks)],
                              "generate")
        seconds["generate"] = time.perf_counter() - stage
        logger.info(f"generate: {config.n} images in {n_chunks} chunks ({done.count('computed')} computed, "
                    f"{done.count('skipped')} already done)")

    stage = time.perf_counter()
    encoders = sorted(config.encoders, key=lambda m: m != config.anchor_model)  # an image run's anchor stores the images
    jobs = [t.extract_chunk.submit(where, m, c, n_chunks, device, plugins) for m in encoders for c in range(n_chunks)]
    done = progress.drain(jobs, "extract")
    seconds["extract"] = time.perf_counter() - stage
    logger.info(f"extract: {len(config.encoders)} encoders x {n_chunks} chunks ({done.count('computed')} computed, "
                f"{done.count('skipped')} already done)")


def _fold(where: str, n_chunks: int, device: str, plugins: list[str], stats_device: str | None = None) -> list:
    """A run that keeps no activations: one task per chunk folds every pair's co-moments (on
    the ``stats_device`` engine), and merge tasks combine them as a binary tree, each submitted
    right after the chunk that completes it (:func:`~rosetta_core.run.folding.fold_steps`), so
    the cluster merges as soon as it can and few partial co-moments wait on disk. Returns every
    task's future."""
    futures: dict[tuple[int, int], object] = {}
    for step in fold_steps(n_chunks):
        if step[0] == "chunk":
            c = step[1]
            futures[c, c + 1] = t.fold_chunk.submit(where, c, n_chunks, device, plugins, stats_device)
        else:
            _, first, mid, stop = step
            futures[first, stop] = t.merge_folds.submit(where, first, mid, stop, n_chunks,
                                                        wait_for=[futures[first, mid], futures[mid, stop]])
    return list(futures.values())


def _viewing(report: str) -> str:
    """How to open a report stored at a URL: a pre-signed https address on S3."""
    if not location.is_url(report):
        return ""
    url = location.view_url(report)
    return f" (open in a browser, valid 7 days: {url})" if url else " (copy it to a local file to open it)"


def summary_lines(where: str, report: str, summary: dict) -> list[str]:
    """The run's summary as terminal lines (the CLI prints them)."""
    lines = [f"run: {where}"]
    for pair, count in summary["best_buddies"].items():
        mean = summary["mean_best_buddy_correlation"][pair]
        lines.append(f"  {pair}: {count} best buddies, mean r {mean if mean is None else round(mean, 3)}")
    for pair, null in summary["null"].items():
        lines.append(f"  shuffled null {pair}: {null['best_buddies']} best buddies, mean r {round(null['mean_correlation'] or 0, 3)}")
    if "images" in summary:
        skipped = summary["images"]["skipped"]
        lines.append(f"  images: {summary['images']['used']} mined" + (
            f", {skipped} unreadable files skipped (listed in manifest.json)" if skipped else ""))
    lines.append(f"  Rosetta units: {summary['rosetta_units']}, concepts: {summary['concepts']}")
    truth = summary.get("ground_truth")
    if truth and truth.get("aligned") is not None:
        base = truth.get("random_baseline")
        lines.append(f"  ground truth: {truth['aligned']:.0%} of concepts aligned (IoU >= {truth['threshold']})"
                     + (f", layer-matched random groups {base:.0%}" if base is not None else ""))
    checks = summary.get("checks")
    if checks:
        said = []
        if checks.get("beat_null") is not None:
            said.append(f"{checks['beat_null']} of {checks['concepts']} beat the shuffled nulls")
        if checks.get("also_random") is not None:
            said.append(f"{checks['also_random']} also matched by random-init encoders")
        if said:
            lines.append(f"  concept checks: {', '.join(said)}")
    lines.append(f"  report: {report}{_viewing(report)}")
    return lines


def _artifact(run: Run, summary: dict, counts: dict) -> None:
    rows = "\n".join(
        f"| {pair} | {count} | {summary['mean_best_buddy_correlation'][pair]:.3f} |"
        for pair, count in summary["best_buddies"].items()
        if summary["mean_best_buddy_correlation"][pair] is not None
    )
    null = "\n".join(f"- shuffled null {k}: {v['best_buddies']} best buddies, mean r {v['mean_correlation'] or 0:.3f}"
                     for k, v in summary["null"].items())
    report = run.report_path
    link = location.view_url(report) if location.is_url(report) else None
    shown = f"[{report}]({link})" if link else f"`{report if location.is_url(report) else os.path.abspath(report)}`"
    create_markdown_artifact(
        key="mining-summary",
        markdown=(
            f"# Mining run `{run.location}`\n\n{counts['concepts']} concepts from {counts['rosetta_units']} Rosetta units "
            f"(centring: {summary['center']}).\n\n| pair | best buddies | mean r |\n|---|---|---|\n{rows}\n\n{null}\n\n"
            f"Report: {shown}\n"
        ),
        description="Rosetta Neurons mining summary",
    )
    if link:
        create_link_artifact(key="mining-report", link=link, link_text=f"report of {run.name}",
                             description="The run's HTML report (pre-signed, valid 7 days)")
