"""How a number earns its place (DESIGN §7): what every result file records about where it
came from. Pure standard library (and ``git`` when it is there); nothing here imports Prefect.

- :mod:`.provenance`: the commit (and whether the tree was dirty), the exact command, the seeds,
  the machine (CPU model and threads, or GPU name) and the wall time of one measurement, as one
  ``"provenance"`` entry of a result file (:func:`start` ... :meth:`Provenance.finish`).
"""

from .provenance import Provenance, git_state, machine, start

__all__ = ["Provenance", "git_state", "machine", "start"]
