"""Training recipe, pixel metrics and quality gate of ``mini-gen`` (the conditional renderer).

Recipe (:class:`GenRecipe`): regression, not adversarial. Step ``s`` renders the scenes
``(train_seed, s*B .. (s+1)*B - 1)`` of ``GEN_WORLD`` on the fly (infinite data), builds their
latents ``[code | z]`` exactly as :meth:`MiniGenAdapter.sample_latents` does, and minimises the
L1 distance between ``G(latent)`` and the rendered image (both in [-1, 1]), weighted
``mask_weight`` times on the object masks dilated by ``dilate`` pixels (so objects, not the
large flat background, dominate the loss) plus ``contour_weight`` on a 3-pixel band around the
objects' outlines (corners and the concave parts of crosses decide the kind, yet cost few
pixels under a plain L1). Adam, constant learning rate, then a cosine decay
over the last ``decay_frac`` of ``total_steps``.

Metrics: :func:`pixel_metrics` needs no classifier (L1 to the true render; per-kind IoU of the
foreground, where a generated pixel belongs to the object whose colour from the code is the
nearest). :func:`evaluate_gen` is the quality gate with a caller-given classifier;
:func:`gate_numbers` is its pure part.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...data import KINDS, Scenes, WorldConfig, code_layout, render_batch
from .mini_gen import GEN_WORLD, MiniGenAdapter, MiniGenerator, latents_from_codes

__all__ = [
    "GenRecipe", "GATE_SEED", "GATE_CONFIDENCE", "GATE_CONFIDENT_FRAC", "GATE_MIN_KIND_FRAC",
    "GATE_AGREEMENT", "intended_kinds", "kinds_asked", "gate_numbers", "evaluate_gen", "pixel_metrics",
    "generate_batched", "sample_grid",
]

GATE_SEED = 20231
GATE_CONFIDENCE = 0.9  # a sample counts as "confident" when the top probability is >= this
GATE_CONFIDENT_FRAC = 0.85
GATE_MIN_KIND_FRAC = 0.10
GATE_AGREEMENT = 0.80


class GenRecipe:
    """One L1-regression step of the renderer per call (see the module docstring)."""

    name = "mini-gen"

    def __init__(self, module: MiniGenerator | None = None, *, world: WorldConfig = GEN_WORLD,
                 batch: int = 32, lr: float = 5e-4, total_steps: int | None = None,
                 decay_frac: float = 0.4, train_seed: int = 1, mask_weight: float = 5.0,
                 dilate: int = 2, contour_weight: float = 10.0, device: str | torch.device = "cpu"):
        if batch < 2:
            raise ValueError(f"batch={batch} is invalid: batch norm needs batch >= 2")
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"total_steps={total_steps} is invalid: expected None or >= 1")
        self.module = module if module is not None else MiniGenerator()
        self.world, self.batch, self.base_lr = world, batch, lr
        self.total_steps, self.decay_frac, self.train_seed = total_steps, decay_frac, train_seed
        self.mask_weight, self.dilate, self.contour_weight = mask_weight, dilate, contour_weight
        self.device = torch.device(device)
        self.module.to(self.device)
        self.opt = torch.optim.Adam(self.module.parameters(), lr=lr)
        self.batch_source = None  # set by train(workers=...) to run batch_at ahead

    def lr_at(self, step: int) -> float:
        """Constant ``lr``, then cosine down to 5% over the last ``decay_frac`` of the steps."""
        if self.total_steps is None:
            return self.base_lr
        start = self.total_steps * (1 - self.decay_frac)
        if step < start:
            return self.base_lr
        t = min(1.0, (step - start) / max(1.0, self.total_steps - start))
        return self.base_lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))

    def batch_at(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Latents ``(B, LATENT_DIM)``, targets ``(B, 3, 64, 64)`` in [-1, 1] and loss weights
        ``(B, 1, 64, 64)`` of training step ``step``."""
        idx = np.arange(step * self.batch, (step + 1) * self.batch)
        scenes = render_batch(self.train_seed, idx, self.world)
        return training_tensors(scenes, self.train_seed, self.mask_weight, self.dilate, self.contour_weight)

    def loss(self, latents: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return (weight * (self.module(latents) - target).abs()).mean()

    def step(self, step: int) -> dict[str, float]:
        self.module.train()
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(step)
        batch = self.batch_source(step) if self.batch_source is not None else self.batch_at(step)
        loss = self.loss(*(t.to(self.device, non_blocking=True) for t in batch))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": float(loss.detach()), "lr": self.opt.param_groups[0]["lr"]}

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.opt.load_state_dict(state["opt"])


def training_tensors(scenes: Scenes, seed: int, mask_weight: float = 5.0, dilate: int = 2,
                     contour_weight: float = 0.0):
    """Scenes -> (latents ``(n, LATENT_DIM)``, images in [-1, 1] ``(n, 3, h, w)``,
    weights ``(n, 1, h, w)``: ``mask_weight`` on dilated object masks, 1 elsewhere, plus
    ``contour_weight`` on the outlines dilated by one pixel)."""
    latents = latents_from_codes(scenes.codes, seed, scenes.indices)
    target = torch.from_numpy(scenes.images).float() / 127.5 - 1
    objects = torch.from_numpy(scenes.object_masks.any(axis=1)).float()[:, None]
    if dilate > 0:
        objects = F.max_pool2d(objects, 2 * dilate + 1, stride=1, padding=dilate)
    band = F.max_pool2d(torch.from_numpy(scenes.contour).float()[:, None], 3, stride=1, padding=1)
    return latents, target, 1 + (mask_weight - 1) * objects + contour_weight * band


def intended_kinds(scenes: Scenes) -> np.ndarray:
    """Index into ``KINDS`` of each scene's largest object (the first one on ties): ``(n,)``."""
    sizes = np.where(scenes.kinds >= 0, np.nan_to_num(scenes.sizes, nan=-1.0), -1.0)
    return scenes.kinds[np.arange(len(scenes)), sizes.argmax(axis=1)]


def generate_batched(adapter: MiniGenAdapter, latents: torch.Tensor, batch: int = 250) -> torch.Tensor:
    """uint8 images ``(n, 3, 64, 64)`` of ``latents``, in eval mode, ``batch`` at a time."""
    adapter.module.eval()
    return torch.cat([adapter.generate(latents[i:i + batch])[0].cpu() for i in range(0, len(latents), batch)])


def gate_numbers(probs, intended: np.ndarray, classes: Sequence[str], kinds: Sequence[str],
                 present: np.ndarray | None = None) -> dict:
    """The three gate numbers from classifier probabilities.

    probs ``(n, len(classes))`` (softmax rows or independent per-kind presence sigmoids);
    intended ``(n,)`` indices into ``KINDS`` (the kind of each scene's largest object);
    ``classes`` names the probability columns; ``kinds`` are the world's kinds (each must be
    >= 10% of the argmaxes); present ``(n, len(KINDS))`` bool: the kinds the scene code asks for.

    Returns confident (fraction with top probability >= 0.9), kind_fractions (kind -> fraction
    of argmaxes), min_kind_fraction, agreement_strict (argmax == intended kind), agreement and
    passed (confident >= 0.85, every kind >= 0.10, agreement >= 0.80). ``agreement`` equals
    ``agreement_strict`` without ``present``; with it, a sample also agrees when its argmax is
    another kind the code asks for and the intended kind is detected too (probability >= 0.5):
    a presence classifier may rank the two kinds of a two-object scene either way. (With softmax
    rows that case cannot occur, so both numbers are the same.)
    """
    p = np.asarray(probs.detach().cpu() if isinstance(probs, torch.Tensor) else probs, dtype=np.float64)
    intended = np.asarray(intended)
    if p.ndim != 2 or p.shape != (len(intended), len(classes)):
        raise ValueError(f"probs of shape {p.shape} are invalid: expected ({len(intended)}, {len(classes)}) "
                         f"for classes {tuple(classes)}")
    if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise ValueError("probs must be probabilities in [0, 1] (apply softmax or sigmoid to logits first)")
    missing = [k for k in kinds if k not in classes]
    if missing:
        raise ValueError(f"world kinds {missing} are not among the classifier's classes {tuple(classes)}")
    top = p.argmax(axis=1)
    predicted = np.array([KINDS.index(classes[t]) if classes[t] in KINDS else -1 for t in top])
    fractions = {k: float(np.mean(predicted == KINDS.index(k))) for k in kinds}
    strict = predicted == intended
    agree = strict
    if present is not None:
        present = np.asarray(present, dtype=bool)
        if present.shape != (len(intended), len(KINDS)):
            raise ValueError(f"present of shape {present.shape} is invalid: "
                             f"expected ({len(intended)}, {len(KINDS)})")
        column = {KINDS.index(c): j for j, c in enumerate(classes) if c in KINDS}
        rows = np.arange(len(intended))
        detected = np.array([p[i, column[k]] >= 0.5 if k in column else False for i, k in zip(rows, intended)])
        top_asked = np.array([k >= 0 and present[i, k] for i, k in zip(rows, predicted)])
        agree = strict | (top_asked & detected)
    out = {
        "confident": float(np.mean(p.max(axis=1) >= GATE_CONFIDENCE)),
        "kind_fractions": fractions,
        "min_kind_fraction": min(fractions.values()),
        "agreement_strict": float(np.mean(strict)),
        "agreement": float(np.mean(agree)),
    }
    out["passed"] = bool(out["confident"] >= GATE_CONFIDENT_FRAC and out["min_kind_fraction"]
                         >= GATE_MIN_KIND_FRAC and out["agreement"] >= GATE_AGREEMENT)
    return out


def kinds_asked(scenes: Scenes) -> np.ndarray:
    """bool ``(n, len(KINDS))``: the kinds of the objects in each scene's code."""
    out = np.zeros((len(scenes), len(KINDS)), dtype=bool)
    rows, slots = np.nonzero(scenes.kinds >= 0)
    out[rows, scenes.kinds[rows, slots]] = True
    return out


def _class_names(n_columns: int, world: WorldConfig, classes: Sequence[str] | None) -> tuple[str, ...]:
    if classes is not None:
        return tuple(classes)
    if n_columns == len(KINDS):
        return KINDS
    if n_columns == len(world.kinds):
        return tuple(world.kinds)
    raise ValueError(f"the classifier returned {n_columns} columns; pass classes= naming them "
                     f"(expected {len(KINDS)} for KINDS or {len(world.kinds)} for {world.kinds})")


def evaluate_gen(adapter: MiniGenAdapter, classifier_fn: Callable[[torch.Tensor], object],
                 n: int = 1000, seed: int = GATE_SEED, *, classes: Sequence[str] | None = None,
                 reference: bool = False) -> dict:
    """The quality gate on ``n`` samples ``sample_latents(seed, range(n))``.

    ``classifier_fn(uint8 images (n, 3, 64, 64)) -> probs (n, n_kinds)``; its columns are
    ``classes`` (default: ``KINDS`` when it has 5 columns, the world's kinds when it has as many).
    Returns :func:`gate_numbers` of the generated images; with ``reference=True`` also
    ``"real"``: the same numbers on the true renders of the same scenes (the classifier's ceiling).
    """
    if n < 1:
        raise ValueError(f"n={n} is invalid: expected >= 1")
    scenes = render_batch(seed, range(n), adapter.world)
    images = generate_batched(adapter, adapter.sample_latents(seed, range(n)))
    probs = _probs(classifier_fn, images)
    names = _class_names(probs.shape[1], adapter.world, classes)
    truth = (intended_kinds(scenes), names, adapter.world.kinds, kinds_asked(scenes))
    out = gate_numbers(probs, *truth)
    if reference:
        out["real"] = gate_numbers(_probs(classifier_fn, torch.from_numpy(scenes.images)), *truth)
    return out


def _probs(classifier_fn, images: torch.Tensor, batch: int = 250) -> np.ndarray:
    parts = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            p = classifier_fn(images[i:i + batch])
            parts.append(np.asarray(p.detach().cpu() if isinstance(p, torch.Tensor) else p, dtype=np.float64))
    return np.concatenate(parts)


def colour_segmentation(images: np.ndarray, scenes: Scenes) -> np.ndarray:
    """Label each pixel of ``images`` (uint8 ``(n, 3, h, w)``) with the object slot whose colour
    in the scene code is the nearest, or -1 when the mean background colour is nearer:
    ``(n, h, w)`` int."""
    lay = code_layout(scenes.config.max_objects)
    codes = scenes.codes
    bg = (codes[:, lay["background0"]] + codes[:, lay["background1"]]) / 2
    refs = [bg] + [codes[:, lay[f"object{j}.rgb"]] for j in range(scenes.config.max_objects)]
    refs = np.stack(refs, axis=1)  # (n, k + 1, 3)
    x = images.astype(np.float32) / 255
    dist = ((x[:, None] - refs[:, :, :, None, None]) ** 2).sum(axis=2)  # (n, k + 1, h, w)
    present = scenes.kinds >= 0
    dist[:, 1:][~present] = np.inf
    return dist.argmin(axis=1) - 1


def pixel_metrics(images: np.ndarray, scenes: Scenes) -> dict[str, float]:
    """Classifier-free quality of generated ``images`` (uint8 ``(n, 3, h, w)``) of ``scenes``.

    l1: mean absolute difference to the true renders, in [0, 1] units. fg_iou: mean over scenes
    of the IoU of the foreground (any object) between the colour segmentation of the image and
    the true object masks. iou_<kind>: mean IoU per object of that kind, where the predicted mask
    is the pixels nearest its colour and the true mask the visible pixels of the objects of the
    same colour. Apply it to ``scenes.images`` themselves for the ceiling of the method.
    """
    images = np.asarray(images)
    if images.shape != scenes.images.shape:
        raise ValueError(f"images of shape {images.shape} are invalid: expected {scenes.images.shape}")
    label = colour_segmentation(images, scenes)
    truth = scenes.object_masks  # (n, k, h, w)
    out = {"l1": float(np.abs(images.astype(np.float32) - scenes.images).mean() / 255)}
    fg_pred, fg_true = label >= 0, truth.any(axis=1)
    union = (fg_pred | fg_true).sum(axis=(1, 2))
    out["fg_iou"] = float(np.mean((fg_pred & fg_true).sum(axis=(1, 2)) / np.maximum(union, 1)))
    per_kind: dict[int, list[float]] = {}
    for j in range(truth.shape[1]):
        for i in np.nonzero(scenes.kinds[:, j] >= 0)[0]:
            same = np.nonzero(scenes.colours[i] == scenes.colours[i, j])[0]
            pred = np.isin(label[i], same)
            true = truth[i, same].any(axis=0)
            u = (pred | true).sum()
            per_kind.setdefault(int(scenes.kinds[i, j]), []).append((pred & true).sum() / max(u, 1))
    for k in scenes.config.kinds:
        values = per_kind.get(KINDS.index(k), [])
        out[f"iou_{k}"] = float(np.mean(values)) if values else float("nan")
    return out


def sample_grid(images: np.ndarray, columns: int = 8, pad: int = 2) -> np.ndarray:
    """uint8 images ``(n, 3, h, w)`` -> one uint8 grid ``(H, W, 3)`` with white padding."""
    n, _, h, w = images.shape
    rows = math.ceil(n / columns)
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y:y + h, x:x + w] = images[i].transpose(1, 2, 0)
    return grid
