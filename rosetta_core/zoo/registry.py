"""The model registry: every model is found by name (``rosetta zoo list``).

Names follow ``arch.tag`` where weights vary (``mini-resnet.sup``). Registering a name twice is
an error. ``load(name, weights=...)`` builds a :class:`~rosetta_core.zoo.base.ModelAdapter`; a
spec alone answers what a listing needs (its layer table, the hash of its shipped weights)
without building the model.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .base import LayerInfo, ModelAdapter

__all__ = [
    "DuplicateModel", "ModelSpec", "register", "register_modules", "registering_as", "origin_of", "get_spec",
    "list_models", "load", "load_state", "weights_for", "weights_hash",
]


@dataclass(frozen=True)
class ModelSpec:
    """How to build one model.

    ``build()`` returns an adapter around a randomly initialised module (seeded by the caller);
    ``weights_file`` is the default weights (a safetensors file inside the package for the
    embedded zoo, None when there is none); ``source`` says where weights come from;
    ``layers()`` is the built model's layer table, from the architecture's constants.
    """

    name: str
    kind: str
    arch: str
    description: str
    build: Callable[[], ModelAdapter]
    weights_file: Path | None = None
    source: str = "random"
    extra: dict = field(default_factory=dict)
    #: for models whose weights come from outside the package (the paper zoo): loads
    #: "pretrained" or a file path into the adapter and returns where they came from
    load_weights: Callable[[ModelAdapter, str], str] | None = None
    #: raises ValueError when those weights cannot be had (offline, no local file), no model built
    check_weights: Callable[[str], None] | None = None
    #: the built model's ``layers()`` (names, units, grid at the model's input size) computed
    #: from the architecture's constants, building nothing; raises ValueError where the
    #: architecture comes only with the weights (network pickles). None: not declared, so
    #: ``rosetta zoo list`` builds the model to ask it.
    layers: Callable[[], list[LayerInfo]] | None = None
    #: named sets of layer globs, selected as ``@NAME`` among layer patterns (e.g. ``{"paper":
    #: ("convs.*",)}``; ``default``: what no pattern selects); see :func:`.base.layer_presets`
    layer_presets: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def has_weights(self) -> bool:
        """Whether the default weights file exists (trained weights shipped with the package)."""
        return self.weights_file is not None and self.weights_file.is_file()

    def shipped_hash(self) -> str:
        """``load(name).weights_hash`` of the shipped weights file, read without building the model.

        The file's floating tensors (fp16 in the embedded zoo) are widened to float32, as loading
        them into the float32 module does; the names are those of the module's state dict, which
        loading checks strictly.
        """
        if not self.has_weights:
            raise ValueError(f"{self.name} ships no weights file ({self.weights_file}); there is nothing to hash")
        from safetensors.torch import load_file

        state = load_file(str(self.weights_file))
        return weights_hash({k: _as_float32(v) if v.is_floating_point() else v for k, v in state.items()})


def _as_float32(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor.float()``; float16 through numpy, whose (equally exact) widening is several times faster on CPU."""
    if tensor.dtype == torch.float16:
        return torch.from_numpy(tensor.numpy().astype(np.float32))
    return tensor.float()


_REGISTRY: dict[str, ModelSpec] = {}
#: name -> who registered it (a plugin with its entry point, or the module of its ``build``)
_ORIGINS: dict[str, str] = {}
#: who is registering now (innermost last): set by :func:`registering_as` while a plugin loads
_REGISTERING: list[str] = []


class DuplicateModel(ValueError):
    """A model name registered twice; the message names both registrants."""


def origin_of(name: str) -> str:
    """Who registered model ``name``: ``plugin 'dist' (entry point 'ep' of rosetta_neurons.models)``,
    ``plugin 'module' (--plugin module)``, or ``module <the module of its build>``."""
    if name in _ORIGINS:
        return _ORIGINS[name]
    return f"module {getattr(get_spec(name).build, '__module__', '?')}"


