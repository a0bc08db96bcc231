"""Rosetta-guided inversion, single-neuron visualisation and edits (paper section 4, DESIGN §3.4).

- :mod:`.config`: :class:`InversionConfig`, the one configuration of every inversion, edit and
  visualisation job, from the command line to the optimisation loop;
- :mod:`.matches`: the matched pairs of a finished run and their dataset statistics;
- :mod:`.losses`: ``L_act`` (Eq. 6), ``L_reg``, pixel losses, the learning-rate schedule;
- :mod:`.perceptual`: the perceptual loss (a zoo encoder's features when LPIPS is unavailable);
- :mod:`.optimize`: the latent optimisation loop, :func:`invert`, :func:`visualize`;
- :mod:`.edits`: shift / zoom / copy-paste / remove / add on matched maps, then re-optimisation;
- :mod:`.metrics`: PSNR, SSIM, foreground masks, areas, IoU and centroids for the benchmarks;
- :mod:`.criteria`: the success criteria of edits and OOD inversion (docs/success-criteria.md);
- :mod:`.images`: reading and checking user image files, encoding the jobs' PNGs;
- :mod:`.jobs`: one job from files (or URLs) to files: :func:`~.jobs.check_job`, then
  :func:`~.jobs.invert_file`, :func:`~.jobs.edit_job` or :func:`~.jobs.visualize_job`.
"""

from .config import MODES, InversionConfig
from .edits import EDITS, edit, edit_targets
from .images import load_image
from .matches import Matches, PairGroup, encoder_matches, open_run, self_matches
from .metrics import psnr, ssim
from .optimize import Result, generator_lr, invert, optimise, visualize

__all__ = [
    "EDITS", "MODES", "InversionConfig", "Matches", "PairGroup", "Result", "edit", "edit_targets",
    "encoder_matches", "generator_lr", "invert", "load_image", "open_run", "optimise", "psnr", "self_matches",
    "ssim", "visualize",
]
