"""Training recipe and evaluation of ``mini-vit.mae`` (masked-autoencoder pre-training).

MAE (He et al., 2022) as used here: each image's 64 patch tokens are shuffled per sample and
only ``1 - mask_ratio`` of them (16 of 64 at 75%) pass through the encoder, with the class
token; a small decoder of timm ``Block``s gets the encoded tokens plus a shared learned mask
token at every masked position (fixed 2-d sin-cos positions) and predicts each patch's pixels,
normalised per patch (zero mean, unit variance); the loss is the mean squared error over the
masked patches only. The encoder's own position embedding is the fixed 2-d sin-cos table.

Data: batch ``step`` is the scenes ``range(step * B, (step + 1) * B)`` of ``TRAIN_SEED``, half
from the default world and half from ``WorldConfig.simple()`` (so the encoder also knows the
easier world a small generator draws). Held-out scenes come from other seeds.

Evaluation (:func:`evaluate_mae`): a linear probe (multinomial logistic regression on
standardised, frozen, pooled features) for the kind of the largest visible object.
"""

from __future__ import annotations

import numpy as np
import torch
from timm.layers import build_sincos2d_pos_embed
from timm.models.vision_transformer import Block
from torch import nn

from ...data import KINDS, Scenes, WorldConfig, render_batch
from ..training import adamw_matrix_decay, warmup_cosine_lr
from .mini_vit import MiniViTAdapter, build_vit

__all__ = [
    "TRAIN_SEED", "PROBE_SEED", "TEST_SEED", "MAEDecoder", "MAERecipe", "LinearProbe", "largest_kind",
    "training_scenes", "fit_linear_probe", "evaluate_mae",
]

TRAIN_SEED, PROBE_SEED, TEST_SEED = 101, 202, 303


def largest_kind(scenes: Scenes) -> np.ndarray:
    """Index into ``KINDS`` of each scene's largest *visible* object: int ``(n,)``."""
    area = scenes.object_masks.sum(axis=(2, 3)).astype(np.int64)
    area[scenes.kinds < 0] = -1
    slot = area.argmax(axis=1)
    return scenes.kinds[np.arange(len(slot)), slot].astype(np.int64)


def training_scenes(seed: int, start: int, count: int) -> tuple[Scenes, Scenes]:
    """Scenes ``start .. start + count`` of ``seed``: the first half from the default world,
    the second half (indices offset by 2**30) from ``WorldConfig.simple()``."""
    half = count // 2
    default = render_batch(seed, range(start, start + count - half), WorldConfig())
    simple = render_batch(seed, range(2**30 + start, 2**30 + start + half), WorldConfig.simple())
    return default, simple


