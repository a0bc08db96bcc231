"""Image augmentations of the mini-ResNet recipes (torch, seeded by a ``torch.Generator``):
flips and transposes, blur, downsampling, noise, resized crops and colour jitter; the
supervised recipe's label-preserving set and SimCLR's views."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: colour jitter of the SimCLR views: brightness, contrast, saturation, hue (fraction of a turn)
SSL_JITTER = (0.4, 0.4, 0.4, 0.5)


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _chance(gen: torch.Generator, n: int, p: float) -> torch.Tensor:
    return torch.rand(n, generator=gen) < p


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, *([1] * (a.ndim - 1))), a, b)


def blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian blur of ``(n, c, h, w)`` with one sigma (pixels, ``(n,)``) per image; 0 = none."""
    n, c, h, w = x.shape
    offsets = torch.arange(-3, 4, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets[None] / sigma.clamp_min(1e-3)[:, None]) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n * c, 7)
    flat = F.pad(x.reshape(1, n * c, h, w), (3, 3, 3, 3), mode="replicate")
    flat = F.conv2d(flat, kernel.view(n * c, 1, 1, 7), groups=n * c)
    flat = F.conv2d(flat, kernel.view(n * c, 1, 7, 1), groups=n * c)
    return flat.view(n, c, h, w)


def _flips(tensors: list[torch.Tensor], gen: torch.Generator) -> list[torch.Tensor]:
    """The same random flips and transposes (the 8 symmetries of the square) of every
    ``(n, c, s, s)`` tensor in ``tensors``, per image."""
    n = len(tensors[0])
    for op in (lambda t: t.flip(3), lambda t: t.flip(2), lambda t: t.transpose(2, 3)):
        pick = _chance(gen, n, 0.5)
        tensors = [_where(pick, op(t), t) for t in tensors]
    return tensors


def _degrade(x: torch.Tensor, gen: torch.Generator, p_blur: float, p_down: float, p_noise: float) -> torch.Tensor:
    n = len(x)
    x = x.clone()
    sigma, chosen = _uniform(gen, n, 0.4, 1.5), torch.nonzero(_chance(gen, n, p_blur)).flatten()
    if len(chosen):
        x[chosen] = blur(x[chosen], sigma[chosen])
    chosen = torch.nonzero(_chance(gen, n, p_down)).flatten()
    if len(chosen):
        small = F.interpolate(x[chosen], scale_factor=0.5, mode="bilinear", antialias=True)
        x[chosen] = F.interpolate(small, size=x.shape[2:], mode="bilinear")
    level, chosen = _uniform(gen, n, 0.0, 0.08), torch.nonzero(_chance(gen, n, p_noise)).flatten()
    if len(chosen):
        x[chosen] += level[chosen].view(-1, 1, 1, 1) * torch.randn((len(chosen), *x.shape[1:]), generator=gen)
    return x.clamp(0.0, 1.0)


def augment_sup(x: torch.Tensor, gen: torch.Generator, maps: torch.Tensor | None = None):
    """Label-preserving augmentation of float images ``(n, 3, h, w)`` in [0, 1] (no colour
    change). With ``maps`` ``(n, c, g, g)`` returns ``(images, maps)``, flipped alike."""
    x, *rest = _flips([x] if maps is None else [x, maps], gen)
    x = _degrade(x, gen, p_blur=0.3, p_down=0.15, p_noise=0.3)
    return x if maps is None else (x, rest[0])


def _crop_boxes(gen: torch.Generator, n: int, scale, ratio):
    """Scales ``sx, sy`` and offsets ``tx, ty`` ``(n,)`` of random resized crops in [-1, 1]
    coordinates (area fraction ``scale``, aspect ``ratio``, inside the image), drawn from ``gen``
    in this order: area, aspect, x offset, y offset."""
    area = _uniform(gen, n, *scale)
    aspect = torch.exp(_uniform(gen, n, math.log(ratio[0]), math.log(ratio[1])))
    sx = torch.sqrt(area * aspect).clamp(max=1.0)
    sy = torch.sqrt(area / aspect).clamp(max=1.0)
    return sx, sy, (1 - sx) * _uniform(gen, n, -1.0, 1.0), (1 - sy) * _uniform(gen, n, -1.0, 1.0)


