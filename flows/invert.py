"""Inversion flows: one image per job, locally as mapped tasks or as runs of the ``invert``
deployment on the ``gpu`` work pool (composes tasks and deployments only)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger, unmapped
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field

from rosetta_core.inversion.jobs import job_done
from tasks import inversion as t

DEPLOYMENT = "invert-image/invert"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class InvertSettings(BaseModel):
    """Settings of one inversion job (see ``rosetta_core.inversion.jobs.JobSettings``)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["ood", "rec"] = "ood"
    encoders: list[str] = Field(default_factory=list, description="empty: every encoder of the run")
    steps: int = Field(500, ge=1)
    seed: int = Field(0, ge=0)
    alpha: float = Field(0.1, ge=0)
    beta: float = Field(1.0, ge=0)
    pixel: Literal["l2", "l1", "none"] = "l2"
    reg: Literal["l2", "l1"] = "l2"
    reg_center: Literal["prior", "zero"] = "zero"
    act: Literal["dataset", "image"] = "dataset"
    lr: float | None = None
    perceptual_encoder: str = "mini-resnet.sup"
    device: str = "cpu"


def default_out(run: str) -> str:
    return str(Path(run) / "inversions")


@flow(name="invert-image", log_prints=True)
def invert_image(run: str, image: str, out: str | None = None, settings: InvertSettings = InvertSettings()) -> dict:
    """Invert one image into the run's generator (the unit of work of the ``invert`` deployment)."""
    return t.invert_image(run, image, out or default_out(run), settings.model_dump())


def _done(run: str, image: str, out: str, settings: InvertSettings) -> bool:
    job = t.settings_from(settings.model_dump())
    return job_done(Path(out) / Path(image).stem, job.record() | {"image": str(Path(image).resolve())})


def _outcome(out: str, image: str) -> dict:
    """What a job left in its folder: its metrics, or its error."""
    folder = Path(out) / Path(image).stem
    for name in ("metrics.json", "error.json"):
        if (folder / name).is_file():
            return json.loads((folder / name).read_text()) | {"image": image}
    return {"image": image, "error": "no output was written (the run failed or crashed)"}


def _pool_limit(pool: str, limit: int | None) -> int:
    from prefect.client.orchestration import get_client

    if limit:
        return limit
    with get_client(sync_client=True) as client:
        found = client.read_work_pool(pool).concurrency_limit
    return found or 4


def _deployed(run: str, todo: list[str], out: str, settings: InvertSettings, deployment: str, pool: str,
              limit: int | None, poll: float) -> dict[str, str]:
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
                params = {"run": run, "image": image, "out": out, "settings": settings.model_dump()}
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
def invert_batch(run: str, images: list[str], out: str | None = None, settings: InvertSettings = InvertSettings(),
                 deployment: str | None = None, pool: str = "gpu", limit: int | None = None, poll: float = 2.0) -> dict:
    """One job per image, skipping images already done with the same settings.

    ``deployment=None``: mapped tasks in this process. Otherwise runs of that deployment (e.g.
    ``"invert-image/invert"``) on work pool ``pool``, at most ``limit`` (default: the pool's
    concurrency limit, else 4) in flight. Returns ``{"done", "skipped", "failed"}``; a bad image
    is reported in ``failed`` and the others go on.
    """
    out = out or default_out(run)
    skipped = [i for i in images if _done(run, i, out, settings)]
    todo = [i for i in images if i not in skipped]
    if deployment is None:
        futures = t.invert_image.map(unmapped(run), todo, unmapped(out), unmapped(settings.model_dump()))
        for future in futures:
            future.wait()
        states = {i: ("COMPLETED" if f.state.is_completed() else f.state.type.value) for i, f in zip(todo, futures)}
    else:
        states = _deployed(run, todo, out, settings, deployment, pool, limit, poll)
    outcomes = {i: _outcome(out, i) for i in todo}
    failed = {i: o.get("error") or f"run ended {states.get(i)}" for i, o in outcomes.items()
              if "error" in o or states.get(i) != "COMPLETED"}
    summary = {"done": [i for i in todo if i not in failed], "skipped": skipped, "failed": failed, "out": out}
    for image, message in failed.items():
        print(f"FAILED {image}: {message}")
    print(f"inverted {len(summary['done'])}, skipped {len(skipped)} (already done), failed {len(failed)}; outputs in {out}")
    return summary
