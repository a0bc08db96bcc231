"""The terminal's progress display of a flow run: one line per stage with tasks done of total
and the elapsed time. Off unless the CLI turns it on (a deployment's run logs to Prefect only)."""

from __future__ import annotations

import queue
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

#: None: not run from the command line; False: the CLI without bars (stderr is not a terminal)
_shown: bool | None = None


def show(enabled: bool = True) -> None:
    """Draw progress bars in this process (the CLI calls this)."""
    global _shown
    _shown = enabled


def announce_ui(flow, flow_run, state) -> None:
    """A flow's ``on_running`` hook: where to watch this flow run, when it reports to a Prefect
    server with a UI (``PREFECT_API_URL`` set) and runs from the command line."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    if _shown is not None and PREFECT_API_URL.value() and PREFECT_UI_URL.value():
        print(f"Prefect UI: {PREFECT_UI_URL.value()}/runs/flow-run/{flow_run.id}", file=sys.stderr)


@contextmanager
def stage(name: str, total: int) -> Iterator:
    """A bar for one stage; ``advance()`` on what it yields marks a task done."""
    if not _shown:
        yield _Silent()
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=f"{name:<10}", unit="task", bar_format="{desc} {n_fmt}/{total_fmt} tasks [{elapsed}] {bar:20}") as bar:
        yield _Bar(bar)


def drain(futures: list, name: str) -> list:
    """Wait for ``futures`` (Prefect futures), advancing the stage's bar as each one finishes;
    returns their results in submission order (the first failure raises)."""
    results = [None] * len(futures)
    for i, result in completed(futures, name):
        results[i] = result
    return results


#: seconds between two looks at the cluster while no task of a stage finishes
CHECK_EVERY = 2.0


def completed(futures: list, name: str) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, result)`` of each of ``futures`` (Prefect futures) as it finishes,
    advancing the stage's bar; the first failure raises. While nothing finishes, the flow's
    task runner is asked every :data:`CHECK_EVERY` s whether the waiting tasks can still run
    (:meth:`flows.cluster.ClusterTaskRunner.check_workers`, which raises when the cluster has
    had no worker for them for too long): a run never waits forever on a cluster that lost
    its workers."""
    finished: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i, future in enumerate(futures):
        future.add_done_callback(lambda _, i=i: finished.put(i))
    check = _worker_check()
    pending = set(range(len(futures)))
    with stage(name, len(futures)) as bar:
        while pending:
            try:
                i = finished.get(timeout=CHECK_EVERY)
            except queue.Empty:
                if check is not None:
                    check([futures[j] for j in pending])
                continue
            if i not in pending:
                continue
            pending.discard(i)
            result = futures[i].result()
            bar.advance()
            yield i, result


def _worker_check():
    """The running flow's ``task_runner.check_workers``, when it has one."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return getattr(context.task_runner, "check_workers", None) if context is not None else None


def each(items: Iterable, name: str, total: int) -> Iterator:
    with stage(name, total) as bar:
        for item in items:
            yield item
            bar.advance()


class _Silent:
    def advance(self) -> None:
        pass


class _Bar:
    def __init__(self, bar) -> None:
        self.bar = bar

    def advance(self) -> None:
        self.bar.update()
