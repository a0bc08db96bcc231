"""Rosetta units across m models (paper Eq. 4) and their clustering into concepts.

A generator unit ``j`` is a Rosetta unit when it has a best buddy in *every* discriminative
model; the Rosetta tuples are ``(j, k_1, ..., k_m)`` with ``(j, k_i)`` in ``BB(G, D_i)`` for
all ``i``. With one model the tuples are exactly the best buddies. Rosetta units are then
clustered by the generator's self best buddies ``BB(G, G; K)``: concepts are the connected
components of that graph restricted to Rosetta units.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["Concept", "RosettaTuples", "cluster_concepts", "rosetta_tuples"]


def _readonly(x: np.ndarray) -> np.ndarray:
    x.setflags(write=False)
    return x


def _pairs(name: str, pairs) -> np.ndarray:
    """Validate a ``(P, 2)`` array of non-negative unit indices; size-0 input is empty."""
    a = np.asarray(pairs)
    if a.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    if a.ndim != 2 or a.shape[1] != 2 or a.dtype.kind not in "iu":
        raise ValueError(
            f"{name} must be an integer array of shape (P, 2); got dtype {a.dtype}, "
            f"shape {a.shape}"
        )
    if a.min() < 0:
        raise ValueError(f"{name} holds a negative unit index {a.min()}; valid: indices >= 0")
    return a.astype(np.int64, copy=False)


def _group(values: np.ndarray, keys: np.ndarray, units: np.ndarray) -> tuple[np.ndarray, ...]:
    """Split ``values`` ``(P,)`` by sorted ``keys`` ``(P,)`` into one array per unit ``(U,)``."""
    if len(units) == 0:
        return ()
    cuts = np.searchsorted(keys, units[1:])
    return tuple(_readonly(v.copy()) for v in np.split(values, cuts))


@dataclass(frozen=True, eq=False)
class RosettaTuples:
    """Rosetta units of a generator matched across ``m`` models (paper Eq. 4).

    ``units``: sorted int64 ``(U,)`` generator units with a best buddy in every model.
    ``partners[model]``: tuple of ``U`` sorted int64 arrays, the partners of ``units[u]``.
    ``correlations[model]``: same layout, float64 correlation of each pair, or ``None``.
    ``models``: model names in the order used by :meth:`tuples`.
    """

    models: tuple[str, ...]
    units: np.ndarray
    partners: Mapping[str, tuple[np.ndarray, ...]]
    correlations: Mapping[str, tuple[np.ndarray, ...]] | None

    def tuples(self) -> Iterator[tuple[int, ...]]:
        """Yield every ``(j, k_1, ..., k_m)``: the product of each unit's partners, in order."""
        for u, j in enumerate(self.units.tolist()):
            lists = [self.partners[m][u].tolist() for m in self.models]
            for ks in itertools.product(*lists):
                yield (j, *ks)


