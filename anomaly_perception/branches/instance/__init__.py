"""The instance branch: UGainS, anomaly instances from a pixel map and a promptable segmenter."""

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

from ...models.registry import register_lazy

# The model directory under models/ the branch runs by default (its registry entry's).
SHIPPED_MODEL = 'instance_sam_small'    # the trained promptable segmenter shipped in models/
# What the node, score and replay run when no promptable model is named: the
# connected regions of the thresholded pixel map. A promptable model must beat it
# on `experiment ugains` to become the default; none has yet (docs/RESULTS.md).
COMPONENTS = 'components'       # the model name that loads no promptable model
DEFAULT_MODEL = COMPONENTS


def _maskcls_rba():
    from .maskcls import ARCHITECTURE
    return ARCHITECTURE


register_lazy('maskcls_rba', _maskcls_rba)
