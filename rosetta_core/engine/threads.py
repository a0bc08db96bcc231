"""Threads of the engine: how many (:func:`engine_threads`) and a map over items that runs
several at a time (:func:`parallel`), each with one BLAS thread."""

from __future__ import annotations

import os

__all__ = ["engine_threads", "parallel"]


def engine_threads() -> int:
    """Threads for :func:`parallel`: ``ROSETTA_THREADS`` if set (e.g. 1 inside a Dask worker
    that already runs one task per core), else the CPUs this process may use."""
    value = os.environ.get("ROSETTA_THREADS", "")
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"ROSETTA_THREADS={value!r} is invalid: expected a positive integer")
        return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parallel(fn, items: list, workers: int | None = None) -> list:
    """``[fn(item) for item in items]``, ``workers`` (default: CPU count) at a time, each
    with one BLAS thread: many thin or mid-sized products scale better side by side than
    each one split across threads (numpy releases the GIL in them)."""
    workers = min(len(items), workers or engine_threads())
    if workers <= 1:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))
