"""What an inversion, edit or visualisation job computes: :class:`InversionConfig`, the one
configuration of those jobs.

The same frozen object travels from the command line (``rosetta invert | edit | visualize``)
to the flows (their ``config`` parameter), the ``invert`` deployment (the ``config`` parameter
in ``deployments/prefect.yaml``), the tasks, the jobs and the optimisation loop. It is checked
once, by :meth:`InversionConfig.validate`, where a flow or a job starts
(:func:`~.jobs.check_job`); the optimisation trusts it. Where a job runs (its device) and where
it writes are not fields: they do not change what is computed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .losses import ACTS, PIXELS, REGS

__all__ = ["MODES", "REG_CENTERS", "InversionConfig"]

MODES = ("ood", "rec")
REG_CENTERS = ("prior", "zero")


@dataclass(frozen=True)
class InversionConfig:
    """Settings of one inversion, edit or visualisation (paper defaults: 500 steps, alpha 0.1,
    beta 1); every field is recorded in the job's ``metrics.json``.

    ``mode``: ``"ood"`` (Eq. 5, guidance only) or ``"rec"`` (Eq. 7, reconstruction + guidance).
    ``encoders``: the run's encoders whose matches guide (empty: all of them).
    ``lr=None`` takes the generator's zoo entry. ``beta=0`` in ``rec`` mode is the
    reconstruction-only baseline. ``pixel``: the pixel loss of ``rec`` mode;
    ``perceptual_encoder``: the zoo encoder of its perceptual loss (``""``: none).
    ``snapshots``: intermediate images kept for the strip.
    ``reg_center``: what ``L_reg`` measures the latent against (:mod:`.optimize`).
    ``act``: ``"dataset"`` is Eq. 6 (each map normalised by the pair's dataset statistics);
    ``"image"`` each pair's correlation over the target image's own positions
    (:class:`~.losses.ImageCorrAct`), for out-of-distribution targets.
    ``project``: project every step onto the box of the generator's prior.
    """

    mode: str = "ood"
    encoders: tuple[str, ...] = ()
    steps: int = 500
    lr: float | None = None
    alpha: float = 0.1
    beta: float = 1.0
    reg: str = "l2"
    reg_center: str = "zero"
    act: str = "dataset"
    pixel: str = "l2"
    perceptual_encoder: str = "mini-resnet.sup"
    perceptual_weight: float = 1.0
    warmup: float = 0.05
    rampdown: float = 0.25
    snapshots: int = 6
    seed: int = 0
    project: bool = True

    def __post_init__(self) -> None:
        # a list from JSON, YAML or a flow parameter becomes a tuple, so equal configurations compare equal
        object.__setattr__(self, "encoders", tuple(self.encoders))

    def validate(self) -> None:
        """One clear ValueError per bad value, naming it and the valid ones; the encoders are
        checked against the run by :func:`~.jobs.check_job`."""
        for name, valid in (("mode", MODES), ("reg", REGS), ("reg_center", REG_CENTERS), ("act", ACTS), ("pixel", PIXELS)):
            if getattr(self, name) not in valid:
                raise ValueError(f"{name}={getattr(self, name)!r} is not supported; valid: {', '.join(valid)}")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps={self.steps!r} must be an integer >= 1")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr={self.lr} must be > 0")
        for name in ("alpha", "beta", "perceptual_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        if not (0 <= self.warmup <= 1 and 0 <= self.rampdown <= 1):
            raise ValueError(f"warmup={self.warmup}, rampdown={self.rampdown} must be fractions in [0, 1]")
        if self.seed < 0:
            raise ValueError(f"seed={self.seed} must be >= 0")

    def record(self) -> dict[str, Any]:
        """The JSON form: ``metrics.json``'s ``settings`` and the deployment's ``config``
        parameter (:class:`InversionConfig` ``(**record)`` gives the same configuration back)."""
        out = asdict(self)
        out["encoders"] = list(self.encoders)
        return out
