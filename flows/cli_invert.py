"""`rosetta invert`, `rosetta edit`, `rosetta visualize`: guided inversion from the command line.

Each command parses its arguments into one :class:`~rosetta_core.inversion.InversionConfig`
(options a command does not offer keep the config's defaults; the options' defaults are read
from it). ``invert`` hands it to the ``invert-batch`` flow, which checks it at its start;
``edit`` and ``visualize`` run their job in this process and check it there, once
(:func:`~rosetta_core.inversion.jobs.check_job`). ``--run`` and ``--out`` may be directories or
fsspec URLs such as ``s3://bucket/runs/x``; outputs default to a folder inside the run.
"""

from __future__ import annotations

import argparse
import dataclasses

from rosetta_core.inversion.config import MODES, REG_CENTERS, InversionConfig
from rosetta_core.inversion.edits import EDIT_FITS, EDIT_HOLDS, EDITS, FIT_BOXES, FITS, PADS, SWITCHES, switch
from rosetta_core.inversion.losses import ACTS, PIXELS

DEFAULTS = InversionConfig()
_FIELDS = tuple(f.name for f in dataclasses.fields(InversionConfig))
#: ``rosetta invert --mode ood`` (its default mode: image files, not the generator's own images)
#: when ``--act`` / ``--reg-center`` are not given: the settings that validation found best for
#: both sketches and cartoons (24 scenes of world seed 4242, position-centred n=256 run, 300
#: steps; bench/results/invert-cpu-ood-act-validation.json, docs/ood-inversion.md), with the
#: library's alpha 0.1. ``--mode rec``, ``edit`` and ``visualize`` keep the library's defaults
#: (Eq. 6 and the raw ||z||^2: the paper's, and better for reconstruction, docs/inversion-results.md).
OOD_DEFAULTS = {"act": "image", "reg_center": "prior"}


def config_from_args(args: argparse.Namespace) -> InversionConfig:
    """The InversionConfig the options describe: every config field the command has an option
    for (argparse ``dest`` = field name); checked by :func:`~rosetta_core.inversion.jobs.check_job`.
    An option left at ``None`` (``invert``'s ``--act`` and ``--reg-center``) takes its default for
    the mode: :data:`OOD_DEFAULTS` in ``ood`` mode, else the config's."""
    given = {name: getattr(args, name) for name in _FIELDS if hasattr(args, name) and getattr(args, name) is not None}
    if given.get("mode", DEFAULTS.mode) == "ood":
        for name, value in OOD_DEFAULTS.items():
            if hasattr(args, name):
                given.setdefault(name, value)
    return InversionConfig(**given)


def _names(text: str) -> tuple[str, ...]:
    return tuple(e for e in text.split(",") if e)


def _mean(value) -> float | None:
    """A metric of one image (a number) or of several (a list: their mean)."""
    if isinstance(value, list):
        return sum(value) / len(value) if value else None
    return value


def _report(metrics: dict) -> None:
    psnr, ssim = _mean(metrics.get("psnr")), _mean(metrics.get("ssim"))
    text = f"PSNR {psnr:.2f} dB, SSIM {ssim:.3f}, " if psnr is not None else ""
    print(f"  {text}{metrics['steps']} steps in {metrics['seconds']:.1f} s; perceptual: {metrics.get('perceptual') or 'none'}")
    print(f"wrote {metrics['out']}/")


