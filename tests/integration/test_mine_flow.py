"""The mining flow under a real Prefect API, reducing on a Dask LocalCluster of 2 workers."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from rosetta_core.matching.dictionary import validate_dictionary

pytestmark = pytest.mark.integration


async def _task_runs(flow_run_id):
    """The flow run, the task runs of it and of its subflow (the stages on the Dask cluster),
    and its artifacts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

    async with get_client() as client:
        flow_run = await client.read_flow_run(flow_run_id)
        children = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])))
        ids = [flow_run_id, *(c.id for c in children)]
        runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
        artifacts = await client.read_artifacts()
    return flow_run, runs, [a for a in artifacts if a.flow_run_id == flow_run_id]


def test_mine_flow_end_to_end_and_rerun_does_nothing(prefect_api, tmp_path):
    from flows.mine import mine
    from rosetta_core.run import MineConfig

    config = MineConfig(encoders=["mini-resnet.sup", "mini-vit.mae"], n=24, k=3, chunk_size=8, weights="random",
                        center="position")
    state = mine(config, str(tmp_path / "run"), return_state=True)
    assert state.is_completed(), state
    run_dir = tmp_path / "run"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    dictionary = validate_dictionary(json.loads((run_dir / "dictionary.json").read_text()))
    assert manifest["summary"]["concepts"] == len(dictionary.concepts)
    assert (run_dir / "report" / "index.html").is_file()
    assert not (run_dir / ".lock").exists()

    flow_run_id = state.state_details.flow_run_id
    for _ in range(30):  # task runs are written asynchronously
        flow_run, task_runs, artifacts = asyncio.run(_task_runs(flow_run_id))
        names = [r.name for r in task_runs]
        if sum(n.startswith("extract ") for n in names) == 6 and artifacts:
            break
        time.sleep(1)
    assert flow_run.state.is_completed()
    # task runs are named by what they do, so the UI's timeline shows which model or pair is slow
    assert sorted(n for n in names if n.startswith("generate ")) == [f"generate chunk {c}/3" for c in (1, 2, 3)]
    assert sorted(n for n in names if n.startswith("extract ")) == sorted(
        f"extract {m} chunk {c}/3" for m in ("mini-resnet.sup", "mini-vit.mae") for c in (1, 2, 3))
    assert sorted(n for n in names if n.startswith("statistics ")) == sorted([
        "statistics mini-gen x mini-resnet.sup", "statistics mini-gen x mini-vit.mae", "statistics mini-gen x mini-gen",
        "statistics mini-gen x mini-resnet.sup (shuffled null)"])
    assert {"prepare mini-gen run", "dictionary", "report", "manifest"} <= set(names)
    assert artifacts and "concepts" in artifacts[0].data

    written = (run_dir / "manifest.json").stat().st_mtime_ns
    again = mine(config, str(tmp_path / "run"), return_state=True)
    assert again.is_completed()
    time.sleep(2)
    _, rerun_tasks, _ = asyncio.run(_task_runs(again.state_details.flow_run_id))
    assert rerun_tasks == []  # a finished run does nothing
    assert (run_dir / "manifest.json").stat().st_mtime_ns == written
