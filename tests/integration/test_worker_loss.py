"""Losing Dask workers mid-run (issue 20, part 5), on a LocalCluster of 2 worker processes.

A worker killed with SIGKILL while it extracts, or while it reduces co-moments, is restarted
by its nanny; Dask reruns what it lost and the run's tables are identical to an uninterrupted
run's. Workers that die for good (no nanny) fail the run with a message saying so, instead of
leaving it waiting forever; a rerun on new workers resumes. Throughout, the flow's process
(this one) loads no model: the models live on the workers.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import distributed
import numpy as np
import pytest
from flow_runs import log_lines
from invert_support import mine_in_process

from flows.cluster import NO_WORKERS_ENV
from rosetta_core.run import MineConfig, Run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONFIG = MineConfig(encoders=("mini-resnet.sup", "mini-vit.mae"), n=32, k=3, chunk_size=8, weights="random")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Run:
    """The same run, uninterrupted, in this process (one torch thread, as on a Dask worker)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run, _, _ = mine_in_process(tmp_path_factory.mktemp("baseline") / "run", CONFIG)
    finally:
        torch.set_num_threads(threads)
    return run


@pytest.fixture(scope="module")
def cluster():
    """2 worker processes, one thread each, each under a nanny that restarts it when it dies."""
    local = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    with distributed.Client(local) as client:
        client.wait_for_workers(2, timeout=120)
    yield local
    local.close()


@pytest.fixture
def no_models_here(monkeypatch):
    """Fail the test if the flow's process (this one) loads a model: every model a run loads
    comes through ``rosetta_core.zoo.registry.load``."""
    from rosetta_core.run import models
    from rosetta_core.zoo import probe, registry

    def refuse(name, *args, **kwargs):
        raise AssertionError(f"the flow's process loaded model {name!r}; models belong on the Dask workers")

    models._cached.cache_clear()  # the baseline loaded them here: a cached model would hide a load
    for module in (registry, probe, models):
        monkeypatch.setattr(module, "load", refuse)


def _worker_pids(address: str) -> dict[str, int]:
    with distributed.Client(address, timeout=30) as client:
        return client.run(os.getpid)


def _extracted(out: Path) -> tuple[int, int]:
    """(encoder chunks extracted, all of them), from the store's completion flags."""
    run = Run.open(out)
    n = len(run.plan.chunks)
    done = [all(run.store.chunk_done(k, c, n) for k in run.model_keys(e)) for e in CONFIG.encoders for c in range(n)]
    return sum(done), len(done)


def _reduced(out: Path) -> tuple[int, int]:
    """(pairs whose statistics are done, all pairs)."""
    run = Run.open(out)
    pairs = _pairs(run)
    return sum(run.pair_summary(*p) is not None for p in pairs), len(pairs)


def _pairs(run: Run) -> list[tuple]:
    """Every pair of the run, the shuffled null included: ``(a, b, null)``."""
    return run.config.pairs


class Killer(threading.Thread):
    """Watches the scheduler; the first time a task whose key starts with ``prefix`` is on a
    worker, records ``look(out)`` and SIGKILLs that worker's process (``everyone``: every
    worker's). ``killed``: the pids killed."""

    def __init__(self, address: str, prefix: str, out: Path, look, everyone: bool = False) -> None:
        super().__init__(daemon=True)
        self.address, self.prefix, self.out, self.look, self.everyone = address, prefix, out, look, everyone
        self.killed: dict[str, int] = {}
        self.seen = None
        self.finish = threading.Event()

    def run(self) -> None:
        with distributed.Client(self.address, timeout=30) as client:
            while not self.finish.is_set():
                busy = [w for w, keys in client.processing().items() if any(str(k).startswith(self.prefix) for k in keys)]
                if busy:
                    pids = client.run(os.getpid, workers=None if self.everyone else busy[:1])
                    self.seen = self.look(self.out)
                    for pid in pids.values():
                        os.kill(pid, signal.SIGKILL)
                    self.killed = pids
                    return
                time.sleep(0.05)


def _mine_killing(address: str, out: Path, prefix: str, look, everyone: bool = False, limit: float = 240):
    """Run the flow on the cluster at ``address`` while a :class:`Killer` watches it; a run
    still going after ``limit`` seconds fails the test (it would wait forever)."""
    killer = Killer(address, prefix, out, look, everyone)
    killer.start()
    try:
        return _mine(address, out, limit), killer
    finally:
        killer.finish.set()
        killer.join(30)