def run_invert(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if not args.verbose:
        from .cli_mine import quiet_logs

        quiet_logs()  # the flow's checks fail with one line, not Prefect's logged traceback
    from flows.invert import invert_batch, summary_lines  # imports Prefect

    summary = invert_batch(args.run_dir, list(args.images), args.out, config, device=args.device,
                           deployment=args.deployment, pool=args.pool, plugins=args.plugin)
    if not args.verbose:  # otherwise the flow's log shows them
        print("\n".join(summary_lines(summary)))
    return 1 if summary["failed"] else 0


def _run_job(args: argparse.Namespace, title: str, job, *params, **options) -> int:
    """Check the run and the config once, then run ``job`` with a progress bar and report it."""
    from rosetta_core.inversion.jobs import check_job, step_bar

    config = config_from_args(args)
    run = check_job(args.run_dir, config)
    with step_bar(title, config.steps) as progress:
        metrics = job(run, args.out, *params, config=config, progress=progress, device=args.device, **options)
    _report(metrics)
    return 0


def run_edit(args: argparse.Namespace) -> int:
    from rosetta_core.inversion.jobs import edit_job

    return _run_job(args, f"edit {args.edit}", edit_job, args.edit, index=args.index, concept=args.concept,
                    unit=args.unit, dx=args.dx, dy=args.dy, hold=args.hold, pad=args.pad, fit=args.fit,
                    box=switch(args.box))


def run_visualize(args: argparse.Namespace) -> int:
    from rosetta_core.inversion.jobs import visualize_job

    return _run_job(args, f"concept {args.concept}", visualize_job, args.concept, starts=args.starts,
                    example=args.example, unit=args.unit)


def _common(p: argparse.ArgumentParser, per_mode: bool = False) -> None:
    """``per_mode``: ``--reg-center`` defaults per ``--mode`` (``invert``)."""
    p.add_argument("--run", dest="run_dir", required=True,
                   help="a finished mining run: its directory or an fsspec URL such as s3://bucket/runs/x")
    p.add_argument("--out", default=None, help="output folder or URL (default: a folder inside the run)")
    p.add_argument("--encoders", type=_names, default=DEFAULTS.encoders,
                   help="comma-separated encoders whose matches guide (default: all of the run's)")
    p.add_argument("--steps", type=int, default=DEFAULTS.steps, help=f"optimisation steps (default {DEFAULTS.steps})")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument("--alpha", type=float, default=DEFAULTS.alpha, help=f"weight of L_reg (default {DEFAULTS.alpha:g})")
    default = (f"default {OOD_DEFAULTS['reg_center']} with --mode ood (chosen on validation scenes), "
               f"{DEFAULTS.reg_center} with --mode rec") if per_mode else f"default {DEFAULTS.reg_center}"
    p.add_argument("--reg-center", choices=REG_CENTERS, default=None if per_mode else DEFAULTS.reg_center,
                   help="L_reg of the raw latent ('zero', the paper's ||z||^2) or of the latent standardised by the "
                   "generator's prior ('prior': the same for N(0, I) generators; for mini-gen, better layouts of "
                   f"sketches and cartoons with --mode ood); {default}")
    p.add_argument("--lr", type=float, default=DEFAULTS.lr, help="Adam learning rate (default: the generator's zoo entry)")
    p.add_argument("--device", default="cpu", help="where the models run: cpu, cuda, cuda:1, ...")


def _act(p: argparse.ArgumentParser, per_mode: bool = False) -> None:
    default = (f"default {OOD_DEFAULTS['act']} with --mode ood (chosen on validation scenes), {DEFAULTS.act} with "
               "--mode rec") if per_mode else f"default {DEFAULTS.act}"
    p.add_argument("--act", choices=ACTS, default=None if per_mode else DEFAULTS.act,
                   help=f"how matched maps are compared ({default}): dataset = the paper's Eq. 6 (each "
                        "map normalised by the pair's dataset statistics); image = each pair's correlation over the "
                        "image's own positions (for out-of-distribution images such as cartoons; see README)")


def add_invert_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("invert", help="Rosetta-guided inversion of image files into the run's generator",
                       description="Optimise the generator's latent so its matched units' maps correlate with the "
                       "encoders' maps of each image (paper Eq. 5-7). Writes result.png, strip.png, latent.npy, "
                       "metrics.json per image; images already done with the same settings are skipped.")
    _common(p, per_mode=True)
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...) or URLs")
    _act(p, per_mode=True)
    p.add_argument("--mode", choices=MODES, default=DEFAULTS.mode,
                   help=f"ood: guidance only (Eq. 5), with --act {OOD_DEFAULTS['act']} --reg-center "
                        f"{OOD_DEFAULTS['reg_center']} unless given; rec: + reconstruction (Eq. 7) (default {DEFAULTS.mode})")
    p.add_argument("--beta", type=float, default=DEFAULTS.beta,
                   help=f"weight of L_act in rec mode (default {DEFAULTS.beta:g}; 0 = baseline)")
    p.add_argument("--pixel", choices=PIXELS, default=DEFAULTS.pixel, help=f"pixel loss in rec mode (default {DEFAULTS.pixel})")
    p.add_argument("--perceptual-encoder", default=DEFAULTS.perceptual_encoder,
                   help=f"zoo encoder for the perceptual loss ('' = none; default {DEFAULTS.perceptual_encoder})")
    p.add_argument("--deployment", default=None, help="run each image as a run of this deployment, e.g. invert-image/invert")
    p.add_argument("--pool", default="gpu", help="work pool of --deployment (its concurrency limit caps runs in flight)")
    p.add_argument("--verbose", action="store_true", help="show Prefect's logs in the terminal")
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
    boxes = ", ".join(f"{fit} {SWITCHES[0] if on else SWITCHES[1]}" for fit, on in FIT_BOXES.items())
    e.add_argument("--box", choices=SWITCHES, default=None,
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
