"""Train ``mini-gen`` (the conditional neural renderer of the shape world) on CPU.

Usage::

    python bench/train_gen.py [--steps 4500] [--checkpoint /work/zoo-train/mini-gen/ckpt.pt]
                              [--threads 1] [--export-only]

Trains with a tqdm bar, checkpoints every ``--every`` steps and resumes from the checkpoint.
Every ``--grid-every`` steps it writes the sample grid ``docs/mini-gen-samples.png`` (and its
pair of true renders ``docs/world-real-scenes.png``) from the current weights and logs pixel
metrics. At the end (or with ``--export-only``, from the checkpoint) it measures the pixel
metrics on 1,000 samples, runs the quality gate with ``mini-resnet.sup`` when that model's
weights exist, and ONLY if the gate passes exports ``rosetta_core/zoo/weights/mini-gen.safetensors``
(fp16) and the model card ``mini-gen.md``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rosetta_core.data import render_batch  # noqa: E402
from rosetta_core.zoo.embedded import WEIGHTS_DIR  # noqa: E402
from rosetta_core.zoo.embedded.gen_recipes import (  # noqa: E402
    GATE_SEED, GenRecipe, evaluate_gen, generate_batched, pixel_metrics, sample_grid,
)
from rosetta_core.zoo.embedded.mini_gen import (  # noqa: E402
    GEN_WORLD, LATENT_DIM, MiniGenAdapter, NAME, WIDTHS, Z_DIM, CODE_DIM,
)
from rosetta_core.zoo.training import steps_for_seconds, train  # noqa: E402

CLASSIFIER = "mini-resnet.sup"
GRID_N = 32


def write_grids(adapter: MiniGenAdapter, docs: Path) -> None:
    """``docs/mini-gen-samples.png`` (generated) and ``docs/world-real-scenes.png`` (true renders)
    of the same scenes ``(GATE_SEED, 0..31)``, 8 per row, in the same order."""
    from PIL import Image

    docs.mkdir(parents=True, exist_ok=True)
    gen = generate_batched(adapter, adapter.sample_latents(GATE_SEED, range(GRID_N))).numpy()
    real = render_batch(GATE_SEED, range(GRID_N), adapter.world).images
    for images, name in ((gen, "mini-gen-samples.png"), (real, "world-real-scenes.png")):
        big = np.kron(sample_grid(images), np.ones((2, 2, 1), dtype=np.uint8))  # 2x: easier to see
        tmp = docs / (name + ".tmp.png")
        Image.fromarray(big).save(tmp)
        os.replace(tmp, docs / name)


def metrics(adapter: MiniGenAdapter, n: int) -> dict[str, float]:
    scenes = render_batch(GATE_SEED, range(n), adapter.world)
    images = generate_batched(adapter, adapter.sample_latents(GATE_SEED, range(n))).numpy()
    return pixel_metrics(images, scenes)


def load_classifier():
    """``classifier_fn(uint8 images) -> probs`` from ``mini-resnet.sup``, or None (with the reason)."""
    from rosetta_core.zoo import get_spec, load

    try:
        spec = get_spec(CLASSIFIER)
    except ValueError:
        return None, f"{CLASSIFIER} is not registered"
    if spec.weights_file is None or not Path(spec.weights_file).is_file():
        return None, f"{CLASSIFIER} has no weights file yet ({spec.weights_file})"
    encoder = load(CLASSIFIER)
    from rosetta_core.zoo.embedded import mini_resnet

    if callable(getattr(mini_resnet, "classify_kinds", None)):
        return (lambda images: mini_resnet.classify_kinds(encoder, images)), \
            f"{CLASSIFIER} (mini_resnet.classify_kinds: per-kind presence sigmoids over KINDS)"

    def classify(images: torch.Tensor) -> torch.Tensor:
        return encoder.module(encoder.preprocess(images))[:, :5].sigmoid()

    return classify, f"{CLASSIFIER}: sigmoid of its first 5 logits"


def export(adapter: MiniGenAdapter, path: Path, card: str) -> None:
    from safetensors.torch import save_file

    state = {k: (v.half() if v.is_floating_point() else v).contiguous()
             for k, v in adapter.module.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"name": NAME, "dtype": "float16 (load as float32)"})
    path.with_suffix(".md").write_text(card)


def model_card(args, steps: int, seconds: float, pix: dict, ceiling: dict, gate: dict, who: str,
               params: int) -> str:
    real = gate.get("real", {})
    def fmt(d: dict) -> str:
        return json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()})

    return f"""# mini-gen

**What it is:** a *conditional neural renderer* trained by L1 regression — **not a GAN**. It maps
a latent `[scene code | z]` ({LATENT_DIM} floats: the {CODE_DIM}-value scene code `Scenes.codes` of
`WorldConfig.simple()` and {Z_DIM} noise values z ~ N(0, 1)) to a 64x64 RGB image of that scene.
The training target is a deterministic render of the code, so the model ignores z in practice.

**World:** `WorldConfig.simple()`: 1-2 large upright objects (circle, square, triangle, cross),
6 flat colours, plain mild-gradient background, soft cast shadows, 64x64.

**Sampling:** `load("mini-gen").sample_latents(seed, indices)` = code of scene `(seed, i)` of
`render_batch(seed, indices, WorldConfig.simple())` concatenated with z from
`np.random.default_rng([seed, i, 7919])`; `generate(latents, layers)` -> uint8 images and the
post-ReLU maps `block1`..`block5` (4, 8, 16, 32, 64 px; {list(WIDTHS)} units).
`module(latents)` gives float images in [-1, 1], differentiable w.r.t. the latents.

