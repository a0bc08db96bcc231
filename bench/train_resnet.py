"""Train ``mini-resnet.sup`` (supervised presence classifier) or ``mini-resnet.ssl`` (SimCLR) on CPU.

Usage::

    python bench/train_resnet.py --model sup|ssl [--steps N] [--batch B] [--lr LR]
        [--checkpoint /work/zoo-train/mini-resnet.<model>/ckpt.pt] [--threads 1]
        [--eval-every 250] [--export-only]

Trains with a tqdm bar, checkpoints every ``--every`` steps and resumes from the checkpoint.
Every ``--eval-every`` steps it logs the gate metrics on a small held-out set. At the end (or
with ``--export-only``, from the checkpoint) it evaluates the quality gate on ``--gate-n``
held-out scenes (world seed 10,000,000) and ONLY if it passes writes
``rosetta_core/zoo/weights/mini-resnet.<model>.safetensors`` (fp16) and the model card ``.md``.
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

from rosetta_core.data import WorldConfig  # noqa: E402
from rosetta_core.zoo.embedded import WEIGHTS_DIR  # noqa: E402
from rosetta_core.zoo.embedded import mini_resnet as mr  # noqa: E402
from rosetta_core.zoo.embedded import resnet_recipes as rr  # noqa: E402
from rosetta_core.zoo.registry import weights_hash  # noqa: E402
from rosetta_core.zoo.training import steps_for_seconds, train  # noqa: E402

SETUPS = {
    "sup": dict(name=mr.SUP_NAME, recipe=rr.SupervisedRecipe, evaluate=mr.evaluate_sup, gate=mr.SUP_GATE,
                steps=4000),
    "ssl": dict(name=mr.SSL_NAME, recipe=rr.SimCLRRecipe, evaluate=mr.evaluate_ssl, gate=mr.SSL_GATE,
                steps=1500),
}


def export(adapter: mr.MiniResNetAdapter, path: Path, card: str) -> None:
    from safetensors.torch import save_file

    state = {k: (v.half() if v.is_floating_point() else v).contiguous()
             for k, v in adapter.module.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"name": adapter.name, "dtype": "float16 (load as float32)"})
    os.chmod(path, 0o644)
    path.with_suffix(".md").write_text(card)


_WHAT = {
    "sup": """a timm ResNet classifier supervised on **multi-label presence**: its `fc` gives 13
logits, first one per kind of `KINDS` (circle, square, triangle, star, cross: is an object of
that kind visible?), then one per colour of `COLOURS` (red, green, blue, yellow, magenta, cyan,
orange, white). `mini_resnet.classify_kinds(adapter, images)` returns the per-kind presence
probabilities `(n, 5)` (independent sigmoids, not a softmax), `classify` both groups.

