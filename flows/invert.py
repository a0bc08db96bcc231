"""Inversion flows: one image per job, locally as mapped tasks or as runs of the ``invert``
deployment on the ``gpu`` work pool (composes tasks and deployments only).

Both flows take the job's one :class:`~rosetta_core.inversion.InversionConfig` as ``config``
(the CLI builds it from its arguments; the deployment's ``config`` parameter holds its fields)
and check it, with the run, once at their start (:func:`~rosetta_core.inversion.jobs.check_job`).
``run`` and ``out`` may be directories or fsspec URLs such as ``s3://bucket/runs/x``."""

from __future__ import annotations

import time

from prefect import flow, get_run_logger, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from rosetta_core.inversion import InversionConfig, jobs
from rosetta_core.zoo.plugins import load_plugins
from tasks import inversion as t

DEPLOYMENT = "invert-image/invert"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@flow(name="invert-image", log_prints=True)
def invert_image(run: str, image: str, out: str | None = None, config: InversionConfig = InversionConfig(),
                 device: str = "cpu", plugins: list[str] = []) -> dict:
    """Invert one image into the run's generator (the unit of work of the ``invert`` deployment);
    ``out`` defaults to ``<run>/inversions``, ``device`` is where the models run, ``plugins``
    the modules that register the run's models if a plugin does (``--plugin``)."""
    load_plugins(plugins, option="plugins")
    jobs.check_job(run, config)
    return t.invert_image(run, image, out or jobs.default_out(run, "invert"), config, device, plugins)


def _pool_limit(pool: str, limit: int | None) -> int:
    from prefect.client.orchestration import get_client

    if limit:
        return limit
    with get_client(sync_client=True) as client:
        found = client.read_work_pool(pool).concurrency_limit
    return found or 4


def _deployed(run: str, todo: list[str], out: str, config: InversionConfig, device: str, deployment: str, pool: str,
              limit: int | None, poll: float, plugins: list[str]) -> dict[str, str]:
    """Trigger one run of ``deployment`` per image, at most the pool's limit in flight; returns
    image -> final state name."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    cap, pending, active, states = _pool_limit(pool, limit), list(todo), {}, {}
    logger = get_run_logger()
    with get_client(sync_client=True) as client:
        while pending or active:
            while pending and len(active) < cap:
                image = pending.pop(0)
                params = {"run": run, "image": image, "out": out, "config": config.record(), "device": device,
                          "plugins": list(plugins)}
                flow_run = run_deployment(deployment, parameters=params, timeout=0, as_subflow=True)
                active[flow_run.id] = image
                logger.info(f"{image}: flow run {flow_run.name} on pool {pool}")
            time.sleep(poll)
            for run_id, image in list(active.items()):
                state = client.read_flow_run(run_id).state
                if state is not None and state.type.value in TERMINAL:
                    states[image] = state.type.value
                    del active[run_id]
    return states


@flow(name="invert-batch", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=1))
def invert_batch(run: str, images: list[str], out: str | None = None, config: InversionConfig = InversionConfig(),
                 device: str = "cpu", deployment: str | None = None, pool: str = "gpu", limit: int | None = None,
                 poll: float = 2.0, plugins: list[str] = []) -> dict:
    """One job per image, skipping images already done with the same configuration.

    ``deployment=None``: mapped tasks in this process. Otherwise runs of that deployment (e.g.
    ``"invert-image/invert"``) on work pool ``pool``, at most ``limit`` (default: the pool's
    concurrency limit, else 4) in flight; ``plugins``: modules that register more models, imported
    here and by every job. Returns ``{"done", "skipped", "failed", "out"}``; a
    bad image is reported in ``failed`` and the others go on.
    """
    load_plugins(plugins, option="plugins")
    jobs.check_job(run, config)
    out = out or jobs.default_out(run, "invert")
    skipped = [i for i in images if jobs.job_done(jobs.image_folder(out, i), jobs.invert_record(config, i))]
    todo = [i for i in images if i not in skipped]
    if deployment is None:
        futures = t.invert_image.map(unmapped(run), todo, unmapped(out), unmapped(config), unmapped(device),
                                      unmapped(list(plugins)))
        for future in futures:
            future.wait()
        states = {i: ("COMPLETED" if f.state.is_completed() else f.state.type.value) for i, f in zip(todo, futures)}
    else:
        states = _deployed(run, todo, out, config, device, deployment, pool, limit, poll, plugins)
    outcomes = {i: jobs.outcome(out, i) for i in todo}
    failed = {i: o.get("error") or f"run ended {states.get(i)}" for i, o in outcomes.items()
              if "error" in o or states.get(i) != "COMPLETED"}
    summary = {"done": [i for i in todo if i not in failed], "skipped": skipped, "failed": failed, "out": out}
    for line in summary_lines(summary):
        print(line)
    return summary


def summary_lines(summary: dict) -> list[str]:
    """The batch's outcome as terminal lines (the CLI prints them)."""
    lines = [f"FAILED {image}: {message}" for image, message in summary["failed"].items()]
    return lines + [f"inverted {len(summary['done'])}, skipped {len(summary['skipped'])} (already done), "
                    f"failed {len(summary['failed'])}; outputs in {summary['out']}"]
