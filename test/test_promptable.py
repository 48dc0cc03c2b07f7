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

"""The promptable segmenter: SAM's classes from segment-anything, tiny and random here."""

from anomaly_perception.instance import ugains
from anomaly_perception.instance.promptable import build_sam
from anomaly_perception.instance.promptable import load_sam_checkpoint
from anomaly_perception.instance.promptable import PromptableSegmenter
from anomaly_perception.instance.promptable import sam_spec
from anomaly_perception.runtime.manifest import ModelError
import numpy as np
import pytest
import torch

pytest.importorskip('segment_anything')


def _tiny_spec(**encoder):
    # The ViT-B layout (12 blocks, global attention in blocks 2, 5, 8, 11, windowed
    # elsewhere, relative positions) with tiny widths and a 64-pixel input.
    return sam_spec('vit_b', image_size=64, prompt_dim=16,
                    encoder={'embed_dim': 24, 'num_heads': 3, 'window_size': 2, **encoder},
                    decoder={'mlp_dim': 32, 'num_heads': 2, 'iou_head_hidden_dim': 16})


@pytest.fixture(scope='module')
def tiny_sam():
    torch.manual_seed(0)
    return build_sam(_tiny_spec())


def test_tiny_vit_b_layout_sam_segments_point_prompts(tiny_sam):
    from segment_anything import SamPredictor
    assert len(tiny_sam.image_encoder.blocks) == 12
    assert [b.window_size for b in tiny_sam.image_encoder.blocks].count(0) == 4
    rgb = np.random.default_rng(0).integers(0, 255, (48, 80, 3), dtype=np.uint8)
    points = torch.tensor([[5.0, 5.0], [70.0, 40.0], [40.0, 24.0]])
    seg = PromptableSegmenter(tiny_sam, prompt_batch=64)
    seg.set_image(rgb)
    masks, iou = seg.masks_for_points(points)
    assert masks.shape == (3, 48, 80) and masks.dtype == torch.bool and iou.shape == (3,)
    # The same as SAM's own predictor with best-of-three by predicted IoU.
    predictor = SamPredictor(tiny_sam)
    predictor.set_image(rgb)
    coords = predictor.transform.apply_coords_torch(points, (48, 80))[:, None]
    logits, all_iou, _ = predictor.predict_torch(coords, torch.ones(3, 1, dtype=torch.long),
                                                 return_logits=True)
    expected = ugains.select_best_masks(logits, all_iou)
    assert torch.equal(masks, expected)
    torch.testing.assert_close(iou, all_iou.max(dim=1).values)
    # One prompt at a time gives the same masks as all prompts in one decoder call.
    one = PromptableSegmenter(tiny_sam, prompt_batch=1)
    one.set_image(rgb)
    masks_one, iou_one = one.masks_for_points(points)
    assert torch.equal(masks_one, masks)
    torch.testing.assert_close(iou_one, iou, rtol=1e-5, atol=1e-5)
    empty, _ = seg.masks_for_points(torch.zeros(0, 2))
    assert empty.shape == (0, 48, 80)


def test_sam_checkpoints_load_and_bad_ones_name_file_and_architecture(tiny_sam, tmp_path):
    good = tmp_path / 'sam_tiny.pth'
    torch.save(tiny_sam.state_dict(), good)
    loaded = load_sam_checkpoint(good, spec=_tiny_spec())
    for (k, a), b in zip(tiny_sam.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(ModelError, match=r"nope\.pth'.*SAM vit_b"):
        load_sam_checkpoint(tmp_path / 'nope.pth', spec=_tiny_spec())
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ModelError, match=r"corrupt\.pth'.*not a readable"):
        load_sam_checkpoint(corrupt, spec=_tiny_spec())
    # Weights of another width: the error names the file, the architecture and a tensor.
    with pytest.raises(ModelError, match=r"sam_tiny\.pth' does not match SAM vit_b: .*shapes"):
        load_sam_checkpoint(good, spec=_tiny_spec(embed_dim=30))
    with pytest.raises(ModelError, match='unknown SAM variant'):
        sam_spec('vit_x')
