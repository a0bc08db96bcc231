"""`--stats-device`: the mining run's pair statistics on the torch engine (here on the CPU, the
same code path a GPU takes apart from the device), its worker check and its bad input."""

from __future__ import annotations

import numpy as np
import pytest

from rosetta_core.run import MineConfig, Run

pytestmark = pytest.mark.integration

SMALL = MineConfig(encoders=("mini-resnet.sup",), n=16, k=3, chunk_size=8, weights="random", dtype="float32")


def test_the_torch_engine_gives_the_numpy_engines_tables_in_a_run(prefect_api, tmp_path, monkeypatch):
    from flows.mine import mine
    from rosetta_core.run import statistics

    engines = []  # which engine each chunk's fold ran on (the local cluster's workers are threads here)
    real = statistics.fold_chunks
    monkeypatch.setattr(statistics, "fold_chunks", lambda *a, **kw: engines.append(kw.get("device")) or real(*a, **kw))
    numpy_run, torch_run = tmp_path / "numpy", tmp_path / "torch"
    assert mine(SMALL, str(numpy_run), return_state=True).is_completed()
    assert set(engines) == {None}
    engines.clear()
    assert mine(SMALL, str(torch_run), stats_device="cpu", return_state=True).is_completed()
    assert set(engines) == {"cpu"} and len(engines) == 2 * 3  # 2 chunks x 3 pairs, all on the torch engine
    a, b = Run.open(numpy_run), Run.open(torch_run)
    for pair in (("mini-gen", "mini-resnet.sup", False), ("mini-gen", None, False), ("mini-gen", "mini-resnet.sup", True)):
        np.testing.assert_allclose(b.table(*pair), a.table(*pair), atol=1e-5)
    # the stored co-moments are the same exact quantities (float32 products, float64 sums in both)
    np.testing.assert_allclose(b.moments("mini-gen", "mini-resnet.sup").pearson(),
                               a.moments("mini-gen", "mini-resnet.sup").pearson(), atol=1e-5)


def test_a_gpu_statistics_run_needs_a_worker_with_the_gpu_resource():
    from distributed import Client, LocalCluster

    from tasks.mining import _require_gpu_workers

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as plain, \
            Client(plain) as client:
        with pytest.raises(RuntimeError, match="no worker of the Dask cluster offers the GPU resource.*--resources GPU=1"):
            _require_gpu_workers(client, "cuda")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0",
                      resources={"GPU": 1}) as gpu, Client(gpu) as client:
        _require_gpu_workers(client, "cuda")  # a worker offers it: no error


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "mps"])
def test_a_bad_statistics_device_is_one_clear_error_before_anything_runs(prefect_api, tmp_path, bad):
    from flows.mine import mine

    state = mine(SMALL, str(tmp_path / "run"), stats_device=bad, return_state=True)
    assert state.is_failed()
    with pytest.raises(ValueError, match=f"stats_device='{bad}' is not a device of the statistics engine"):
        state.result()
    assert not (tmp_path / "run").exists()
