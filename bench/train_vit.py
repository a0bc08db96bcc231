"""Train ``mini-vit.mae`` (MAE pre-training of a small timm ViT) on one CPU thread.

Usage::

    python bench/train_vit.py [--steps 3000] [--checkpoint /work/zoo-train/mini-vit.mae/ckpt.pt]
                              [--threads 1] [--batch-size 64] [--lr 1.5e-3]

Resumable: rerunning with the same checkpoint continues where it stopped. At the end the gate
(linear-probe accuracy >= 0.80 for the kind of the largest object on held-out scenes) is
evaluated on the weights as exported (fp16 safetensors, loaded back through the registry);
only if it passes are ``rosetta_core/zoo/weights/mini-vit.mae.safetensors`` and the model card
``mini-vit.mae.md`` written. Exit status 0 when the gate passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tqdm import tqdm  # noqa: E402

from rosetta_core.data import WorldConfig  # noqa: E402
from rosetta_core.zoo import registry  # noqa: E402
from rosetta_core.zoo.embedded import WEIGHTS_DIR  # noqa: E402
from rosetta_core.zoo.embedded.mini_vit import NAME, VIT_CONFIG  # noqa: E402
from rosetta_core.zoo.embedded.vit_recipes import TRAIN_SEED, MAERecipe, evaluate_mae  # noqa: E402
from rosetta_core.zoo.training import steps_for_seconds, train  # noqa: E402

GATE = 0.80


class TimedRecipe:
    """Wraps a recipe and accumulates the process CPU seconds of its steps in its state."""

    def __init__(self, recipe):
        self.recipe, self.name, self.cpu_seconds = recipe, recipe.name, 0.0

    def step(self, step: int) -> dict[str, float]:
        began = time.process_time()
        out = self.recipe.step(step)
        self.cpu_seconds += time.process_time() - began
        return out

    def state_dict(self) -> dict:
        return {"recipe": self.recipe.state_dict(), "cpu_seconds": self.cpu_seconds}

    def load_state_dict(self, state: dict) -> None:
        self.recipe.load_state_dict(state["recipe"])
        self.cpu_seconds = float(state["cpu_seconds"])

    def batch_at(self, step: int):
        return self.recipe.batch_at(step)

    @property
    def batch_source(self):
        return self.recipe.batch_source

    @batch_source.setter
    def batch_source(self, source) -> None:
        self.recipe.batch_source = source


def fp16_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's state with floating tensors stored as float16 (cast back to fp32 at load)."""
    return {k: (v.detach().half() if v.is_floating_point() else v.detach()).contiguous()
            for k, v in module.state_dict().items()}


