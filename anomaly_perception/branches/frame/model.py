"""The deployed frame-branch graph: uint8 images -> anomaly score (NLL, nats).

``FrameDensityModel`` chains what a frame goes through after it is cropped
and resized: channels-first float conversion, per-image standardisation,
the autoencoder's encoder, a fixed embedding normalisation (the training
normals' mean and standard deviation) and the Real-NVP density. Keeping the
standardisation inside the module means an exported graph cannot be fed
unstandardised pixels.
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

from .autoencoder import ConvEncoder
from .autoencoder import standardize
from .realnvp import RealNVP
from ...models.registry import Architecture
from ...models.registry import Tensor

MODEL_FILE = 'frame_model.pt'   # the weights of a frame model directory


class EmbeddingNormalizer(nn.Module):
    """``(z - mean) / std`` with fixed statistics; adds ``sum(log std)`` to NLLs."""

    def __init__(self, dim=128):
        super().__init__()
        self.register_buffer('mean', torch.zeros(dim))
        self.register_buffer('std', torch.ones(dim))

    @torch.no_grad()
    def fit(self, embeddings):
        self.mean.copy_(embeddings.mean(0))
        self.std.copy_(embeddings.std(0).clamp_min(1e-6))
        return self

    def forward(self, z):
        return (z - self.mean) / self.std

    @property
    def log_scale(self):
        """Log-determinant correction: NLL(z) = NLL(normalised z) + sum(log std)."""
        return torch.log(self.std).sum()


class FrameDensityModel(nn.Module):
    """uint8 ``[N, S, S, 3]`` RGB -> NLL ``[N]`` (higher = more anomalous)."""

    def __init__(self, encoder, normalizer, flow):
        super().__init__()
        self.encoder = encoder
        self.normalizer = normalizer
        self.flow = flow

    @classmethod
    def build(cls, width=32, embedding_dim=128, input_size=64, n_couplings=4, hidden=128):
        return cls(ConvEncoder(width, embedding_dim, input_size), EmbeddingNormalizer(
            embedding_dim), RealNVP(embedding_dim, n_couplings, hidden))

    def embed(self, images):
        """uint8 NHWC images -> float32 embeddings ``[N, D]``.

        Standardisation is always computed in float32 (pixel variances
        overflow fp16); an fp16 encoder gets the standardised image in fp16
        and its embedding is returned in float32 for the density.
        """
        x = standardize(images.permute(0, 3, 1, 2).to(torch.float32))
        dtype = self.encoder.embed.weight.dtype
        return self.encoder(x.to(dtype)).to(torch.float32)

    def nll_from_embeddings(self, z):
        return self.flow.nll(self.normalizer(z)) + self.normalizer.log_scale

    def forward(self, images):
        return self.nll_from_embeddings(self.embed(images))

    def half_precision(self):
        """Put the encoder in fp16 (in place); standardisation and density stay float32."""
        self.encoder.half()
        return self


def _build_from_manifest(arch):
    ae, flow = arch['autoencoder'], arch['realnvp']
    size = ae['input_size']
    return FrameDensityModel.build(
        width=ae['width'], embedding_dim=ae['embedding_dim'],
        input_size=size if isinstance(size, int) else tuple(size),
        n_couplings=flow['n_couplings'], hidden=flow['hidden'])


def _encoder_to_fp16(module):
    import copy
    return copy.deepcopy(module).half_precision()


# Weights and convolutions in fp16 at export; input, standardisation and score
# stay uint8/float32 (see FrameDensityModel.embed).
ARCHITECTURE = Architecture(
    name='frame_rnvp_oe', build=_build_from_manifest, weights_file=MODEL_FILE,
    inputs=(Tensor('images', 'uint8', ('H', 'W', 3)),),
    outputs=(Tensor('score', 'float32'),), to_fp16=_encoder_to_fp16)
