"""Rosetta Neurons: mine units that learned the same concept in different vision models.

The pure library of the project: no Prefect, no dask.distributed, no global state.
"""

from .comoments import CENTERS, CoMoments
from .correlation import comoments, pearson_table, self_table
from .resize import bilinear_matrix

__version__ = "0.1.0"

__all__ = [
    "CENTERS",
    "CoMoments",
    "bilinear_matrix",
    "comoments",
    "pearson_table",
    "self_table",
    "__version__",
]
