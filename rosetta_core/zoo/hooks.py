"""Activation capture with forward hooks that are always removed (context managers)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["capture", "feature_map"]


def feature_map(output: object) -> torch.Tensor | None:
    """The feature map of a layer's output: the output itself, or the first tensor of a
    tuple/list (StyleGAN2-ADA's ``SynthesisBlock`` returns ``(x, img)``); None when there is none."""
    if isinstance(output, (tuple, list)):
        output = next((item for item in output if isinstance(item, torch.Tensor)), None)
    return output if isinstance(output, torch.Tensor) else None


@contextmanager
def capture(
    modules: Mapping[str, nn.Module],
    transform: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
    *,
    inputs: bool = False,
) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Record the outputs (or, with ``inputs=True``, the first inputs) of named modules.

    Yields a dict name -> list of tensors, one entry per call of that module during the
    ``with`` block (a module applied twice gives two entries; an output that is a tuple gives its
    :func:`feature_map`, one without a tensor nothing). ``transform(name, tensor)``
    maps each captured tensor (e.g. tokens to maps) before it is stored; tensors are detached.
    The hooks are removed when the block exits, also on error.
    """
    store: dict[str, list[torch.Tensor]] = {name: [] for name in modules}
    handles = []

    def make_hook(name: str):
        def hook(_module, args, output):
            value = args[0] if inputs else feature_map(output)
            if value is None:
                return
            value = value.detach()
            store[name].append(transform(name, value) if transform else value)

        return hook

    try:
        for name, module in modules.items():
            handles.append(module.register_forward_hook(make_hook(name)))
        yield store
    finally:
        for handle in handles:
            handle.remove()
