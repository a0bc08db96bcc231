"""Train ``mini-clip.rn`` (contrastive image-caption training of a small open_clip CLIP) on CPU.

Usage::

    python bench/train_clip.py [--steps 1500] [--checkpoint /work/zoo-train/mini-clip.rn/ckpt.pt]
                               [--threads 1] [--batch-size 128] [--lr 1e-3]

Resumable: rerunning with the same checkpoint continues where it stopped. At the end the gate
(zero-shot shape-kind accuracy >= 0.80 on held-out one-object scenes, prompts in the world's
caption style) is evaluated on the weights as exported (fp16 safetensors, loaded back through
the registry); only if it passes are ``rosetta_core/zoo/weights/mini-clip.rn.safetensors`` and
the model card ``mini-clip.rn.md`` written. Exit status 0 when the gate passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tqdm import tqdm  # noqa: E402
from train_vit import TimedRecipe, fp16_state  # noqa: E402

from rosetta_core.data import WorldConfig  # noqa: E402
from rosetta_core.zoo import registry  # noqa: E402
from rosetta_core.zoo.embedded import WEIGHTS_DIR  # noqa: E402
from rosetta_core.zoo.embedded.clip_recipes import CLIPRecipe, evaluate_clip  # noqa: E402
from rosetta_core.zoo.embedded.mini_clip import EMBED_DIM, NAME, TEXT_CFG, VISION_CFG  # noqa: E402
from rosetta_core.zoo.embedded.vit_recipes import TRAIN_SEED  # noqa: E402
from rosetta_core.zoo.training import train  # noqa: E402

GATE = 0.80


def model_card(args, result, cpu_seconds: float, metrics: dict, params: int, file: Path, digest: str) -> str:
    wall = result.history[-1]["seconds"]
    return f"""# {NAME}

**What it is.** A small CLIP (open_clip `CLIP`, embed dim {EMBED_DIM}) trained from scratch on
the procedural shapes world of `rosetta_core.data` and its captions. Image tower: open_clip
`ModifiedResNet` (layers {VISION_CFG.layers}, width {VISION_CFG.width}, 64x64, attention pooling).
Text tower: causal transformer (width {TEXT_CFG.width}, {TEXT_CFG.layers} layers, {TEXT_CFG.heads}
heads, context {TEXT_CFG.context_length}) over open_clip's own BPE tokenizer (vocabulary
{TEXT_CFG.vocab_size}). {params:,} parameters, most of them the token embedding table.
Hooked layers: `visual.layer1` .. `visual.layer4` (post-ReLU stage outputs, grids 16/8/4/2).
Preprocessing: open_clip's OpenAI mean/std at 64x64.

**Recipe** (`rosetta_core/zoo/embedded/clip_recipes.py`, `CLIPRecipe`). Symmetric InfoNCE
(open_clip `ClipLoss`, learned temperature capped at 100) between each scene and its caption;
AdamW (betas 0.9/0.98, eps 1e-6, weight decay 0.1 on matrices), lr {args.lr} with 5% linear
warm-up then cosine to 0, gradient clipping 1.0. Batch {args.batch_size} per step: half default
world, half `WorldConfig.simple()`, scenes `range(step*B, (step+1)*B)` of seed {TRAIN_SEED}.
Steps: {args.steps} ({args.steps * args.batch_size:,} image-caption pairs).

**Compute.** {args.threads} CPU thread(s); {wall / 60:.1f} min wall for the training steps,
{cpu_seconds / 60:.1f} min CPU time (shared machine; wall includes waiting for the CPU).

**Gate** (zero-shot kind accuracy from prompts "a {{size}} {{colour}} {{kind}}" averaged over the
three size words and all colours, on held-out one-object scenes of the {args.gate_world} world;
threshold {args.gate}): {json.dumps(metrics)}

**File.** `{file.name}`: float16 safetensors (loaded back as float32), weights hash `{digest}`.
Reproduce: `python bench/train_clip.py --steps {args.steps} --batch-size {args.batch_size} --lr {args.lr}`.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--checkpoint", type=Path, default=Path(f"/work/zoo-train/{NAME}/ckpt.pt"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--every", type=int, default=50, help="checkpoint every N steps")
    parser.add_argument("--gate-n", type=int, default=3000, help="held-out scenes (~1/3 hold one object)")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--gate", type=float, default=GATE, help="threshold of the gate metric")
    parser.add_argument("--gate-world", choices=("default", "simple"), default="default",
                        help="world of the held-out gate scenes (the other is reported too)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    recipe = TimedRecipe(CLIPRecipe(total_steps=args.steps, batch_size=args.batch_size, lr=args.lr))
    bar = tqdm(total=args.steps, desc=NAME, mininterval=10)

    def progress(step: int, _total: int, losses: dict) -> None:
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{losses['loss']:.4f}", lr=f"{losses['lr']:.2e}",
                        scale=f"{losses['logit_scale']:.1f}", refresh=False)

    result = train(recipe, args.steps, args.checkpoint, every=args.every, seed=TRAIN_SEED, progress=progress)
    bar.close()
    print(f"trained {args.steps} steps (resumed from {result.resumed_from}); "
          f"loss first 50 {result.mean_loss('loss', first=50):.4f}, last 50 {result.mean_loss('loss', last=50):.4f}")

    args.weights_dir.mkdir(parents=True, exist_ok=True)
    staged = args.checkpoint.parent / f"{NAME}.safetensors"
    gate_info = {"gate_world": args.gate_world, "gate": str(args.gate)}  # the gate these weights must pass
    save_file(fp16_state(recipe.recipe.adapter.module), str(staged), metadata=gate_info)
    adapter = registry.load(NAME, weights=str(staged))
    worlds = {"default": WorldConfig(), "simple": WorldConfig.simple()}
    per_world = {w: evaluate_clip(adapter, args.gate_n, c) for w, c in worlds.items()}
    metrics = dict(per_world[args.gate_world], gate_world=args.gate_world, gate=args.gate)
    for w, m in per_world.items():
        metrics.update({f"{k}_{w}_world": v for k, v in m.items() if k.startswith("zero_shot")})
    print("gate metrics:", json.dumps(metrics))
    (args.checkpoint.parent / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if metrics["zero_shot_single"] < args.gate:
        print(f"GATE FAILED: zero-shot accuracy {metrics['zero_shot_single']:.3f} < {args.gate} "
              f"({args.gate_world} world); weights not exported")
        return 1
    target = args.weights_dir / f"{NAME}.safetensors"
    shutil.move(str(staged), str(target))
    target.chmod(0o644)
    params = sum(p.numel() for p in adapter.module.parameters())
    card = model_card(args, result, recipe.cpu_seconds, metrics, params, target, adapter.weights_hash)
    (args.weights_dir / f"{NAME}.md").write_text(card)
    print(f"GATE PASSED: exported {target} ({target.stat().st_size / 1e6:.1f} MB) and its model card")
    return 0


if __name__ == "__main__":
    sys.exit(main())
