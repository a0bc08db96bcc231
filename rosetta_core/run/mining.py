"""The steps of a mining run as pure functions over a run store (DESIGN §1, §4).

Each function takes references (a store path, model names, a chunk number) and writes its own
region of the store, so the orchestration layer can run them as independent tasks, retry them
and skip what is done. Nothing here imports Prefect.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..engine.grid_sums import Workspace
from ..engine.comoments import CENTERS, CoMoments, NonFiniteChunk
from .store import RunStore, pair_key
from ..zoo import get_spec, load, weights_for

__all__ = [
    "DEFAULT_ENCODERS", "MineConfig", "RunPlan", "check_config", "chunk_bounds", "init_store", "load_plan", "plan_run",
]

DEFAULT_ENCODERS = ("mini-resnet.sup", "mini-resnet.ssl", "mini-vit.mae", "mini-clip.rn")
DTYPES = ("float16", "float32")
#: images per step of the statistics reduction inside one store chunk (bounds worker memory)
REDUCE_IMAGES = 50


@dataclass(frozen=True)
class MineConfig:
    """What a mining run computes; every field is part of the run's identity."""

    generator: str = "mini-gen"
    encoders: tuple[str, ...] = DEFAULT_ENCODERS
    n: int = 1600
    k: int = 5
    seed: int = 0
    chunk_size: int = 100
    dtype: str = "float16"
    center: str = "global"
    weights: str = "trained"
    class_index: int | None = None
    layers: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def validate(self) -> None:
        """One clear ValueError per bad value (models are checked when they are loaded)."""
        if not self.encoders:
            raise ValueError("encoders is empty; give at least one encoder model name")
        if len(set(self.encoders)) != len(self.encoders):
            raise ValueError(f"encoders={list(self.encoders)} lists a model twice")
        if self.k < 1:
            raise ValueError(f"k={self.k} must be >= 1")
        if self.n < 2 * self.k:
            raise ValueError(f"n={self.n} is too small for k={self.k}; need n >= 2k = {2 * self.k}")
        if self.chunk_size < 2:
            raise ValueError(f"chunk_size={self.chunk_size} must be >= 2 images")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r}; valid: {', '.join(DTYPES)}")
        if self.center not in CENTERS:
            raise ValueError(f"center={self.center!r}; valid: {', '.join(CENTERS)}")
        if self.seed < 0:
            raise ValueError(f"seed={self.seed} must be >= 0")

    def identity(self) -> dict[str, Any]:
        out = asdict(self)
        out["encoders"] = list(self.encoders)
        out["layers"] = {k: list(v) for k, v in sorted(self.layers.items())}
        out["code_version"] = __version__
        return out


def chunk_bounds(n: int, chunk_size: int) -> list[tuple[int, int]]:
    return [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]


@lru_cache(maxsize=16)
def _model(name: str, weights: str, device: str):
    return load(name, weights, device=device), threading.Lock()


def _for_run(adapter, config: MineConfig, name: str):
    if name == config.generator and hasattr(adapter, "class_index"):
        adapter.class_index = config.class_index  # class-conditional generators sample this class
    return adapter


def model(config: MineConfig, name: str, device: str = "cpu"):
    """The loaded adapter of ``name`` for this run (cached per process)."""
    return _for_run(_model(name, config.weights, device)[0], config, name)


@contextmanager
def using_model(config: MineConfig, name: str, device: str = "cpu"):
    """The cached adapter, held exclusively: its hooks must not see another thread's calls."""
    adapter, lock = _model(name, config.weights, device)
    with lock:
        yield _for_run(adapter, config, name)


