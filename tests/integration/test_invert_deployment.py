"""Per-image inversion jobs as deployment runs: a real Prefect server and a process worker on
localhost (CPU), the `invert` entry of deployments/prefect.yaml, a batch of 3 images, and a bad
`config` parameter that fails the flow run with the one-line message of the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from invert_support import scene_pngs, tiny_run
from prefect_server import deploy, prefect, prefect_server, run_script, worker


pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRIGGER = """
import json, sys
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from flows.invert import invert_batch
from rosetta_core.inversion import InversionConfig
run, out, images = sys.argv[1], sys.argv[2], sys.argv[3:]
summary = invert_batch(run, images, out, InversionConfig(steps=2, encoders=["mini-resnet.sup"]), device="cpu",
                       deployment="invert-image/invert", pool="gpu", poll=1.0)
with get_client(sync_client=True) as client:
    runs = client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["invert"])))
print("RESULT " + json.dumps({"summary": summary, "states": [r.state.type.value for r in runs]}))
"""

ONE = """
import json, sys
from prefect.deployments import run_deployment
run = run_deployment("invert-image/invert", parameters=json.loads(sys.argv[1]), timeout=300)
print("RESULT " + json.dumps({"state": run.state.type.value, "message": run.state.message or ""}))
"""


def test_invert_batch_runs_three_deployment_runs_on_a_process_worker(tmp_path):
    run_dir = tiny_run(tmp_path / "run")
    images = scene_pngs(tmp_path / "images", 3)
    out = tmp_path / "out"
    with prefect_server(tmp_path / "prefect-home") as env, worker("gpu", env):
        prefect("work-pool", "set-concurrency-limit", "gpu", "2", env=env)
        deploy("invert", env)

        first = run_script(env, TRIGGER, str(run_dir), str(out), *images)
        assert sorted(first["summary"]["done"]) == sorted(images), first
        assert first["summary"]["failed"] == {} and first["summary"]["skipped"] == []
        assert first["states"] == ["COMPLETED"] * 3
        for image in images:
            folder = out / Path(image).stem
            metrics = json.loads((folder / "metrics.json").read_text())
            assert metrics["steps"] == 2 and metrics["pairs"] > 0 and isinstance(metrics["psnr"], float)
            # the config crossed the deployment as the flow's `config` parameter, whole
            assert metrics["settings"]["steps"] == 2 and metrics["settings"]["encoders"] == ["mini-resnet.sup"]
            assert (folder / "result.png").stat().st_size > 0 and (folder / "latent.npy").is_file()

        again = run_script(env, TRIGGER, str(run_dir), str(out), *images)  # every image is done: no new runs
        assert sorted(again["summary"]["skipped"]) == sorted(images) and again["summary"]["done"] == []
        assert len(again["states"]) == 3

        params = {"run": str(run_dir), "image": images[0], "out": str(tmp_path / "bad"), "device": "cpu",
                  "config": {"steps": 2, "mode": "sideways"}}
        bad = run_script(env, ONE, json.dumps(params))
        assert bad["state"] == "FAILED" and "mode='sideways' is not supported; valid: ood, rec" in bad["message"], bad
        assert not (tmp_path / "bad").exists()  # refused before anything was written
