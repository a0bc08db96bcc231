"""``mini-resnet.sup`` and ``mini-resnet.ssl``: two small timm ResNets for 64x64 shape scenes.

Architecture (both models, :data:`RESNET_CONFIG`): ``timm.models.resnet.ResNet`` with one
``BasicBlock`` per stage, stage widths (16, 32, 64, 128), a "deep" stem of three 3x3
convolutions (8, 8, 16 channels, the first with stride 2) and no stem max-pool (replaced by the
identity), so a 64x64 image gives stage grids 32/16/8/4. (Measured on this CPU: the same cost
per step as widths (32, 64, 128, 256) with the max-pool, i.e. grids 16/8/4/2, and faster
learning of shape kinds.)

Hooked layers: the four stages ``layer1`` .. ``layer4`` (timm's names). A stage ends with a
``BasicBlock`` whose output is taken after its final ReLU, so every map is post-ReLU (>= 0):
``layer1`` ``(n, 16, 32, 32)``, ``layer2`` ``(n, 32, 16, 16)``, ``layer3`` ``(n, 64, 8, 8)``,
``layer4`` ``(n, 128, 4, 4)``.

- ``mini-resnet.sup`` is supervised on multi-label presence: its ``fc`` gives
  :data:`N_OUTPUTS` logits, one per kind in ``KINDS`` (is an object of that kind visible?) then
  one per colour in ``COLOURS``; see :func:`classify` and :func:`classify_kinds`.
- ``mini-resnet.ssl`` is self-supervised (SimCLR on a cached set of simple-world scenes, 48x48
  views: ``ssl_recipes.py``); it has no classifier (``fc`` is the identity) and its projection
  head was a training device only.

Label task and gates (:func:`evaluate_sup`, :func:`evaluate_ssl`): multi-label presence, which
of the ``KINDS`` and which of the ``COLOURS`` some visible object of the scene shows.
``kind_set_accuracy`` is the fraction of held-out scenes (world seed :data:`HELD_OUT_SEED`)
whose predicted kind set is exactly right (all five yes/no decisions), ``colour_set_accuracy``
the same for colours. The ssl model is judged by a linear probe on its frozen pooled features.

Preprocessing: uint8 -> [0, 1] -> ``(x - mean) / std`` with :data:`MEAN` / :data:`STD`, the
per-channel statistics of the photo world (measured on 2,000 scenes: mean 0.41/0.40/0.40, std
0.18/0.16/0.18), attached to the module as its timm ``pretrained_cfg`` and read back through
``timm.data.resolve_model_data_config``. Recipes, evaluation: ``resnet_recipes.py``.

timm is imported when a model is built, not with this module: registering the models (and
listing them, :func:`layer_table`) needs only the constants below.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ...data import COLOURS, KINDS, Scenes, WorldConfig, render_batch
from ..hooks import capture
from ..base import EncoderAdapter, LayerInfo
from . import register_embedded

if TYPE_CHECKING:
    from timm.models.resnet import ResNet

__all__ = [
    "SUP_NAME", "SSL_NAME", "RESNET_CONFIG", "MEAN", "STD", "IMAGE_SIZE", "N_OUTPUTS",
    "MiniResNetAdapter", "build_resnet", "build_sup", "build_ssl", "layer_table", "classify", "classify_kinds",
    "HELD_OUT_SEED", "PROBE_WORLD_SEED", "SUP_GATE", "SSL_GATE", "presence_labels", "set_metrics",
    "linear_probe", "evaluate_sup", "evaluate_ssl", "gate_failures",
]

SUP_NAME = "mini-resnet.sup"
SSL_NAME = "mini-resnet.ssl"
IMAGE_SIZE = 64
#: keyword arguments of timm's ResNet (the architecture as data; ``num_classes`` varies; the
#: block, timm's ``BasicBlock`` by its class name, is resolved by :func:`build_resnet`)
RESNET_CONFIG = dict(
    block="BasicBlock", layers=(1, 1, 1, 1), channels=(16, 32, 64, 128),
    stem_type="deep", stem_width=8, global_pool="avg", zero_init_last=False,
)
#: keep timm's stride-2 stem max-pool (stage grids 16/8/4/2) or replace it by the identity (32/16/8/4)
STEM_POOL = False
MEAN = (0.41, 0.40, 0.40)
STD = (0.18, 0.16, 0.18)
#: supervised head: presence logits of every kind, then of every colour
N_OUTPUTS = len(KINDS) + len(COLOURS)
STAGES = ("layer1", "layer2", "layer3", "layer4")
HELD_OUT_SEED = 10_000_000
PROBE_WORLD_SEED = 3
SUP_GATE = {"kind_set_accuracy": 0.95, "colour_set_accuracy": 0.95}
#: ssl gate on single kind decisions (exact kind sets from a linear probe of a CPU-trained
#: SimCLR encoder are far below 80%; random init: 3% sets, 0.655 single decisions)
SSL_GATE = {"kind_label_accuracy": 0.80}


def build_resnet(num_classes: int = 0) -> ResNet:
    """A randomly initialised mini ResNet; ``num_classes=0`` makes ``fc`` the identity.

    ``module(x)`` with x ``(n, 3, 64, 64)`` gives logits ``(n, num_classes)`` or, without a
    classifier, the pooled features ``(n, 128)``.
    """
    from timm.models import resnet

    config = dict(RESNET_CONFIG, block=getattr(resnet, RESNET_CONFIG["block"]))
    module = resnet.ResNet(num_classes=num_classes, **config)
    if not STEM_POOL:
        module.maxpool = torch.nn.Identity()
    module.pretrained_cfg = dict(
        input_size=(3, IMAGE_SIZE, IMAGE_SIZE), mean=MEAN, std=STD, interpolation="bilinear",
        crop_pct=1.0, num_classes=num_classes,
    )
    return module


class MiniResNetAdapter(EncoderAdapter):
    """Adapter around a timm ``ResNet`` whose four stages are the hooked layers."""

    def __init__(self, module: ResNet, name: str, weights: str = "random"):
        import timm.data

        self.module = module
        self.name = name
        self.weights = weights
        cfg = timm.data.resolve_model_data_config(module)
        self.mean = torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1)
        self.image_size = tuple(cfg["input_size"][1:])
        c = RESNET_CONFIG
        self.arch = (
            f"timm ResNet(BasicBlock, layers {c['layers']}, channels {c['channels']}, "
            f"{c['stem_type']} stem {c['stem_width']}, stem max-pool {'kept' if STEM_POOL else 'removed'}) "
            f"at {self.image_size[0]}x{self.image_size[1]}"
        )
        self._layers: list[LayerInfo] | None = None

    def layers(self) -> list[LayerInfo]:
        """``layer1`` .. ``layer4`` with units and grids measured by one dry run at 64x64."""
        if self._layers is None:
            stages = {name: getattr(self.module, name) for name in STAGES}
            was_training = self.module.training
            self.module.eval()
            try:
                probe = torch.zeros(1, 3, *self.image_size, device=self.device)
                with torch.no_grad(), capture(stages) as store:
                    self.module.forward_features(probe)
            finally:
                self.module.train(was_training)
            self._layers = [
                LayerInfo(name, int(store[name][0].shape[1]), tuple(int(v) for v in store[name][0].shape[2:]))
                for name in STAGES
            ]
        return list(self._layers)

    def image_transform(self):
        """timm's eval transform of the model's own data config (resize, centre crop)."""
        from ..transforms import timm_transform

        return timm_transform(self.module)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(n, 3, 64, 64)`` -> normalised float32 ``(n, 3, 64, 64)`` on the model's device."""
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 (n, 3, H, W); got {images.dtype} {tuple(images.shape)}")
        if tuple(images.shape[2:]) != self.image_size:
            raise ValueError(f"images are {tuple(images.shape[2:])} pixels; {self.name} takes {self.image_size}")
        x = images.to(self.device, torch.float32) / 255.0
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def activations(self, images: torch.Tensor, layers: Sequence[str] | str | None = None) -> dict[str, torch.Tensor]:
        """uint8 ``(n, 3, 64, 64)`` -> dict layer -> float32 post-ReLU maps ``(n, units, h, w)``."""
        names = self.select_layers(layers)
        chosen = {name: getattr(self.module, name) for name in names}
        with torch.no_grad(), capture(chosen) as store:
            self.module.forward_features(self.preprocess(images))
        return {name: store[name][-1].float() for name in names}

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled ``layer4``: float32 ``(n, 128)`` (the input of ``fc``)."""
        with torch.no_grad():
            maps = self.module.forward_features(self.preprocess(images))
            return self.module.forward_head(maps, pre_logits=True).float()


def classify(adapter: MiniResNetAdapter, images: torch.Tensor, batch: int = 500) -> dict[str, torch.Tensor]:
    """Presence probabilities of ``mini-resnet.sup`` for uint8 images ``(n, 3, 64, 64)``.

    Returns ``{"kinds": (n, len(KINDS)), "colours": (n, len(COLOURS))}``: independent sigmoids,
    entry ``[i, k]`` = probability that scene i shows an object of kind (colour) k. They do not
    sum to one: a scene with a red circle and a blue star has two high kind probabilities.
    """
    head = getattr(adapter.module, "fc", None)
    if not isinstance(head, torch.nn.Linear) or head.out_features != N_OUTPUTS:
        raise ValueError(
            f"{adapter.name} has no presence classifier (fc with {N_OUTPUTS} outputs); "
            f"use {SUP_NAME!r}"
        )
    images = torch.as_tensor(images)
    parts = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            parts.append(torch.sigmoid(adapter.module(adapter.preprocess(images[start:start + batch])).float()))
    probs = torch.cat(parts).cpu() if parts else torch.zeros(0, N_OUTPUTS)
    return {"kinds": probs[:, : len(KINDS)], "colours": probs[:, len(KINDS):]}


def classify_kinds(adapter: MiniResNetAdapter, images: torch.Tensor) -> torch.Tensor:
    """Per-kind presence probabilities ``(n, len(KINDS))`` in ``KINDS`` order (the generator gate).

    Independent sigmoids (see :func:`classify`): for a one-object image the row is close to a
    one-hot of its kind; call ``probs.argmax(1)`` for the most likely kind and ``probs > 0.5``
    for the set of kinds shown.
    """
    return classify(adapter, images)["kinds"]


def presence_labels(scenes: Scenes) -> torch.Tensor:
    """float32 ``(n, N_OUTPUTS)``: 1 where a visible object has that kind (then colour), else 0."""
    visible = scenes.object_masks.any(axis=(2, 3)) & (scenes.kinds >= 0)
    labels = np.zeros((len(scenes), N_OUTPUTS), dtype=np.float32)
    rows, slots = np.nonzero(visible)
    labels[rows, scenes.kinds[rows, slots]] = 1.0
    labels[rows, len(KINDS) + scenes.colours[rows, slots]] = 1.0
    return torch.from_numpy(labels)


def set_metrics(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracies of presence ``probs`` ``(n, N_OUTPUTS)`` against 0/1 ``labels`` (threshold 0.5)."""
    right = (probs > 0.5) == (labels > 0.5)
    k = len(KINDS)
    return {
        "kind_set_accuracy": float(right[:, :k].all(1).float().mean()),
        "colour_set_accuracy": float(right[:, k:].all(1).float().mean()),
        "kind_label_accuracy": float(right[:, :k].float().mean()),
        "colour_label_accuracy": float(right[:, k:].float().mean()),
    }