def _mine(address: str, out: Path, limit: float = 240):
    """The flow's final state, run in a thread so that a run that hangs fails the test."""
    from flows.mine import mine

    got = {}
    thread = threading.Thread(target=lambda: got.update(state=mine(CONFIG, str(out), dask_address=address,
                                                                   return_state=True)), daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        pytest.fail(f"the run on {address} was still going after {limit} s")
    return got["state"]


def _same_tables(out: Path, baseline: Run) -> None:
    run = Run.open(out)
    assert run.finished() is not None
    for a, b, null in _pairs(run):
        got = run.table(a, b, null)
        assert got is not None and got.shape == baseline.table(a, b, null).shape
        np.testing.assert_array_equal(got, baseline.table(a, b, null), err_msg=f"{a} x {b} null={null}")
    for model in CONFIG.models:  # the chunks recomputed after the kill are the same too
        for key in run.model_keys(model):
            np.testing.assert_array_equal(run.store.array(key)[:], baseline.store.array(key)[:], err_msg=key)


def test_a_worker_killed_mid_extraction_is_replaced_and_the_tables_are_unchanged(
        prefect_api, cluster, baseline, no_models_here, tmp_path):
    before = _worker_pids(cluster.scheduler_address)
    out = tmp_path / "run"
    state, killer = _mine_killing(cluster.scheduler_address, out, "extract_chunk", _extracted)
    assert state.is_completed(), state
    assert len(killer.killed) == 1, "no extraction task was seen on a worker"
    done, total = killer.seen
    assert done < total  # killed while extraction was under way
    after = _worker_pids(cluster.scheduler_address)
    assert len(after) == 2 and set(killer.killed.values()) <= set(before.values()) - set(after.values())
    _same_tables(out, baseline)
    assert not (out / ".lock").exists()


@pytest.mark.parametrize("everyone", [False, True], ids=["one worker", "every worker"])
def test_workers_killed_mid_reduction_are_replaced_and_the_tables_are_unchanged(
        prefect_api, cluster, baseline, no_models_here, tmp_path, everyone):
    out = tmp_path / "run"
    state, killer = _mine_killing(cluster.scheduler_address, out, "chunk_comoments", _reduced, everyone)
    assert state.is_completed(), state
    assert len(killer.killed) == (2 if everyone else 1), "no reduction task was seen on a worker"
    done, total = killer.seen
    assert done < total  # killed while pairs were being reduced
    after = _worker_pids(cluster.scheduler_address)
    assert len(after) == 2 and not set(killer.killed.values()) & set(after.values())
    _same_tables(out, baseline)


def _start_worker(address: str) -> subprocess.Popen:
    """A plain ``dask worker`` without a nanny: killed, it stays dead."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([str(Path(sys.executable).parent / "dask"), "worker", address, "--no-nanny",
                             "--nthreads", "1", "--no-dashboard"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)



def test_workers_that_die_for_good_fail_the_run_clearly_and_a_rerun_resumes(
        prefect_api, baseline, no_models_here, tmp_path, monkeypatch):
    monkeypatch.setenv(NO_WORKERS_ENV, "5")
    scheduler = distributed.LocalCluster(n_workers=0, processes=True, dashboard_address=":0")  # a scheduler alone
    address, procs = scheduler.scheduler_address, []
    try:
        procs += [_start_worker(address), _start_worker(address)]
        with distributed.Client(address) as client:
            client.wait_for_workers(2, timeout=120)
        out = tmp_path / "run"
        start = time.monotonic()
        state, killer = _mine_killing(address, out, "extract_chunk", _extracted, everyone=True, limit=120)
        assert len(killer.killed) == 2
        assert state.is_failed(), state
        message = str(state.result(raise_on_failure=False))
        assert f"{address} has had no worker for 5 s" in message and "dask worker" in message, message
        assert time.monotonic() - start < 90  # not forever
        assert not (out / ".lock").exists()
        for proc in procs:
            proc.wait(30)

        procs.append(_start_worker(address))  # a new worker; the rerun picks up where the run stopped
        again = _mine(address, out)
        assert again.is_completed(), again
        for _ in range(30):  # logs arrive asynchronously
            lines = asyncio.run(log_lines(again.state_details.flow_run_id))
            if any(line.startswith("extract:") for line in lines):
                break
            time.sleep(1)
        assert "generate: 32 images in 4 chunks (0 computed, 4 already done)" in lines, lines
        extract = next(line for line in lines if line.startswith("extract:"))
        computed, skipped = map(int, re.search(r"\((\d+) computed, (\d+) already done\)", extract).groups())
        assert computed + skipped == 8 and computed >= 1 and skipped >= killer.seen[0], (extract, killer.seen)
        _same_tables(out, baseline)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        scheduler.close()
