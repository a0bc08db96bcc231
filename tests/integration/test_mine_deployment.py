"""The `mine` deployment of deployments/prefect.yaml on a real Prefect server, run by a process
worker on the `cpu` pool: a small run to completion, a rerun that does nothing, and a bad
parameter that fails the flow run with the command line's one-line message."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from prefect_server import ROOT, deploy, prefect_server, worker

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
    proc = subprocess.run([sys.executable, "-c", TRIGGER, json.dumps(parameters)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=700)
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and line, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(line[-1][len("RESULT "):])


def test_the_deployments_own_parameters_are_a_valid_run():
    """The defaults as written: the file's `config` is a MineConfig that passes the flow's checks."""
    spec = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    mine = next(d for d in spec["deployments"] if d["name"] == "mine")
    assert mine["entrypoint"] == "flows/mine.py:mine" and mine["work_pool"]["name"] == "cpu"
    params = mine["parameters"]
    assert set(params) <= {"config", "out", "device", "dask_address", "overwrite"}
    config = MineConfig(**params["config"])
    assert config.center == MineConfig().center  # the same default as `rosetta mine`
    config.validate()
    from rosetta_core.run.models import check_models

    check_models(config)


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
    said = capsys.readouterr().err.strip()
    assert rc == 2 and said.startswith("rosetta mine: error: unknown model 'nope'")
    assert said.removeprefix("rosetta mine: error: ") in bad["message"]  # the same one line
    assert not (tmp_path / "bad").exists()  # refused before anything was created
