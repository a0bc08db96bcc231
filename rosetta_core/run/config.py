"""What a mining run computes: :class:`MineConfig`, the one configuration of a mining job.

The same object travels from the command line to the flow, the deployment (its fields are the
``config`` parameter in ``deployments/prefect.yaml``), the tasks (through the :class:`~.run.Run`)
and the core. Every field is part of the run's identity; where and how a run executes (its
location, device, Dask scheduler) are not fields: they do not change what is computed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .. import __version__
from ..engine import CENTERS

__all__ = ["ACTIVATIONS", "DEFAULT_ENCODERS", "DEFAULT_GENERATOR", "DEFAULT_N", "DTYPES", "MineConfig", "chunk_bounds"]

#: the embedded encoders a run mines by default: those that ship trained weights which pass
#: their gates (``rosetta zoo list`` shows them)
DEFAULT_ENCODERS = ("mini-resnet.sup", "mini-resnet.ssl", "mini-vit.mae", "mini-clip.rn")
DTYPES = ("float16", "float32")
#: what a run keeps of the activation maps: ``keep`` stores them all; ``none`` folds each chunk's
#: co-moments right after its extraction and stores no maps (:mod:`~rosetta_core.run.folding`)
ACTIVATIONS = ("keep", "none")
#: the fields every model and pair of a run depends on (see :meth:`MineConfig.run_identity`)
RUN_FIELDS = ("generator", "images", "anchor", "n", "k", "seed", "chunk_size", "dtype", "center", "class_index",
              "truncation", "activations")
#: run fields added after the first runs of store version 2: recorded only when not at their
#: default, so the runs written before them are still the same configuration
LATER_FIELDS = ("images", "anchor", "activations")
#: the generator and image count of a run that names neither a generator nor an image source
DEFAULT_GENERATOR, DEFAULT_N = "mini-gen", 1600


@dataclass(frozen=True)
class MineConfig:
    """What a mining run computes; every field is part of the run's identity.

    ``generator`` and ``encoders``: model names (``rosetta zoo list``). A run mines either a
    generator's images against the encoders (the paper), or, with ``images`` (a folder, a glob,
    an fsspec URL prefix or a tar: :mod:`rosetta_core.data.image_source`) and no generator, the
    encoders against each other on a dataset. ``anchor``: the model every pair and Rosetta tuple
    is taken against, whose self best buddies cluster the concepts: the generator, or for an
    image run one of the encoders (default: the first). ``n`` images (default: 1600 generated,
    or every readable image of the source; otherwise its first ``n`` in sorted order), best-buddy
    ``k`` (paper Eq. 3), image ``seed`` (image ``i`` uses ``seed + i``), ``chunk_size`` images
    per store chunk and task, activation ``dtype`` in the store, ``center``: what the Pearson
    correlation centres on (``position``, the default: a mean per unit and position, chosen by
    measurement, docs/centring.md; ``global``: the paper's Eq. 2, one mean per unit),
    ``weights``: ``trained``, ``random`` (the null control), a weights file,
    or per-model specs (``random,NAME=pretrained``), ``class_index`` of a class-conditional
    generator, ``layers``: model -> glob patterns (or ``@preset`` names such as ``@paper``) of
    the layers to hook (default: the model's default layers), ``truncation`` of a generator that
    has the setting (the paper's BigGAN and StyleGAN models): a number in (0, 1], ``"paper"``
    (the paper's published code's value) or None (the generator's default). ``activations``:
    ``keep`` stores every activation map (``activations/<model>/<layer>/maps``); ``none`` folds
    each chunk's co-moments right after its extraction and keeps no maps (the tables are the
    same; the maps are rounded to ``dtype`` first either way): for runs whose maps do not fit
    on disk, at the price of recomputing what needs maps later (the report's example heatmaps).
    ``random_init``: also mine the random-init companion (:meth:`random_init_companion`), so
    that every concept records whether random-init encoders match it too; it costs about a
    second run. Not part of the tables' identity: turning it on for a finished run mines only
    the companion and rewrites the dictionary and report.
    """

    generator: str | None = None
    encoders: tuple[str, ...] = DEFAULT_ENCODERS
    n: int | None = None
    k: int = 5
    seed: int = 0
    chunk_size: int = 100
    dtype: Literal["float16", "float32"] = "float16"
    center: Literal["global", "position"] = "position"
    weights: str = "trained"
    class_index: int | None = None
    layers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    truncation: float | str | None = None
    images: str | None = None
    anchor: str | None = None
    activations: Literal["keep", "none"] = "keep"
    random_init: bool = True

    def __post_init__(self) -> None:
        if self.images is None:  # a run with neither a generator nor images mines the embedded generator
            object.__setattr__(self, "generator", self.generator or DEFAULT_GENERATOR)
            object.__setattr__(self, "n", DEFAULT_N if self.n is None else self.n)
        # lists from JSON, YAML or the command line become tuples, so equal configurations compare equal
        object.__setattr__(self, "encoders", tuple(self.encoders))
        object.__setattr__(self, "layers", {str(m): tuple(p) for m, p in sorted(dict(self.layers).items())})

    def validate(self) -> None:
        """One clear ValueError per bad value; the models are checked by :meth:`Run.validate`."""
        if not self.encoders:
            raise ValueError("encoders is empty; give at least one encoder model name")
        if len(set(self.encoders)) != len(self.encoders):
            raise ValueError(f"encoders={list(self.encoders)} lists a model twice")
        if self.k < 1:
            raise ValueError(f"k={self.k} must be >= 1")
        if self.images is not None:
            self._validate_images()
        elif self.anchor not in (None, self.generator):
            raise ValueError(f"anchor={self.anchor!r}: a generator run anchors on its generator ({self.generator}); "
                             "--anchor chooses among the encoders of an --images run")
        if self.n is not None and self.n < 2 * self.k:
            raise ValueError(f"n={self.n} is too small for k={self.k}; need n >= 2k = {2 * self.k}")
        if self.chunk_size < 2:
            raise ValueError(f"chunk_size={self.chunk_size} must be >= 2 images")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r}; valid: {', '.join(DTYPES)}")
        if self.center not in CENTERS:
            raise ValueError(f"center={self.center!r}; valid: {', '.join(CENTERS)}")
        if self.seed < 0:
            raise ValueError(f"seed={self.seed} must be >= 0")
        if not isinstance(self.random_init, bool):
            raise ValueError(f"random_init={self.random_init!r} must be true or false")
        if self.activations not in ACTIVATIONS:
            raise ValueError(f"activations={self.activations!r}; valid: {', '.join(ACTIVATIONS)} (none: keep no "
                             "activation maps, fold each chunk's co-moments as it is extracted)")

    def _validate_images(self) -> None:
        if not isinstance(self.images, str) or not self.images.strip():
            raise ValueError(f"images={self.images!r} is empty; give a folder, a glob, an fsspec URL prefix or a tar")
        if self.generator is not None:
            raise ValueError(f"generator={self.generator!r} and images={self.images!r} were both given; a run mines "
                             "either a generator's images or an image dataset: leave one out")
        for name in ("class_index", "truncation"):
            if getattr(self, name) is not None:
                raise ValueError(f"{name}={getattr(self, name)!r} is a generator setting; an --images run has no generator")
        if len(self.encoders) < 2:
            raise ValueError(f"encoders={list(self.encoders)}: an --images run compares encoders with each other; "
                             "give at least two")
        if self.anchor is not None and self.anchor not in self.encoders:
            raise ValueError(f"anchor={self.anchor!r} is not one of the encoders {', '.join(self.encoders)}")

    @property
    def anchor_model(self) -> str:
        """The model every pair is taken against: ``anchor``, else the generator, else the first encoder."""
        return self.anchor or self.generator or self.encoders[0]

    @property
    def others(self) -> tuple[str, ...]:
        """The models paired with the anchor, in order."""
        return tuple(m for m in self.models if m != self.anchor_model)

    @property
    def pairs(self) -> list[tuple[str, str | None, bool]]:
        """``(a, b, null)`` of every model pair the run correlates, in this order: the anchor
        against each other model, the anchor with itself (``b=None``), then the shuffled null
        of the anchor against each other model (``null=True``: image ``i`` of the anchor with
        image ``perm[i]`` of the other, :data:`~.statistics.SHUFFLE_SEED`)."""
        a = self.anchor_model
        return [(a, m, False) for m in self.others] + [(a, None, False)] + [(a, m, True) for m in self.others]

    def random_init_companion(self) -> "MineConfig | None":
        """The configuration of this run's random-init companion: the same images, layers and
        settings with every model but the anchor at seeded random initialisation (the anchor
        keeps its weights), and no companion of its own. None when ``random_init`` is off or
        every other model is random already (the run is its own control)."""
        from ..zoo import weights_for  # the zoo loads torch: only when asked

        if not self.random_init or all(weights_for(m, self.weights) == "random" for m in self.others):
            return None
        anchor = self.anchor_model
        return dataclasses.replace(self, weights=f"random,{anchor}={weights_for(anchor, self.weights)}", random_init=False)

    def identity(self) -> dict[str, Any]:
        """The JSON form recorded in the store and the manifest (with the code version)."""
        out = asdict(self)
        out["encoders"] = list(self.encoders)
        out["layers"] = {k: list(v) for k, v in self.layers.items()}
        out["code_version"] = __version__
        return out

    def run_identity(self) -> dict[str, Any]:
        """The fields every model and pair of a run depends on: changing one is another run.
        The models are not among them: a run can gain an encoder (:meth:`model_identity`). The
        anchor is recorded as resolved, so an encoder listed first later does not silently
        re-anchor an image run whose anchor was its first encoder."""
        fields = {f: getattr(self, f) for f in RUN_FIELDS} | {"anchor": self.anchor_model if self.images else None}
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        fields = {f: v for f, v in fields.items() if not (f in LATER_FIELDS and v == defaults.get(f))}
        return fields | {"code_version": __version__}

    def model_identity(self, name: str, weights_hash: str | None = None) -> dict[str, Any]:
        """What one model of the run is: its weights choice and hooked layer patterns (and, once
        loaded, its weights' hash)."""
        from ..zoo import weights_for  # the zoo loads torch: only when asked

        out = {"weights": weights_for(name, self.weights), "layers": list(self.layers.get(name, ()))}
        return out if weights_hash is None else out | {"weights_hash": weights_hash}

    @classmethod
    def from_identity(cls, data: dict[str, Any]) -> "MineConfig":
        """Inverse of :meth:`identity`."""
        fields = {k: v for k, v in data.items() if k not in ("code_version", "weights_hashes")}
        return cls(**fields)

    @property
    def models(self) -> tuple[str, ...]:
        """The run's models: the generator (if any), then the encoders."""
        return (self.generator, *self.encoders) if self.generator else tuple(self.encoders)


def chunk_bounds(n: int, chunk_size: int) -> list[tuple[int, int]]:
    return [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]
