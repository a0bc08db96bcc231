"""Two tiny models registered with Rosetta Neurons: a generator and an encoder (random init only).

``tiny-gen``: latent (16) -> 32 x 4 x 4 -> four (2x upsample, 3x3 conv, ReLU) blocks -> RGB 64x64.
``tiny-cnn``: three 3x3 stride-2 convolutions with ReLU. Maps are post-ReLU ``(n, units, h, w)``.
"""

import numpy as np
import torch
from torch import nn

from rosetta_core.zoo import EncoderAdapter, GeneratorAdapter, LayerInfo, ModelSpec, register

LATENT = 16


def gen_layers():
    return [LayerInfo(f"block{i}", 32, (8 << i, 8 << i)) for i in range(4)]  # grids 8, 16, 32, 64


def cnn_layers():
    return [LayerInfo(f"conv{i}", units, (32 >> i, 32 >> i)) for i, units in enumerate((16, 32, 32))]  # at 64x64


class TinyGen(GeneratorAdapter):
    name, arch, weights = "tiny-gen", "linear + 4 x (upsample, conv3x3, ReLU) + conv1x1, 3x64x64", "random"

    def __init__(self):
        self.module = nn.ModuleList([nn.Linear(LATENT, 32 * 16), *(nn.Conv2d(32, 32, 3, padding=1) for _ in range(4)),
                                     nn.Conv2d(32, 3, 1)])

    def layers(self):
        return gen_layers()

    def sample_latents(self, seed, indices):  # image i: its own generator, seeded by (seed, i)
        z = [np.random.default_rng([seed, int(i)]).standard_normal(LATENT) for i in indices]
        return torch.tensor(np.stack(z), dtype=torch.float32, device=self.device)

    def generate(self, latents, layers=()):
        names, maps = self.select_layers(layers), {}
        x = self.module[0](latents.to(self.device)).view(-1, 32, 4, 4)
        for i, conv in enumerate(self.module[1:5]):
            x = maps[f"block{i}"] = torch.relu(conv(nn.functional.interpolate(x, scale_factor=2.0)))
        images = ((torch.tanh(self.module[5](x)) + 1) * 127.5).round().to(torch.uint8)
        return images, {name: maps[name] for name in names}


class TinyCNN(EncoderAdapter):
    name, arch, weights = "tiny-cnn", "3 x (conv3x3 stride 2, ReLU)", "random"
    input_size = 64  # image files (rosetta mine --images) are resized and centre-cropped to 64x64

    def __init__(self):
        self.module = nn.ModuleList([nn.Conv2d(3, 16, 3, 2, 1), nn.Conv2d(16, 32, 3, 2, 1), nn.Conv2d(32, 32, 3, 2, 1)])

    def layers(self):
        return cnn_layers()

    def preprocess(self, images):  # uint8 (n, 3, H, W) -> float in [-1, 1]
        return torch.as_tensor(images).to(self.device, torch.float32) / 127.5 - 1

    def activations(self, images, layers=None):
        names, maps, x = self.select_layers(layers), {}, self.preprocess(images)
        for i, conv in enumerate(self.module):
            x = maps[f"conv{i}"] = torch.relu(conv(x))
        return {name: maps[name] for name in names}


register(ModelSpec("tiny-gen", "generator", TinyGen.arch, "an untrained tiny generator (plugin example)",
                   build=TinyGen, layers=gen_layers))
register(ModelSpec("tiny-cnn", "encoder", TinyCNN.arch, "an untrained tiny CNN (plugin example)",
                   build=TinyCNN, layers=cnn_layers))
