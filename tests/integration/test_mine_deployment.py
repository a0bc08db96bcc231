"""The `mine` deployment of deployments/prefect.yaml on a real Prefect server, run by a process
worker on the `cpu` pool: a small run to completion, a rerun that does nothing, and a bad
parameter that fails the flow run with the command line's one-line message."""

from __future__ import annotations

import json

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
