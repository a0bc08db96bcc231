"""Registry entries of the paper's five encoders and how each one's weights are loaded.

=============================  =========  =============================================
name                           library    pretrained weights (``--weights pretrained``)
=============================  =========  =============================================
resnet50.tv_in1k               timm       HF hub ``timm/resnet50.tv_in1k`` (torchvision)
dino-resnet50                  timm       ``torch.hub``: DINO's ``dino_resnet50_pretrain.pth``
vit_base_patch16_224.dino      timm       HF hub ``timm/vit_base_patch16_224.dino``
vit_base_patch16_224.mae       timm       HF hub ``timm/vit_base_patch16_224.mae``
RN50.openai                    open_clip  HF hub ``timm/resnet50_clip.openai`` (image tower)
=============================  =========  =============================================

A local file (``--weights NAME=PATH``) may be a safetensors file or a torch checkpoint (read
with ``weights_only=True``); keys may carry ``module.``, ``backbone.`` or (CLIP) ``visual.``
prefixes and may include the classifier head, which the encoders do not use.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import torch

from ..registry import ModelSpec, load_state, register
from .encoders import (
    RESNET50_STAGES, VIT_B16, ResNetStagesAdapter, ViTBlocksAdapter, open_clip_norm, resnet_stage_table, timm_norm,
    vit_block_table,
)
from .weights import (
    missing_weights, reachable, read_checkpoint, require_hf_file, state_from_checkpoint, wants_hub_weights,
)

__all__ = ["DINO_RN50_URL", "build_timm", "build_clip", "dino_state"]

#: DINO's ResNet-50 backbone (a torchvision-layout state dict without the head)
DINO_RN50_URL = "https://dl.fbaipublicfiles.com/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth"
_HF_FILES = ("model.safetensors", "pytorch_model.bin")
_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_CLIP_REPO = "timm/resnet50_clip.openai"


def build_timm(name: str, timm_name: str, image_size: int = 224):
    """A randomly initialised timm model ``timm_name`` in its adapter (no head, input ``image_size``)."""
    import timm

    kwargs = {"img_size": image_size} if timm_name.startswith("vit") else {}
    module = timm.create_model(timm_name, pretrained=False, num_classes=0, **kwargs)
    norm = timm_norm(module, image_size)
    if timm_name.startswith("vit"):
        return ViTBlocksAdapter(name, module, norm, f"timm {timm_name.split('.')[0]} (ViT-B/16)")
    return ResNetStagesAdapter(name, module, norm, f"timm {timm_name.split('.')[0]}")


def build_clip(name: str = "RN50.openai", image_size: int = 224):
    """open_clip's RN50 image tower (``ModifiedResNet``), randomly initialised."""
    import open_clip

    arch, tag = name.split(".")
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # open_clip warns that no weights were loaded: expected here
    try:
        model = open_clip.create_model(arch, pretrained=None)
    finally:
        root.setLevel(level)
    return ResNetStagesAdapter(name, model.visual, open_clip_norm(arch, tag, image_size),
                               f"open_clip {arch} image tower (ModifiedResNet)")


