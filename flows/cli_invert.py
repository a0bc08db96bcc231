"""`rosetta invert`, `rosetta edit`, `rosetta visualize`: guided inversion from the command line."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rosetta_core.inversion.edits import EDIT_FITS, EDIT_HOLDS, EDITS, FIT_BOXES, FITS, PADS
from rosetta_core.inversion.optimize import ACTS, MODES, REG_CENTERS


def _settings(args: argparse.Namespace):
    from rosetta_core.inversion.jobs import JobSettings

    encoders = tuple(e for e in (args.encoders or "").split(",") if e)
    return JobSettings(mode=getattr(args, "mode", "ood"), encoders=encoders, steps=args.steps, seed=args.seed,
                       alpha=args.alpha, beta=getattr(args, "beta", 1.0), pixel=getattr(args, "pixel", "l2"),
                       reg_center=args.reg_center, act=getattr(args, "act", "dataset"), lr=args.lr, device=args.device,
                       perceptual_encoder=getattr(args, "perceptual_encoder", "mini-resnet.sup"))


def _out(args: argparse.Namespace, sub: str) -> str:
    return args.out or str(Path(args.run_dir) / sub)


def _bar(name: str, steps: int):
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, desc=name, unit="step")

    def progress(step, total, loss):
        bar.n = step
        if step == total or step % 10 == 0:
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            bar.refresh()

    return bar, progress


def _report(metrics: dict) -> None:
    where = metrics.get("out") or ""
    if metrics.get("skipped"):
        print(f"{metrics['image']}: already done ({where})")
        return
    psnr = metrics.get("psnr") or []
    text = f"PSNR {sum(psnr) / len(psnr):.2f} dB, SSIM {sum(metrics['ssim']) / len(metrics['ssim']):.3f}, " if psnr else ""
    print(f"  {text}{metrics['steps']} steps in {metrics['seconds']:.1f} s; perceptual: {metrics.get('perceptual') or 'none'}")


def run_invert(args: argparse.Namespace) -> int:
    from rosetta_core.inversion.jobs import check_job

    settings = _settings(args)
    check_job(args.run_dir, settings)  # the run and the settings, before Prefect starts
    from flows.invert import InvertSettings, invert_batch

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    fields = settings.record() | {"device": args.device}
    fields.pop("steps")
    params = InvertSettings(**fields, steps=args.steps)
    summary = invert_batch(args.run_dir, list(args.images), _out(args, "inversions"), params,
                           deployment=args.deployment, pool=args.pool)
    return 1 if summary["failed"] else 0


def run_edit(args: argparse.Namespace) -> int:
    from rosetta_core.inversion.jobs import edit_job

    settings = _settings(args)
    bar, progress = _bar(f"edit {args.edit}", args.steps)
    with bar:
        metrics = edit_job(args.run_dir, _out(args, "edits"), args.edit, settings, args.index, args.concept, args.unit,
                           args.dx, args.dy, progress, args.hold, args.pad, args.fit,
                           None if args.box is None else args.box == "on")
    _report(metrics)
    print(f"wrote {_out(args, 'edits')}/edit-{args.edit}-{args.index}/")
    return 0


def run_visualize(args: argparse.Namespace) -> int:
    from rosetta_core.inversion.jobs import visualize_job

    settings = _settings(args)
    bar, progress = _bar(f"concept {args.concept}", args.steps)
    with bar:
        metrics = visualize_job(args.run_dir, _out(args, "visualizations"), args.concept, settings, args.starts,
                                args.example, progress, args.unit)
    _report(metrics | {"psnr": None})
    name = f"concept-{args.concept}" + ("" if args.unit is None else f"-unit-{args.unit}")
    print(f"wrote {_out(args, 'visualizations')}/{name}/")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", dest="run_dir", required=True, help="directory of a finished mining run")
    p.add_argument("--out", default=None, help="output folder (default: a folder inside the run)")
    p.add_argument("--encoders", default="", help="comma-separated encoders whose matches guide (default: all of the run's)")
    p.add_argument("--steps", type=int, default=500, help="optimisation steps (default 500)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--alpha", type=float, default=0.1, help="weight of L_reg (default 0.1)")
    p.add_argument("--reg-center", choices=REG_CENTERS, default="zero",
                   help="L_reg of the raw latent (default, the paper's ||z||^2) or of the latent standardised by "
                   "the generator's prior ('prior': the same for N(0, I) generators; for mini-gen, better layouts "
                   "of cartoon-like images with --mode ood)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the generator's zoo entry)")
    p.add_argument("--device", default="cpu")


def _act(p: argparse.ArgumentParser) -> None:
    p.add_argument("--act", choices=ACTS, default="dataset",
                   help="how matched maps are compared: dataset = the paper's Eq. 6 (each map normalised by the "
                        "pair's dataset statistics, default); image = each pair's correlation over the image's own "
                        "positions (for out-of-distribution images such as cartoons; see README)")


def add_invert_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("invert", help="Rosetta-guided inversion of image files into the run's generator",
                       description="Optimise the generator's latent so its matched units' maps correlate with the "
                       "encoders' maps of each image (paper Eq. 5-7). Writes result.png, strip.png, latent.npy, "
                       "metrics.json per image; images already done with the same settings are skipped.")
    _common(p)
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    _act(p)
    p.add_argument("--mode", choices=MODES, default="ood", help="ood: guidance only (Eq. 5); rec: + reconstruction (Eq. 7)")
    p.add_argument("--beta", type=float, default=1.0, help="weight of L_act in rec mode (default 1; 0 = baseline)")
    p.add_argument("--pixel", choices=["l2", "l1", "none"], default="l2", help="pixel loss in rec mode")
    p.add_argument("--perceptual-encoder", default="mini-resnet.sup", help="zoo encoder for the perceptual loss ('' = none)")
    p.add_argument("--deployment", default=None, help="run each image as a run of this deployment, e.g. invert-image/invert")
    p.add_argument("--pool", default="gpu", help="work pool of --deployment (its concurrency limit caps runs in flight)")
    p.set_defaults(run=run_invert)

    e = sub.add_parser("edit", help="edit a generated image of the run through its matched maps",
                       description="Transform the generator's Rosetta maps of run image --index (shift, 2x zoom, "
                       "copy-paste, remove or add a concept) and re-optimise the latent (paper section 4.2).")
    _common(e)
    e.add_argument("--edit", choices=EDITS, required=True)
    e.add_argument("--index", type=int, default=0, help="image of the run to edit (default 0)")
    e.add_argument("--concept", type=int, default=None, help="concept id (remove/add)")
    e.add_argument("--unit", type=int, default=None, help="generator unit (remove/add), instead of --concept")
    e.add_argument("--dx", type=float, default=0.25, help="shift right by this fraction of each map (default 0.25)")
    e.add_argument("--dy", type=float, default=0.0, help="shift down by this fraction (default 0)")
    fits = ", ".join(f"{k} {v}" for k, v in EDIT_FITS.items())
    e.add_argument("--fit", choices=FITS, default=None,
                   help="how the result is compared with the edited maps: mse = squared difference of the normalised "
                        f"maps, corr = the paper's Eq. 5 (spatial correlation only); default per edit: {fits}, others corr")
    holds = "; ".join(f"{fit}: " + (", ".join(f"{k} {v:g}" for k, v in table.items()) or "none") for fit, table in EDIT_HOLDS.items())
    e.add_argument("--hold", type=float, default=None,
                   help=f"weight of the L2 pull to the source latent (default per fit and edit, {holds}; others 0)")
    boxes = ", ".join(f"{fit} {'on' if on else 'off'}" for fit, on in FIT_BOXES.items())
    e.add_argument("--box", choices=("on", "off"), default=None,
                   help="keep the latent inside the box of the generator's prior after every step "
                        f"(default per fit: {boxes}; mse is bounded without it, and without it zoom can draw larger objects)")
    e.add_argument("--pad", choices=PADS, default=PADS[0],
                   help="what the map cells a shift uncovers hold (shift, copy-paste): mean = each unit's dataset "
                        "mean, 0 once normalised (default); zero = the paper's zero padding")
    e.set_defaults(run=run_edit)

    v = sub.add_parser("visualize", help="visualise one concept from several random starts",
                       description="Optimise several random latents to match one concept's pairs on an example image.")
    _common(v)
    _act(v)
    v.add_argument("--concept", type=int, required=True)
    v.add_argument("--unit", type=int, default=None, help="one generator unit of the concept: visualise that Rosetta neuron's pairs only")
    v.add_argument("--starts", type=int, default=4, help="random starts (default 4)")
    v.add_argument("--example", type=int, default=None, help="run image giving the target maps (default: the concept's first example)")
    v.set_defaults(run=run_visualize)
