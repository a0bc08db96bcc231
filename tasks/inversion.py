"""Thin Prefect tasks of guided inversion; each wraps one rosetta_core.inversion.jobs call and
passes only references (run directory, image path, output folder, settings)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from prefect import task
from tqdm.auto import tqdm

from rosetta_core.inversion import jobs

#: one optimisation at a time per process: the cached models carry temporary forward hooks
_MODELS = threading.Lock()


def settings_from(params: dict) -> jobs.JobSettings:
    return jobs.JobSettings(**(params | {"encoders": tuple(params.get("encoders") or ())}))


def _bar(name: str, steps: int):
    bar = tqdm(total=steps, desc=name, unit="step", leave=True)

    def progress(step: int, total: int, loss: float) -> None:
        bar.n = step
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        if step == total or step % 10 == 0:
            bar.refresh()

    return bar, progress


@task(name="invert-image", tags=["invert"], retries=1, retry_delay_seconds=2)
def invert_image(run_dir: str, image: str, out: str, settings: dict) -> dict:
    """Invert one image file; a bad image gives ``{"image", "error"}`` (and ``error.json`` in
    its folder) instead of failing, so a batch continues past it."""
    job = settings_from(settings)
    try:
        with _MODELS:
            bar, progress = _bar(Path(image).name, job.steps)
            with bar:
                return jobs.invert_file(run_dir, image, out, job, progress)
    except ValueError as err:
        folder = Path(out) / Path(image).stem
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "error.json").write_text(json.dumps({"image": image, "error": str(err)}))
        return {"image": image, "error": str(err)}
