"""Network pickles written the way NVIDIA's training code writes them, from a tiny source tree
of the test's own (the pickle needs that tree importable to load, as the real ones do)."""

from __future__ import annotations

import importlib
import pickle
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def source_tree_pickle(folder: Path, package: str, source: str, contents: Callable, name: str = "network.pkl") -> Iterator[tuple[Path, Path]]:
    """Write ``source`` as package ``package`` in ``folder/<package>_tree``, pickle
    ``contents(module)`` (a dict such as ``{"G_ema": ...}``) to ``folder/name`` with the tree
    importable, then make it unimportable again; yields ``(pickle path, tree)``."""
    tree = folder / f"{package}_tree"
    (tree / package).mkdir(parents=True)
    (tree / package / "__init__.py").write_text(textwrap.dedent(source))
    sys.path.insert(0, str(tree))
    try:
        path = folder / name
        path.write_bytes(pickle.dumps(contents(importlib.import_module(package))))
    finally:
        sys.path.remove(str(tree))
        sys.modules.pop(package, None)
    try:
        yield path, tree
    finally:
        sys.modules.pop(package, None)