def model_card(args, result, cpu_seconds: float, metrics: dict, params: int, file: Path, digest: str,
               recipe_floor: float) -> str:
    wall = result.history[-1]["seconds"]
    return f"""# {NAME}

**What it is.** A small Vision Transformer (timm `VisionTransformer`, {VIT_CONFIG}) pre-trained
from scratch as a masked autoencoder on the procedural shapes world of `rosetta_core.data`.
{params:,} parameters (encoder only; the MAE decoder is not shipped). Hooked layers: the GELU of
every block's MLP, `blocks.{{i}}.mlp.act`, as `(n, mlp_hidden, 8, 8)` maps (class token dropped).
Preprocessing: timm's data config of the model (ImageNet mean/std) at 64x64.

**Recipe** (`rosetta_core/zoo/embedded/vit_recipes.py`, `MAERecipe`). 75% of the 64 patches
masked per image, a 2-block decoder (dim 128) with a shared mask token, MSE on per-patch
normalised pixels of masked patches (variance floor {recipe_floor}); fixed 2-d sin-cos positions; AdamW (betas 0.9/0.95,
weight decay 0.05), lr {args.lr} with 5% linear warm-up then cosine to 0, gradient clipping 1.0.
Batch {args.batch_size} per step: half default world, half `WorldConfig.simple()`, scenes
`range(step*B, (step+1)*B)` of seed {TRAIN_SEED}. Steps: {args.steps} ({args.steps * args.batch_size:,} images).

**Compute.** {args.threads} CPU thread(s); {wall / 60:.1f} min wall for the training steps,
{cpu_seconds / 60:.1f} min CPU time (shared machine; wall includes waiting for the CPU).

**Gate** (linear probe, kind of the largest visible object, fitted on frozen mean-pooled final
tokens of {int(metrics['n_train'])} scenes, scored on {int(metrics['n_test'])} held-out scenes
of the {args.gate_world} world; threshold {args.gate}): {json.dumps(metrics)}

**File.** `{file.name}`: float16 safetensors (loaded back as float32), weights hash `{digest}`.
Reproduce: `python bench/train_vit.py --steps {args.steps} --batch-size {args.batch_size} --lr {args.lr}`.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--checkpoint", type=Path, default=Path(f"/work/zoo-train/{NAME}/ckpt.pt"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--every", type=int, default=100, help="checkpoint every N steps")
    parser.add_argument("--gate-train", type=int, default=3000, help="scenes to fit the probe")
    parser.add_argument("--gate-test", type=int, default=1000, help="held-out scenes to score it")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--gate", type=float, default=GATE, help="threshold of the gate metric")
    parser.add_argument("--gate-world", choices=("default", "simple"), default="default",
                        help="world of the held-out gate scenes (the other is reported too)")
    parser.add_argument("--device", default="cpu", help="torch device to train on (cpu, cuda)")
    parser.add_argument("--workers", type=int, default=0, help="processes rendering batches ahead (0: none)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="wall-time budget: set --steps to what fits (measured on a throwaway recipe)")
    parser.add_argument("--train-only", action="store_true", help="stop after training (gate later)")
    parser.add_argument("--export-only", action="store_true",
                        help="no training: gate + export the checkpoint's weights (its --steps are kept)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    def make(steps: int) -> TimedRecipe:
        return TimedRecipe(MAERecipe(total_steps=steps, batch_size=args.batch_size, lr=args.lr, device=args.device))

    if args.export_only:
        if not args.checkpoint.is_file():
            print(f"no checkpoint at {args.checkpoint}")
            return 2
        args.steps = int(torch.load(args.checkpoint, map_location="cpu", weights_only=False)["step"])
    elif args.seconds:
        args.steps = steps_for_seconds(make, args.seconds, workers=args.workers)
        print(f"--seconds {args.seconds:.0f}: training {args.steps} steps", flush=True)
    recipe = make(args.steps)
    bar = tqdm(total=args.steps, desc=NAME, mininterval=10)

    def progress(step: int, _total: int, losses: dict) -> None:
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{losses['loss']:.4f}", lr=f"{losses['lr']:.2e}", refresh=False)

    result = train(recipe, args.steps, args.checkpoint, every=args.every, seed=TRAIN_SEED, progress=progress,
                   workers=args.workers)
    bar.close()
    if args.train_only:
        print(f"trained {args.steps} steps in {result.history[-1]['seconds']:.0f} s; --train-only: stop", flush=True)
        return 0
    recipe.recipe.adapter.module.cpu()
    print(f"trained {args.steps} steps (resumed from {result.resumed_from}); "
          f"loss first 50 {result.mean_loss('loss', first=50):.4f}, last 50 {result.mean_loss('loss', last=50):.4f}")

    args.weights_dir.mkdir(parents=True, exist_ok=True)
    staged = args.checkpoint.parent / f"{NAME}.safetensors"
    gate_info = {"gate_world": args.gate_world, "gate": str(args.gate)}  # the gate these weights must pass
    save_file(fp16_state(recipe.recipe.adapter.module), str(staged), metadata=gate_info)
    adapter = registry.load(NAME, weights=str(staged))
    worlds = {"default": WorldConfig(), "simple": WorldConfig.simple()}
    per_world = {w: evaluate_mae(adapter, args.gate_train, args.gate_test, config=c) for w, c in worlds.items()}
    metrics = dict(per_world[args.gate_world], gate_world=args.gate_world, gate=args.gate)
    metrics.update({f"probe_accuracy_{w}_world": m["probe_accuracy"] for w, m in per_world.items()})
    metrics.update({f"majority_{w}_world": m["majority"] for w, m in per_world.items()})
    print("gate metrics:", json.dumps(metrics))
    (args.checkpoint.parent / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if metrics["probe_accuracy"] < args.gate:
        print(f"GATE FAILED: probe accuracy {metrics['probe_accuracy']:.3f} < {args.gate} "
              f"({args.gate_world} world); weights not exported")
        return 1
    target = args.weights_dir / f"{NAME}.safetensors"
    shutil.move(str(staged), str(target))
    target.chmod(0o644)
    params = sum(p.numel() for p in adapter.module.parameters())
    card = model_card(args, result, recipe.cpu_seconds, metrics, params, target, adapter.weights_hash,
                      recipe.recipe.norm_floor)
    (args.weights_dir / f"{NAME}.md").write_text(card)
    print(f"GATE PASSED: exported {target} ({target.stat().st_size / 1e6:.1f} MB) and its model card")
    return 0


if __name__ == "__main__":
    sys.exit(main())
