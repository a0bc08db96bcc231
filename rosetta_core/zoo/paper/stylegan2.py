"""StyleGAN2's generator (Karras et al., CVPR 2020) in plain PyTorch, laid out so that the
widely used ``g_ema`` checkpoint format (e.g. the LSUN cat/horse 256 checkpoints converted from
NVIDIA's) loads strictly: module and tensor names and shapes follow that format.

Every operation is written with ordinary PyTorch ops (grouped convolutions, ``F.pad``,
depthwise FIR filters), so it runs on CPU and GPU without compiled extensions; the "fused"
ops of the reference code are spelled out: :func:`bias_leaky_relu` (bias, LeakyReLU 0.2, gain
sqrt 2) and :func:`upfirdn2d` (upsample by zero insertion, pad/crop, FIR filter, downsample).

Tensor layout of the format (for size 256, channel multiplier 2): ``style.{1..8}.weight/bias``
(mapping MLP after a pixel norm), ``input.input`` (1, 512, 4, 4), ``conv1.*`` and ``convs.{i}.*``
(``conv.weight`` (1, out, in, 3, 3), ``conv.modulation.weight/bias``, ``conv.blur.kernel`` for
upsampling convs, ``noise.weight`` (1,), ``activate.bias``), ``to_rgb1.*`` and ``to_rgbs.{i}.*``
(``conv.weight`` (1, 3, in, 1, 1), ``conv.modulation.*``, ``bias`` (1, 3, 1, 1),
``upsample.kernel``), ``noises.noise_{j}`` (1, 1, r, r).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["bias_leaky_relu", "upfirdn2d", "StyleGAN2Generator", "channels_for"]

BLUR = (1, 3, 3, 1)


def bias_leaky_relu(x: torch.Tensor, bias: torch.Tensor, slope: float = 0.2, gain: float = math.sqrt(2)) -> torch.Tensor:
    """``leaky_relu(x + bias) * gain`` with ``bias`` broadcast over dim 1 (the fused op)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape), slope) * gain


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """``(n, c, h, w)``: insert ``up - 1`` zeros after each pixel, pad both spatial dims by
    ``pad`` (negative crops), convolve each channel with ``kernel`` (true convolution), keep
    every ``down``-th pixel."""
    n, c, h, w = x.shape
    if up > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    weight = torch.flip(kernel, [0, 1]).to(x.dtype)[None, None].expand(c, 1, *kernel.shape)
    x = F.conv2d(x, weight, groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


def _fir(taps=BLUR) -> torch.Tensor:
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum()


def channels_for(size: int, multiplier: int = 2) -> dict[int, int]:
    """Channels per resolution of the config-f generator."""
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * multiplier, 128: 128 * multiplier,
             256: 64 * multiplier, 512: 32 * multiplier, 1024: 16 * multiplier}
    return {r: c for r, c in table.items() if r <= size}


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate (runtime weight scale), optional fused LReLU."""

    def __init__(self, d_in: int, d_out: int, bias_init: float = 0.0, lr_mul: float = 1.0, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((d_out,), float(bias_init)))
        self.scale, self.lr_mul, self.activate = lr_mul / math.sqrt(d_in), lr_mul, activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activate:
            return bias_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class Blur(nn.Module):
    def __init__(self, pad: tuple[int, int], gain: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", _fir() * gain)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """x2 upsampling of the RGB skip path with the FIR filter."""

    def __init__(self, factor: int = 2):
        super().__init__()
        self.register_buffer("kernel", _fir() * factor**2)
        p = len(BLUR) - factor
        self.factor, self.pad = factor, ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class ModulatedConv2d(nn.Module):
    """Style-modulated convolution, optionally demodulated and/or x2 upsampling (transposed
    conv then blur), computed as one grouped convolution over the batch."""

    def __init__(self, c_in: int, c_out: int, k: int, style_dim: int, demodulate: bool = True, upsample: bool = False):
        super().__init__()
        self.c_in, self.c_out, self.k = c_in, c_out, k
        self.weight = nn.Parameter(torch.randn(1, c_out, c_in, k, k))
        self.modulation = EqualLinear(style_dim, c_in, bias_init=1.0)
        self.scale = 1 / math.sqrt(c_in * k * k)
        self.demodulate, self.upsample = demodulate, upsample
        if upsample:
            p = (len(BLUR) - 2) - (k - 1)
            self.blur = Blur(((p + 1) // 2 + 1, p // 2 + 1), gain=4.0)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        weight = self.scale * self.weight * self.modulation(style).view(n, 1, self.c_in, 1, 1)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(n, self.c_out, 1, 1, 1)
        x = x.reshape(1, n * self.c_in, h, w)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(n * self.c_in, self.c_out, self.k, self.k)
            out = F.conv_transpose2d(x, weight, stride=2, groups=n)
            return self.blur(out.view(n, self.c_out, *out.shape[2:]))
        out = F.conv2d(x, weight.reshape(n * self.c_out, self.c_in, self.k, self.k), padding=self.k // 2, groups=n)
        return out.view(n, self.c_out, *out.shape[2:])


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x + self.weight * noise


class FusedLeakyReLU(nn.Module):
    """Per-channel bias, LeakyReLU 0.2, gain sqrt 2: its output is the hooked post-activation map."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bias_leaky_relu(x, self.bias)


class StyledConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, style_dim: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(c_in, c_out, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(c_out)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    def __init__(self, c_in: int, style_dim: int, upsample: bool = True):
        super().__init__()
        if upsample:
            self.upsample = Upsample()
        self.conv = ModulatedConv2d(c_in, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        return out if skip is None else out + self.upsample(skip)


class ConstantInput(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, 4, 4))

    def forward(self, n: int) -> torch.Tensor:
        return self.input.expand(n, -1, -1, -1)


class StyleGAN2Generator(nn.Module):
    """Mapping network + synthesis network of config-f StyleGAN2 at ``size`` pixels.

    ``mapping(z (n, style_dim)) -> w (n, style_dim)``; ``synthesis(w (n, n_latent, style_dim))
    -> images (n, 3, size, size)`` (about [-1, 1]), using the stored noise buffers so that an
    image depends on its latent only.
    """

    def __init__(self, size: int = 256, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: int = 2, lr_mlp: float = 0.01):
        super().__init__()
        log_size = int(math.log2(size))
        if 2**log_size != size or size < 8:
            raise ValueError(f"size={size} is invalid: use a power of two >= 8 (e.g. 256)")
        self.size, self.style_dim, self.log_size = size, style_dim, log_size
        self.n_latent = 2 * log_size - 2
        ch = channels_for(size, channel_multiplier)
        self.style = nn.Sequential(PixelNorm(), *(EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activate=True) for _ in range(n_mlp)))
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], style_dim)
        self.to_rgb1 = ToRGB(ch[4], style_dim, upsample=False)
        self.convs, self.to_rgbs, self.noises = nn.ModuleList(), nn.ModuleList(), nn.Module()
        for j in range(2 * (log_size - 2) + 1):
            res = 2 ** ((j + 5) // 2)
            self.noises.register_buffer(f"noise_{j}", torch.randn(1, 1, res, res))
        c_in = ch[4]
        for i in range(3, log_size + 1):
            c_out = ch[2**i]
            self.convs.append(StyledConv(c_in, c_out, style_dim, upsample=True))
            self.convs.append(StyledConv(c_out, c_out, style_dim))
            self.to_rgbs.append(ToRGB(c_out, style_dim))
            c_in = c_out

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        return self.style(z)

    def synthesis(self, w: torch.Tensor) -> torch.Tensor:
        noise = [getattr(self.noises, f"noise_{j}") for j in range(2 * (self.log_size - 2) + 1)]
        out = self.conv1(self.input(len(w)), w[:, 0], noise[0])
        skip = self.to_rgb1(out, w[:, 1])
        i = 1
        for up, conv, n1, n2, to_rgb in zip(self.convs[::2], self.convs[1::2], noise[1::2], noise[2::2], self.to_rgbs):
            out = conv(up(out, w[:, i], n1), w[:, i + 1], n2)
            skip = to_rgb(out, w[:, i + 2], skip)
            i += 2
        return skip

    def forward(self, z: torch.Tensor, truncation: float = 1.0, w_avg: torch.Tensor | None = None) -> torch.Tensor:
        w = self.mapping(z)
        if truncation != 1.0 and w_avg is not None:
            w = w_avg + truncation * (w - w_avg)
        return self.synthesis(w[:, None].expand(-1, self.n_latent, -1))
