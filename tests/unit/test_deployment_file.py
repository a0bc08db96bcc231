"""deployments/prefect.yaml as written: every deployment's parameters are its flow's, pass
Prefect's own parameter validation, and give a configuration that passes the flow's checks
with the same defaults as the command line."""

from __future__ import annotations

import importlib

import pytest
from prefect_server import deployment_entry

from rosetta_core.inversion import InversionConfig
from rosetta_core.run import MineConfig
from rosetta_core.run.models import check_models

pytestmark = pytest.mark.unit


def _flow(entrypoint: str):
    path, name = entrypoint.split(":")
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)


@pytest.mark.parametrize(("name", "entrypoint", "pool", "default", "per_run"), [
    ("mine", "flows/mine.py:mine", "cpu", MineConfig(), {}),
    ("mine-images", "flows/mine.py:mine", "cpu", MineConfig(), {}),
    ("invert", "flows/invert.py:invert_image", "gpu", InversionConfig(), {"image": "scene.png"}),  # one run per image
])
def test_each_deployment_runs_as_written(name, entrypoint, pool, default, per_run):
    entry = deployment_entry(name)
    assert entry["entrypoint"] == entrypoint and entry["work_pool"]["name"] == pool
    flow = _flow(entrypoint)
    config = flow.validate_parameters(entry["parameters"] | per_run)["config"]  # what a worker's run receives
    assert type(config) is type(default)
    config.validate()
    if isinstance(config, MineConfig):
        check_models(config)  # the models exist and ship weights
        assert config.center == default.center and config.encoders == default.encoders
    else:
        assert config.mode == default.mode
        from flows.cli_invert import OOD_DEFAULTS

        if config.mode == "ood":  # the settings `rosetta invert --mode ood` takes (validated on sketches and cartoons)
            assert {k: getattr(config, k) for k in OOD_DEFAULTS} == OOD_DEFAULTS