@dataclass(frozen=True)
class RunPlan:
    """Layers, shapes and store keys of a run, fixed before any chunk is computed."""

    config: MineConfig
    layers: dict[str, list[tuple[str, tuple[int, int, int]]]]  # model -> [(layer, (units, h, w))]
    latent_dim: int
    image_shape: tuple[int, int, int]
    weights_hashes: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config.identity(),
            "layers": {m: [[l, list(s)] for l, s in ls] for m, ls in self.layers.items()},
            "latent_dim": self.latent_dim,
            "image_shape": list(self.image_shape),
            "weights_hashes": dict(self.weights_hashes),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunPlan":
        cfg = dict(data["config"])
        cfg.pop("code_version", None)
        cfg["encoders"] = tuple(cfg["encoders"])
        cfg["layers"] = {k: tuple(v) for k, v in cfg["layers"].items()}
        layers = {m: [(l, tuple(s)) for l, s in ls] for m, ls in data["layers"].items()}
        return cls(MineConfig(**cfg), layers, int(data["latent_dim"]), tuple(data["image_shape"]), dict(data["weights_hashes"]))

    @property
    def chunks(self) -> list[tuple[int, int]]:
        return chunk_bounds(self.config.n, self.config.chunk_size)

    def activation_key(self, model_name: str, layer: str) -> str:
        return f"activations/{model_name}/{layer}"

    def keys(self, model_name: str) -> list[str]:
        return [self.activation_key(model_name, layer) for layer, _ in self.layers[model_name]]

    def pairs(self) -> list[tuple[str, str | None]]:
        """Model pairs to correlate: (generator, encoder) for every encoder, and (G, G)."""
        g = self.config.generator
        return [(g, e) for e in self.config.encoders] + [(g, None)]

    def offsets(self, model_name: str) -> dict[str, int]:
        out, total = {}, 0
        for layer, (units, _, _) in self.layers[model_name]:
            out[layer] = total
            total += units
        return out


def check_config(config: MineConfig) -> None:
    """Every check that needs no model weights: values, model names and kinds, class index."""
    config.validate()
    gen = get_spec(config.generator)  # unknown names fail here, listing the known ones
    if gen.kind != "generator":
        raise ValueError(f"generator={config.generator!r} is an encoder, not a generator")
    for name in config.encoders:
        if get_spec(name).kind != "encoder":
            raise ValueError(f"encoders: {name!r} is a generator; give encoder model names")
    names = (config.generator, *config.encoders)
    for name in names:  # models with outside weights (the paper zoo) check their own, offline too
        if get_spec(name).check_weights is not None:
            get_spec(name).check_weights(weights_for(name, config.weights))
    own = [n for n in names if get_spec(n).check_weights is None and weights_for(n, config.weights) in ("trained", "pretrained")]
    if own:
        missing = [n for n in own if not get_spec(n).has_weights]
        if missing:
            raise ValueError(
                f"no trained weights for {', '.join(missing)}; train them (see the model zoo section of the "
                "README), choose other --encoders, or run the null control with --weights random"
            )
    classes = gen.extra.get("classes")
    classes = len(classes) if isinstance(classes, (list, tuple)) else int(classes or 0)
    if config.class_index is not None and not classes:
        raise ValueError(
            f"class_index={config.class_index} was given but {config.generator} is unconditional; "
            "leave --class-index out for this generator"
        )
    if config.class_index is not None and not 0 <= config.class_index < classes:
        raise ValueError(f"class_index={config.class_index} is out of range for {config.generator}; valid: 0..{classes - 1}")


def plan_run(config: MineConfig, device: str = "cpu") -> RunPlan:
    """Load every model, probe its layer shapes on one image and fix the run's layout."""
    check_config(config)
    gen = model(config, config.generator, device)
    latents = gen.sample_latents(config.seed, np.arange(1))
    gen_layers = gen.select_layers(config.layers.get(config.generator))
    images, maps = gen.generate(latents, gen_layers)
    layers = {config.generator: [(k, tuple(maps[k].shape[1:])) for k in gen_layers]}
    hashes = {config.generator: gen.weights_hash}
    for name in config.encoders:
        enc = model(config, name, device)
        chosen = enc.select_layers(config.layers.get(name))
        got = enc.activations(images, chosen)
        layers[name] = [(k, tuple(got[k].shape[1:])) for k in chosen]
        hashes[name] = enc.weights_hash
    return RunPlan(config, layers, int(latents.shape[1]), tuple(images.shape[1:]), hashes)