def _clean(state: dict[str, torch.Tensor], own: dict, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes and drop tensors the encoder has no place for (heads, text tower)."""
    out = {}
    for key, value in state.items():
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    extra = [k for k in out if k not in own]
    if len(extra) == len(out):
        return out  # nothing matches: let load_state name the mismatch
    return {k: v for k, v in out.items() if k in own}


def _load_file(adapter, path: str, prefixes: tuple[str, ...]) -> str:
    content = read_checkpoint(path)
    state = state_from_checkpoint(content, ("state_dict", "model", "teacher", "g_ema"), path)
    own = adapter.module.state_dict()
    load_state(adapter.module, _clean(state, own, prefixes), path)
    return str(Path(path).resolve())


def _load_timm(adapter, weights: str, timm_name: str) -> str:
    if weights not in ("trained", "pretrained"):
        return _load_file(adapter, weights, ("module.", "backbone."))
    import timm

    check_timm(adapter.name, timm_name)
    kwargs = {"img_size": adapter.norm.size} if timm_name.startswith("vit") else {}
    pretrained = timm.create_model(timm_name, pretrained=True, num_classes=0, **kwargs)
    load_state(adapter.module, pretrained.state_dict(), f"timm {timm_name}")
    return f"timm hub: {timm_name}"


def check_timm(name: str, timm_name: str) -> None:
    require_hf_file(name, f"timm/{timm_name}", _HF_FILES)


def dino_state(content) -> dict[str, torch.Tensor]:
    """DINO ResNet-50 checkpoint (backbone file, or a full training checkpoint's teacher) ->
    timm ``resnet50`` keys: torchvision and timm name ResNet tensors alike, so the mapping drops
    the ``module.``/``backbone.`` prefixes and the projection head / ``fc``."""
    state = state_from_checkpoint(content, ("teacher", "state_dict", "model"), "dino-resnet50")
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "backbone."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        if key.startswith(("head.", "fc.")):
            continue
        out[key] = value
    return out


def _dino_cache() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(DINO_RN50_URL).name


def check_dino(weights: str) -> None:
    if weights in ("trained", "pretrained") and not _dino_cache().is_file() and not reachable("dl.fbaipublicfiles.com"):
        raise missing_weights("dino-resnet50", str(_dino_cache()), f"download {DINO_RN50_URL}")


def _load_dino(adapter, weights: str) -> str:
    if weights in ("trained", "pretrained"):
        check_dino(weights)
        content = torch.hub.load_state_dict_from_url(DINO_RN50_URL, map_location="cpu", weights_only=True)
        source = f"torch.hub: {DINO_RN50_URL}"
    else:
        content, source = read_checkpoint(weights), str(Path(weights).resolve())
    load_state(adapter.module, dino_state(content), source)
    return source


def _load_clip(adapter, weights: str) -> str:
    if weights not in ("trained", "pretrained"):
        return _load_file(adapter, weights, ("module.", "visual."))
    import open_clip

    require_hf_file(adapter.name, _CLIP_REPO, _CLIP_FILES)
    arch, tag = adapter.name.split(".")
    model = open_clip.create_model(arch, pretrained=tag)
    load_state(adapter.module, model.visual.state_dict(), f"open_clip {arch} {tag}")
    return f"open_clip hub: {arch} {tag}"


def _check(kind: str, name: str, weights: str) -> None:
    """Pre-flight check of a weights choice, building nothing."""
    if not wants_hub_weights(name, weights):
        return
    if kind == "dino":
        check_dino(weights)
    elif kind == "clip":
        require_hf_file(name, _CLIP_REPO, _CLIP_FILES)
    else:
        check_timm(name, kind)


#: the input size every paper encoder is built and listed at
IMAGE_SIZE = 224


def _register() -> None:
    common = dict(kind="encoder", source="pretrained (library hub) or a local file")
    resnet50 = partial(resnet_stage_table, IMAGE_SIZE, RESNET50_STAGES)
    for name, what in (
        ("resnet50.tv_in1k", "ResNet-50 supervised on ImageNet-1k (torchvision weights via timm)"),
        ("vit_base_patch16_224.dino", "ViT-B/16 self-supervised with DINO (timm)"),
        ("vit_base_patch16_224.mae", "ViT-B/16 masked autoencoder encoder (timm)"),
    ):
        table = partial(vit_block_table, IMAGE_SIZE, **VIT_B16) if name.startswith("vit") else resnet50
        register(ModelSpec(
            name=name, arch=f"timm {name.split('.')[0]}", description=what,
            build=partial(build_timm, name, name, IMAGE_SIZE), load_weights=partial(_load_timm, timm_name=name),
            check_weights=partial(_check, name, name), layers=table, **common,
        ))
    register(ModelSpec(
        name="dino-resnet50", arch="timm resnet50", description="ResNet-50 self-supervised with DINO "
        "(DINO's weights mapped into timm's resnet50)", build=partial(build_timm, "dino-resnet50", "resnet50", IMAGE_SIZE),
        load_weights=_load_dino, check_weights=partial(_check, "dino", "dino-resnet50"), layers=resnet50, **common,
    ))
    register(ModelSpec(
        name="RN50.openai", arch="open_clip RN50 image tower", description="CLIP ResNet-50 image encoder "
        "(OpenAI weights via open_clip)", build=partial(build_clip, "RN50.openai", IMAGE_SIZE), load_weights=_load_clip,
        check_weights=partial(_check, "clip", "RN50.openai"), layers=resnet50, **common,
    ))


_register()
