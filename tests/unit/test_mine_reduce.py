"""The statistics reduction of a run over its stored chunks, against the engine on whole arrays."""

from __future__ import annotations

import numpy as np
import pytest

from rosetta_core import pearson_table
from rosetta_core.run import mining
from rosetta_core.run.mining import MineConfig, RunPlan, pair_comoments
from rosetta_core.run.store import RunStore

pytestmark = pytest.mark.unit

LAYERS = {"g": [("l1", (3, 8, 8)), ("l2", (2, 4, 4))], "e": [("m1", (4, 2, 2)), ("m2", (2, 6, 6))]}


def _run(tmp_path, n: int, chunk: int, bad: tuple[str, int] | None = None):
    config = MineConfig(generator="g", encoders=("e",), n=n, k=1, chunk_size=chunk, center="position")
    plan = RunPlan(config, LAYERS, 1, (3, 8, 8), {})
    store = RunStore(str(tmp_path / "store.zarr"))
    rng = np.random.default_rng(0)
    data = {}
    for name, layers in LAYERS.items():
        for layer, shape in layers:
            key = plan.activation_key(name, layer)
            values = np.maximum(rng.standard_normal((n, *shape)), 0).astype(np.float16)
            if bad is not None and bad[0] == key:
                values[bad[1], 0, 0, 0] = np.nan
            store.require(key, (n, *shape), (chunk, *shape), "float16", ["image", "unit", "y", "x"])[...] = values
            data[key] = values.astype(np.float32)
    return store, plan, data


@pytest.mark.parametrize(("n", "chunk", "step"), [(22, 7, 3), (15, 5, 50), (9, 4, 2)])
def test_steps_and_a_one_image_chunk_give_the_engine_table(tmp_path, monkeypatch, n, chunk, step):
    monkeypatch.setattr(mining, "REDUCE_IMAGES", step)  # several steps per chunk, unequal ones too
    store, plan, data = _run(tmp_path, n, chunk)  # n % chunk == 1: the last chunk has one image
    gen, enc = [data[k] for k in plan.keys("g")], [data[k] for k in plan.keys("e")]
    got = pair_comoments(store, plan, "g", "e").pearson()
    np.testing.assert_allclose(got, pearson_table(gen, enc, center="position"), atol=1e-5)
    perm = np.random.default_rng(7).permutation(n)
    null = pair_comoments(store, plan, "g", "e", shuffle_seed=7).pearson()
    np.testing.assert_allclose(null, pearson_table(gen, [x[perm] for x in enc], center="position"), atol=1e-5)


def test_non_finite_activations_are_named(tmp_path):
    store, plan, _ = _run(tmp_path, 12, 4, bad=("activations/e/m2", 9))
    with pytest.raises(ValueError, match=r"activations/e/m2 has non-finite values \(NaN or inf\) in images \[9\]"):
        pair_comoments(store, plan, "g", "e")
