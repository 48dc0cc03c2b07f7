"""The convolutional autoencoder of the RNVP+OE frame branch (Mantegazza et al.).

64x64 RGB in; four stride-2 3x3 convolutions with LeakyReLU down to 4x4; a
bottleneck of two dense layers, the first of which outputs the 128-d
embedding; a decoder of upsample + 3x3 convolution blocks mirroring the
encoder, with a linear last layer (it reconstructs the standardised image,
which is not bounded).

Input images are standardised per image and channel (zero mean, unit
standard deviation) by :func:`standardize`; the models never see raw pixels.
"""

# Copyright 2026 The anomaly_perception Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

from torch import nn


def standardize(images, eps=1e-6):
    """Standardise ``float [N, C, H, W]`` images per image and channel."""
    mean = images.mean(dim=(2, 3), keepdim=True)
    std = images.std(dim=(2, 3), keepdim=True)
    return (images - mean) / (std + eps)


def _shape(input_size):
    """``(h, w)`` from an int (square) or a pair; both multiples of 16."""
    h, w = (input_size, input_size) if isinstance(input_size, int) else map(int, input_size)
    if h % 16 or w % 16:
        raise ValueError(f'input sides must be multiples of 16, got {h}x{w}')
    return h, w


class ConvEncoder(nn.Module):
    """64x64x3 (or any HxW, multiples of 16) -> ``embedding_dim`` (default 128).

    Args:
        width: channels of the first convolution; each later one doubles it.
        embedding_dim: size of the embedding (the first dense layer's output).
        input_size: input side in pixels, or ``(height, width)`` (multiples of 16).

    """

    def __init__(self, width=32, embedding_dim=128, input_size=64, negative_slope=0.2):
        super().__init__()
        h, w = _shape(input_size)
        chans = [3, width, width * 2, width * 4, width * 8]
        layers = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1),
                       nn.LeakyReLU(negative_slope)]
        self.features = nn.Sequential(*layers)
        self.feature_shape = (chans[-1], h // 16, w // 16)
        flat = chans[-1] * (h // 16) * (w // 16)
        self.embed = nn.Linear(flat, embedding_dim)

    def forward(self, x):
        """``float [N, 3, H, W]`` standardised images -> ``[N, embedding_dim]``."""
        return self.embed(self.features(x).flatten(1))


class ConvDecoder(nn.Module):
    """``embedding_dim`` -> HxWx3 standardised image (the second dense layer + convs)."""

    def __init__(self, width=32, embedding_dim=128, input_size=64, negative_slope=0.2):
        super().__init__()
        h, w = _shape(input_size)
        chans = [width * 8, width * 4, width * 2, width, width]
        self.start = (chans[0], h // 16, w // 16)
        self.expand = nn.Linear(embedding_dim, chans[0] * (h // 16) * (w // 16))
        self.act = nn.LeakyReLU(negative_slope)
        blocks = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            blocks += [nn.Upsample(scale_factor=2, mode='nearest'),
                       nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(negative_slope)]
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Conv2d(chans[-1], 3, 3, padding=1)  # linear: no activation

    def forward(self, z):
        x = self.act(self.expand(z)).view(-1, *self.start)
        return self.out(self.blocks(x))


class ConvAutoencoder(nn.Module):
    """Encoder + decoder; ``forward`` returns (reconstruction, embedding)."""

    def __init__(self, width=32, embedding_dim=128, input_size=64):
        super().__init__()
        size = input_size if isinstance(input_size, int) else [int(v) for v in input_size]
        self.config = {'width': width, 'embedding_dim': embedding_dim, 'input_size': size}
        self.encoder = ConvEncoder(width, embedding_dim, input_size)
        self.decoder = ConvDecoder(width, embedding_dim, input_size)

    def forward(self, x):
        z = self.encoder(x)
        return self.decoder(z), z

    def reconstruction_errors(self, x):
        """Per-image MSE and MAE between standardised input and reconstruction: ``[N]`` each."""
        recon, _ = self(x)
        diff = recon - x
        return diff.pow(2).mean(dim=(1, 2, 3)), diff.abs().mean(dim=(1, 2, 3))


def count_parameters(module):
    return sum(p.numel() for p in module.parameters())
