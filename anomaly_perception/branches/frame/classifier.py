"""BCLASS: the binary-classifier baseline of the RNVP+OE paper, on embeddings."""

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


class EmbeddingClassifier(nn.Module):
    """128 -> 256 -> 64 -> 1 with ReLU; outputs a logit (sigmoid gives P(anomaly))."""

    def __init__(self, dim=128):
        super().__init__()
        self.config = {'dim': dim}
        self.net = nn.Sequential(nn.Linear(dim, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(),
                                 nn.Linear(64, 1))

    def forward(self, x):
        """``[N, dim]`` embeddings -> ``[N]`` logits."""
        return self.net(x).squeeze(1)
