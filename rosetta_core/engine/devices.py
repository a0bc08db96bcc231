"""Torch devices for the engine: which device (:func:`torch_device`), maps moved onto it
(:func:`as_device_maps`), the resize matrices there (:func:`device_matrix`) and float32
matrix products in full IEEE precision while the engine runs (:func:`ieee_fp32`).

``device=None`` everywhere means the numpy engine and never imports torch; a device runs the
torch engine (:mod:`rosetta_core.engine.torch_fold`) on it.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import numpy as np

from .resize import bilinear_matrix, column_sums, gram_bands

__all__ = ["as_device_maps", "device_matrix", "ieee_fp32", "torch_device"]

#: what ``device=`` takes besides None, for error messages
VALID_DEVICES = "None (the numpy engine), 'cpu', 'cuda' or 'cuda:N' (or a torch.device of those)"


def torch_device(device: Any):
    """The :class:`torch.device` of ``device`` (a string or a ``torch.device``): ``cpu`` or
    ``cuda[:N]``, with CUDA present. Anything else is a ``ValueError`` naming it."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device={device!r} is not a torch device; valid: {VALID_DEVICES}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r}: the engine runs on cpu or cuda only (it needs float64); "
                         f"valid: {VALID_DEVICES}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: torch finds no CUDA device here "
                             "(torch.cuda.is_available() is False); use device='cpu' or None")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def as_device_maps(x: Any, device) -> Any:
    """``x`` (a numpy-like array or a torch tensor, any float dtype) as a float32 tensor on
    ``device``. No copy where none is needed (a float32 numpy array or tensor already there);
    other dtypes move in their own dtype and are converted on the device (half the bytes to
    move for float16 maps). The engine never writes into what this returns."""
    import torch

    if not isinstance(x, torch.Tensor):
        arr = np.asarray(x)
        if not arr.flags.writeable:  # torch would warn; the engine writes nothing, but copy
            arr = arr.copy()
        x = torch.as_tensor(arr)
    return x.detach().to(device=device, non_blocking=False).to(torch.float32)


@lru_cache(maxsize=1024)
def device_matrix(kind: str, n_in: int, n_out: int, device, dtype) -> Any:
    """The engine's small matrices on ``device`` in ``dtype`` (cached):

    - ``"resize"``: :func:`~rosetta_core.engine.resize.bilinear_matrix` ``(n_out, n_in)``;
    - ``"column_sums"``: :func:`~rosetta_core.engine.resize.column_sums` ``(n_in,)``;
    - ``"gram_diag"``, ``"gram_off"``: the bands of its Gram matrix, the off-diagonal padded
      with a 0 at the end (``(n_in,)`` each; see :mod:`rosetta_core.engine.resized_squares`).
    """
    import torch

    if kind == "resize":
        mat = bilinear_matrix(n_in, n_out)
    elif kind == "column_sums":
        mat = column_sums(n_in, n_out)
    elif kind == "gram_diag":
        mat = gram_bands(n_in, n_out)[0]
    elif kind == "gram_off":
        mat = np.append(gram_bands(n_in, n_out)[1], 0.0)
    else:
        raise ValueError(f"kind={kind!r}; valid: resize, column_sums, gram_diag, gram_off")
    return torch.tensor(mat, dtype=dtype, device=device)


_lock = threading.Lock()
_active = 0
_saved: dict[str, str] = {}


def _precision_settings():
    """``(name, object with .fp32_precision)`` of the float32 matmul backends torch has."""
    import torch

    found = []
    for name, holder in (("cuda.matmul", getattr(torch.backends.cuda, "matmul", None)),
                         ("mkldnn.matmul", getattr(getattr(torch.backends, "mkldnn", None), "matmul", None))):
        if holder is not None and hasattr(holder, "fp32_precision"):
            found.append((name, holder))
    return found


@contextmanager
def ieee_fp32():
    """Float32 matrix products in full IEEE float32 while inside: TF32 on CUDA (10-bit
    mantissas, about 1e-3 relative error per product) and bf16 on oneDNN are turned off, and
    the caller's settings are put back when the last engine call in the process leaves (the
    settings are global: calls running side by side in threads share one save and restore).

    Uses torch's ``fp32_precision`` settings (reading the legacy ``allow_tf32`` after a user
    set the new ones raises in torch >= 2.9; the new getter answers either way)."""
    global _active
    with _lock:
        if _active == 0:
            _saved.clear()
            for name, holder in _precision_settings():
                _saved[name] = holder.fp32_precision
                if holder.fp32_precision != "ieee":
                    holder.fp32_precision = "ieee"
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                for name, holder in _precision_settings():
                    if name in _saved and holder.fp32_precision != _saved[name]:
                        holder.fp32_precision = _saved[name]
                _saved.clear()
