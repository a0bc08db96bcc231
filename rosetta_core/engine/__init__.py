"""The exact correlation engine: resize matrices, streaming co-moments, Pearson tables and the
planner's arithmetic. Numpy/scipy by default (``device=None``), torch on a device when asked
(``device="cpu"``/``"cuda"``; torch is imported only then); it knows nothing of runs, models or
reports.

Modules, from the bottom up:

- :mod:`.resize`: bilinear resizing as small matrices (``bilinear_matrix``, Gram bands);
- :mod:`.resized_squares`: sums of squares of resized maps from products of neighbours;
- :mod:`.grid_sums`: sums over resized maps taken on the small grids (``PairSums``), and the
  reusable scratch memory of a fold (``Workspace``);
- :mod:`.threads`: how many threads, and a map that runs items side by side;
- :mod:`.centring`: one object per centring (``"global"``, ``"position"``), holding what differs;
- :mod:`.mean_terms`: the mean terms of merging co-moments (Chan, Golub and LeVeque);
- :mod:`.chunk_fold`: adding one chunk to co-moments in place (``NonFiniteChunk``);
- :mod:`.comoments`: ``CoMoments``, the streaming, mergeable accumulator;
- :mod:`.reduction`: chunks to one accumulator: a running fold (``fold_chunks``) or a binary
  tree of merges (``tree_reduce``; with dask tasks, ``merge_delayed``);
- :mod:`.correlation`: ``comoments``, ``pearson_table``, ``self_table`` over any sliceable input;
- :mod:`.planner`: how big and how long a mining run will be (pure arithmetic over shapes);
- the torch engine, the same algorithm on a torch device, sharing the layouts and the planning
  above: :mod:`.devices` (which device, maps and resize matrices there, IEEE float32 matmuls),
  :mod:`.torch_sums` (projections and squared sums on the device) and :mod:`.torch_fold`
  (``DeviceMoments``: a ``CoMoments``' state on the device, updated chunk by chunk).

Two engines, because on CPUs the numpy engine is several times faster than the same algorithm
in torch (``bench/correlation.py --device cpu``; numbers in ``docs/performance.md``): it runs
cache-sized blocks of units side by side on one BLAS thread each, which torch's whole-chunk
kernels do not; on GPUs those big kernels are what is fast. Both pass the same oracle tests (``tests/unit/test_correlation.py`` runs each with
``device`` None and ``"cpu"``).
"""

from .centring import CENTERS, Centring, GlobalCentring, PositionCentring, get_centring
from .comoments import CoMoments, NonFiniteChunk
from .correlation import comoments, pearson_table, self_table
from .grid_sums import Workspace
from .planner import RunSize, plan_size
from .reduction import fold_chunks, merge_delayed, tree_reduce
from .resize import bilinear_matrix

__all__ = ["CENTERS", "Centring", "CoMoments", "GlobalCentring", "NonFiniteChunk", "PositionCentring", "RunSize",
           "Workspace", "bilinear_matrix", "comoments", "fold_chunks", "get_centring", "merge_delayed", "pearson_table",
           "plan_size", "self_table", "tree_reduce"]
