"""Zarr v3 access for a run's store: idempotent array creation, per-chunk completion flags,
labelled variables (each with its ``dimension_names`` and coordinate arrays, so xarray opens
them), and checks of the store version and configuration.

Which key holds what is :class:`~rosetta_core.run.run.Run`'s business; this module only reads
and writes keys it is given. Every chunk is compressed with zstd and carries a CRC32C checksum,
so a torn or corrupted chunk fails to decode instead of reading as wrong numbers. ``path`` may
be a local directory or an fsspec URL (``s3://bucket/runs/x``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec
from zarr.errors import ContainsArrayError

__all__ = ["STORE_VERSION", "RunStore", "StoreMismatch"]

#: 2: one group per layer and per pair with unit coordinates (``xarray.open_datatree`` opens it)
STORE_VERSION = 2


class StoreMismatch(ValueError):
    """The store on disk was made with a different configuration or store version."""


def identity_conflicts(stored: dict[str, Any], asked: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """What makes ``asked`` another configuration than ``stored`` (both ``{"run": {...},
    "models": {name: {...}}}``): any run-level field, and any field of a model both name that
    both record. A model only one of them names is an addition, not a conflict. A field of
    :data:`~.config.LATER_FIELDS` that a record lacks has its default there (it is recorded
    only when set otherwise), so a difference names both values."""
    out: dict[str, tuple[Any, Any]] = {}
    later = _later_defaults()
    run_a, run_b = later | (stored.get("run") or {}), later | (asked.get("run") or {})
    for key in sorted(set(run_a) | set(run_b)):
        if run_a.get(key) != run_b.get(key):
            out[key] = (run_a.get(key), run_b.get(key))
    known = stored.get("models") or {}
    for name, fields in sorted((asked.get("models") or {}).items()):
        for key, value in fields.items():
            if name in known and key in known[name] and known[name][key] != value:
                out[f"{name} {key}"] = (known[name][key], value)
    return out


def _later_defaults() -> dict[str, Any]:
    from dataclasses import fields

    from .config import LATER_FIELDS, MineConfig

    return {f.name: f.default for f in fields(MineConfig) if f.name in LATER_FIELDS}


def config_mismatch(where: str, conflicts: dict[str, tuple[Any, Any]]) -> StoreMismatch:
    """The error for a run directory made with another configuration, naming every difference."""
    details = "; ".join(f"{k}: stored {old!r}, asked {new!r}" for k, (old, new) in conflicts.items())
    return StoreMismatch(
        f"the run at {where} was made with a different configuration ({details}); "
        "use another --out directory, or --overwrite to discard it"
    )


def _codecs() -> list:
    return [ZstdCodec(level=1), Crc32cCodec()]


class RunStore:
    """A run's Zarr group with idempotent array creation and per-chunk completion flags."""

    def __init__(self, path: str, mode: str = "a", storage_options: dict | None = None) -> None:
        self.path = str(path)
        self._kwargs = {"storage_options": storage_options} if storage_options else {}
        # the run's own code reads the store as it is, never the consolidated metadata written at
        # the end of a run for other readers: a run that grows (another encoder) would see stale keys
        self.group = zarr.open_group(self.path, mode=mode, zarr_format=3, use_consolidated=False, **self._kwargs)

    # -- attributes --------------------------------------------------------------------------
    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    def check_or_set_identity(self, identity: dict[str, Any], overwrite: bool = False) -> None:
        """Record the run's identity (``{"run": {...}, "models": {name: {...}}}``), adding the
        models it names to those already recorded, or refuse a store made with another one
        (:func:`identity_conflicts`). ``overwrite=True`` empties a store of another
        configuration or store version first."""
        version = self.group.attrs.get("store_version")
        stored = {"run": self.group.attrs.get("run"), "models": self.group.attrs.get("models")}
        conflicts = identity_conflicts(stored, identity) if stored["run"] is not None else {}
        if overwrite and ((version is not None and version != STORE_VERSION) or conflicts):
            self.group = zarr.open_group(self.path, mode="w", zarr_format=3, use_consolidated=False, **self._kwargs)
            version, stored, conflicts = None, {"models": None}, {}
        if version is not None and version != STORE_VERSION:
            raise StoreMismatch(
                f"the store at {self.path} was written by store version {version}; this code "
                f"reads version {STORE_VERSION}: use a new --out directory or --overwrite"
            )
        if conflicts:
            raise config_mismatch(self.path, conflicts)
        models = dict(stored["models"] or {}) | identity["models"]
        self.group.attrs.update({"run": identity["run"], "models": models, "store_version": STORE_VERSION})

    # -- arrays ----------------------------------------------------------------------------
    def require(
        self,
        key: str,
        shape: Sequence[int],
        chunks: Sequence[int],
        dtype: str,
        dims: Sequence[str],
        attrs: dict[str, Any] | None = None,
    ) -> zarr.Array:
        """The array ``key``, created if missing; an existing one must have the same layout."""
        shape, chunks = tuple(int(v) for v in shape), tuple(int(v) for v in chunks)
        if key in self.group:
            arr = self.group[key]
            if tuple(arr.shape) != shape or str(arr.dtype) != str(np.dtype(dtype)):
                raise StoreMismatch(
                    f"array {key!r} in {self.path} has shape {tuple(arr.shape)} {arr.dtype}, "
                    f"expected {shape} {np.dtype(dtype)}: the run's configuration changed"
                )
            return arr
        try:
            return self.group.create_array(
                key,
                shape=shape,
                chunks=chunks,
                dtype=dtype,
                dimension_names=list(dims),
                compressors=_codecs(),
                fill_value=0,
                attributes=attrs or {},
            )
        except ContainsArrayError:  # another task created it after our check: use theirs
            if key not in self.group:
                raise
            return self.require(key, shape, chunks, dtype, dims, attrs)

    def array(self, key: str) -> zarr.Array:
        return self.group[key]

    def __contains__(self, key: str) -> bool:
        return key in self.group

    # -- completion flags --------------------------------------------------------------------
    def require_flags(self, keys: Sequence[str], n_chunks: int) -> None:
        """Create the completion flags of ``keys`` up front, before tasks race to create them."""
        for key in keys:
            self._flags(key, n_chunks)

    def _flags(self, key: str, n_chunks: int) -> zarr.Array:
        return self.require(f"done/{key}", (n_chunks,), (1,), "uint8", ["chunk"])

    def chunk_done(self, key: str, chunk: int, n_chunks: int) -> bool:
        return bool(self._flags(key, n_chunks)[chunk])

    def mark_done(self, key: str, chunk: int, n_chunks: int, done: bool = True) -> None:
        self._flags(key, n_chunks)[chunk] = 1 if done else 0

    def chunk_readable(self, key: str, rows: slice) -> str | None:
        """None when the rows of ``key`` decode; else the decode error (checksum, truncation)."""
        try:
            self.group[key][rows]
        except Exception as err:  # zarr raises codec-specific errors for corrupt chunks
            return f"{type(err).__name__}: {err}"
        return None

    # -- labelled variables ----------------------------------------------------------------
    def replace_group(self, key: str, attrs: dict[str, Any]) -> zarr.Group:
        """An empty group ``key`` with ``attrs`` (an existing one is deleted first)."""
        if key in self.group:
            del self.group[key]
        return self.group.create_group(key, attributes=attrs)

    def write_variables(
        self,
        group: str,
        variables: dict[str, tuple[Sequence[str], np.ndarray]],
        coords: dict[str, np.ndarray | tuple[Sequence[str], np.ndarray]] | None = None,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        """Write ``variables`` name -> ``(dims, values)`` into ``group`` (replacing what is there)
        with coordinate arrays: ``coords`` name -> values along the dimension of that name, or
        ``(dims, values)`` for a coordinate along another dimension (e.g. ``layer_a`` along
        ``unit_a``); xarray labels the variables with them."""
        coords = dict(coords or {})
        node = self.group.require_group(group) if group else self.group  # "": the store's root
        if attrs:
            node.attrs.update(attrs)
        extra = " ".join(name for name, value in coords.items() if isinstance(value, tuple))
        for name, (dims, values) in variables.items():
            self._write(node, name, np.asarray(values), dims, {"coordinates": extra} if extra else {})
        for name, value in coords.items():
            dims, values = value if isinstance(value, tuple) else ((name,), value)
            self._write(node, name, np.asarray(values), dims, {})

    def create_variables(
        self,
        group: str,
        variables: dict[str, tuple[Sequence[str], Sequence[int]]],
        coords: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Create float64 arrays ``variables`` name -> ``(dims, shape)`` in ``group``, filled with
        zeros (replacing what is there), for region writes later (``store.array(key)[...] = ``),
        with coordinate arrays ``coords`` along the dimensions of their names (as
        :meth:`write_variables` labels them)."""
        node = self.group.require_group(group)
        for name, (dims, shape) in variables.items():
            if name in node:
                del node[name]
            shape = tuple(int(v) for v in shape)
            node.create_array(name, shape=shape, chunks=shape, dtype="float64", dimension_names=list(dims),
                              compressors=_codecs(), fill_value=0)
        for name, values in (coords or {}).items():
            self._write(node, name, np.asarray(values), (name,), {})

    def _write(self, node: zarr.Group, name: str, values: np.ndarray, dims: Sequence[str], attrs: dict) -> None:
        if name in node:
            del node[name]
        if values.dtype.kind == "U":
            arr = node.create_array(name, shape=values.shape, dtype=str, dimension_names=list(dims), attributes=attrs)
        else:
            arr = node.create_array(name, shape=values.shape, chunks=values.shape or "auto", dtype=values.dtype,
                                    dimension_names=list(dims), compressors=_codecs(), attributes=attrs)
        arr[...] = values

    def read(self, key: str) -> np.ndarray:
        """The whole array ``key``."""
        return np.asarray(self.group[key][...])

    # -- packed states -----------------------------------------------------------------------
    def write_state(self, key: str, state: dict[str, np.ndarray], attrs: dict[str, Any] | None = None) -> None:
        """A flat dict of arrays (a checkpoint such as ``CoMoments.state_dict()``) as one array
        ``key``: the float64 entries concatenated (exact), the others (counts, names, shapes) and
        each entry's shape in its attributes. One array to write and delete, where one array
        per entry costs a metadata round trip each. ``attrs`` are added after the data, so an
        attribute such as a completion mark is there only once the data are."""
        floats = {k: np.asarray(v) for k, v in state.items() if np.asarray(v).dtype == np.float64}
        layout = [[k, list(v.shape)] for k, v in floats.items()]
        other = {k: np.asarray(v).tolist() for k, v in state.items() if k not in floats}
        flat = np.concatenate([v.ravel() for v in floats.values()]) if floats else np.zeros(0)
        if key in self.group:
            del self.group[key]
        arr = self.group.create_array(key, shape=flat.shape, chunks=(max(1, min(flat.size, 1 << 24)),), dtype="float64",
                                      dimension_names=["value"], compressors=_codecs(),
                                      attributes={"layout": layout, "other": other})
        arr[...] = flat
        if attrs:
            arr.attrs.update(attrs)

    def read_state(self, key: str) -> dict[str, np.ndarray]:
        """Inverse of :meth:`write_state`."""
        arr = self.group[key]
        flat, at = np.asarray(arr[...]), 0
        state = {k: np.asarray(v) for k, v in arr.attrs["other"].items()}
        for k, shape in arr.attrs["layout"]:
            size = int(np.prod(shape, dtype=np.int64))
            state[k] = flat[at : at + size].reshape(shape)
            at += size
        return state

    def consolidate(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # consolidated metadata is not in the v3 spec yet
            zarr.consolidate_metadata(self.group.store)
