"""The terminal's progress display of a flow run: one line per stage with tasks done of total
and the elapsed time. Off unless the CLI turns it on (a deployment's run logs to Prefect only)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

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
    from prefect.futures import as_completed

    with stage(name, len(futures)) as bar:
        for future in as_completed(futures):
            future.result()
            bar.advance()
    return [f.result() for f in futures]


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
