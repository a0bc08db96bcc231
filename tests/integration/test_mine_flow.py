"""The mining flow under a real Prefect API, reducing on a Dask LocalCluster of 2 workers."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
from flow_runs import log_lines

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
        "statistics mini-gen x mini-resnet.sup (shuffled null)", "statistics mini-gen x mini-vit.mae (shuffled null)"])
    assert {"prepare mini-gen run", "dictionary", "report", "manifest"} <= set(names)
    assert artifacts and "concepts" in artifacts[0].data

    written = (run_dir / "manifest.json").stat().st_mtime_ns
    again = mine(config, str(tmp_path / "run"), return_state=True)
    assert again.is_completed()
    time.sleep(2)
    _, rerun_tasks, _ = asyncio.run(_task_runs(again.state_details.flow_run_id))
    assert rerun_tasks == []  # a finished run does nothing
    assert (run_dir / "manifest.json").stat().st_mtime_ns == written



def test_an_encoder_added_to_a_finished_run_computes_only_its_own_tasks(prefect_api, tmp_path):
    from flows.mine import mine
    from rosetta_core.run import MineConfig, Run

    small = {"n": 16, "k": 3, "chunk_size": 8, "weights": "random"}
    two, three = ("mini-resnet.sup", "mini-vit.mae"), ("mini-resnet.sup", "mini-vit.mae", "mini-clip.rn")
    out = tmp_path / "grown"
    mine(MineConfig(encoders=two, **small), str(out))
    before = Run.open(out)
    kept = {e: before.table("mini-gen", e) for e in two}
    state = mine(MineConfig(encoders=three, **small), str(out), return_state=True)
    assert state.is_completed()
    for _ in range(30):  # logs arrive asynchronously
        lines = asyncio.run(log_lines(state.state_details.flow_run_id))
        if sum(line.startswith("statistics ") for line in lines) == 7:
            break
        time.sleep(1)
    # only the new encoder's activations and pairs were computed; the rest was already done
    assert "generate: 16 images in 2 chunks (0 computed, 2 already done)" in lines
    assert "extract: 3 encoders x 2 chunks (2 computed, 4 already done)" in lines
    done = {line.split(":")[0].removeprefix("statistics "): line.rsplit("(", 1)[1].rstrip(")") for line in lines
            if line.startswith("statistics ")}
    assert done == {"mini-gen__mini-resnet.sup": "skipped", "mini-gen__mini-vit.mae": "skipped",
                    "mini-gen__mini-clip.rn": "computed", "mini-gen__mini-gen": "skipped",
                    "mini-gen__mini-resnet.sup__shuffled": "skipped", "mini-gen__mini-vit.mae__shuffled": "skipped",
                    "mini-gen__mini-clip.rn__shuffled": "computed"}
    grown = Run.open(out)
    for e in two:  # the tables already there stay untouched
        np.testing.assert_array_equal(grown.table("mini-gen", e), kept[e])
    assert grown.config.encoders == three and grown.finished() is not None
    assert set(grown.dictionary["best_buddies"]) == set(three)  # the dictionary is rebuilt

    fresh = tmp_path / "fresh"
    mine(MineConfig(encoders=three, **small), str(fresh))
    for a, b, null in MineConfig(encoders=three, **small).pairs:
        np.testing.assert_array_equal(grown.table(a, b, null), Run.open(fresh).table(a, b, null), err_msg=f"{a} {b} {null}")
    assert json.loads((out / "dictionary.json").read_text())["concepts"] == \
        json.loads((fresh / "dictionary.json").read_text())["concepts"]