def _crop(x: torch.Tensor, gen: torch.Generator, scale=(0.35, 1.0), ratio=(0.75, 1.333)) -> torch.Tensor:
    """Random resized crop (area fraction ``scale``, aspect ``ratio``) back to the full size."""
    n = len(x)
    sx, sy, tx, ty = _crop_boxes(gen, n, scale, ratio)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, tx, sy, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def colour_jitter(x: torch.Tensor, gen: torch.Generator, strength=(0.4, 0.4, 0.4, 0.1), p: float = 0.8,
                  p_grey: float = 0.2) -> torch.Tensor:
    """Per-image brightness, contrast, saturation and hue (YIQ rotation) jitter, then greying."""
    n = len(x)
    apply = _chance(gen, n, p).float()
    b, c, s = ((1 + apply * _uniform(gen, n, -v, v)).view(-1, 1, 1, 1) for v in strength[:3])
    hue = apply * _uniform(gen, n, -strength[3], strength[3]) * 2 * math.pi
    grey = lambda t: (t * _RGB_TO_YIQ[0].view(1, 3, 1, 1)).sum(1, keepdim=True)  # noqa: E731
    x = (x * b).clamp(0, 1)
    x = ((x - grey(x).mean((2, 3), keepdim=True)) * c + grey(x).mean((2, 3), keepdim=True)).clamp(0, 1)
    x = ((x - grey(x)) * s + grey(x)).clamp(0, 1)
    cos, sin = torch.cos(hue), torch.sin(hue)
    rot = torch.zeros(n, 3, 3)
    rot[:, 0, 0], rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = 1, cos, -sin, sin, cos
    matrix = torch.linalg.inv(_RGB_TO_YIQ) @ rot @ _RGB_TO_YIQ  # (n, 3, 3)
    x = torch.einsum("nij,njhw->nihw", matrix, x).clamp(0, 1)
    return _where(_chance(gen, n, p_grey), grey(x).expand_as(x), x)


def pixel_coordinates(n: int, side: int = 64) -> torch.Tensor:
    """``(n, 2, side, side)``: (x, y) of every pixel centre in [-1, 1] (``align_corners=False``)."""
    axis = torch.linspace(-1 + 1 / side, 1 - 1 / side, side)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x, y]).expand(n, 2, side, side)


def augment_view(x: torch.Tensor, gen: torch.Generator, with_coordinates: bool = False):
    """One SimCLR view of float images ``(n, 3, h, w)`` in [0, 1]. ``with_coordinates``: also
    return ``(n, 2, h, w)``, where in the original image each pixel of the view comes from."""
    both = _crop(torch.cat([x, pixel_coordinates(len(x), x.shape[-1])], 1), gen)
    x, where = _flips([both[:, :3], both[:, 3:]], gen)
    x = _degrade(colour_jitter(x, gen, strength=SSL_JITTER), gen, p_blur=0.5, p_down=0.1, p_noise=0.3)
    return (x, where) if with_coordinates else x


# ------------------------------------------------------------------ fast batched SSL views
#: the 8 symmetries of the square as signed permutation matrices acting on (x, y) output coordinates
_DIHEDRAL = torch.tensor([
    [[1, 0], [0, 1]], [[-1, 0], [0, 1]], [[1, 0], [0, -1]], [[-1, 0], [0, -1]],
    [[0, 1], [1, 0]], [[0, -1], [1, 0]], [[0, 1], [-1, 0]], [[0, -1], [-1, 0]],
], dtype=torch.float32)
_GREY = _RGB_TO_YIQ[0]