def rosetta_tuples(bb_by_model: Mapping[str, np.ndarray], corr_by_model=None) -> RosettaTuples:
    """Intersect generator best buddies over ``m >= 1`` models (paper Eq. 4).

    ``bb_by_model``: model name -> ``(P, 2)`` best-buddy pairs ``(generator unit, model
    unit)``. ``corr_by_model`` (optional): model name -> correlation table ``(G, units)`` from
    which each pair's correlation is looked up; it must have the same models.
    """
    if not isinstance(bb_by_model, Mapping) or len(bb_by_model) == 0:
        raise ValueError(
            f"bb_by_model={bb_by_model!r} holds no models; valid: a dict with at least one "
            "model name -> (P, 2) best-buddy array"
        )
    models = tuple(bb_by_model)
    bbs = {m: _pairs(f"bb_by_model[{m!r}]", bb_by_model[m]) for m in models}
    tables = None
    if corr_by_model is not None:
        if set(corr_by_model) != set(models):
            raise ValueError(
                f"corr_by_model has models {sorted(corr_by_model)}; valid: the same models as "
                f"bb_by_model, {sorted(models)}"
            )
        tables = {}
        for m in models:
            t = np.asarray(corr_by_model[m])
            bb = bbs[m]
            if t.ndim != 2:
                raise ValueError(f"corr_by_model[{m!r}] has shape {t.shape}; valid: 2-d (G, units)")
            if len(bb) and (bb[:, 0].max() >= t.shape[0] or bb[:, 1].max() >= t.shape[1]):
                raise ValueError(
                    f"bb_by_model[{m!r}] holds pair indices up to ({bb[:, 0].max()}, "
                    f"{bb[:, 1].max()}), outside corr_by_model[{m!r}] of shape {t.shape}; "
                    "valid: indices inside the table"
                )
            tables[m] = t
    units = np.unique(bbs[models[0]][:, 0])
    for m in models[1:]:
        units = np.intersect1d(units, bbs[m][:, 0])
    partners, correlations = {}, ({} if tables is not None else None)
    for m in models:
        bb = np.unique(bbs[m], axis=0)  # sorted by generator unit, then partner
        bb = bb[np.isin(bb[:, 0], units)]
        partners[m] = _group(bb[:, 1], bb[:, 0], units)
        if tables is not None:
            vals = tables[m][bb[:, 0], bb[:, 1]].astype(np.float64)
            correlations[m] = _group(vals, bb[:, 0], units)
    return RosettaTuples(
        models=models,
        units=_readonly(units.astype(np.int64)),
        partners=MappingProxyType(partners),
        correlations=None if correlations is None else MappingProxyType(correlations),
    )


@dataclass(frozen=True, eq=False)
class Concept:
    """One concept: a cluster of Rosetta units.

    ``g_units``: sorted int64 generator units. ``partners[model]``: sorted unique int64 units
    of that model matched to any member. ``mean_correlation``: mean best-buddy correlation
    over all (member, partner) pairs of all models (NaN when no correlations were given).
    """

    id: int
    g_units: np.ndarray
    partners: Mapping[str, np.ndarray]
    mean_correlation: float

    @property
    def size(self) -> int:
        return len(self.g_units)


def cluster_concepts(tuples: RosettaTuples, self_bb) -> list[Concept]:
    """Cluster Rosetta units into concepts by the generator's self best buddies.

    ``self_bb``: ``(Q, 2)`` pairs of generator units (e.g. from ``self_best_buddies``); pairs
    touching a non-Rosetta unit are ignored. Concepts are the connected components; a Rosetta
    unit with no self buddy is a singleton. Ids ``0..C-1`` follow mean correlation descending,
    then size descending, then smallest generator unit.
    """
    if not isinstance(tuples, RosettaTuples):
        raise TypeError(f"tuples must be a RosettaTuples, got {type(tuples).__name__}")
    edges = _pairs("self_bb", self_bb)
    units = tuples.units
    n = len(units)
    if n == 0:
        return []
    pos = np.searchsorted(units, edges)
    pos = np.minimum(pos, n - 1)
    ok = (units[pos] == edges).all(axis=1) & (edges[:, 0] != edges[:, 1])
    a, b = pos[ok, 0], pos[ok, 1]
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)).tocsr()
    n_comp, labels = connected_components(graph, directed=False)
    found = []
    for c in range(n_comp):
        members = np.flatnonzero(labels == c)
        partners = {
            m: np.unique(np.concatenate([tuples.partners[m][u] for u in members]))
            for m in tuples.models
        }
        if tuples.correlations is None:
            mean = math.nan
        else:
            vals = [v for m in tuples.models for u in members for v in tuples.correlations[m][u]]
            mean = math.fsum(vals) / len(vals)  # exact sum: independent of order
        found.append((units[members], partners, mean))
    found.sort(key=lambda f: (-f[2] if not math.isnan(f[2]) else math.inf, -len(f[0]), f[0][0]))
    return [
        Concept(
            id=i,
            g_units=_readonly(g.astype(np.int64)),
            partners=MappingProxyType({m: _readonly(p.astype(np.int64)) for m, p in part.items()}),
            mean_correlation=float(mean),
        )
        for i, (g, part, mean) in enumerate(found)
    ]
