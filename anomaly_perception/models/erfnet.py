"""ERFNet (Romera et al., 2017): the pixel branch's segmenter, our own implementation.

The published layout (see ``docs/`` and the paper): an encoder of two
downsamplers, five non-bottleneck-1D blocks at 64 channels, a third
downsampler and two rounds of non-bottleneck-1D blocks at 128 channels with
dilations 2, 4, 8, 16; a decoder of two upsamplers with two blocks each and
a final 2x2 transposed convolution to the classes. With 20 classes it has
2,066,836 parameters, counting the encoder-only 1x1 head used when the
encoder is trained alone (the first training stage).

:meth:`ERFNet.forward` returns logits ``[N, C, H, W]`` at the input
resolution (H and W multiples of 8); ``return_features=True`` also returns
the 16-channel half-resolution features before the last layer (IsoMax+ can
replace that layer, see :mod:`anomaly_perception.branches.pixel.losses`).
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

import torch
from torch import nn
from torch.nn import functional as F

BN_EPS = 1e-3


class Downsampler(nn.Module):
    """``concat(conv3x3 stride 2 (a -> b - a), maxpool 2x2) -> BN -> ReLU``."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2, stride=2)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x):
        return F.relu(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))


class NonBottleneck1D(nn.Module):
    """Factorised residual block: (3x1, 1x3) twice, the second pair dilated by ``dilation``."""

    def __init__(self, channels, dropout, dilation):
        super().__init__()
        d = dilation
        self.conv3x1_1 = nn.Conv2d(channels, channels, (3, 1), padding=(1, 0))
        self.conv1x3_1 = nn.Conv2d(channels, channels, (1, 3), padding=(0, 1))
        self.bn1 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.conv3x1_2 = nn.Conv2d(channels, channels, (3, 1), padding=(d, 0), dilation=(d, 1))
        self.conv1x3_2 = nn.Conv2d(channels, channels, (1, 3), padding=(0, d), dilation=(1, d))
        self.bn2 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x):
        y = F.relu(self.conv3x1_1(x))
        y = F.relu(self.bn1(self.conv1x3_1(y)))
        y = F.relu(self.conv3x1_2(y))
        y = self.dropout(self.bn2(self.conv1x3_2(y)))
        return F.relu(y + x)


class Upsampler(nn.Module):
    """``ConvTranspose 3x3 stride 2 -> BN -> ReLU`` (doubles H and W)."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1,
                                       output_padding=1)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Encoder(nn.Module):
    """Input ``[N, 3, H, W]`` -> features ``[N, 128, H/8, W/8]`` (or class logits, see forward)."""

    def __init__(self, num_classes, dropout_64=0.03, dropout_128=0.3):
        super().__init__()
        self.initial = Downsampler(3, 16)
        layers = [Downsampler(16, 64)]
        layers += [NonBottleneck1D(64, dropout_64, 1) for _ in range(5)]
        layers.append(Downsampler(64, 128))
        for _ in range(2):
            layers += [NonBottleneck1D(128, dropout_128, d) for d in (2, 4, 8, 16)]
        self.layers = nn.Sequential(*layers)
        # Head of the first training stage (encoder alone, labels at 1/8).
        self.head = nn.Conv2d(128, num_classes, 1)

    def forward(self, x, predict=False):
        x = self.layers(self.initial(x))
        return self.head(x) if predict else x


class IsoMaxPlusHead(nn.Module):
    """IsoMax+ last layer, per pixel: ``logit_k = -|s| * ||f/|f| - p_k/|p_k| ||_2``.

    ``f`` are the features of a pixel, ``p_k`` a learnable prototype per
    class (initialised N(0, 1)) and ``s`` a learnable distance scale
    (initialised 1). The logits are negative scaled distances, used as they
    are at inference; the loss (EIML, :func:`~anomaly_perception.branches.pixel.losses.
    isomax_plus_loss`) multiplies them by the entropic scale. Prototypes and
    scale are parameters of the model, so the optimiser trains them.
    """

    def __init__(self, features, num_classes):
        super().__init__()
        self.prototypes = nn.Parameter(torch.randn(num_classes, features))
        self.distance_scale = nn.Parameter(torch.ones(1))

    def distances(self, features):
        """Euclidean distances of normalised features to normalised prototypes ``[N, K, H, W]``."""
        f = F.normalize(features, dim=1)
        p = F.normalize(self.prototypes, dim=1)
        # |a - b|^2 = 2 - 2 a.b for unit vectors; a 1x1 convolution computes every a.b.
        dot = F.conv2d(f, p[:, :, None, None])
        return torch.sqrt((2.0 - 2.0 * dot).clamp_min(1e-12))

    def forward(self, features):
        return -torch.abs(self.distance_scale) * self.distances(features)


class Decoder(nn.Module):
    """Encoder features ``[N, 128, H/8, W/8]`` -> features ``[N, 16, H/2, W/2]`` -> logits.

    ``head='linear'`` is the published last layer (a 2x2 transposed
    convolution 16 -> C). ``head='isomax'`` keeps a 2x2 transposed
    convolution 16 -> 16 to full resolution and puts an
    :class:`IsoMaxPlusHead` on those features, so EIML acts on a feature
    layer, not on the C class outputs.
    """

    def __init__(self, num_classes, head='linear'):
        super().__init__()
        if head not in ('linear', 'isomax'):
            raise ValueError(f"head must be 'linear' or 'isomax', got {head!r}")
        self.layers = nn.Sequential(
            Upsampler(128, 64), NonBottleneck1D(64, 0, 1), NonBottleneck1D(64, 0, 1),
            Upsampler(64, 16), NonBottleneck1D(16, 0, 1), NonBottleneck1D(16, 0, 1))
        if head == 'linear':
            self.output = nn.ConvTranspose2d(16, num_classes, 2, stride=2)
        else:
            self.output = nn.Sequential(nn.ConvTranspose2d(16, 16, 2, stride=2),
                                        IsoMaxPlusHead(16, num_classes))

    def forward(self, x, return_features=False):
        features = self.layers(x)
        logits = self.output(features)
        return (logits, features) if return_features else logits


class ERFNet(nn.Module):
    """ERFNet for ``num_classes`` classes (see module docs)."""

    def __init__(self, num_classes=20, dropout_64=0.03, dropout_128=0.3, head='linear'):
        super().__init__()
        self.num_classes = int(num_classes)
        self.head = head
        self.encoder = Encoder(num_classes, dropout_64, dropout_128)
        self.decoder = Decoder(num_classes, head)

    def forward(self, x, encoder_only=False, return_features=False):
        """``[N, 3, H, W]`` float (H, W multiples of 8) -> logits ``[N, C, H, W]``.

        ``encoder_only`` gives the first training stage's logits at 1/8 of
        the input resolution; ``return_features`` also returns the decoder's
        16-channel features at 1/2 resolution (the last layer's input).
        """
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError(f'ERFNet needs H and W multiples of 8, got {tuple(x.shape[-2:])}.')
        if encoder_only:
            return self.encoder(x, predict=True)
        return self.decoder(self.encoder(x), return_features=return_features)


def count_parameters(module):
    """Return the number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())