def init_store(store: RunStore, plan: RunPlan, overwrite: bool = False) -> None:
    """Create every array of the run (idempotent); refuse a store of another configuration."""
    cfg = plan.config
    identity = cfg.identity() | {"weights_hashes": plan.weights_hashes}
    store.check_or_set_config(identity, overwrite=overwrite)
    n, c = cfg.n, cfg.chunk_size
    store.require("latents", (n, plan.latent_dim), (c, plan.latent_dim), "float32", ["image", "latent"])
    store.require("images", (n, *plan.image_shape), (c, *plan.image_shape), "uint8", ["image", "channel", "y", "x"])
    for name, layers in plan.layers.items():
        for layer, shape in layers:
            attrs = {"model": name, "layer": layer, "units": shape[0]}
            store.require(plan.activation_key(name, layer), (n, *shape), (c, *shape), cfg.dtype, ["image", "unit", "y", "x"], attrs)
    store.require_flags(["latents", "images", *(k for name in plan.layers for k in plan.keys(name))], len(plan.chunks))
    store.group.attrs["plan"] = plan.to_json()


def load_plan(store: RunStore) -> RunPlan:
    """The plan recorded in a store by :func:`init_store`."""
    data = store.attrs.get("plan")
    if data is None:
        raise ValueError(f"{store.path} has no run plan: it was not initialised by a mining run")
    return RunPlan.from_json(data)


def _chunk_ok(store: RunStore, plan: RunPlan, keys: list[str], chunk: int) -> bool:
    """Done flag set for every key and the chunk's data still decodes."""
    start, stop = plan.chunks[chunk]
    n_chunks = len(plan.chunks)
    if not all(store.chunk_done(k, chunk, n_chunks) for k in keys):
        return False
    return all(store.chunk_readable(k, slice(start, stop)) is None for k in keys)


def generate_chunk(store: RunStore, plan: RunPlan, chunk: int, device: str = "cpu") -> str:
    """Latents, images and generator activations of one chunk of images."""
    cfg = plan.config
    keys = ["latents", "images", *plan.keys(cfg.generator)]
    if _chunk_ok(store, plan, keys, chunk):
        return "skipped"
    start, stop = plan.chunks[chunk]
    with using_model(cfg, cfg.generator, device) as gen, torch.no_grad():
        latents = gen.sample_latents(cfg.seed, np.arange(start, stop))
        images, maps = gen.generate(latents, [l for l, _ in plan.layers[cfg.generator]])
    store.array("latents")[start:stop] = latents.cpu().numpy().astype(np.float32)
    store.array("images")[start:stop] = images.cpu().numpy()
    for layer, _ in plan.layers[cfg.generator]:
        store.array(plan.activation_key(cfg.generator, layer))[start:stop] = _to_store(maps[layer], cfg.dtype)
    for key in keys:
        store.mark_done(key, chunk, len(plan.chunks))
    return "computed"


def extract_chunk(store: RunStore, plan: RunPlan, model_name: str, chunk: int, device: str = "cpu") -> str:
    """Activations of one encoder on one chunk of the run's images."""
    cfg = plan.config
    keys = plan.keys(model_name)
    if _chunk_ok(store, plan, keys, chunk):
        return "skipped"
    start, stop = plan.chunks[chunk]
    images = torch.from_numpy(np.asarray(store.array("images")[start:stop]))
    with using_model(cfg, model_name, device) as enc, torch.no_grad():
        maps = enc.activations(images.to(enc.device), [l for l, _ in plan.layers[model_name]])
    for layer, _ in plan.layers[model_name]:
        store.array(plan.activation_key(model_name, layer))[start:stop] = _to_store(maps[layer], cfg.dtype)
    for key in keys:
        store.mark_done(key, chunk, len(plan.chunks))
    return "computed"


def _to_store(maps: torch.Tensor, dtype: str) -> np.ndarray:
    values = maps.detach().float().cpu().numpy()
    if dtype == "float16":
        values = np.clip(values, -65000, 65000)  # float16's range; activations beyond it saturate
    return values.astype(dtype)


