"""The `mine` deployment of deployments/prefect.yaml on a real Prefect server, run by a process
worker on the `cpu` pool: a small run to completion, a rerun that does nothing, and a bad
parameter that fails the flow run with the command line's one-line message."""

from __future__ import annotations

import json

import numpy as np
import pytest
from prefect_server import deploy, prefect_server, run_script, worker

from rosetta_core.run import MineConfig, Run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SMALL = {"encoders": ["mini-resnet.sup"], "n": 16, "k": 3, "chunk_size": 8, "weights": "random"}

TRIGGER = """
import json, sys
from prefect.deployments import run_deployment
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

run = run_deployment("mine/mine", parameters=json.loads(sys.argv[1]), timeout=600)
with get_client(sync_client=True) as client:
    children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])))
print("RESULT " + json.dumps({"state": run.state.type.value, "message": run.state.message or "",
                              "stages": len(children)}))
"""


def _run(env: dict, parameters: dict) -> dict:
    return run_script(env, TRIGGER, json.dumps(parameters))


def test_mine_deployment_runs_reruns_and_refuses_bad_input(tmp_path, capsys):
    out = tmp_path / "run"
    with prefect_server(tmp_path / "prefect-home") as env, worker("cpu", env):
        deploy("mine", env)
        first = _run(env, {"config": SMALL, "out": str(out)})
        assert first["state"] == "COMPLETED", first
        assert first["stages"] == 1  # the stages ran as the subflow on the Dask cluster
        run = Run.open(out)
        assert run.finished() is not None and run.config == MineConfig(**SMALL)

        again = _run(env, {"config": SMALL, "out": str(out)})
        assert again["state"] == "COMPLETED" and again["stages"] == 0  # finished: nothing to do

        bad = _run(env, {"config": SMALL | {"encoders": ["mini-resnet.sup", "nope"]}, "out": str(tmp_path / "bad")})
        assert bad["state"] == "FAILED"
    from flows.cli import main

    rc = main(["mine", "--weights", "random", "--encoders", "mini-resnet.sup,nope", "--n", "16", "--out", str(tmp_path / "bad")])
    said = capsys.readouterr().err.strip().splitlines()[-1]  # (after the UI address, when a server is set)
    assert rc == 2 and said.startswith("rosetta mine: error: unknown model 'nope'")
    assert said.removeprefix("rosetta mine: error: ") in bad["message"]  # the same one line
    assert not (tmp_path / "bad").exists()  # refused before anything was created


STATE = """
import json, sys
from prefect.client.orchestration import get_client

with get_client(sync_client=True) as client:
    deployment = client.read_deployment_by_name("mine/mine-images")
print("RESULT " + json.dumps({"active": [s.active for s in deployment.schedules],
                              "parameters": deployment.parameters}))
"""


def test_scheduled_dataset_mining_runs_on_a_folder_and_picks_up_new_files(tmp_path):
    """The `mine-images` deployment as written (its schedule inactive), pointed at a generated
    folder: it mines it, finds it complete when nothing changed, and replaces the run when new
    files arrive (its `overwrite: true`)."""
    from PIL import Image

    from prefect_server import deployment_entry
    from rosetta_core.data.scene_files import write_scenes

    folder = tmp_path / "incoming"
    write_scenes(folder, 12, seed=5)
    (folder / "broken.png").write_bytes(b"not a png")
    entry = deployment_entry("mine-images")
    config = entry["parameters"]["config"] | {"images": str(folder), "encoders": ["mini-resnet.sup", "mini-clip.rn"],
                                              "anchor": "mini-clip.rn", "k": 3, "chunk_size": 8, "weights": "random"}
    out = tmp_path / "run"
    with prefect_server(tmp_path / "prefect-home") as env, worker("cpu", env):
        deploy("mine-images", env)
        written = run_script(env, STATE)
        assert written["active"] == [False]  # the example schedule is off until switched on
        assert written["parameters"]["overwrite"] is True

        first = _run_named(env, "mine/mine-images", {"config": config, "out": str(out)})
        assert first["state"] == "COMPLETED", first
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["summary"]["images"] == {"used": 12, "skipped": 1}
        assert [s["file"] for s in manifest["images"]["skipped_files"]] == ["broken.png"]
        assert Run.open(out).config.anchor_model == "mini-clip.rn"

        same = _run_named(env, "mine/mine-images", {"config": config, "out": str(out)})
        assert same["state"] == "COMPLETED" and same["stages"] == 0  # unchanged data: nothing computed

        Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(folder / "late.png")
        grown = _run_named(env, "mine/mine-images", {"config": config, "out": str(out)})
        assert grown["state"] == "COMPLETED" and grown["stages"] == 1, grown
        assert Run.open(out).sources()[-1] == "scene_00011.png" and "late.png" in Run.open(out).sources()
        assert json.loads((out / "manifest.json").read_text())["summary"]["images"]["used"] == 13


def _run_named(env: dict, name: str, parameters: dict) -> dict:
    return run_script(env, TRIGGER.replace('"mine/mine"', repr(name)), json.dumps(parameters))