def _held_out(n: int, seed: int, config: WorldConfig | None = None, style: str = "photo"):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} is invalid: expected a positive number of held-out scenes")
    scenes = render_batch(seed, range(n), config, style)
    return torch.from_numpy(scenes.images), presence_labels(scenes)


def evaluate_sup(adapter: MiniResNetAdapter, n: int = 1000, seed: int = HELD_OUT_SEED) -> dict:
    """Presence accuracies of the classifier on ``n`` held-out photo scenes of world ``seed``.

    Also ``kind_set_accuracy_flat`` / ``_cartoon``: the same scenes with ``shading=0`` and in
    the cartoon style (the shading-independence the generator gate relies on)."""
    images, labels = _held_out(n, seed)
    metrics = set_metrics(torch.cat(list(classify(adapter, images).values()), 1), labels)
    for tag, config, style in (("flat", WorldConfig(shading=0.0), "photo"), ("cartoon", None, "cartoon")):
        images, labels = _held_out(n, seed, config, style)
        probs = torch.cat(list(classify(adapter, images).values()), 1)
        metrics[f"kind_set_accuracy_{tag}"] = set_metrics(probs, labels)["kind_set_accuracy"]
    return {**metrics, "n": n, "seed": seed}


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                 l2: float = 1e-3, iterations: int = 200) -> torch.Tensor:
    """Fit one logistic regression per label column on features ``(m, d)`` / 0-1 labels ``(m, c)``
    (standardised with the training statistics, L2 penalty ``l2``, L-BFGS); return the
    probabilities ``(n, c)`` of ``test_x`` ``(n, d)``."""
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    a, b = (train_x - mean) / std, (test_x - mean) / std
    layer = torch.nn.Linear(a.shape[1], train_y.shape[1], dtype=torch.float64)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    a, b, y = a.double(), b.double(), train_y.double()
    optimiser = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(layer(a), y)
        loss = loss + l2 * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    with torch.no_grad():
        return torch.sigmoid(layer(b)).float()


