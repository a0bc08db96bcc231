"""The :class:`Run`: one object that owns a mining run.

It holds the run's location (a local directory or an fsspec URL such as ``s3://bucket/runs/x``),
its one frozen :class:`~.config.MineConfig`, every path of the run and every key of its store,
the layout fixed by :func:`~.plan.plan_run` (layers, unit offsets), and the run's validation.
Tasks, the dictionary, the report and inversion all read and write a run through it.

The store ``<run>/store.zarr`` (Zarr v3, store version 2) opens whole as labelled arrays with
``xarray.open_datatree(run.store_path, engine="zarr")`` (or :meth:`Run.tree`):

- ``latents`` ``(image, latent)`` float32, ``images`` ``(image, rgb, height, width)`` uint8 (pixel
  dimensions are not named ``y``, ``x``: those are the activation grids'); an image run (``--images``)
  has no latents, its ``images`` are the anchor encoder's view of each file (at most
  :data:`~.plan.PREVIEW_SIDE` pixels) and the coordinate ``source`` ``(image,)`` names each file;
- ``activations/<model>/<layer>/``: ``maps`` ``(image, unit, y, x)`` float16 or float32, with
  coordinates ``unit`` (the model's global unit index), ``channel``, ``layer``, ``model``;
- ``pairs/<A>__<B>/`` (``__shuffled`` appended for the null): ``correlation``
  ``(unit_a, unit_b)`` float32, ``top_b`` ``(unit_a, rank_b)`` and ``top_a`` ``(unit_b, rank_a)``
  int32 (each unit's K most correlated units of the other side), with coordinates ``unit_a``,
  ``layer_a``, ``channel_a``, ``unit_b``, ``layer_b``, ``channel_b``;
- ``moments/<A>__<B>/``: the exact co-moments (attributes ``n``, ``center``, ...; groups
  ``mean_a/<layer>`` ``(unit, y, x)``, ``mean_b/<layer>``, ``layer_pairs/<la>/<lb>`` with
  ``m2_a`` ``(unit_a,)``, ``m2_b`` ``(unit_b,)``, ``cross`` ``(unit_a, unit_b)``, all float64);
  the attribute ``summary``, written last, marks the pair done;
- ``done/<array key>`` ``(chunk,)`` uint8: 1 once a chunk of images is written.

A run that keeps no activations (``activations="none"``, :mod:`.folding`) has no ``maps``
arrays; it has instead ``peaks/<anchor>`` ``(image, unit)`` float32 (each anchor unit's largest
value per image: the dictionary's example images) and, while it runs, ``folds/<pair>/<first>-<stop>``:
the co-moments of chunks ``first:stop`` packed in one float64 array (attribute ``folded``,
written last, marks one done), merged into ``moments/<pair>`` as a binary tree and deleted
once merged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..engine import CoMoments
from . import location
from .config import MineConfig
from .lock import run_lock
from .plan import RunPlan
from .store import STORE_VERSION, RunStore, StoreMismatch, config_mismatch, identity_conflicts

__all__ = ["NULL_TAG", "Run", "run_identity"]

#: suffix of the shuffled null's pair names (``pairs/<G>__<E>__shuffled``)
NULL_TAG = "__shuffled"


class Run:
    """A mining run at ``where`` (a directory or an fsspec URL).

    ``Run(where, config)`` is a run to compute (or resume); ``Run.open(where)`` an existing one,
    whose configuration and plan are read from its store. ``mode="r"`` opens the store
    read-only.
    """

    def __init__(self, where: str | os.PathLike, config: MineConfig | None = None, *, mode: str = "a") -> None:
        where = str(where)
        self.location = where.rstrip("/") if location.is_url(where) else str(Path(where))
        self._config = config
        self._mode = mode

    @classmethod
    def open(cls, where: str | os.PathLike, *, finished: bool = False, mode: str = "r") -> "Run":
        """An existing run; ``finished=True`` also requires its ``manifest.json`` to be complete
        (what inversion, editing and visualisation need). A clear error otherwise."""
        run = cls(where, mode=mode)
        if finished and not (run.manifest() or {}).get("complete"):
            raise ValueError(
                f"{run.location} is not a finished mining run (no complete manifest.json); "
                f"finish it with `rosetta mine --out {run.location}` first"
            )
        if not location.exists(location.join(run.store_path, "zarr.json")):
            raise ValueError(f"{run.location} is not a mining run: it has no store.zarr")
        run._check_version()
        return run

    def __repr__(self) -> str:
        return f"Run({self.location!r})"

    # -- what the run computes ---------------------------------------------------------------
    @property
    def config(self) -> MineConfig:
        return self._config if self._config is not None else self.plan.config

    @cached_property
    def plan(self) -> RunPlan:
        """The layout recorded in the store when the run was prepared."""
        data = self.store.attrs.get("plan")
        if data is None:
            raise ValueError(f"{self.store_path} has no run plan: it was not prepared by a mining run")
        return RunPlan.from_json(data)

    @property
    def name(self) -> str:
        """The last part of the location (``runs/x`` and ``s3://bucket/runs/x`` -> ``x``)."""
        return self.location.rsplit("/", 1)[-1] if location.is_url(self.location) else Path(self.location).resolve().name

    # -- paths -------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        """A file of the run (``run.path("report", "index.html")``), as a path or URL."""
        return location.join(self.location, *parts)

    @property
    def store_path(self) -> str:
        return self.path("store.zarr")

    @property
    def dictionary_path(self) -> str:
        return self.path("dictionary.json")

    @property
    def manifest_path(self) -> str:
        return self.path("manifest.json")

    @property
    def report_path(self) -> str:
        return self.path("report", "index.html")

    # -- store keys ------------------------------------------------------------------------
    @staticmethod
    def layer_group(model: str, layer: str) -> str:
        return f"activations/{model}/{layer}"

    @classmethod
    def maps_key(cls, model: str, layer: str) -> str:
        """The ``(image, unit, y, x)`` activations of one layer."""
        return f"{cls.layer_group(model, layer)}/maps"

    def model_keys(self, model: str) -> list[str]:
        """The activation arrays of ``model``, in hook order."""
        return [self.maps_key(model, layer) for layer in self.plan.layer_names(model)]

    @staticmethod
    def pair_name(a: str, b: str | None = None, null: bool = False) -> str:
        """``<A>__<B>`` (``b=None``: ``a`` with itself), ``__shuffled`` appended for the null."""
        return f"{a}__{b or a}" + (NULL_TAG if null else "")

    @classmethod
    def pair_group(cls, a: str, b: str | None = None, null: bool = False) -> str:
        return f"pairs/{cls.pair_name(a, b, null)}"

    @classmethod
    def correlation_key(cls, a: str, b: str | None = None, null: bool = False) -> str:
        """The ``(unit_a, unit_b)`` Pearson table of a model pair."""
        return f"{cls.pair_group(a, b, null)}/correlation"

    @classmethod
    def moments_group(cls, a: str, b: str | None = None, null: bool = False) -> str:
        return f"moments/{cls.pair_name(a, b, null)}"

    @staticmethod
    def peaks_key(model: str) -> str:
        """``(image, unit)`` float32: each unit's largest value per image (a run that keeps no
        activations stores them for its anchor)."""
        return f"peaks/{model}"

    def fold_key(self, a: str, b: str | None, null: bool, first: int, stop: int) -> str:
        """Where a run that keeps no activations holds the co-moments of image chunks
        ``first:stop`` of a pair: ``folds/<pair>/<first>-<stop>`` (one packed array,
        :meth:`~.store.RunStore.write_state`), or for all chunks the pair's ``moments`` group."""
        if (first, stop) == (0, len(self.plan.chunks)):
            return self.moments_group(a, b, null)
        return f"folds/{self.pair_name(a, b, null)}/{first}-{stop}"

    def write_fold(self, a: str, b: str | None, null: bool, first: int, stop: int, acc: CoMoments) -> None:
        """Store the co-moments of chunks ``first:stop`` (:meth:`fold_key`), marked ``folded`` last."""
        key = self.fold_key(a, b, null, first, stop)
        if key != self.moments_group(a, b, null):
            self.store.write_state(key, acc.state_dict(), {"folded": [first, stop]})
            return
        self.write_moments(a, b, acc, null)
        self.store.group[key].attrs["folded"] = [first, stop]

    def read_fold(self, a: str, b: str | None, null: bool, first: int, stop: int) -> CoMoments:
        """The co-moments of chunks ``first:stop`` of a pair (:meth:`write_fold`)."""
        key = self.fold_key(a, b, null, first, stop)
        if key == self.moments_group(a, b, null):
            return self.moments(a, b, null)
        return CoMoments.from_state_dict(self.store.read_state(key))

    def folded(self, a: str, b: str | None, null: bool, first: int, stop: int) -> bool:
        """True when the co-moments of chunks ``first:stop`` of a pair are stored whole."""
        key = self.fold_key(a, b, null, first, stop)
        return key in self.store and "folded" in self.store.group[key].attrs

    def drop_fold(self, a: str, b: str | None, null: bool, first: int, stop: int) -> None:
        """Delete the partial co-moments of chunks ``first:stop`` (never the pair's moments)."""
        key = self.fold_key(a, b, null, first, stop)
        if key != self.moments_group(a, b, null) and key in self.store:
            del self.store.group[key]

    def drop_folds(self, a: str, b: str | None, null: bool = False) -> None:
        """Delete what is left of a pair's partial co-moments (``folds/<pair>``)."""
        key = f"folds/{self.pair_name(a, b, null)}"
        if key in self.store:
            del self.store.group[key]

    # -- blocks of a pair cut to a memory budget (rosetta_core.run.statistics) ----------------
    def blocks_group(self, a: str, b: str | None, null: bool = False) -> str:
        """``blocks/<pair>``: the co-moments of each block of units of a pair whose statistics
        are cut to a memory budget, while the pair is computed (attribute ``blocks``: the cut)."""
        return f"blocks/{self.pair_name(a, b, null)}"

    def block_key(self, a: str, b: str | None, null: bool, block) -> str:
        """``blocks/<pair>/<rows>_<cols>``: one block's co-moments (one packed array)."""
        (r0, r1), (c0, c1) = block.rows, block.cols
        return f"{self.blocks_group(a, b, null)}/{r0}-{r1}_{c0}-{c1}"

    def start_blocks(self, a: str, b: str | None, null: bool, blocks: list) -> None:
        """Record the pair's cut; blocks stored under another cut (a run resumed with another
        budget) are deleted first."""
        key, cut = self.blocks_group(a, b, null), [[*k.rows, *k.cols] for k in blocks]
        if key in self.store and self.store.group[key].attrs.get("blocks") != cut:
            del self.store.group[key]
        if key not in self.store:
            self.store.group.create_group(key, attributes={"blocks": cut})

    def write_block(self, a: str, b: str | None, null: bool, block, acc: CoMoments) -> None:
        """Store one block's co-moments, marked ``done`` last."""
        self.store.write_state(self.block_key(a, b, null, block), acc.state_dict(), {"done": True})

    def block_done(self, a: str, b: str | None, null: bool, block) -> bool:
        key = self.block_key(a, b, null, block)
        return key in self.store and "done" in self.store.group[key].attrs

    def read_block(self, a: str, b: str | None, null: bool, block) -> CoMoments:
        return CoMoments.from_state_dict(self.store.read_state(self.block_key(a, b, null, block)))

    def drop_blocks(self, a: str, b: str | None, null: bool = False) -> None:
        """Delete a pair's block states (once its moments and table are assembled)."""
        key = self.blocks_group(a, b, null)
        if key in self.store:
            del self.store.group[key]

    def moments_template(self, a: str, b: str | None, null: bool = False) -> None:
        """The pair's ``moments`` group laid out as :meth:`write_moments` writes it, with arrays
        of zeros that :meth:`write_moments_block` fills block by block."""
        group, plan, symmetric = self.moments_group(a, b, null), self.plan, b is None
        layers_a, layers_b = plan.layers[a], plan.layers[b or a]
        self.store.replace_group(group, {
            "n": int(plan.n), "center": str(self.config.center), "symmetric": symmetric,
            "shapes_a": [list(s) for _, s in layers_a], "shapes_b": [list(s) for _, s in layers_b],
            "layers_a": [l for l, _ in layers_a], "layers_b": [l for l, _ in layers_b],
        })
        for side, model, layers in (("a", a, layers_a), ("b", b or a, layers_b)):
            if side == "b" and symmetric:
                continue
            offsets = plan.offsets(model)
            for layer, shape in layers:
                self.store.create_variables(f"{group}/mean_{side}/{layer}", {"mean": (("unit", "y", "x"), shape)},
                                            {"unit": offsets[layer] + np.arange(shape[0])})
        off_a, off_b = plan.offsets(a), plan.offsets(b or a)
        for l, (la, sa) in enumerate(layers_a):
            for m, (lb, sb) in enumerate(layers_b):
                if symmetric and m < l:
                    continue
                self.store.create_variables(
                    f"{group}/layer_pairs/{la}/{lb}",
                    {"m2_a": (("unit_a",), (sa[0],)), "m2_b": (("unit_b",), (sb[0],)),
                     "cross": (("unit_a", "unit_b"), (sa[0], sb[0]))},
                    {"unit_a": off_a[la] + np.arange(sa[0]), "unit_b": off_b[lb] + np.arange(sb[0])},
                )

    def write_moments_block(self, a: str, b: str | None, null: bool, block, acc: CoMoments) -> None:
        """Write one block's co-moments into their regions of the pair's :meth:`moments_template`
        (one writer at a time: regions share stored chunks). A self pair's block off the
        diagonal also writes the transposed cross moments of a layer it shares with its mirror."""
        from .statistics import _slices

        group, plan, symmetric = self.moments_group(a, b, null), self.plan, b is None
        layers_a, layers_b = plan.layers[a], plan.layers[b or a]
        pieces_a = _slices(layers_a, block.rows)
        diagonal = symmetric and block.rows == block.cols
        pieces_b = pieces_a if diagonal else _slices(layers_b, block.cols)
        arr = self.store.array
        for side, pieces, means in (("a", pieces_a, acc.mean_a_), ("a" if symmetric else "b", pieces_b, acc.mean_b_)):
            for (i, lo, hi), mean in zip(pieces, means):
                names = layers_a if side == "a" else layers_b
                arr(f"{group}/mean_{side}/{names[i][0]}/mean")[lo:hi] = mean
        for p, q in acc.pairs():
            (l, a0, a1), (m, b0, b1) = pieces_a[p], pieces_b[q]
            node = f"{group}/layer_pairs/{layers_a[l][0]}/{layers_b[m][0]}"
            arr(f"{node}/cross")[a0:a1, b0:b1] = acc.cross_[p, q]
            arr(f"{node}/m2_a")[a0:a1] = acc.m2_a_[p, q]
            arr(f"{node}/m2_b")[b0:b1] = acc.m2_b_[p, q]
            if symmetric and not diagonal and l == m:
                arr(f"{node}/cross")[b0:b1, a0:a1] = acc.cross_[p, q].T

    @property
    def keeps_maps(self) -> bool:
        """True when the run stores every activation map (``activations="keep"``, recorded in
        the store's identity only when not; a store without one keeps them)."""
        if self._config is not None:
            return self._config.activations == "keep"
        return (self.store.attrs.get("run") or {}).get("activations", "keep") == "keep"

    # -- units ---------------------------------------------------------------------------------
    def offsets(self, model: str) -> dict[str, int]:
        """layer -> the global index of its first unit."""
        return self.plan.offsets(model)

    # -- the store ---------------------------------------------------------------------------
    @cached_property
    def store(self) -> RunStore:
        return RunStore(self.store_path, mode=self._mode)

    def _check_version(self) -> None:
        version = self.store.attrs.get("store_version")
        if version is not None and version != STORE_VERSION:
            raise StoreMismatch(
                f"the run at {self.location} was written by store version {version}; this code (rosetta-neurons "
                f"{__version__}) reads store version {STORE_VERSION}: use another --out, or --overwrite to discard it"
            )

    def tree(self):
        """The whole store as an ``xarray.DataTree`` of labelled arrays (lazy)."""
        import xarray as xr

        return xr.open_datatree(self.store_path, engine="zarr", chunks={})

    def layer(self, model: str, layer: str):
        """``xarray.DataArray`` ``(image, unit, y, x)`` of one layer (lazy, dask-backed)."""
        import xarray as xr

        return xr.open_zarr(self.store_path, group=self.layer_group(model, layer), consolidated=False)["maps"]

    def table(self, a: str, b: str | None = None, null: bool = False) -> np.ndarray | None:
        """The correlation table of a pair, or None when it has not been computed."""
        key = self.correlation_key(a, b, null)
        return np.asarray(self.store.array(key)[...]) if key in self.store else None

    # -- validation ----------------------------------------------------------------------------
    def validate(self, overwrite: bool = False) -> None:
        """Every check before anything is computed, with one clear error: the configuration's
        values, the models and their weights, the location is writable, an existing run
        there has this configuration and store version (``overwrite`` discards it instead),
        and what the run has still to write fits in the free space of a local location
        (:mod:`.disk`; an fsspec URL is not checked). Encoders the run does not have yet are
        an addition, not another configuration: the run computes only their activations and pairs."""
        from .disk import check_fits, remaining_bytes, run_size
        from .models import check_models

        config = self.config
        config.validate()
        check_models(config)
        digest, n = None, config.n
        if config.images is not None:
            from .plan import image_count

            n = image_count(config, self.image_index)  # an empty source or too few images: one clear error
            digest = self.image_index.digest
        location.check_writable(self.location)
        existing = not overwrite and location.exists(location.join(self.store_path, "zarr.json"))
        if existing:
            self._check_version()
            attrs = self.store.attrs
            if attrs.get("run") is not None:
                asked = run_identity(config, images_digest=digest)
                conflicts = identity_conflicts({"run": attrs["run"], "models": attrs.get("models")}, asked)
                if conflicts:
                    raise config_mismatch(str(self.location), conflicts)
        if not location.is_url(self.location):
            size = run_size(config, n)
            needed = remaining_bytes(self, size, existing)
            check_fits(self.location, needed, config, n, done=size.disk_bytes - needed)

    @cached_property
    def image_index(self):
        """The :class:`~rosetta_core.data.image_source.ImageIndex` of an image run's source: every
        file listed, hashed and decode-checked (once per ``Run`` object)."""
        from ..data.image_source import index_images

        if self.config.images is None:
            raise ValueError(f"{self.location} mines a generator's images; it has no image source")
        return index_images(self.config.images)

    def sources(self, start: int = 0, stop: int | None = None) -> list[str]:
        """The file names of images ``start:stop`` of an image run (relative to its source)."""
        if "source" not in self.store:
            raise ValueError(f"{self.location} mines a generator's images; its images have no source files")
        return [str(v) for v in np.asarray(self.store.array("source")[start:stop])]

    @contextmanager
    def lock(self) -> Iterator[str | Path]:
        """Hold the run's lock (``<run>/.lock``, :func:`~.lock.run_lock`) for the ``with`` block:
        one mining run at a time; yields the lock's path or URL."""
        with run_lock(self.location) as held:
            yield held

    # -- files -------------------------------------------------------------------------------
    def read_json(self, where: str) -> dict[str, Any] | None:
        """A JSON file of the run (a path from :meth:`path`), or None when it is missing."""
        try:
            return json.loads(location.read_text(where))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def write_json(self, where: str, content: dict[str, Any]) -> None:
        location.write_text(where, json.dumps(content, indent=1), content_type="application/json")
        if where == self.dictionary_path:
            self.__dict__["dictionary"] = content

    def manifest(self) -> dict[str, Any] | None:
        return self.read_json(self.manifest_path)

    @cached_property
    def dictionary(self) -> dict[str, Any]:
        """The content of ``dictionary.json`` (read once)."""
        from ..matching.dictionary import upgrade_dictionary

        content = self.read_json(self.dictionary_path)
        if content is None:
            raise ValueError(f"{self.dictionary_path} does not exist: run the mining flow up to the dictionary step first")
        return upgrade_dictionary(content)

    def finished(self) -> dict[str, Any] | None:
        """The manifest when the run is complete with this configuration, else None."""
        manifest = self.manifest()
        if manifest and manifest.get("complete") and self._same_config(manifest.get("config")):
            if self.config.images is None or (manifest.get("images") or {}).get("digest") == self.image_index.digest:
                return manifest
        return None

    def _same_config(self, recorded: dict[str, Any] | None) -> bool:
        """``recorded`` (a manifest's config) is this run's configuration; fields added to
        :class:`MineConfig` since it was written count as their defaults, except
        ``random_init``: a run written before it has no random-init companion (and one shuffled
        null), so asking for the companion finishes it (only what is missing is computed)."""
        if recorded is None:
            return False
        try:
            return MineConfig.from_identity({"random_init": False} | recorded) == self.config
        except TypeError:  # a field this code does not know: written by a newer version
            return False

    # -- co-moments ----------------------------------------------------------------------------
    def write_moments(self, a: str, b: str | None, acc: CoMoments, null: bool = False) -> None:
        """Store a pair's co-moments (the store layout above); the summary is written apart."""
        group = self.moments_group(a, b, null)
        plan, state = self.plan, acc.state_dict()
        layers_a, layers_b = plan.layer_names(a), plan.layer_names(b or a)
        self.store.replace_group(group, {
            "n": int(state["n"]), "center": str(state["center"]), "symmetric": bool(state["symmetric"]),
            "shapes_a": np.asarray(state["shapes_a"]).tolist(), "shapes_b": np.asarray(state["shapes_b"]).tolist(),
            "layers_a": layers_a, "layers_b": layers_b,
        })
        for side, model, names in (("a", a, layers_a), ("b", b or a, layers_b)):
            if side == "b" and acc.symmetric:
                continue
            offsets = plan.offsets(model)
            for i, layer in enumerate(names):
                mean = state[f"mean_{side}/{i}"]
                units = offsets[layer] + np.arange(mean.shape[0])
                self.store.write_variables(f"{group}/mean_{side}/{layer}", {"mean": (("unit", "y", "x"), mean)},
                                           {"unit": units})
        off_a, off_b = plan.offsets(a), plan.offsets(b or a)
        for l, m in acc.pairs():
            la, lb = layers_a[l], layers_b[m]
            cross = state[f"cross/{l}_{m}"]
            self.store.write_variables(
                f"{group}/layer_pairs/{la}/{lb}",
                {"m2_a": (("unit_a",), state[f"m2_a/{l}_{m}"]), "m2_b": (("unit_b",), state[f"m2_b/{l}_{m}"]),
                 "cross": (("unit_a", "unit_b"), cross)},
                {"unit_a": off_a[la] + np.arange(cross.shape[0]), "unit_b": off_b[lb] + np.arange(cross.shape[1])},
            )

    def moments(self, a: str, b: str | None = None, null: bool = False) -> CoMoments:
        """The :class:`~rosetta_core.engine.CoMoments` of a finished model pair (``b=None``: ``a``
        with itself). Its ``unit_stats(l, m)`` gives the dataset mean and variance of every unit
        on each layer pair's common grid (paper Eq. 1), which guided inversion normalises with."""
        group = self.moments_group(a, b, null)
        if group not in self.store:
            raise ValueError(f"{self.store_path} has no moments for {self.pair_name(a, b, null)}: "
                             "that pair was not mined in this run")
        attrs = self.store.group[group].attrs
        layers_a, layers_b = list(attrs["layers_a"]), list(attrs["layers_b"])
        symmetric = bool(attrs["symmetric"])
        state: dict[str, Any] = {"n": np.asarray(attrs["n"]), "center": np.asarray(attrs["center"]),
                                 "symmetric": np.asarray(symmetric), "shapes_a": np.asarray(attrs["shapes_a"]),
                                 "shapes_b": np.asarray(attrs["shapes_b"])}
        read = self.store.read
        for i, layer in enumerate(layers_a):
            state[f"mean_a/{i}"] = read(f"{group}/mean_a/{layer}/mean")
        if not symmetric:
            for i, layer in enumerate(layers_b):
                state[f"mean_b/{i}"] = read(f"{group}/mean_b/{layer}/mean")
        for l, la in enumerate(layers_a):
            for m, lb in enumerate(layers_b):
                if symmetric and m < l:
                    continue
                for part in ("m2_a", "m2_b", "cross"):
                    state[f"{part}/{l}_{m}"] = read(f"{group}/layer_pairs/{la}/{lb}/{part}")
        return CoMoments.from_state_dict(state)

    def pair_summary(self, a: str, b: str | None = None, null: bool = False) -> dict[str, Any] | None:
        """The best-buddy summary of a finished pair, or None while it is not done."""
        group = self.moments_group(a, b, null)
        if group not in self.store or "summary" not in self.store.group[group].attrs:
            return None
        return dict(self.store.group[group].attrs["summary"])


def run_identity(config: MineConfig, weights_hashes: dict[str, str] | None = None,
                 images_digest: str | None = None) -> dict[str, Any]:
    """What a store records of the runs it holds: the run-level fields (with an image run's
    content digest: a changed folder is another configuration), and per model its weights and
    layers (with the weights' hashes once the models are loaded)."""
    hashes = weights_hashes or {}
    fields = config.run_identity() | ({"images_digest": images_digest} if images_digest else {})
    return {"run": fields, "models": {m: config.model_identity(m, hashes.get(m)) for m in config.models}}
