"""Training recipe and zero-shot evaluation of ``mini-clip.rn``.

Training: the symmetric InfoNCE loss of CLIP (open_clip's ``ClipLoss``, learned temperature)
between each scene and its own caption (``Scenes.captions``). Batch ``step`` is scenes
``range(step * B, (step + 1) * B)`` of ``TRAIN_SEED``, half from the default world and half
from ``WorldConfig.simple()`` (see ``vit_recipes.training_scenes``). AdamW with a linear
warm-up over the first 5% of ``total_steps`` and a cosine decay to 0.

Evaluation (:func:`evaluate_clip`): zero-shot shape-kind classification. Each kind's text
embedding is the normalised mean of the embeddings of prompts in the world's own caption style,
``"a {size} {colour} {kind}"`` over the three size words and every colour; an image is given
the kind whose embedding is nearest. Scored on held-out scenes (``TEST_SEED``) that hold one
object (the gate) and, as a harder read-out, on all scenes against the largest object's kind.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from open_clip.loss import ClipLoss
from torch import nn

from ...data import COLOURS, KINDS, WorldConfig, render_batch
from ..training import adamw_matrix_decay, warmup_cosine_lr
from .mini_clip import MiniCLIPAdapter, build_clip
from .vit_recipes import TEST_SEED, TRAIN_SEED, largest_kind, training_scenes

__all__ = ["CLIPRecipe", "SIZE_WORDS", "kind_prompts", "zero_shot_classifier", "evaluate_clip"]

SIZE_WORDS = ("small", "medium", "large")


class CLIPRecipe:
    """One contrastive step per call; the model is ``self.adapter.module`` (open_clip CLIP)."""

    name = "mini-clip.rn"

    def __init__(self, total_steps: int, batch_size: int = 128, lr: float = 1e-3,
                 weight_decay: float = 0.1, seed: int = TRAIN_SEED):
        if total_steps < 1 or batch_size < 2:
            raise ValueError(f"total_steps={total_steps} must be >= 1 and batch_size={batch_size} >= 2")
        with torch.random.fork_rng(devices=[]):  # the initialisation depends on ``seed`` only
            torch.manual_seed(seed)
            self.adapter = MiniCLIPAdapter(build_clip())
        self.total_steps, self.batch_size, self.seed, self.base_lr = total_steps, batch_size, seed, lr
        self.criterion = ClipLoss()
        params = [p for p in self.adapter.module.parameters() if p.requires_grad]
        self.optimizer = adamw_matrix_decay(params, lr, weight_decay, betas=(0.9, 0.98), eps=1e-6)

    def lr_at(self, step: int) -> float:
        return warmup_cosine_lr(step, self.total_steps, self.base_lr)

    def loss(self, images: torch.Tensor, captions: Sequence[str]) -> torch.Tensor:
        """Contrastive loss of uint8 images ``(n, 3, 64, 64)`` and their ``n`` captions."""
        model = self.adapter.module
        image_features, text_features, logit_scale = model(
            self.adapter.preprocess(images), self.adapter.tokenize(captions))
        return self.criterion(image_features, text_features, logit_scale)

    def step(self, step: int) -> dict[str, float]:
        model = self.adapter.module
        model.train()
        default, simple = training_scenes(self.seed, step * self.batch_size, self.batch_size)
        images = torch.from_numpy(np.concatenate([default.images, simple.images]))
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss = self.loss(images, default.captions + simple.captions)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        self.optimizer.step()
        with torch.no_grad():  # as in CLIP: the temperature may not exceed 100
            model.logit_scale.clamp_(0, math.log(100))
        return {"loss": float(loss.detach()), "lr": lr, "logit_scale": float(model.logit_scale.detach().exp())}

    def state_dict(self) -> dict:
        return {"model": self.adapter.module.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.adapter.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


def kind_prompts(kind: str) -> list[str]:
    """Prompts for one kind in the world's caption style: every size word and colour."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is invalid: expected one of {KINDS}")
    return [f"a {size} {colour} {kind}" for size in SIZE_WORDS for colour in COLOURS]


def zero_shot_classifier(adapter: MiniCLIPAdapter, kinds: Sequence[str] = KINDS) -> torch.Tensor:
    """Class embeddings ``(len(kinds), embed_dim)``: normalised means of prompt embeddings."""
    rows = []
    for kind in kinds:
        emb = adapter.encode_texts(kind_prompts(kind)).mean(0)
        rows.append(emb / emb.norm())
    return torch.stack(rows)


def evaluate_clip(adapter: MiniCLIPAdapter, n_test: int = 2000, config: WorldConfig | None = None,
                  chunk: int = 256) -> dict[str, float]:
    """Zero-shot kind accuracy on ``n_test`` held-out scenes of ``TEST_SEED`` in ``config``.

    Returns ``zero_shot_single`` (scenes holding one object: the gate), ``zero_shot_largest``
    (all scenes, label = kind of the largest visible object), ``n_single`` and ``n_test``.
    """
    if n_test < 1:
        raise ValueError(f"n_test={n_test} must be >= 1")
    scenes = render_batch(TEST_SEED, range(n_test), config or WorldConfig())
    classes = zero_shot_classifier(adapter)
    embeds = torch.cat([adapter.encode_images(torch.from_numpy(scenes.images[i:i + chunk]))
                        for i in range(0, n_test, chunk)])
    predicted = (embeds @ classes.T).argmax(1).numpy()
    labels = largest_kind(scenes)
    single = (scenes.kinds >= 0).sum(1) == 1
    hits = predicted == labels
    return {
        "zero_shot_single": float(hits[single].mean()) if single.any() else float("nan"),
        "zero_shot_largest": float(hits.mean()),
        "n_single": float(single.sum()),
        "n_test": float(n_test),
    }
