"""The exact correlation engine: resize matrices, streaming co-moments, Pearson tables and the
planner's arithmetic. Pure numpy/scipy; it knows nothing of runs, models or reports."""

from .comoments import CENTERS, CoMoments, NonFiniteChunk
from .correlation import comoments, pearson_table, self_table
from .planner import RunSize, plan_size
from .resize import bilinear_matrix

__all__ = ["CENTERS", "CoMoments", "NonFiniteChunk", "RunSize", "bilinear_matrix", "comoments", "pearson_table",
           "plan_size", "self_table"]
