"""Tasks on an accelerator ask for the Dask ``GPU`` resource (flows/cluster.py): on a cluster
where one worker offers a (fake, CPU-only) ``GPU`` resource, they all run there, one at a time,
and a run on an accelerator whose cluster offers no GPU fails with a message saying how to
start GPU workers instead of waiting forever."""

from __future__ import annotations

import time

import distributed
import pytest
from prefect import flow, task

from flows import cluster as run_cluster
from flows import progress
from flows.mine import LOCAL_CLUSTER

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gpu_and_cpu_workers():
    """A scheduler with two in-process workers of 2 threads each; only the one named ``gpu``
    offers ``GPU=1``. Yields its address and the two workers' addresses."""
    local = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0")
    local.worker_spec["gpu"] = {"cls": distributed.Worker, "options": {"nthreads": 2, "resources": {"GPU": 1}}}
    local.scale(2)
    with distributed.Client(local) as client:
        client.wait_for_workers(2, timeout=60)
        workers = client.scheduler_info(n_workers=-1)["workers"]
    gpu = next(a for a, w in workers.items() if w.get("resources", {}).get("GPU"))
    cpu = next(a for a in workers if a != gpu)
    yield local.scheduler_address, gpu, cpu
    local.close()


@task
def where_it_ran(label: str, device: str = "cpu") -> tuple[str, str, float, float]:
    """The worker this ran on and when (each task holds its thread 0.4 s)."""
    start = time.monotonic()
    time.sleep(0.4)
    return label, distributed.get_worker().address, start, time.monotonic()


@flow
def fan_out(n: int) -> list:
    jobs = [where_it_ran.submit(f"gpu{i}", device="cuda") for i in range(n)]
    jobs += [where_it_ran.submit(f"cpu{i}", device="cpu") for i in range(n)]
    return progress.drain(jobs, "resources")


def test_tasks_on_an_accelerator_run_on_the_gpu_worker_one_at_a_time(prefect_api, gpu_and_cpu_workers):
    address, gpu, cpu = gpu_and_cpu_workers
    ran = fan_out.with_options(task_runner=run_cluster.ClusterTaskRunner(address=address))(6)
    on_gpu = [r for r in ran if r[0].startswith("gpu")]
    assert {r[1] for r in on_gpu} == {gpu}, ran  # the worker without the resource never ran one
    spans = sorted((start, stop) for _, _, start, stop in on_gpu)
    assert all(stop <= nxt for (_, stop), (nxt, _) in zip(spans, spans[1:])), spans  # one at a time, on 2 threads
    # tasks on the CPU ask for nothing: the 6 of them may use the other worker too
    assert {r[1] for r in ran if r[0].startswith("cpu")} <= {gpu, cpu}


def test_a_run_on_an_accelerator_without_gpu_workers_fails_saying_how_to_start_them(prefect_api, tmp_path, monkeypatch):
    from flows.mine import mine
    from rosetta_core.run import MineConfig

    monkeypatch.setenv(run_cluster.NO_WORKERS_ENV, "3")
    local = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0")
    try:
        config = MineConfig(encoders=["mini-resnet.sup"], n=16, k=3, chunk_size=8, weights="random")
        start = time.monotonic()
        state = mine(config, str(tmp_path / "run"), device="cuda", dask_address=local.scheduler_address,
                     return_state=True)
        waited = time.monotonic() - start
    finally:
        local.close()
    assert state.is_failed()
    message = state.message + str(state.result(raise_on_failure=False))
    assert "offers the GPU resource" in message and "--resources GPU=1" in message, message
    assert waited < 60  # the 3 s limit, not forever
    assert not (tmp_path / "run" / ".lock").exists()  # the lock is given back


def test_the_local_cluster_of_a_gpu_run_has_one_gpu_for_all_its_threads():
    assert run_cluster.local_cluster(LOCAL_CLUSTER, "cpu") == LOCAL_CLUSTER
    gpu = run_cluster.local_cluster(LOCAL_CLUSTER, "cuda:1")
    assert gpu["n_workers"] == 1 and gpu["threads_per_worker"] == 2 and gpu["resources"] == {"GPU": 1}
    assert [run_cluster.uses_gpu(d) for d in ("cpu", "CPU", "cuda", "cuda:0", "mps", None)] == \
        [False, False, True, True, True, False]


def test_no_workers_timeout_reads_the_environment(monkeypatch):
    monkeypatch.delenv(run_cluster.NO_WORKERS_ENV, raising=False)
    assert run_cluster.no_workers_timeout() == run_cluster.NO_WORKERS_DEFAULT
    monkeypatch.setenv(run_cluster.NO_WORKERS_ENV, "12.5")
    assert run_cluster.no_workers_timeout() == 12.5
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv(run_cluster.NO_WORKERS_ENV, bad)
        with pytest.raises(ValueError, match=run_cluster.NO_WORKERS_ENV):
            run_cluster.no_workers_timeout()
