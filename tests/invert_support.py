"""A tiny finished mining run and test images for the inversion tests (built without Prefect)."""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
from PIL import Image

from rosetta_core.data import render_batch
from rosetta_core.run import MineConfig, Run, plan_run
from rosetta_core.run.extraction import extract_chunk, generate_chunk, prepare_store
from rosetta_core.run.folding import fold_chunk, fold_steps, merge_folds
from rosetta_core.run.outputs import write_dictionary, write_manifest
from rosetta_core.run.statistics import pair_statistics
from rosetta_core.zoo.embedded.mini_gen import GEN_WORLD


def mine_in_process(run_dir: Path, config: MineConfig, null: bool = True) -> tuple[Run, list[str], list[dict]]:
    """Every step of a mining run in this process, in order (what the flow runs as tasks);
    returns the run, the chunk steps' states and the pair summaries."""
    run = Run(run_dir, config)
    run.validate()  # as the flow does at its start
    index = run.image_index if config.images is not None else None
    prepare_store(run, plan_run(config, index=index), index=index)
    encoders = sorted(config.encoders, key=lambda m: m != config.anchor_model)  # as the flow orders them
    states = []
    if config.activations == "none":  # one task per chunk folds every pair; merges as the flow submits them
        for step in fold_steps(len(run.plan.chunks)):
            states.append(fold_chunk(run, step[1]) if step[0] == "chunk" else merge_folds(run, *step[1:]))
    for c in range(len(run.plan.chunks)) if config.activations == "keep" else ():
        if config.generator is not None:
            states.append(generate_chunk(run, c))
        states += [extract_chunk(run, e, c) for e in encoders]
    pairs = [p for p in config.pairs if null or not p[2]]  # null=False: the shuffled nulls are left out
    with dask.config.set(scheduler="synchronous"):
        summaries = [pair_statistics(run, a, b, n) for a, b, n in pairs]
    write_manifest(run, write_dictionary(run), {})
    return run, states, summaries


def tiny_run(run_dir: Path, n: int = 24, encoders=("mini-resnet.sup",)) -> Path:
    """Mine ``n`` images of random-init mini-gen against ``encoders`` (random init) into ``run_dir``."""
    config = MineConfig(encoders=tuple(encoders), n=n, k=3, chunk_size=12, weights="random", dtype="float32",
                        center="global")  # the paper's Eq. 1 and Eq. 6 (the moments these tests check)
    mine_in_process(run_dir, config, null=False)
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
