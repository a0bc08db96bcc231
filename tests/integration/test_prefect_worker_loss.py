"""A Prefect process worker killed mid-run (issue 20, part 5): the `mine` deployment runs on a
real Prefect server through a process worker; the worker and its flow run's process are killed
with SIGKILL while the run extracts. The run's lock is left behind by a dead process; a rerun
on a new worker takes it over, skips the chunks that were finished and ends with the tables of
an uninterrupted run."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import numpy as np
import pytest
from invert_support import mine_in_process
from prefect_server import deploy, prefect_server, run_script, worker

from rosetta_core.run import MineConfig, Run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SMALL = {"encoders": ["mini-resnet.sup", "mini-vit.mae"], "n": 32, "k": 3, "chunk_size": 8, "weights": "random"}

START = """
import json, sys
from prefect.deployments import run_deployment

run = run_deployment("mine/mine", parameters=json.loads(sys.argv[1]), timeout=0)
print("RESULT " + json.dumps({"id": str(run.id)}))
"""

RUN = """
import json, sys
from prefect.deployments import run_deployment
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterParentFlowRunId, LogFilter,
                                            LogFilterFlowRunId)

run = run_deployment("mine/mine", parameters=json.loads(sys.argv[1]), timeout=600)
with get_client(sync_client=True) as client:
    ids = [run.id] + [c.id for c in client.read_flow_runs(flow_run_filter=FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])))]
    lines = [log.message for log in client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))]
print("RESULT " + json.dumps({"state": run.state.type.value, "message": run.state.message or "", "lines": lines}))
"""


def _extracted(out) -> tuple[int, int] | None:
    """(encoder chunks extracted, all of them), or None before the store is planned."""
    try:
        run = Run.open(out)
        n = len(run.plan.chunks)
        done = [all(run.store.chunk_done(k, c, n) for k in run.model_keys(e)) for e in SMALL["encoders"] for c in range(n)]
    except Exception:  # not created yet, or being created
        return None
    return sum(done), len(done)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_prefect_worker_leaves_a_run_that_a_rerun_resumes(tmp_path):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the flow run's process (OMP_NUM_THREADS=1)
    try:
        baseline, _, _ = mine_in_process(tmp_path / "baseline", MineConfig(**SMALL))
    finally:
        torch.set_num_threads(threads)

    out = tmp_path / "run"
    parameters = json.dumps({"config": SMALL, "out": str(out)})
    with prefect_server(tmp_path / "prefect-home") as env:
        with worker("cpu", env) as first:  # (creates the `cpu` pool the deployment names)
            deploy("mine", env)
            run_script(env, START, parameters)
            deadline, seen = time.monotonic() + 240, None
            while time.monotonic() < deadline:
                seen = _extracted(out)
                if seen is not None and 0 < seen[0] < seen[1] and (out / ".lock").exists():
                    break
                time.sleep(0.1)
            else:
                pytest.fail(f"the run never got to mid-extraction (last seen: {seen})")
            holder = json.loads((out / ".lock").read_text())
            os.kill(first.pid, signal.SIGKILL)  # the worker, then its flow run's process
            os.kill(holder["pid"], signal.SIGKILL)
            first.wait(30)
            for _ in range(100):
                if not _alive(holder["pid"]):
                    break
                time.sleep(0.1)
        killed_at = _extracted(out)
        assert killed_at[0] < killed_at[1] and (out / ".lock").exists()  # left mid-run, lock and all
        assert Run.open(out).finished() is None

        with worker("cpu", env):
            again = run_script(env, RUN, parameters)
    assert again["state"] == "COMPLETED", again
    lines = again["lines"]
    assert "generate: 32 images in 4 chunks (0 computed, 4 already done)" in lines, lines
    extract = next(line for line in lines if line.startswith("extract:"))
    computed, skipped = map(int, re.search(r"\((\d+) computed, (\d+) already done\)", extract).groups())
    assert computed + skipped == 8 and computed >= 1 and skipped >= killed_at[0], (extract, killed_at)

    run = Run.open(out)
    assert run.finished() is not None and not (out / ".lock").exists()
    for a, b, null in run.config.pairs:
        np.testing.assert_array_equal(run.table(a, b, null), baseline.table(a, b, null), err_msg=f"{a} x {b} {null}")
