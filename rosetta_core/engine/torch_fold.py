"""The torch engine: adding chunks of images to a
:class:`~rosetta_core.engine.comoments.CoMoments` with torch on a device (``device="cpu"``,
``"cuda"``, ``"cuda:N"``).

Same exact algorithm as the numpy engine (:mod:`rosetta_core.engine.chunk_fold`), on the same
layout: the accumulator's layer pairs, grids, tables and centrings are the numpy engine's, and
the state it leaves (``n_``, mean maps, second and cross moments, all float64) is an ordinary
:class:`CoMoments` that merges, pickles, checkpoints and gives tables as any other. Per chunk:
each layer's mean map over the chunk's images (float32 sums, as numpy), the maps centred on it
(global: one value per unit; position: the mean map), their projections onto the small grids
and the squared sums on the large grids (:mod:`rosetta_core.engine.torch_sums`), one float32
matrix product per layer pair added to the float64 tables, then the centring's mean terms
(Chan, Golub and LeVeque) in float64.

Precision, chosen to match the numpy engine's error and so the float64 oracle's tolerances:

- float32 products: the maps are float32 (stored as float16 or float32), and a float32 product
  matrix is where GPUs and BLAS are fast; each chunk's cross moments are one float32 matrix
  product (sums over the chunk's images and positions in float32, as numpy's BLAS does), added
  to float64 tables, so rounding does not grow with the number of images;
- **no TF32**: CUDA float32 matmuls run in IEEE float32 (:func:`~rosetta_core.engine.devices.ieee_fp32`);
  TF32 keeps 10 bits of mantissa, a relative error of about 1e-3 per product, against 1e-7 in
  float32, and correlations must agree with the float64 oracle to 1e-4;
- float64 for everything that accumulates over chunks or cancels: the tables, running mean
  maps, mean terms, and the sums over images of squared maps (float32 products, float64
  sums), which the Pearson denominator divides by.

While a fold runs (:func:`~rosetta_core.engine.reduction.fold_chunks` with a device, used by
``comoments(..., device=...)``), the accumulator's state stays on the device and goes back to
the host once at the end; a single
:meth:`CoMoments.update` with a device moves it there and back (free on ``"cpu"``, where the
tensors share the numpy arrays' memory).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .chunk_fold import NonFiniteChunk
from .devices import as_device_maps, ieee_fp32, torch_device
from .torch_sums import projections, resized_means, squared_sums

__all__ = ["DeviceMoments", "update_on_device"]


class DeviceMoments:
    """The float64 state of a :class:`CoMoments` ``acc`` as tensors on ``device``, updated
    chunk by chunk (:meth:`update`) and written back into ``acc`` (:meth:`write_back`).

    On ``"cpu"`` the tensors share the numpy arrays' memory (``acc`` is updated in place as
    the fold goes); on CUDA they are copies until :meth:`write_back`.
    """

    def __init__(self, acc, device) -> None:
        import torch

        self.acc, self.device = acc, torch_device(device)
        self.shared = self.device.type == "cpu"

        def put(x: np.ndarray):
            return torch.from_numpy(x) if self.shared else torch.as_tensor(x, device=self.device)

        self.mean_a = [put(m) for m in acc.mean_a_]
        self.mean_b = self.mean_a if acc.symmetric else [put(m) for m in acc.mean_b_]
        self.cross = {k: put(v) for k, v in acc.cross_.items()}
        self.m2_a = {k: put(v) for k, v in acc.m2_a_.items()}
        self.m2_b = {k: put(v) for k, v in acc.m2_b_.items()}
        self.n = acc.n_
        known = acc._running_grid_means if acc.centring.name == "global" else None
        self.grid_means = None if known is None else {k: put(np.asarray(v, dtype=np.float64)) for k, v in known.items()}
        self.buffer = None  # float32 scratch for one pair's products
        self.needs = self._needs()

    # -- layout ----------------------------------------------------------------------------
    def _needs(self) -> dict[tuple[str, int], tuple[set, set]]:
        """``{(side, layer): (small grids, large grids)}`` that the pairs use (side ``"a"``
        only when symmetric)."""
        side_b = "a" if self.acc.symmetric else "b"
        needs: dict[tuple[str, int], tuple[set, set]] = {}
        for l, m, large, small in self.acc._pair_grids():
            for key in (("a", l), (side_b, m)):
                smalls, larges = needs.setdefault(key, (set(), set()))
                smalls.add(small)
                larges.add(large)
        return needs

    def _running_grid_means(self) -> dict:
        """``{(side, layer, large): (units,) float64}`` means of the running mean maps on each
        pair grid (kept up to date by :meth:`update`, computed when not known)."""
        if self.grid_means is None:
            out = {}
            for (side, idx), (_, larges) in self.needs.items():
                maps = (self.mean_a if side == "a" else self.mean_b)[idx]
                out.update({(side, idx, g): v for g, v in resized_means(maps, sorted(larges)).items()})
            self.grid_means = out
        return self.grid_means

    # -- one chunk -------------------------------------------------------------------------
    def update(self, a: Sequence[Any], b: Sequence[Any] | None) -> None:
        """Add one chunk: ``a``, ``b`` per layer ``(n, units, h, w)`` (numpy arrays or tensors
        on any device; ``b=None`` for a self accumulator). NaN or inf raise
        :class:`NonFiniteChunk` before anything changes."""
        import torch

        acc = self.acc
        got_a = [tuple(int(v) for v in x.shape[1:]) for x in a]
        got_b = None if b is None else [tuple(int(v) for v in x.shape[1:]) for x in b]
        if got_a != acc.shapes_a or (got_b is None) != acc.symmetric or (b is not None and got_b != acc.shapes_b):
            raise ValueError(f"a chunk of layers {got_a} against {got_b} does not fit {acc.describe()}")
        n2 = int(a[0].shape[0])
        if n2 == 0:
            return
        maps = {("a", i): as_device_maps(x, self.device) for i, x in enumerate(a)}
        if b is not None:
            maps.update({("b", i): as_device_maps(x, self.device) for i, x in enumerate(b)})
        global_centring = acc.centring.name == "global"
        with torch.no_grad(), ieee_fp32():
            # the chunk's mean maps (float32 sums) also find NaN and inf: check all first, with
            # one sum per layer (non-finite if any value is) and one wait for the device
            means = {key: x.mean(dim=0) for key, x in maps.items()}
            totals = torch.stack([mean.sum() for mean in means.values()])
            if not bool(torch.isfinite(totals).all()):
                self._check_finite(maps, means, n2)
            sums, shifts, chunk_grid_means = {}, {}, {}
            for key, (smalls, larges) in self.needs.items():
                x, mean = maps[key], means[key]
                if global_centring:
                    shifts[key] = mean.mean(dim=(1, 2), keepdim=True)
                    chunk_grid_means.update({(*key, g): v for g, v in resized_means(mean, sorted(larges)).items()})
                else:
                    shifts[key] = mean
                d = x - shifts[key]
                maps[key] = x = None  # the chunk's maps are done with once centred
                sums[key] = (projections(d, sorted(smalls)), squared_sums(d, sorted(larges)))
                d = None
            terms = self._global_terms(n2, shifts, chunk_grid_means) if global_centring else []
            self._add_pairs(sums, terms)
            sums = None
            share = n2 / (self.n + n2)
            if global_centring:
                old = self.grid_means if self.n else None
                self._fold_means(means, share)
                self.grid_means = dict(chunk_grid_means) if old is None else {
                    k: old[k] + share * (chunk_grid_means[k] - old[k]) for k in chunk_grid_means}
            else:
                diffs = self._mean_diffs(means) if self.n else None
                weight = self.n * n2 / (self.n + n2)
                self._fold_means(means, share)
                if diffs is not None:
                    self._add_position_term(weight, diffs)
            self.n += n2

    @staticmethod
    def _check_finite(maps: dict, means: dict, n2: int) -> None:
        """Raise :class:`NonFiniteChunk` for the first layer with NaN or inf values (found
        in its mean map; huge finite values that overflowed a sum are let through)."""
        import torch

        for (side, idx), mean in means.items():
            if not bool(torch.isfinite(mean).all()):
                bad = (~torch.isfinite(maps[side, idx]).reshape(n2, -1).all(dim=1)).nonzero().flatten()
                if bad.numel():
                    raise NonFiniteChunk(side, idx, [int(k) for k in bad[:5].tolist()])

    def _global_terms(self, n2: int, shifts: dict, chunk: dict) -> list[tuple[float, dict]]:
        """Global centring's mean terms (weight, ``{(side, layer, large): (units,)}``): the
        chunk's sums, taken around one value per unit, moved to each pair grid's grand mean
        (weight ``-n2``), and merged with the images before it (weight ``n1 * n2 / n``)."""
        import torch

        terms = [(-float(n2), {k: v - shifts[k[:2]].reshape(-1).to(torch.float64) for k, v in chunk.items()})]
        if self.n:
            old = self._running_grid_means()
            terms.append((self.n * n2 / (self.n + n2), {k: chunk[k] - old[k] for k in chunk}))
        return terms

    def _add_pairs(self, sums: dict, terms: list) -> None:
        """Each pair's float32 cross products into its float64 table, squared sums, and the
        global mean terms (one low-rank update per table)."""
        import torch

        acc = self.acc
        side_b = "a" if acc.symmetric else "b"
        largest = max(t.numel() for t in self.cross.values())
        if self.buffer is None or self.buffer.numel() < largest:
            self.buffer = torch.empty(largest, dtype=torch.float32, device=self.device)
        for l, m in acc._largest_first():
            large, small = acc.grids(l, m)
            table = self.cross[l, m]
            (proj_a, sq_a), (proj_b, sq_b) = sums["a", l], sums[side_b, m]
            product = self.buffer[: table.numel()].view(table.shape)
            torch.mm(proj_a[small], proj_b[small].T, out=product)
            table += product
            self.m2_a[l, m] += sq_a[large]
            self.m2_b[l, m] += sq_b[large]
            if terms:
                size = large[0] * large[1]
                mean_a = [vec["a", l, large] for _, vec in terms]
                mean_b = [vec[side_b, m, large] for _, vec in terms]
                weights = [w * size for w, _ in terms]
                u = torch.stack([w * x for w, x in zip(weights, mean_a)], dim=1)
                table.addmm_(u, torch.stack(mean_b, dim=1).T)
                self.m2_a[l, m] += sum(w * x**2 for w, x in zip(weights, mean_a))
                self.m2_b[l, m] += sum(w * x**2 for w, x in zip(weights, mean_b))

    def _mean_diffs(self, means: dict) -> dict:
        """``{(side, layer): (units, h, w) float64}``: the chunk's mean maps minus the running ones."""
        return {(side, idx): mean - (self.mean_a if side == "a" else self.mean_b)[idx]
                for (side, idx), mean in means.items()}

    def _fold_means(self, means: dict, share: float) -> None:
        """Running float64 mean maps ``+= share * (chunk's - running)``, in place."""
        for (side, idx), mean in means.items():
            target = (self.mean_a if side == "a" else self.mean_b)[idx]
            if share == 1.0:
                target.copy_(mean)
            else:
                target.mul_(1.0 - share).add_(mean.to(target.dtype), alpha=share)

    def _add_position_term(self, weight: float, diffs: dict) -> None:
        """Position centring's merge term: ``weight * sum_p resize(da) resize(db)`` over each
        pair's grid (float32 products, as numpy; float64 sums)."""
        import torch

        acc = self.acc
        side_b = "a" if acc.symmetric else "b"
        sums = {}
        for key, (smalls, larges) in self.needs.items():
            d = diffs[key].to(torch.float32)[None]
            sums[key] = (projections(d, sorted(smalls)), squared_sums(d, sorted(larges)))
        for l, m in acc.pairs():
            large, small = acc.grids(l, m)
            (proj_a, sq_a), (proj_b, sq_b) = sums["a", l], sums[side_b, m]
            table = self.cross[l, m]
            product = self.buffer[: table.numel()].view(table.shape)
            torch.mm(proj_a[small], proj_b[small].T, out=product)
            table.add_(product, alpha=weight)
            self.m2_a[l, m].add_(sq_a[large], alpha=weight)
            self.m2_b[l, m].add_(sq_b[large], alpha=weight)

    # -- back to the host ------------------------------------------------------------------
    def write_back(self):
        """Put the state into ``acc`` (numpy float64 arrays) and return ``acc``."""
        acc = self.acc
        if not self.shared:
            sides = [(self.mean_a, acc.mean_a_)] + ([] if acc.symmetric else [(self.mean_b, acc.mean_b_)])
            for mine, theirs in sides:
                for i, t in enumerate(mine):
                    theirs[i][...] = t.cpu().numpy()
            for mine, theirs in ((self.cross, acc.cross_), (self.m2_a, acc.m2_a_), (self.m2_b, acc.m2_b_)):
                for k, t in mine.items():
                    theirs[k][...] = t.cpu().numpy()
        acc.n_ = self.n
        if self.grid_means is not None:
            acc._running_grid_means = {k: v.cpu().numpy() for k, v in self.grid_means.items()}
        return acc


def update_on_device(acc, a, b, device):
    """``acc.update(a, b, device=device)``: one chunk added with the torch engine; ``acc``
    unchanged if the chunk holds NaN or inf."""
    state = DeviceMoments(acc, device)
    state.update(a, b)
    return state.write_back()
