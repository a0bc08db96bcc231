"""Rosetta Neurons: mine units that learned the same concept in different vision models.

The pure library of the project: no Prefect, no dask.distributed, no global state.
"""

from .engine import CENTERS, CoMoments, NonFiniteChunk, RunSize, bilinear_matrix, comoments, pearson_table, plan_size, self_table
from .matching import (Concept, RosettaTuples, best_buddies, best_buddies_from_topk, cluster_concepts, rosetta_tuples,
                       self_best_buddies, topk_indices, topk_lists)

__version__ = "0.1.0"

__all__ = [
    "CENTERS",
    "CoMoments",
    "Concept",
    "NonFiniteChunk",
    "RosettaTuples",
    "RunSize",
    "best_buddies",
    "best_buddies_from_topk",
    "bilinear_matrix",
    "cluster_concepts",
    "comoments",
    "pearson_table",
    "plan_size",
    "rosetta_tuples",
    "self_best_buddies",
    "self_table",
    "topk_indices",
    "topk_lists",
    "__version__",
]
