"""Where the paper's model weights come from, and reading local weight files safely.

Three choices per model (``--weights``): ``pretrained`` uses the library's own hub (timm and
open_clip: the Hugging Face hub cache; DINO ResNet-50: ``torch.hub``; BigGAN: the
``pytorch-pretrained-biggan`` cache); a file PATH (``.safetensors``, a torch checkpoint read
with ``weights_only=True``, never unpickling code, or a TorchScript archive such as OpenAI's CLIP
files, of which only the state dict is taken); ``random`` (seeded init, in the registry).

Training checkpoints that pickle their command-line arguments (an ``argparse.Namespace``: DINO's
``main_dino.py``, MAE's and rosinality's training scripts) are read too: ``argparse.Namespace``, a
plain attribute bag, is the one class allowed besides tensors, and only for that load.

Offline, a missing file is one :class:`ValueError` naming the file expected, where it goes and
how to pass a local copy instead.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "WEIGHTS_HOME", "SAFE_CLASSES", "is_torchscript", "torchscript_state", "read_checkpoint", "state_from_checkpoint",
    "hub_file", "reachable", "missing_weights", "require_hf_file", "wants_hub_weights",
]

#: local weights of models without a library hub (StyleGAN2): ``$ROSETTA_WEIGHTS_DIR`` or
#: ``~/.cache/rosetta-neurons/weights``
WEIGHTS_HOME = Path(os.environ.get("ROSETTA_WEIGHTS_DIR", Path.home() / ".cache" / "rosetta-neurons" / "weights"))


def wants_hub_weights(name: str, weights: str) -> bool:
    """Whether the weights choice ``weights`` of model ``name`` asks for its pretrained weights
    (``"trained"`` or ``"pretrained"``), which the caller then checks; ``"random"`` and an existing
    file need nothing more; a file that does not exist is a ValueError."""
    if weights == "random":
        return False
    if weights in ("trained", "pretrained"):
        return True
    if not Path(weights).is_file():
        raise ValueError(f"weights file {weights!r} for {name} does not exist; pass an existing file, 'pretrained' or 'random'")
    return False


#: classes a weights-only read may rebuild besides tensors and containers: the parsed command
#: line that training scripts save next to their weights (``args``), inert data
SAFE_CLASSES = (argparse.Namespace,)


def is_torchscript(path: str | Path) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``: a zip with ``constants.pkl``
    and ``code/``), e.g. OpenAI's CLIP files."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def torchscript_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a TorchScript archive, as open_clip reads OpenAI's CLIP files
    (``torch.jit.load(path, map_location="cpu").state_dict()``; the archive's code is compiled
    TorchScript, not Python, and is never run here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated in favour of torch.export
        module = torch.jit.load(str(path), map_location="cpu")
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def read_checkpoint(path: str | Path) -> Any:
    """The content of a weights file: a safetensors dict, the state dict of a TorchScript archive,
    or a torch checkpoint read with ``weights_only=True`` (tensors, dicts, lists, numbers and
    :data:`SAFE_CLASSES` only)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file {str(path)!r} does not exist; pass an existing file, 'pretrained' or 'random'")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if is_torchscript(path):
        return torchscript_state(path)
    try:
        with torch.serialization.safe_globals(list(SAFE_CLASSES)):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError and friends: the file holds more than tensors
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        why = f"it holds a {found.group(1)} object" if found else f"{type(err).__name__}: {lines[0] if lines else ''}"
        raise ValueError(
            f"weights file {str(path)!r} cannot be read as tensors only (weights_only=True): "
            f"{why}; convert it to "
            "a state dict (.safetensors or .pt), or for NVIDIA network pickles use a stylegan-xl/"
            "stylegan3 model with --trust-pickle"
        ) from None


def state_from_checkpoint(content: Any, keys: tuple[str, ...], source: str) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: the first of ``keys`` present (e.g. ``g_ema``,
    ``state_dict``), else the checkpoint itself when it is a flat dict of tensors."""
    if isinstance(content, dict):
        for key in keys:
            if isinstance(content.get(key), dict):
                return content[key]
        if content and all(isinstance(v, torch.Tensor) for v in content.values()):
            return content
    found = sorted(content)[:8] if isinstance(content, dict) else type(content).__name__
    raise ValueError(f"weights {source}: no state dict found; expected one of {list(keys)} or a flat dict of tensors, found {found}")


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host`` opens within ``timeout`` seconds (the hub check)."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("ROSETTA_OFFLINE") == "1":
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def missing_weights(name: str, expected: str, fetch: str) -> ValueError:
    """The one error for pretrained weights that are neither cached nor downloadable."""
    return ValueError(
        f"no pretrained weights for {name!r}: this machine is offline and {expected} is not there. "
        f"Fetch it on a machine with internet ({fetch}) and copy it to that place, or pass a local "
        f"file with --weights {name}=PATH (.safetensors or a torch state dict), or use --weights random"
    )


def hub_file(repo: str, filenames: tuple[str, ...]) -> str | None:
    """The first of ``filenames`` of Hugging Face repo ``repo`` already in the local hub cache."""
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        hit = try_to_load_from_cache(repo, filename)
        if isinstance(hit, str) and Path(hit).is_file():
            return hit
    return None


def require_hf_file(name: str, repo: str, filenames: tuple[str, ...]) -> None:
    """Raise :func:`missing_weights` unless the hub file is cached or the hub is reachable."""
    if hub_file(repo, filenames) is not None or reachable("huggingface.co"):
        return
    from huggingface_hub.constants import HF_HUB_CACHE

    where = f"{filenames[0]} of the Hugging Face repo {repo} (cache: {HF_HUB_CACHE})"
    raise missing_weights(name, where, f"huggingface-cli download {repo} {filenames[0]}")
