"""``mini-clip.rn``: a small open_clip ``CLIP`` with a ModifiedResNet image tower.

Architecture as data (:data:`VISION`, :data:`TEXT`, :data:`EMBED_DIM`): open_clip's
``CLIP`` with a ``ModifiedResNet`` of one bottleneck per stage at 64x64 and a small causal
text transformer, tokenised by open_clip's own BPE ``SimpleTokenizer`` (its vocabulary ships
inside the package, so it works offline). Trained contrastively on the world's captions
(``clip_recipes.py``). Preprocessing: open_clip's OpenAI mean/std at 64x64, no resizing.

Hooked layers: the four residual stages ``visual.layer1`` .. ``visual.layer4``. Each stage ends
with a ``Bottleneck`` whose last operation is a ReLU on the block output, so a stage's output
is post-ReLU (>= 0). Grids at 64x64: 16x16, 8x8, 4x4, 2x2 with ``width * 4 * 2**i`` units.

open_clip is imported when a model is built, not with this module: registering the model (and
listing it, :func:`layer_table`) needs only the constants. ``VISION_CFG`` and ``TEXT_CFG``
(open_clip's ``CLIPVisionCfg``/``CLIPTextCfg`` of :data:`VISION`/:data:`TEXT`) are made on first
access.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from ..hooks import capture
from ..base import EncoderAdapter, LayerInfo
from . import register_embedded

if TYPE_CHECKING:
    import open_clip
    from open_clip.model import CLIP

__all__ = ["NAME", "EMBED_DIM", "VISION", "TEXT", "MiniCLIPAdapter", "build_clip", "build_adapter", "layer_table",
           "tokenizer"]

NAME = "mini-clip.rn"
EMBED_DIM = 128
#: keyword arguments of open_clip's ``CLIPVisionCfg`` (the image tower)
VISION = dict(layers=(1, 1, 1, 1), width=16, head_width=64, image_size=64)
#: keyword arguments of open_clip's ``CLIPTextCfg`` (the text tower)
TEXT = dict(context_length=32, vocab_size=49408, width=64, heads=4, layers=2)
STAGES = ("visual.layer1", "visual.layer2", "visual.layer3", "visual.layer4")


def __getattr__(name: str):
    """``VISION_CFG``, ``TEXT_CFG``: open_clip's config objects of :data:`VISION`, :data:`TEXT`."""
    if name in ("VISION_CFG", "TEXT_CFG"):
        from open_clip.model import CLIPTextCfg, CLIPVisionCfg

        globals()["VISION_CFG"], globals()["TEXT_CFG"] = CLIPVisionCfg(**VISION), CLIPTextCfg(**TEXT)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_clip() -> CLIP:
    """A randomly initialised open_clip ``CLIP`` with the architecture of ``mini-clip.rn``."""
    from open_clip.model import CLIP

    return CLIP(EMBED_DIM, vision_cfg=dict(VISION), text_cfg=dict(TEXT))


def tokenizer() -> open_clip.tokenizer.SimpleTokenizer:
    """open_clip's BPE tokenizer at this model's context length (offline: vocab in the package)."""
    import open_clip

    return open_clip.tokenizer.SimpleTokenizer(context_length=TEXT["context_length"])


def layer_table() -> list[LayerInfo]:
    """The four stages as :meth:`MiniCLIPAdapter.layers` reports them, from :data:`VISION`:
    ``width * 4 * 2**i`` units (bottleneck expansion 4) on the ``image_size / (4 * 2**i)`` grid."""
    width, side = VISION["width"], VISION["image_size"]
    return [LayerInfo(name, width * 4 * 2**i, (side // (4 * 2**i),) * 2) for i, name in enumerate(STAGES)]


class MiniCLIPAdapter(EncoderAdapter):
    """Adapter around an open_clip ``CLIP``; the image tower's stages are the hooked layers.

    Besides the extraction contract it embeds images and texts into the joint space:
    :meth:`encode_images` ``(n, embed_dim)`` and :meth:`encode_texts` ``(m, embed_dim)``,
    both L2-normalised.
    """

    def __init__(self, module: CLIP, name: str = NAME, weights: str = "random"):
        import open_clip

        self.module = module
        self.name = name
        self.weights = weights
        self.mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(open_clip.OPENAI_DATASET_STD, dtype=torch.float32).view(1, 3, 1, 1)
        visual = module.visual
        self.image_size = int(visual.image_size)
        self.arch = (
            f"open_clip CLIP ModifiedResNet layers {VISION['layers']} width {VISION['width']} "
            f"img {self.image_size}; text width {TEXT['width']} layers {TEXT['layers']} "
            f"ctx {TEXT['context_length']}; embed {module.text_projection.shape[1]}"
        )
        self._stages = {name: getattr(visual, name.split(".")[1]) for name in STAGES}
        self._tokenizer = None

    def layers(self) -> list[LayerInfo]:
        # the stem halves twice (stride-2 conv, 2x2 average pool); each later stage halves once
        out = []
        for i, (name, stage) in enumerate(self._stages.items()):
            side = self.image_size // (4 * 2**i)
            out.append(LayerInfo(name, stage[-1].bn3.num_features, (side, side)))
        return out

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(n, 3, 64, 64)`` -> float32 normalised with open_clip's OpenAI mean/std."""
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 (n, 3, H, W); got {images.dtype} {tuple(images.shape)}")
        if tuple(images.shape[2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"images are {tuple(images.shape[2:])} pixels; {self.name} takes "
                f"{(self.image_size, self.image_size)}"
            )
        x = images.to(self.device, torch.float32) / 255.0
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def _eval_forward(self, fn):
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.no_grad():
                return fn()
        finally:
            self.module.train(was_training)

    def activations(self, images: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """uint8 ``(n, 3, 64, 64)`` -> dict layer -> float32 ``(n, units, h, w)`` (post-ReLU).

        Runs in eval mode (batch-norm running statistics), so an image's maps do not depend
        on the rest of the batch.
        """
        names = self.select_layers(layers)
        chosen = {name: self._stages[name] for name in names}
        with capture(chosen, transform=lambda _n, t: t.clone()) as store:
            self._eval_forward(lambda: self.module.visual(self.preprocess(images)))
        return {name: store[name][-1].float() for name in names}

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> token ids int64 ``(m, context_length)``."""
        if isinstance(texts, str):
            raise ValueError("texts must be a sequence of strings, not one string; wrap it in a list")
        if self._tokenizer is None:
            self._tokenizer = tokenizer()
        return self._tokenizer(list(texts))

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(n, 3, 64, 64)`` -> L2-normalised image embeddings ``(n, embed_dim)``."""
        return self._eval_forward(lambda: self.module.encode_image(self.preprocess(images), normalize=True))

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> L2-normalised text embeddings ``(m, embed_dim)``."""
        tokens = self.tokenize(texts).to(self.device)
        return self._eval_forward(lambda: self.module.encode_text(tokens, normalize=True))


def build_adapter() -> MiniCLIPAdapter:
    """The registry's ``build``: a randomly initialised ``mini-clip.rn``."""
    return MiniCLIPAdapter(build_clip())


_ARCH = (f"open_clip.CLIP(ModifiedResNet layers={VISION['layers']} width={VISION['width']}, "
         f"text width={TEXT['width']} layers={TEXT['layers']}, embed={EMBED_DIM})")

register_embedded(NAME, _ARCH, build_adapter, layer_table,
                  description="a small CLIP (ModifiedResNet image tower, BPE text transformer) trained "
                  "contrastively on the captions of the procedural shapes world",
                  trained_by="contrastive training on rosetta_core.data shapes captions (bench/train_clip.py)")