def draw_views(n: int, gen: torch.Generator, scale=(0.35, 1.0), ratio=(0.75, 1.333),
               strength=SSL_JITTER, p_jitter: float = 0.8, p_grey: float = 0.2) -> dict[str, torch.Tensor]:
    """The random parameters of ``n`` views (one per image), drawn from ``gen``.

    - ``theta`` ``(n, 2, 3)``: the affine map of ``affine_grid`` from view to source coordinates
      (in [-1, 1]): a resized crop (area fraction ``scale``, aspect ``ratio``, inside the image)
      composed with one of the 8 flips/transposes of the square (``symmetry`` ``(n,)``);
    - ``brightness``, ``contrast``, ``saturation`` ``(n,)`` factors and ``hue`` ``(n,)`` radians
      (jitter applied with probability ``p_jitter``, else 1, 1, 1, 0); ``grey`` ``(n,)`` bool.
    """
    sx, sy, tx, ty = _crop_boxes(gen, n, scale, ratio)
    symmetry = torch.randint(0, 8, (n,), generator=gen)
    theta = torch.zeros(n, 2, 3)
    theta[:, :, :2] = torch.diag_embed(torch.stack([sx, sy], 1)) @ _DIHEDRAL[symmetry]
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    apply = _chance(gen, n, p_jitter).float()
    b, c, s = (1 + apply * _uniform(gen, n, -v, v) for v in strength[:3])
    hue = apply * _uniform(gen, n, -strength[3], strength[3]) * 2 * math.pi
    return {"theta": theta, "symmetry": symmetry, "brightness": b, "contrast": c, "saturation": s, "hue": hue,
            "grey": _chance(gen, n, p_grey)}


def view_slice(params: dict[str, torch.Tensor], rows) -> dict[str, torch.Tensor]:
    """The parameters of the views ``rows`` (a slice or an index tensor)."""
    return {k: v[rows] for k, v in params.items()}


def colour_matrices(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(n, 3, 3)``: saturation, then hue (rotation of YIQ's chroma plane), then greying, as
    one linear map of RGB per view (brightness and contrast are applied by :func:`apply_views`)."""
    n = len(params["hue"])
    s = params["saturation"].view(-1, 1, 1)
    eye, grey_rows = torch.eye(3).expand(n, 3, 3), _GREY.view(1, 1, 3).expand(n, 3, 3)
    saturation = s * eye + (1 - s) * grey_rows
    cos, sin = torch.cos(params["hue"]), torch.sin(params["hue"])
    rot = torch.zeros(n, 3, 3)
    rot[:, 0, 0], rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = 1, cos, -sin, sin, cos
    hue = torch.linalg.inv(_RGB_TO_YIQ) @ rot @ _RGB_TO_YIQ
    grey = torch.where(params["grey"].view(-1, 1, 1), grey_rows, eye)
    return grey @ hue @ saturation


def apply_views(images: torch.Tensor, params: dict[str, torch.Tensor], size: int = 64) -> torch.Tensor:
    """Views of ``images`` (uint8 or float in [0, 1], ``(n, 3, h, w)``) with ``params`` from
    :func:`draw_views`: float ``(n, 3, size, size)`` in [0, 1].

    Per view: bilinear resized crop with its flip/transpose (one ``grid_sample``, reflection at
    the border), brightness ``b`` (x * b), contrast ``c`` about the view's mean grey level ``m``
    ((x - m) * c + m), then :func:`colour_matrices`, and one clamp to [0, 1] at the end (the
    jitter is one affine map per view: no clamps in between)."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    n = len(x)
    grid = F.affine_grid(params["theta"], [n, 3, size, size], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    b, c = params["brightness"].view(-1, 1, 1, 1), params["contrast"].view(-1, 1, 1, 1)
    mean_grey = (x * _GREY.view(1, 3, 1, 1)).sum(1).mean((1, 2)).view(-1, 1, 1, 1)
    x = (x - mean_grey) * (b * c) + b * mean_grey  # brightness then contrast about b * m
    x = torch.einsum("nij,njhw->nihw", colour_matrices(params), x)
    return x.clamp_(0.0, 1.0)
