"""Mean terms of the co-moment updates (Chan, Golub and LeVeque), applied in place to a
:class:`rosetta_core.engine.comoments.CoMoments`: global centring's low-rank terms and position
centring's sums of products of mean-map differences (chosen by :mod:`rosetta_core.engine.centring`)."""

from __future__ import annotations

import numpy as np
from scipy.linalg.blas import dgemm

from .grid_sums import PairSums
from .threads import parallel


def shift_of(key: tuple[str, int, tuple[int, int]], shift_a: list, shift_b: list) -> np.ndarray:
    """``(units,)`` float64: what the layer of ``key`` ``(side, layer, large grid)`` was centred
    on, from the per-layer ``(units, 1, 1)`` shifts of side a or b."""
    side, idx, _ = key
    return (shift_a if side == "a" else shift_b)[idx].ravel().astype(np.float64)


def _add_low_rank(table: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
    """``table += u @ v.T`` in place, in one pass over a C-contiguous float64 ``table``
    (BLAS ``dgemm`` with ``beta=1`` on its transpose); ``u`` ``(rows, k)``, ``v`` ``(cols, k)``."""
    if table.flags.c_contiguous and table.dtype == np.float64 and table.size:
        dgemm(1.0, np.asfortranarray(v, dtype=np.float64), np.asfortranarray(u, dtype=np.float64),
              beta=1.0, c=table.T, trans_b=1, overwrite_c=1)
    else:
        table += u @ v.T


def add_global_terms(acc, terms: list[tuple[float, dict]]) -> None:
    """Add to accumulator ``acc``: ``weight * P * mean_a * mean_b`` to every pair's moments, in place, for terms
    ``(weight, {(side, layer, large): (units,) per-unit means over the pair grid})``:
    global centring's mean shifts, all terms in one low-rank update per table."""
    parallel(global_terms(acc, terms), acc.pairs())


def global_terms(acc, terms: list[tuple[float, dict]]):
    """The work of :func:`add_global_terms` for one pair ``(l, m)``, as a function of the pair
    (so a caller can run it right after its own work on that pair's table)."""
    side_b = "a" if acc.symmetric else "b"

    def add(pair: tuple[int, int]) -> None:
        l, m = pair
        large, _ = acc.grids(l, m)
        size = large[0] * large[1]
        mean_a = [vec[("a", l, large)] for _, vec in terms]
        mean_b = [vec[(side_b, m, large)] for _, vec in terms]
        weights = [weight * size for weight, _ in terms]
        _add_low_rank(acc.cross_[l, m], np.stack([w * x for w, x in zip(weights, mean_a)], axis=1),
                      np.stack(mean_b, axis=1))
        acc.m2_a_[l, m] += sum(w * x**2 for w, x in zip(weights, mean_a))
        acc.m2_b_[l, m] += sum(w * x**2 for w, x in zip(weights, mean_b))

    return add


def add_position_term(acc, weight: float, da, db) -> None:
    """Add to accumulator ``acc``: ``weight * sum_p resize(da) resize(db)`` over each pair's grid to its moments,
    in place (position centring's mean shift; products in float32, sums in float64).
    ``da``/``db``: per layer ``(units, h, w)`` maps (``db`` ignored for a self accumulator)."""
    maps_a = [d[None].astype(np.float32) for d in da]
    maps_b = None if acc.symmetric else [d[None].astype(np.float32) for d in db]
    sums = PairSums(maps_a, maps_b, acc._pair_grids())
    sums.prepare()

    def add(pair: tuple[int, int]) -> None:
        l, m = pair
        large, small = acc.grids(l, m)
        acc.cross_[l, m] += weight * sums.cross(l, m, small)
        acc.m2_a_[l, m] += weight * sums.sumsq("a", l, large)
        acc.m2_b_[l, m] += weight * sums.sumsq("b", m, large)

    parallel(add, acc.pairs())
