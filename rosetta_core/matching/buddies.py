"""Best-buddy matching of units from a correlation table (paper Eq. 3).

A correlation table ``(rows, cols)`` holds the Pearson correlation of every unit of model A
(rows) with every unit of model B (cols). A pair ``(row, col)`` is a *best buddy* when ``col``
is among the ``k_a`` highest columns of ``row`` and ``row`` is among the ``k_b`` highest rows of
``col``. The paper uses ``k_a = k_b = 5``; the published code used ``k_a=1, k_b=5``.

Ranking rule (everywhere): higher value first, ties broken by the lower index first.

Dead units: the correlation engine gives exactly 0 for a zero-variance unit, so a row (or
column) that is exactly zero everywhere is a dead unit. Dead units are never eligible: they
never appear in a pair, and they do not take a slot in anybody's top-K list (they are ranked
as ``-inf``). With ``exclude_diagonal=True`` the diagonal is ignored when deciding whether a
unit is dead. Top-K lists use ``-1`` for a slot that has no eligible candidate (only possible
when fewer than K units are eligible).

Store the two top-K lists of :func:`topk_lists` once and sweep K with
:func:`best_buddies_from_topk` without recomputing the table.
"""

from __future__ import annotations

import operator

import numpy as np

__all__ = [
    "best_buddies",
    "best_buddies_from_topk",
    "self_best_buddies",
    "topk_indices",
    "topk_lists",
]

# Rows are ranked in blocks of about this many table elements to bound temporary memory.
_BLOCK_ELEMS = 1 << 22


def _check_k(name: str, k, n: int, what: str) -> int:
    if isinstance(k, bool):
        raise TypeError(f"{name}={k!r} must be an int, not a bool; valid: 1..{n}")
    try:
        k = operator.index(k)
    except TypeError:
        raise TypeError(f"{name}={k!r} must be an int; valid: 1..{n}") from None
    if n < 1:
        raise ValueError(f"{name}={k} cannot be used: {what} has no units; valid: a non-empty side")
    if k < 1:
        raise ValueError(f"{name}={k} is smaller than 1; valid: 1..{n}")
    if k > n:
        raise ValueError(f"{name}={k} is larger than the {n} {what}; valid: 1..{n}")
    return k


def _check_table(table, exclude_diagonal: bool = False) -> np.ndarray:
    t = np.asarray(table)
    if t.ndim != 2:
        raise ValueError(
            f"table must be 2-d (rows, cols); got ndim={t.ndim} with shape {t.shape}; "
            "valid: a (units_a, units_b) correlation table"
        )
    if t.dtype.kind not in "fiu":
        raise TypeError(f"table has dtype {t.dtype}; valid: a real float or integer dtype")
    finite = np.isfinite(t)
    if not finite.all():
        bad = np.argwhere(~finite)
        first = tuple(int(v) for v in bad[0])
        raise ValueError(
            f"table has {len(bad)} non-finite values (first at {first}: {t[first]}); "
            "valid: finite correlations only"
        )
    if exclude_diagonal and t.shape[0] != t.shape[1]:
        raise ValueError(
            f"exclude_diagonal=True needs a square table, got shape {t.shape}; "
            "valid: a (units, units) self table, or exclude_diagonal=False"
        )
    return t


