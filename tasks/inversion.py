"""Thin Prefect tasks of guided inversion; each wraps one rosetta_core.inversion.jobs call and
passes only references (the run's location, the image path, the output folder) and the job's
:class:`~rosetta_core.inversion.InversionConfig`, checked once where the flow started."""

from __future__ import annotations

import threading
from pathlib import Path

from prefect import task

from rosetta_core.inversion import InversionConfig, jobs, open_run
from rosetta_core.zoo.plugins import load_plugins

#: one optimisation at a time per process: the cached models carry temporary forward hooks
_MODELS = threading.Lock()


@task(name="invert-image", tags=["invert"], retries=1, retry_delay_seconds=2)
def invert_image(where: str, image: str, out: str, config: InversionConfig, device: str = "cpu",
                 plugins: list[str] = ()) -> dict:
    """Invert one image file; a bad image gives ``{"image", "error"}`` (and ``error.json`` in
    its folder) instead of failing, so a batch continues past it. ``plugins``: the flow's plugin
    modules, imported in this task's process."""
    load_plugins(plugins, option="plugins")
    try:
        with _MODELS, jobs.step_bar(Path(image).name, config.steps) as progress:
            return jobs.invert_file(open_run(where), image, out, config, progress, device)
    except ValueError as err:
        return jobs.record_error(out, image, str(err))
