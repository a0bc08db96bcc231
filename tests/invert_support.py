"""A tiny finished mining run and test images for the inversion tests (built without Prefect)."""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
from PIL import Image

from rosetta_core.run import mining, results
from rosetta_core.data import render_batch
from rosetta_core.run.store import RunStore
from rosetta_core.zoo.embedded.mini_gen import GEN_WORLD


def tiny_run(run_dir: Path, n: int = 24, encoders=("mini-resnet.sup",)) -> Path:
    """Mine ``n`` images of random-init mini-gen against ``encoders`` (random init) into ``run_dir``."""
    cfg = mining.MineConfig(encoders=tuple(encoders), n=n, k=3, chunk_size=12, weights="random", dtype="float32")
    plan = mining.plan_run(cfg)
    store = RunStore(str(run_dir / "store.zarr"))
    mining.init_store(store, plan)
    for c in range(len(plan.chunks)):
        mining.generate_chunk(store, plan, c)
        for e in cfg.encoders:
            mining.extract_chunk(store, plan, e, c)
    with dask.config.set(scheduler="synchronous"):
        for a, b in plan.pairs():
            results.pair_statistics(store, plan, a, b)
    content = results.write_dictionary(run_dir, store, plan)
    results.write_manifest(run_dir, store, plan, content, {})
    return run_dir


def scene_pngs(folder: Path, count: int, seed: int = 4242, style: str = "photo") -> list[str]:
    """``count`` held-out scenes of the mini-gen world as PNG files; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    scenes = render_batch(seed, np.arange(count), GEN_WORLD, style=style)
    paths = []
    for i, img in enumerate(scenes.images):
        path = folder / f"scene{i}.png"
        Image.fromarray(img.transpose(1, 2, 0)).save(path)
        paths.append(str(path))
    return paths
