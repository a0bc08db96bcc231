"""The exact correlation engine: resize matrices, streaming co-moments, Pearson tables and the
planner's arithmetic. Pure numpy/scipy; it knows nothing of runs, models or reports."""

from .centring import CENTERS, Centring, GlobalCentring, PositionCentring, get_centring
from .comoments import CoMoments, NonFiniteChunk
from .correlation import comoments, pearson_table, self_table
from .planner import RunSize, plan_size
from .resize import bilinear_matrix

__all__ = ["CENTERS", "Centring", "CoMoments", "GlobalCentring", "NonFiniteChunk", "PositionCentring", "RunSize",
           "bilinear_matrix", "comoments", "get_centring", "pearson_table", "plan_size", "self_table"]