def _topk_rows(a: np.ndarray, k: int) -> np.ndarray:
    """Top-``k`` column indices of every row of ``a`` ``(rows, cols)`` -> ``(rows, k)``."""
    rows, cols = a.shape
    out = np.empty((rows, k), dtype=np.int64)
    step = max(1, _BLOCK_ELEMS // max(cols, 1))
    for start in range(0, rows, step):
        blk = np.ascontiguousarray(a[start : start + step])
        if k == cols:
            idx = np.broadcast_to(np.arange(cols), blk.shape).copy()
        else:
            idx = np.argpartition(blk, cols - k, axis=1)[:, cols - k :]
        vals = np.take_along_axis(blk, idx, axis=1)
        # argpartition picks arbitrarily among values tied with the k-th largest: redo
        # those rows with a stable full sort so the lower index wins.
        kth = vals.min(axis=1)
        tied = np.flatnonzero(np.count_nonzero(blk >= kth[:, None], axis=1) > k)
        if tied.size:
            sub = blk[tied]
            fix = np.argsort(-sub, axis=1, kind="stable")[:, :k]
            idx[tied] = fix
            vals[tied] = np.take_along_axis(sub, fix, axis=1)
        order = np.lexsort((idx, -vals), axis=1)
        out[start : start + len(blk)] = np.take_along_axis(idx, order, axis=1)
    return out


def topk_indices(table, k: int, axis: int = 1) -> np.ndarray:
    """Indices of the ``k`` highest values of a 2-d ``table`` ``(rows, cols)`` along ``axis``.

    ``axis=1``: per row, returns ``(rows, k)`` column indices; ``axis=0``: per column, returns
    ``(cols, k)`` row indices. Ordered by value descending, ties by lower index first.
    Values may include ``-inf`` (ranked last); NaN is rejected.
    """
    t = np.asarray(table)
    if t.ndim != 2:
        raise ValueError(f"table must be 2-d (rows, cols); got ndim={t.ndim}; valid: ndim=2")
    if axis not in (0, 1):
        raise ValueError(f"axis={axis!r} is not supported; valid: 0 (per column) or 1 (per row)")
    if t.dtype.kind == "f" and np.isnan(t).any():
        raise ValueError("table contains NaN; valid: numbers or -inf")
    side = "columns of table" if axis == 1 else "rows of table"
    k = _check_k("k", k, t.shape[axis], side)
    return _topk_rows(t if axis == 1 else t.T, k)


def topk_lists(table, k_a: int = 5, k_b: int | None = None, *, exclude_diagonal: bool = False):
    """Top-K lists of a correlation table in both directions, for sweeping K later.

    Returns ``(row_topk, col_topk)``: ``row_topk`` ``(rows, k_a)`` holds for every row its
    ``k_a`` highest eligible columns, ``col_topk`` ``(cols, k_b)`` for every column its ``k_b``
    highest eligible rows (``k_b`` defaults to ``k_a``). Dead units and, with
    ``exclude_diagonal``, the unit itself are not eligible; empty slots hold ``-1``.
    """
    t = _check_table(table, exclude_diagonal)
    rows, cols = t.shape
    k_a = _check_k("k_a", k_a, cols, "columns of table")
    k_b = _check_k("k_b", k_a if k_b is None else k_b, rows, "rows of table")
    row_nz = np.count_nonzero(t, axis=1)
    col_nz = np.count_nonzero(t, axis=0)
    if exclude_diagonal:
        diag_nz = np.diagonal(t) != 0
        row_nz = row_nz - diag_nz
        col_nz = col_nz - diag_nz
    dead_rows, dead_cols = row_nz == 0, col_nz == 0
    if exclude_diagonal or dead_rows.any() or dead_cols.any():
        work = t.astype(np.result_type(t.dtype, np.float32), copy=True)
        work[dead_rows, :] = -np.inf
        work[:, dead_cols] = -np.inf
        if exclude_diagonal:
            np.fill_diagonal(work, -np.inf)
    else:
        work = t
    row_topk = topk_indices(work, k_a, axis=1)
    col_topk = topk_indices(work, k_b, axis=0)
    if work is not t:
        row_topk[np.take_along_axis(work, row_topk, axis=1) == -np.inf] = -1
        col_topk[np.take_along_axis(work.T, col_topk, axis=1) == -np.inf] = -1
    return row_topk, col_topk


def _check_topk(name: str, arr, n_other: int, other: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != 2 or a.dtype.kind not in "iu":
        raise ValueError(
            f"{name} must be a 2-d integer array (units, K); got dtype {a.dtype}, shape {a.shape}"
        )
    if a.size and (a.min() < -1 or a.max() >= n_other):
        bad = a[(a < -1) | (a >= n_other)][0]
        raise ValueError(
            f"{name} holds index {bad}, outside the {n_other} {other}; valid: -1..{n_other - 1}"
        )
    return a


def best_buddies_from_topk(row_topk, col_topk, k_a: int, k_b: int) -> np.ndarray:
    """Best buddies from stored top-K lists (from :func:`topk_lists`), for any smaller K.

    ``row_topk`` ``(rows, Ka)`` and ``col_topk`` ``(cols, Kb)`` with ``k_a <= Ka``,
    ``k_b <= Kb``. Returns int64 ``(P, 2)`` ``(row, col)`` pairs sorted by row then col.
    """
    r, c = np.asarray(row_topk), np.asarray(col_topk)
    n_rows = r.shape[0] if r.ndim == 2 else 0
    n_cols = c.shape[0] if c.ndim == 2 else 0
    r = _check_topk("row_topk", r, n_cols, "columns (rows of col_topk)")
    c = _check_topk("col_topk", c, n_rows, "rows (rows of row_topk)")
    k_a = _check_k("k_a", k_a, r.shape[1], "stored top-K columns of row_topk")
    k_b = _check_k("k_b", k_b, c.shape[1], "stored top-K rows of col_topk")
    rows = np.repeat(np.arange(r.shape[0], dtype=np.int64), k_a)
    cols = r[:, :k_a].astype(np.int64).ravel()
    keep = cols >= 0
    rows, cols = rows[keep], cols[keep]
    mutual = (c[cols, :k_b] == rows[:, None]).any(axis=1)
    rows, cols = rows[mutual], cols[mutual]
    order = np.lexsort((cols, rows))
    return np.stack([rows[order], cols[order]], axis=1).reshape(-1, 2)


def best_buddies(table, k_a: int = 5, k_b: int = 5, *, exclude_diagonal: bool = False) -> np.ndarray:
    """Best-buddy pairs of a correlation table ``(rows, cols)`` (paper Eq. 3).

    ``(row, col)`` is kept when ``col`` is among the ``k_a`` highest eligible columns of
    ``row`` and ``row`` among the ``k_b`` highest eligible rows of ``col``. ``k_a=1, k_b=5``
    is the published code's rule. ``exclude_diagonal=True`` (square self table only) means a
    unit is never its own buddy. Dead (all-zero) rows and columns are never eligible.
    Returns int64 ``(P, 2)`` sorted by row then col.
    """
    row_topk, col_topk = topk_lists(table, k_a, k_b, exclude_diagonal=exclude_diagonal)
    return best_buddies_from_topk(row_topk, col_topk, k_a, k_b)


def self_best_buddies(table, k: int = 5) -> np.ndarray:
    """Best buddies of a square self table ``(G, G)`` with the diagonal excluded.

    Returns the symmetric closure: int64 ``(Q, 2)`` pairs ``(i, j)``, ``i != j``, holding both
    ``(i, j)`` and ``(j, i)`` whenever either is a best buddy (for an exactly symmetric table
    the best-buddy set is already symmetric), sorted by ``i`` then ``j``.
    """
    t = _check_table(table, exclude_diagonal=True)
    k = _check_k("k", k, t.shape[1], "units of table")
    bb = best_buddies(t, k, k, exclude_diagonal=True)
    both = np.unique(np.concatenate([bb, bb[:, ::-1]]), axis=0)
    return both.reshape(-1, 2).astype(np.int64, copy=False)