def _pooled(adapter: MiniResNetAdapter, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    return torch.cat([adapter.features(images[i:i + batch]) for i in range(0, len(images), batch)])


def evaluate_ssl(adapter: MiniResNetAdapter, n: int = 1000, seed: int = HELD_OUT_SEED,
                 n_train: int = 3000, train_seed: int = PROBE_WORLD_SEED,
                 config: WorldConfig | None = None) -> dict:
    """Linear-probe presence accuracies of frozen pooled ``layer4`` features ``(n, 128)``.

    The probe is fitted on ``n_train`` photo scenes of world ``train_seed`` and evaluated on
    ``n`` held-out photo scenes of world ``seed``, both drawn with ``config`` (default: the
    default world). Works for any mini ResNet (also random init)."""
    train_images, train_labels = _held_out(n_train, train_seed, config)
    test_images, test_labels = _held_out(n, seed, config)
    probs = linear_probe(_pooled(adapter, train_images), train_labels, _pooled(adapter, test_images))
    return {**set_metrics(probs, test_labels), "n": n, "n_train": n_train, "seed": seed}


def gate_failures(metrics: dict, gate: dict[str, float]) -> list[str]:
    """Human-readable reasons why ``metrics`` miss the thresholds of ``gate`` (empty: passes)."""
    return [f"{key} = {metrics.get(key, float('nan')):.4f} < {low}" for key, low in gate.items()
            if not metrics.get(key, float("-inf")) >= low]


def layer_table() -> list[LayerInfo]:
    """``layer1`` .. ``layer4`` as :meth:`MiniResNetAdapter.layers` measures them, from the constants:
    ``channels[i]`` units (``BasicBlock`` keeps the width) on the grid ``IMAGE_SIZE / (2 * 2**i)``
    (stride-2 stem, the max-pool halving once more when kept; stages 2-4 halve)."""
    stem = 4 if STEM_POOL else 2
    return [LayerInfo(name, units, (IMAGE_SIZE // (stem * 2**i),) * 2)
            for i, (name, units) in enumerate(zip(STAGES, RESNET_CONFIG["channels"]))]


def build_sup() -> MiniResNetAdapter:
    """The registry's ``build`` for ``mini-resnet.sup`` (random init, presence classifier)."""
    return MiniResNetAdapter(build_resnet(N_OUTPUTS), SUP_NAME)


def build_ssl() -> MiniResNetAdapter:
    """The registry's ``build`` for ``mini-resnet.ssl`` (random init, no classifier)."""
    return MiniResNetAdapter(build_resnet(0), SSL_NAME)


_ARCH = ("timm.ResNet(BasicBlock, layers {layers}, channels {channels}, {stem_type} stem {stem_width}, "
         + ("" if STEM_POOL else "no ") + "stem max-pool, 64x64)")

#: name, build, description, how the weights were trained
_MODELS = (
    (SUP_NAME, build_sup, "a small ResNet supervised on which shape kinds and colours a scene shows "
     "(multi-label presence), trained with flat/shaded/cartoon scenes, blur and noise",
     "supervised training on rosetta_core.data shapes (bench/train_resnet.py)"),
    (SSL_NAME, build_ssl, "a small ResNet self-supervised with SimCLR (two augmented views: crops, flips, "
     "colour jitter over every hue; NT-Xent) on scenes of the simple shapes world; no labels",
     "SimCLR on a cached set of rosetta_core.data simple-world scenes, on CPU (bench/train_ssl_cpu.py)"),
)
for _name, _build, _description, _trained_by in _MODELS:
    register_embedded(_name, _ARCH.format(**RESNET_CONFIG), _build, layer_table, description=_description,
                      trained_by=_trained_by)
