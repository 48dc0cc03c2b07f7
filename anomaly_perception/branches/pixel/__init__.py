"""The pixel branch: ERFNet anomaly segmentation, with FSNet's failure head."""

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
SHIPPED_MODEL = 'pixel_erfnet'


def _erfnet_pixel():
    from .model import ARCHITECTURE
    return ARCHITECTURE


def _erfnet_pixel_fsnet():
    from .fsnet import ARCHITECTURE
    return ARCHITECTURE


register_lazy('erfnet_pixel', _erfnet_pixel)
register_lazy('erfnet_pixel_fsnet', _erfnet_pixel_fsnet)