def _patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """``(n, c, H, W)`` -> ``(n, H/p * W/p, p * p * c)`` in row-major patch order."""
    n, c, h, w = images.shape
    x = images.reshape(n, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(n, (h // patch) * (w // patch), patch * patch * c)


class MAEDecoder(nn.Module):
    """Encoded visible tokens ``(n, 1 + keep, enc_dim)`` -> patch pixels ``(n, L, p*p*3)``."""

    def __init__(self, enc_dim: int, grid: tuple[int, int], patch: int, dim: int = 128,
                 depth: int = 2, heads: int = 4):
        super().__init__()
        self.embed = nn.Linear(enc_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        pos = build_sincos2d_pos_embed(list(grid), dim=dim)
        self.register_buffer("pos", torch.cat([torch.zeros(1, dim), pos]).unsqueeze(0), persistent=False)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio=4.0) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.pred = nn.Linear(dim, patch * patch * 3)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, encoded: torch.Tensor, restore: torch.Tensor) -> torch.Tensor:
        n, kept, _ = encoded.shape
        x = self.embed(encoded)
        total = restore.shape[1]
        masks = self.mask_token.expand(n, total - (kept - 1), -1)
        patches = torch.cat([x[:, 1:], masks], dim=1)
        patches = torch.gather(patches, 1, restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        x = torch.cat([x[:, :1], patches], dim=1) + self.pos
        return self.pred(self.norm(self.blocks(x)))[:, 1:]


class MAERecipe:
    """One MAE step per call; the encoder is ``self.adapter.module`` (a timm ViT).

    ``total_steps`` sets the schedule: linear warm-up over the first 5%, cosine decay to 0.
    ``norm_floor`` is added to each patch's pixel variance before normalising the target
    (MAE uses 1e-6); a floor keeps the near-flat background patches of this world from turning
    pixel grain into a loud, unpredictable target. Pixels are in the model's normalised units.
    """

    name = "mini-vit.mae"

    def __init__(self, total_steps: int, batch_size: int = 64, lr: float = 1.5e-3,
                 mask_ratio: float = 0.75, weight_decay: float = 0.05, seed: int = TRAIN_SEED,
                 norm_floor: float = 0.05, device: str | torch.device = "cpu"):
        if total_steps < 1 or batch_size < 2:
            raise ValueError(f"total_steps={total_steps} must be >= 1 and batch_size={batch_size} >= 2")
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio={mask_ratio} is invalid: expected a number in (0, 1)")
        with torch.random.fork_rng(devices=[]):  # the initialisation depends on ``seed`` only
            torch.manual_seed(seed)
            self.adapter = MiniViTAdapter(build_vit())
            vit = self.adapter.module
            grid = tuple(vit.patch_embed.grid_size)
            self.patch = vit.patch_embed.patch_size[0]
            self.decoder = MAEDecoder(vit.embed_dim, grid, self.patch)
        with torch.no_grad():
            pos = build_sincos2d_pos_embed(list(grid), dim=vit.embed_dim)
            vit.pos_embed[:, vit.num_prefix_tokens:] = pos
            vit.pos_embed[:, : vit.num_prefix_tokens] = 0.0
        vit.pos_embed.requires_grad_(False)
        self.device = torch.device(device)
        vit.to(self.device)
        self.decoder.to(self.device)
        self.batch_source = None  # set by train(workers=...) to run batch_at ahead
        self.total_steps, self.batch_size, self.seed = total_steps, batch_size, seed
        self.mask_ratio, self.base_lr, self.norm_floor = mask_ratio, lr, norm_floor
        params = [p for p in vit.parameters() if p.requires_grad] + list(self.decoder.parameters())
        self.optimizer = adamw_matrix_decay(params, lr, weight_decay, betas=(0.9, 0.95))

    def lr_at(self, step: int) -> float:
        return warmup_cosine_lr(step, self.total_steps, self.base_lr)

    def encode_visible(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """Normalised images ``(n, 3, 64, 64)`` -> (encoded ``(n, 1 + keep, dim)``, mask bool
        ``(n, L)`` True where masked, restore ``(n, L)`` indices that unshuffle the tokens)."""
        vit = self.adapter.module
        tokens = vit.patch_embed(x) + vit.pos_embed[:, vit.num_prefix_tokens:]
        n, total, dim = tokens.shape
        keep = max(1, int(round(total * (1.0 - self.mask_ratio))))
        noise = torch.rand(n, total, generator=generator).to(tokens.device)
        shuffle = noise.argsort(dim=1)
        restore = shuffle.argsort(dim=1)
        visible = torch.gather(tokens, 1, shuffle[:, :keep].unsqueeze(-1).expand(-1, -1, dim))
        cls = (vit.cls_token + vit.pos_embed[:, :1]).expand(n, -1, -1)
        encoded = vit.norm(vit.blocks(vit.norm_pre(torch.cat([cls, visible], dim=1))))
        mask = torch.ones(n, total, dtype=torch.bool, device=tokens.device)
        mask[:, :keep] = False
        return encoded, torch.gather(mask, 1, restore), restore

    def loss(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """MAE loss of uint8 images ``(n, 3, 64, 64)``: MSE on normalised pixels of masked patches."""
        x = self.adapter.preprocess(images)
        encoded, mask, restore = self.encode_visible(x, generator)
        pred = self.decoder(encoded, restore)
        target = _patchify(x, self.patch)
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        target = (target - mean) / (var + self.norm_floor).sqrt()
        per_patch = ((pred - target) ** 2).mean(-1)
        return (per_patch * mask).sum() / mask.sum()

    def batch_at(self, step: int) -> tuple[torch.Tensor]:
        """uint8 images ``(batch_size, 3, 64, 64)`` of ``step`` (pure, CPU)."""
        default, simple = training_scenes(self.seed, step * self.batch_size, self.batch_size)
        return (torch.from_numpy(np.concatenate([default.images, simple.images])),)

    def step(self, step: int) -> dict[str, float]:
        vit = self.adapter.module
        vit.train()
        self.decoder.train()
        (images,) = self.batch_source(step) if self.batch_source is not None else self.batch_at(step)
        images = images.to(self.device, non_blocking=True)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss = self.loss(images, generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(list(vit.parameters()) + list(self.decoder.parameters()), 1.0)
        self.optimizer.step()
        return {"loss": float(loss.detach()), "lr": lr}

    def state_dict(self) -> dict:
        return {"encoder": self.adapter.module.state_dict(), "decoder": self.decoder.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.adapter.module.load_state_dict(state["encoder"])
        self.decoder.load_state_dict(state["decoder"])
        self.optimizer.load_state_dict(state["optimizer"])


class LinearProbe(nn.Module):
    """Standardise features ``(m, d)`` with fixed statistics, then a linear map to logits."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, classes: int):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = nn.Linear(mean.shape[0], classes)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x - self.mean) / self.std)


def fit_linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, classes: int,
                     l2: float = 1e-3, iterations: int = 200) -> LinearProbe:
    """Multinomial logistic regression (L-BFGS, L2 penalty ``l2``) on features ``(n, d)``
    standardised with their own mean/std; labels int ``(n,)`` in ``[0, classes)``."""
    probe = LinearProbe(train_x.mean(0), train_x.std(0) + 1e-6, classes)
    opt = torch.optim.LBFGS(probe.parameters(), lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(probe(train_x), train_y) + l2 * probe.linear.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return probe.eval()


def _pooled(adapter: MiniViTAdapter, scenes: Scenes, pool: str, chunk: int = 256) -> torch.Tensor:
    parts = [adapter.features(torch.from_numpy(scenes.images[i:i + chunk]), pool)
             for i in range(0, len(scenes), chunk)]
    return torch.cat(parts).float()


def evaluate_mae(adapter: MiniViTAdapter, n_train: int = 3000, n_test: int = 1000,
                 pool: str = "mean", config: WorldConfig | None = None) -> dict[str, float]:
    """Linear-probe accuracy for the kind of the largest visible object.

    The probe is fitted on frozen pooled features of ``n_train`` scenes of ``PROBE_SEED`` and
    scored on ``n_test`` held-out scenes of ``TEST_SEED`` (both unseen in training), in the
    world ``config`` (default world when None). Returns ``probe_accuracy`` (held out),
    ``probe_train_accuracy``, ``majority`` (the accuracy of always guessing the most common
    kind) and the counts.
    """
    if n_train < len(KINDS) or n_test < 1:
        raise ValueError(f"n_train={n_train} must be >= {len(KINDS)} and n_test={n_test} >= 1")
    cfg = config or WorldConfig()
    was_training = adapter.module.training
    adapter.module.eval()
    train = render_batch(PROBE_SEED, range(n_train), cfg)
    test = render_batch(TEST_SEED, range(n_test), cfg)
    train_x, test_x = _pooled(adapter, train, pool), _pooled(adapter, test, pool)
    train_y, test_y = torch.from_numpy(largest_kind(train)), torch.from_numpy(largest_kind(test))
    probe = fit_linear_probe(train_x, train_y, len(KINDS))
    adapter.module.train(was_training)
    with torch.no_grad():
        test_acc = (probe(test_x).argmax(1) == test_y).float().mean().item()
        train_acc = (probe(train_x).argmax(1) == train_y).float().mean().item()
    majority = np.bincount(test_y.numpy(), minlength=len(KINDS)).max() / len(test_y)
    return {"probe_accuracy": test_acc, "probe_train_accuracy": train_acc,
            "majority": float(majority), "n_train": float(n_train), "n_test": float(n_test)}