**Training data:** scenes `(world seed 1, index step*B..)` rendered on the fly as a fixed mix per
batch: 35% photo (default `WorldConfig()`), 20% flat photo (`shading=0`), 15% strongly shaded
photo (`shading=0.9`), 15% cartoon style, 15% `WorldConfig.simple()` (the generator's world);
then flips and quarter turns, Gaussian blur (p 0.3, sigma 0.4-1.5 px), 2x down-up sampling
(p 0.15) and Gaussian noise (p 0.3, sd up to 0.08), so that the kind is not read from the
shading style. Loss: binary cross-entropy over the 13 labels + a dense auxiliary loss: a 1x1
conv on `layer3` predicts, for each of its 8x8 cells, the fraction covered by background and by
each kind (soft cross-entropy against the world's visible-object masks, weight 1). The auxiliary
conv is a training device only and is not shipped; it made kind recognition learn several times
faster on CPU.""",
    "ssl": """a timm ResNet encoder self-supervised with **SimCLR** (no labels). It has no classifier
(`fc` is the identity: `module(x)` gives the pooled `layer4` features `(n, 128)`); the projection
heads (global: Linear 128-128, BatchNorm, ReLU, Linear 128-64; dense: the same with 1x1 convs
64-64-32) were used only for training and are not shipped.

**Training data:** scenes `(world seed 2, index step*B..)`. Two views per scene: each view is
the scene rendered with an option drawn per view from {35% photo, 20% flat `shading=0`, 15%
strong shading 0.9, each with one background texture drawn from plain/noise/stripes/checker;
15% cartoon} (the same objects in every option: a rendering-level augmentation that changes
shading and background), then a random resized crop (area 0.35-1, aspect 3/4-4/3), flips and
quarter turns, colour jitter (p 0.8: brightness/contrast/saturation 0.4, hue over the whole
circle, so that views are matched by shapes rather than colours), greying (p 0.2), blur
(p 0.5), 2x down-up (p 0.1), noise (p 0.3). Loss: NT-Xent over the 2B views of a batch
(temperature 0.2) + a dense NT-Xent term (weight 1, in the spirit of DenseCL/PixPro): a 1x1-conv
projection of every `layer3` cell (8x8 per view); a cell's positive is the cell of the other
view that shows the same place of the original scene (nearest, within 0.15 in [-1, 1] image
coordinates, known from the crop and flips), its negatives every other cell of every image of
the other view. Both projection heads are training devices only. No labels are used.""",
}


def model_card(model: str, args, recipe, steps: int, seconds: float, metrics: dict, digest: str) -> str:
    spec = SETUPS[model]
    adapter = recipe.adapter
    params = sum(p.numel() for p in adapter.module.parameters())
    fmt = json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()})
    layers = ", ".join(f"`{i.name}` {i.units}@{i.grid[0]}x{i.grid[1]}" for i in adapter.layers())
    extra = f", temperature {recipe.temperature}" if model == "ssl" else ""
    gate_text = ("supervised presence accuracies on held-out photo scenes" if model == "sup" else
                 f"a linear probe (one logistic regression per label on standardised pooled `layer4` "
                 f"features, L2 1e-3, L-BFGS) fitted on {metrics.get('n_train')} photo scenes of world "
                 f"seed {mr.PROBE_WORLD_SEED}, evaluated on held-out scenes")
    return f"""# {spec['name']}

**What it is:** {_WHAT[model]}

**Architecture:** {adapter.arch}; `zero_init_last=False`; {params:,} parameters, stored fp16
(weights hash {digest} after loading as float32). Hooked layers (post-ReLU stage outputs): {layers}.
Preprocessing: uint8 / 255, then mean {mr.MEAN} / std {mr.STD} (the photo world's statistics).

**Recipe:** `bench/train_resnet.py --model {model} --steps {steps}` (batch {recipe.batch}, peak lr
{recipe.optimiser.defaults['lr']});
AdamW (weight decay {recipe.optimiser.defaults['weight_decay']}{extra}), linear warm-up over 5% of
the steps then cosine decay to 0; torch seed 0, augmentation generators seeded by (0, step);
{args.threads} CPU thread(s); {steps} steps in {seconds / 60:.1f} min of wall time (measured on a
shared 2-core machine with other jobs running).

**Label task and gate:** multi-label presence of each kind and each colour among the visible
objects. `kind_set_accuracy` = fraction of scenes whose predicted kind set (5 yes/no decisions
at 0.5) is exactly right; `colour_set_accuracy` likewise for the 8 colours; `*_label_accuracy`
average single decisions. Gate {json.dumps(spec['gate'])} from {gate_text} (world seed
{mr.HELD_OUT_SEED}, scenes 0..{metrics.get('n', 0) - 1}).

**Metrics:** {fmt}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(SETUPS), required=True)
    ap.add_argument("--steps", type=int, default=None, help="default: sup 4000, ssl 1500")
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="default /work/zoo-train/<name>/ckpt.pt")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--every", type=int, default=50, help="checkpoint every N steps")
    ap.add_argument("--eval-every", type=int, default=250, help="log gate metrics every N steps (0: never)")
    ap.add_argument("--eval-n", type=int, default=300, help="held-out scenes for the periodic metrics")
    ap.add_argument("--batch", type=int, default=None, help="default: the recipe's (sup 32, ssl 64)")
    ap.add_argument("--lr", type=float, default=None, help="default: the recipe's (2e-3)")
    ap.add_argument("--gate-n", type=int, default=1000)
    ap.add_argument("--export-only", action="store_true", help="skip training; gate + export from the checkpoint")
    ap.add_argument("--no-export", action="store_true", help="evaluate the gate but never write weights")
    ap.add_argument("--world", choices=("default", "simple"), default="default",
                    help="ssl: render its views from this world (simple = the world mini-gen draws); "
                    "the gate's probe uses the same world")
    ap.add_argument("--device", default="cpu", help="torch device to train on (cpu, cuda)")
    ap.add_argument("--workers", type=int, default=0, help="processes preparing batches ahead (0: none)")
    ap.add_argument("--seconds", type=float, default=None,
                    help="wall-time budget: set --steps to what fits (measured on a throwaway recipe)")
    ap.add_argument("--train-only", action="store_true", help="stop after training (gate later, --export-only)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from tqdm import tqdm

    spec = SETUPS[args.model]
    args.steps = args.steps or spec["steps"]
    checkpoint = args.checkpoint or Path(f"/work/zoo-train/{spec['name']}/ckpt.pt")
    given = {k: v for k, v in (("batch", args.batch), ("lr", args.lr)) if v is not None}
    if args.model == "ssl" and args.world == "simple":
        given["mix"] = rr.SSL_MIX_SIMPLE

    def make(steps: int):
        torch.manual_seed(0)
        return spec["recipe"](steps=steps, seed=0, device=args.device, **given)

    if args.seconds and not args.export_only:
        args.steps = steps_for_seconds(make, args.seconds, workers=args.workers)
        print(f"--seconds {args.seconds:.0f}: training {args.steps} steps", flush=True)
    recipe = make(args.steps)
    adapter = recipe.adapter
    evaluate = spec["evaluate"]
    world = {"config": WorldConfig.simple()} if args.world == "simple" else {}
    small = dict(n=args.eval_n) if args.model == "sup" else dict(n=args.eval_n, n_train=1500, **world)
    if args.export_only:
        if not checkpoint.is_file():
            print(f"no checkpoint at {checkpoint}")
            return 2
        payload = torch.load(checkpoint, map_location="cpu", weights_only=False)
        recipe.load_state_dict(payload["recipe"])
        history = payload["history"]
    else:
        bar = tqdm(total=args.steps, mininterval=15, file=sys.stderr)

        def progress(step, total, losses):
            bar.n = step
            bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items() if k != "seconds"}, refresh=False)
            bar.refresh() if step % 25 == 0 else None
            if args.eval_every and (step % args.eval_every == 0) and step < total:
                adapter.module.eval()
                m = evaluate(adapter, **small)
                print(f"\nstep {step} {time.strftime('%H:%M:%S')} {losses['seconds'] / 60:.1f} min "
                      + " ".join(f"{k}={v:.3f}" for k, v in m.items() if isinstance(v, float)), flush=True)

        result = train(recipe, args.steps, checkpoint, every=args.every, seed=0, progress=progress,
                       workers=args.workers)
        bar.close()
        history = result.history
        if args.train_only:
            print(f"trained {len(history)} steps in {history[-1]['seconds']:.0f} s; --train-only: stop", flush=True)
            return 0
    recipe.trainable.cpu()
    steps, seconds = len(history), history[-1]["seconds"]
    print(f"trained {steps} steps, {seconds / 60:.1f} min wall; last-50 loss "
          f"{np.mean([h['loss'] for h in history[-50:]]):.4f}", flush=True)
    # judge the weights as shipped: rounded to fp16 and back
    half = {k: (v.half().float() if v.is_floating_point() else v) for k, v in adapter.module.state_dict().items()}
    adapter.module.load_state_dict(half)
    adapter.module.eval()
    metrics = evaluate(adapter, n=args.gate_n, **(world if args.model == "ssl" else {}))
    failures = mr.gate_failures(metrics, spec["gate"])
    print("gate metrics:", json.dumps(metrics), flush=True)
    if failures:
        print("gate FAILED (" + "; ".join(failures) + "): weights not exported")
        return 1
    if args.no_export:
        print("gate passed; --no-export: weights not written")
        return 0
    path = WEIGHTS_DIR / f"{spec['name']}.safetensors"
    card = model_card(args.model, args, recipe, steps, seconds, metrics, weights_hash(half))
    export(adapter, path, card)
    print(f"gate passed: exported {path} ({path.stat().st_size / 1e6:.2f} MB) and {path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
