"""Plugins: models registered by other packages, found by entry point or named by module.

A plugin is a Python module that registers models on import with the public API
(``rosetta_core.zoo.register(ModelSpec(...))``, adapters subclassing ``GeneratorAdapter`` or
``EncoderAdapter``). It reaches the registry in one of two ways:

- **installed**: its distribution declares an entry point in the group :data:`ENTRY_POINT_GROUP`
  (``rosetta_neurons.models``), e.g. in its ``pyproject.toml``::

      [project.entry-points."rosetta_neurons.models"]
      tiny = "rosetta_tiny_models"            # a module (importing it registers its models)
      # or "my_models.zoo:register"         # a function, called with no arguments

  Every process (the command line, a flow run, each Dask worker) loads the installed plugins
  once, the first time the registry needs its model list (:func:`load_entry_points`, called by
  ``list_models`` and ``get_spec``).
- **named**: ``--plugin module.path`` on the command line, or a flow's ``plugins`` parameter;
  :func:`load_plugins` imports them. The module must be importable (on ``sys.path`` or
  ``PYTHONPATH``) in every process that runs a task: flows pass the list to their tasks, which
  load it again on their worker.

Errors are one line naming the plugin and how it was found, e.g. ``plugin 'rosetta-tiny-models'
(entry point 'tiny' of rosetta_neurons.models) failed to import: ...``; a model name two
plugins register names both (:class:`~rosetta_core.zoo.registry.DuplicateModel`). A plugin
that fails leaves the registry as it was and is tried again the next time it is needed.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable
from importlib import metadata

from .registry import DuplicateModel, registering_as

__all__ = ["ENTRY_POINT_GROUP", "PluginError", "load_entry_points", "load_plugins"]

#: the entry-point group a package declares its models in
ENTRY_POINT_GROUP = "rosetta_neurons.models"


class PluginError(ValueError):
    """A plugin could not be loaded; the message is one line naming the plugin."""


_LOCK = threading.RLock()
#: entry points ("name = value") and --plugin modules loaded in this process
_LOADED: set[str] = set()
#: True once every installed entry point has loaded (cheap check on every registry lookup)
_ENTRY_POINTS_DONE = False
#: True while plugins load: a plugin that looks models up on import does not start it again
_LOADING = False


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _distribution(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return (dist.name if dist is not None else None) or ep.value.split(":")[0]


def _entry_points() -> list[metadata.EntryPoint]:
    """The group's entry points, each once (a distribution on ``sys.path`` twice lists them twice)."""
    seen, out = set(), []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if (ep.name, ep.value) not in seen:
            seen.add((ep.name, ep.value))
            out.append(ep)
    return sorted(out, key=lambda ep: (ep.name, ep.value))


def _run(origin: str, load) -> None:
    """Load one plugin as ``origin``: its registrations are attributed to it, undone on failure."""
    try:
        with registering_as(origin):
            target = load()
            if callable(target) and not isinstance(target, type):
                target()  # "module:function" entry points register when called
    except DuplicateModel:
        raise  # already one line naming both plugins
    except Exception as err:  # noqa: BLE001 (any error of foreign code becomes one line naming it)
        raise PluginError(f"{origin} failed to import: {_one_line(err)}") from err


def load_entry_points() -> None:
    """Import every installed plugin of :data:`ENTRY_POINT_GROUP` not loaded yet in this process.

    Called by the registry whenever it needs its model list; after the first success it costs
    one boolean check. Raises :class:`PluginError` (or ``DuplicateModel``) naming the plugin and
    its entry point; the plugins loaded before it stay, and the failed one is retried next time.
    """
    global _ENTRY_POINTS_DONE, _LOADING
    if _ENTRY_POINTS_DONE or _LOADING:
        return
    with _LOCK:
        if _ENTRY_POINTS_DONE or _LOADING:
            return
        _LOADING = True
        try:
            for ep in _entry_points():
                key = f"{ep.name} = {ep.value}"
                if key in _LOADED:
                    continue
                origin = f"plugin {_distribution(ep)!r} (entry point {ep.name!r} of {ENTRY_POINT_GROUP})"
                _run(origin, ep.load)
                _LOADED.add(key)
            _ENTRY_POINTS_DONE = True
        finally:
            _LOADING = False


def _missing(module: str, err: ModuleNotFoundError) -> bool:
    """Whether ``err`` says that ``module`` itself (or a package above it) does not exist, rather
    than that something it imports is missing."""
    return err.name is not None and (module == err.name or module.startswith(err.name + "."))


def load_plugins(modules: Iterable[str] = (), *, option: str = "--plugin") -> list[str]:
    """Import plugin ``modules`` (dotted module paths), each once per process, after the
    built-in models and the installed plugins; returns the modules asked for.

    ``option`` is how the user named them, for the error messages (``--plugin`` on the
    command line, ``plugins`` for a flow's parameter). A module that does not exist, or fails
    to import, is a :class:`PluginError` naming it; a model name it registers that another
    plugin already has is a ``DuplicateModel`` naming both.
    """
    if isinstance(modules, str):
        modules = [modules]
    modules = list(modules or ())
    if not modules:
        return []
    from .registry import list_models

    list_models()  # built-in models and installed plugins first: errors then name the right plugin
    with _LOCK:
        for module in modules:
            if not isinstance(module, str) or not module.strip() or module.strip() != module:
                raise PluginError(f"{option} {module!r} is invalid: expected a module path such as my_models.rosetta")
            if f"module {module}" in _LOADED:
                continue
            origin = f"plugin {module!r} ({option} {module})"
            try:
                _run(origin, lambda: importlib.import_module(module))
            except PluginError as err:
                cause = err.__cause__
                if isinstance(cause, ModuleNotFoundError) and _missing(module, cause):
                    raise PluginError(_not_found(module, option)) from None
                raise
            _LOADED.add(f"module {module}")
    return modules


def _not_found(module: str, option: str) -> str:
    return (f"{option} {module}: no module named {module!r}; give a module path importable in every process "
            "that runs the tasks (an installed package, or its folder on PYTHONPATH)")