@contextmanager
def registering_as(origin: str) -> Iterator[None]:
    """Attribute the models registered inside the block to ``origin`` (what error messages name);
    if the block raises, the models it registered are removed again, so a plugin that fails half
    way leaves the registry as it was."""
    before = set(_REGISTRY)
    _REGISTERING.append(origin)
    try:
        yield
    except BaseException:
        for name in set(_REGISTRY) - before:
            del _REGISTRY[name]
            _ORIGINS.pop(name, None)
        raise
    finally:
        _REGISTERING.pop()


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model; a second model with the same name is an error (:class:`DuplicateModel`,
    naming who registered each)."""
    who = _REGISTERING[-1] if _REGISTERING else f"module {getattr(spec.build, '__module__', '?')}"
    if spec.name in _REGISTRY:
        raise DuplicateModel(
            f"a model named {spec.name!r} is already registered by {origin_of(spec.name)}; {who} registers it "
            "again; names must be unique (uninstall or rename one of them)"
        )
    if spec.kind not in ("generator", "encoder"):
        raise ValueError(f"{spec.name}: kind={spec.kind!r}; valid: generator, encoder")
    _REGISTRY[spec.name] = spec
    _ORIGINS[spec.name] = who
    return spec


def register_modules(package: str, modules: Iterable[str]) -> None:
    """Import the ``modules`` of ``package`` (a zoo package's ``__name__``); each registers its
    models on import. A missing module is an error like any other."""
    for module in modules:
        importlib.import_module(f"{package}.{module}")


def _ensure_builtin() -> None:
    from . import embedded  # noqa: F401  (registers the embedded zoo on import)
    from . import paper  # noqa: F401  (registers the paper's models on import)
    from .plugins import load_entry_points

    load_entry_points()  # installed plugins (entry-point group rosetta_neurons.models), once per process


def weights_for(name: str, weights: str) -> str:
    """The weights choice of model ``name`` from a run's ``weights`` string.

    ``weights`` is one choice for every model ("trained", "pretrained", "random" or a file path),
    optionally followed by per-model overrides ``NAME=CHOICE`` separated by commas, e.g.
    ``pretrained,stylegan2.lsun-cat=/ckpt/cat.pt``. A string of overrides only leaves the other
    models at "trained".
    """
    default, overrides = "trained", {}
    for part in (p.strip() for p in weights.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if sep and key.strip() and not Path(part).exists():
            overrides[key.strip()] = value.strip()
        else:
            default = part
    return overrides.get(name, default)


def list_models() -> list[ModelSpec]:
    _ensure_builtin()
    return sorted(_REGISTRY.values(), key=lambda s: (s.kind != "generator", s.name))


def get_spec(name: str) -> ModelSpec:
    _ensure_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def weights_hash(state: dict[str, torch.Tensor]) -> str:
    """A short, order-independent sha256 of a state dict's names, shapes and values."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def load_state(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``module`` strictly; a mismatch names the first bad tensor."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        first = missing[0] if missing else unexpected[0]
        what = "missing from" if missing else "not expected by the architecture, found in"
        raise ValueError(
            f"weights {source} do not match the architecture: tensor {first!r} is {what} the file "
            f"({len(missing)} missing, {len(unexpected)} unexpected)"
        )
    for key, tensor in own.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ValueError(
                f"weights {source} do not match the architecture: tensor {key!r} has shape "
                f"{tuple(state[key].shape)} in the file but {tuple(tensor.shape)} in the model"
            )
    module.load_state_dict(state, strict=True)


def load(name: str, weights: str = "trained", *, seed: int = 0, device: str = "cpu") -> ModelAdapter:
    """Build model ``name``.

    ``weights``: ``"trained"`` or ``"pretrained"`` (the registry's default file, or for the
    paper's models the library's own hub), ``"random"`` (the same architecture with a seeded
    random init: the null control), or a path to a weights file; per-model overrides as in
    :func:`weights_for`. The adapter's ``weights`` attribute records the source and
    ``weights_hash`` its hash.
    """
    spec = get_spec(name)
    weights = weights_for(name, weights)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adapter = spec.build()
    if weights == "random":
        adapter.weights = f"random(seed={seed})"
    elif spec.load_weights is not None:
        adapter.weights = spec.load_weights(adapter, weights)
    else:
        if weights == "pretrained":
            weights = "trained"
        path = spec.weights_file if weights == "trained" else Path(weights)
        if path is None or not Path(path).is_file():
            where = "this model ships no weights" if path is None else f"expected {path}"
            raise ValueError(
                f"no weights for {name!r}: {where}; pass weights='random' or a path to a .safetensors file"
            )
        from safetensors.torch import load_file

        load_state(adapter.module, load_file(str(path)), str(path))
        adapter.weights = str(path)
    adapter.module.eval()
    adapter.weights_hash = weights_hash(adapter.module.state_dict())
    return adapter.to(device)