**Architecture:** Linear stem to 4x4, then four (nearest x2 upsample, CoordConv 3x3, batch
norm whose affine is a zero-initialised Linear of the latent (FiLM), ReLU) blocks, CoordConv
3x3 to RGB, tanh. CoordConv inputs: x, y and, per object slot, x - cx, y - cy and their length
(zero for an absent slot), computed from the latent. {params:,} parameters, stored fp16.

**Training:** `bench/train_gen.py --steps {steps} --batch {args.batch} --lr {args.lr}`; scenes
`(seed 1, index step*B..)` rendered on the fly; loss = mean L1 in [-1, 1] weighted 5x on object
masks dilated by 2 px, plus 10 on a 3-px band around the outlines; Adam (betas 0.9, 0.999), constant lr then cosine to 5% over the last 40% of
steps; torch seed 0; {steps} steps in {seconds / 60:.1f} min of wall time.{(" " + args.card_note) if args.card_note else ""}

**Pixel metrics** (1,000 samples of seed {GATE_SEED}; l1 in [0,1] units; IoU of the colour
segmentation vs the true visible masks): {fmt(pix)}
Same method on the true renders (ceiling): {fmt(ceiling)}

**Quality gate** (classifier: {who}; 1,000 samples; confident = top probability >= 0.9;
agreement = the top kind is the kind of the largest object in the code, or another kind the
code asks for while the largest object's kind is detected too (p >= 0.5), since the classifier
gives independent per-kind presence probabilities; agreement_strict = top kind only):
generated {fmt({k: v for k, v in gate.items() if k != "real"})};
true renders of the same scenes {fmt(real)}

**Limitations:** soft edges; small details (thin cross arms, triangle tips) are rounded; the
second object and shadows are less exact than the first; z has no visible effect.
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4500)
    ap.add_argument("--checkpoint", type=Path, default=Path(f"/work/zoo-train/{NAME}/ckpt.pt"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--grid-every", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--gate-n", type=int, default=1000)
    ap.add_argument("--export-only", action="store_true")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs")
    ap.add_argument("--card-note", default="", help="extra text for the model card's Training section")
    ap.add_argument("--device", default="cpu", help="torch device to train on (cpu, cuda)")
    ap.add_argument("--workers", type=int, default=0, help="processes rendering batches ahead (0: none)")
    ap.add_argument("--seconds", type=float, default=None,
                    help="wall-time budget: set --steps to what fits (measured on a throwaway recipe)")
    ap.add_argument("--train-only", action="store_true", help="stop after training (gate later, --export-only)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from tqdm import tqdm

    def make(steps: int) -> GenRecipe:
        torch.manual_seed(0)
        return GenRecipe(batch=args.batch, lr=args.lr, total_steps=steps, device=args.device)

    if args.seconds and not args.export_only:
        args.steps = steps_for_seconds(make, args.seconds, workers=args.workers)
        print(f"--seconds {args.seconds:.0f}: training {args.steps} steps", flush=True)
    recipe = make(args.steps)
    adapter = MiniGenAdapter(recipe.module)
    if args.export_only:
        if not args.checkpoint.is_file():
            print(f"no checkpoint at {args.checkpoint}")
            return 2
        payload = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
        recipe.load_state_dict(payload["recipe"])
        history = payload["history"]
    else:
        bar = tqdm(total=args.steps, mininterval=10, file=sys.stderr)

        def progress(step, total, losses):
            bar.n = step
            bar.set_postfix(loss=f"{losses['loss']:.4f}", lr=f"{losses['lr']:.1e}", refresh=False)
            bar.refresh() if step % 20 == 0 else None
            if step % args.grid_every == 0 or step == total:
                write_grids(adapter, args.docs)
                m = metrics(adapter, 200)
                print(f"\nstep {step} {time.strftime('%H:%M:%S')} pixel "
                      + " ".join(f"{k}={v:.3f}" for k, v in m.items()), flush=True)
                recipe.module.train()

        result = train(recipe, args.steps, args.checkpoint, every=args.every, seed=0, progress=progress,
                       workers=args.workers)
        bar.close()
        history = result.history
        if args.train_only:
            print(f"trained {len(history)} steps in {history[-1]['seconds']:.0f} s; --train-only: stop", flush=True)
            return 0
    recipe.module.cpu()
    steps, seconds = len(history), history[-1]["seconds"]
    print(f"trained {steps} steps, {seconds / 60:.1f} min wall; last-100 loss "
          f"{np.mean([h['loss'] for h in history[-100:]]):.4f}", flush=True)
    write_grids(adapter, args.docs)
    pix = metrics(adapter, args.gate_n)
    scenes = render_batch(GATE_SEED, range(args.gate_n), GEN_WORLD)
    ceiling = pixel_metrics(scenes.images, scenes)
    print("pixel metrics:", json.dumps(pix), "\nceiling:", json.dumps(ceiling), flush=True)
    classifier, who = load_classifier()
    if classifier is None:
        print(f"gate NOT run: {who}; weights not exported. Rerun with --export-only once it exists.")
        return 1
    gate = evaluate_gen(adapter, classifier, n=args.gate_n, seed=GATE_SEED, reference=True)
    print("gate:", json.dumps(gate), flush=True)
    if not gate["passed"]:
        print("gate FAILED: weights not exported")
        return 1
    path = WEIGHTS_DIR / f"{NAME}.safetensors"
    export(adapter, path, model_card(args, steps, seconds, pix, ceiling, gate, who,
                                          sum(p.numel() for p in adapter.module.parameters())))
    print(f"gate passed: exported {path} ({path.stat().st_size / 1e6:.2f} MB) and {path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
