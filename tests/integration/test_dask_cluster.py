"""The same co-moments reduced on a real Dask LocalCluster with 2 worker processes."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from oracles import activations, brute_force_table

from rosetta_core import comoments, pearson_table

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        worker_class=distributed.Nanny,
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.mark.parametrize("center", ["global", "position"])
def test_local_cluster_reduces_to_the_same_table(client, center):
    rng = np.random.default_rng(7)
    a = [activations(rng, 24, 4, 7, 7), activations(rng, 24, 3, 16, 16)]
    b = [activations(rng, 24, 5, 14, 14)]
    local = pearson_table(a, b, center=center)
    lazy_a = [da.from_array(x, chunks=(5, -1, -1, -1)) for x in a]
    lazy_b = [da.from_array(x, chunks=(7, -1, -1, -1)) for x in b]
    acc = comoments(lazy_a, lazy_b, center=center, chunk_size=5)
    assert acc.n_ == 24
    np.testing.assert_allclose(acc.pearson(), local, atol=1e-5)
    np.testing.assert_allclose(local, brute_force_table(a, b, center), atol=1e-4)
    # the work ran on the workers: their task logs name our chunk function
    logs = client.run(lambda dask_worker: [t[0] for t in dask_worker.state.log if isinstance(t[0], str)])
    assert any("_chunk_moments" in key for keys in logs.values() for key in keys)