def pair_comoments(store: RunStore, plan: RunPlan, a: str, b: str | None, shuffle_seed: int | None = None) -> CoMoments:
    """Reduce the co-moments of model ``a`` against ``b`` (or itself) with the active dask
    scheduler: one task per image chunk of the store, merged as a binary tree.
    ``shuffle_seed`` permutes ``b``'s image order first (the shuffled null).

    Each chunk task reads its own rows from the store (a local path or a URL every worker can
    reach), so only the small per-chunk moments travel between workers, never activations.
    """
    import dask

    side_a = [store.array(k) for k in plan.keys(a)]
    side_b = None if b is None else [store.array(k) for k in plan.keys(b)]
    perm = None
    if shuffle_seed is not None and side_b is not None:
        perm = np.random.default_rng(shuffle_seed).permutation(plan.config.n)
    chunk = dask.delayed(_chunk_comoments, pure=True)
    parts = [
        chunk(side_a, side_b, start, stop, None if perm is None else perm[start:stop], plan.config.center)
        for start, stop in plan.chunks
    ]
    merge = dask.delayed(CoMoments.merge, pure=True)
    while len(parts) > 1:
        parts = [merge(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
    (result,) = dask.compute(parts[0])
    return result


def _chunk_comoments(side_a, side_b, start: int, stop: int, rows_b: np.ndarray | None, center: str) -> CoMoments:
    """Co-moments of images ``start:stop`` (``b`` at ``rows_b`` instead when given) of the stored
    arrays ``(image, unit, y, x)``. The chunk is read once in its stored dtype and reduced in
    near-equal steps of at most :data:`REDUCE_IMAGES` images in float32, which bounds a
    worker's memory."""
    a = [arr[start:stop] for arr in side_a]
    if side_b is None:
        b = None
    elif rows_b is None:
        b = [arr[start:stop] for arr in side_b]
    else:
        b = [arr.get_orthogonal_selection((rows_b,)) for arr in side_b]
    m = stop - start
    steps = -(-m // REDUCE_IMAGES)
    bounds = [round(i * m / steps) for i in range(steps + 1)]
    acc, workspace = None, Workspace()
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        step_a = [np.asarray(x[lo:hi], dtype=np.float32) for x in a]
        step_b = None if b is None else [np.asarray(x[lo:hi], dtype=np.float32) for x in b]
        try:
            if acc is None:
                acc = CoMoments([x.shape[1:] for x in step_a], None if b is None else [x.shape[1:] for x in step_b], center)
            acc.update(step_a, step_b, workspace)
        except NonFiniteChunk as err:
            arr = (side_a if err.side == "a" else side_b)[err.layer]
            raise ValueError(
                f"{arr.path} has non-finite values (NaN or inf) in images {[start + lo + i for i in err.images]} "
                "(shuffled positions for the null); the model produced them: rerun that chunk or check the model"
            ) from None
    return acc


def save_pair(store: RunStore, plan: RunPlan, a: str, b: str | None, acc: CoMoments, tag: str = "") -> np.ndarray:
    """Write a pair's moments, correlation table and top-K lists; returns the table."""
    from ..matching.buddies import topk_lists

    key = pair_key(a, b or a) + tag
    store.write_state(f"moments/{key}", acc.state_dict())
    table = acc.pearson()
    store.write_table(f"correlation/{key}", table, ["unit_a", "unit_b"], {"a": a, "b": b or a})
    k = plan.config.k
    rows, cols = topk_lists(table, min(k, table.shape[1]), min(k, table.shape[0]), exclude_diagonal=b is None)
    store.write_table(f"topk/{key}/rows", rows.astype(np.int32), ["unit_a", "rank"])
    store.write_table(f"topk/{key}/cols", cols.astype(np.int32), ["unit_b", "rank"])
    return table


def check_existing_run(run_dir: str, config: MineConfig, overwrite: bool = False) -> None:
    """Refuse, before any work, a run directory whose store has another configuration."""
    from . import location
    from .store import STORE_VERSION, StoreMismatch, config_mismatch

    path = location.join(run_dir, "store.zarr")
    if overwrite or not location.exists(location.join(path, "zarr.json")):
        return
    attrs = RunStore(path, mode="r").attrs
    version = attrs.get("store_version")
    if version is not None and version != STORE_VERSION:
        raise StoreMismatch(
            f"the run at {run_dir} was written by store version {version}; this code (rosetta-neurons "
            f"{__version__}) reads store version {STORE_VERSION}: use another --out, or --overwrite to discard it"
        )
    stored = dict(attrs.get("config") or {})
    stored.pop("weights_hashes", None)
    asked = config.identity()
    if stored and stored != asked:
        raise config_mismatch(str(run_dir), stored, asked)
