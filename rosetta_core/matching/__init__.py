"""From correlation tables to concepts: best buddies (paper Eq. 3), Rosetta tuples (Eq. 4),
concept clustering and the concept dictionary."""

from .buddies import best_buddies, best_buddies_from_topk, self_best_buddies, topk_indices, topk_lists
from .concepts import Concept, RosettaTuples, cluster_concepts, rosetta_tuples

__all__ = ["Concept", "RosettaTuples", "best_buddies", "best_buddies_from_topk", "cluster_concepts",
           "rosetta_tuples", "self_best_buddies", "topk_indices", "topk_lists"]
