"""How a number earns its place (DESIGN §7): what every result file records about where it
came from. Standard library and numpy (and ``git`` when it is there); nothing here imports Prefect
or torch.

- :mod:`.provenance`: the commit (and whether the tree was dirty), the exact command, the seeds,
  the machine (CPU model and threads, or GPU name) and the wall time of one measurement, as one
  ``"provenance"`` entry of a result file (:func:`start` ... :meth:`Provenance.finish`).
- :mod:`.stats`: the paired bootstrap interval of a reported difference (:func:`paired_bootstrap_ci`).
- :mod:`.resume`: per-unit progress of a long bench, so a rerun resumes it (:class:`ProgressFile`).
"""

from .provenance import Provenance, git_state, machine, start
from .resume import ProgressFile
from .stats import Interval, paired_bootstrap_ci

__all__ = ["Interval", "ProgressFile", "Provenance", "git_state", "machine", "paired_bootstrap_ci", "start"]
