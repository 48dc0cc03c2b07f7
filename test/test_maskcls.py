"""The mask-classification segmenter (RbA's model): matching, loss, training, deployment."""

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

from anomaly_perception.branches.instance import train_maskcls as mc
from anomaly_perception.branches.instance.maskcls import MaskClassificationNet
from anomaly_perception.branches.instance.maskcls import MaskClsSegmenterModel
import numpy as np
import pytest
import torch


def test_semantic_targets_skip_void():
    labels = torch.tensor([[0, 0, 255], [3, 3, 255]])
    classes, masks = mc.semantic_targets(labels)
    assert classes.tolist() == [0, 3]
    assert masks.tolist() == [[[True, True, False], [False, False, False]],
                              [[False, False, False], [True, True, False]]]


def test_matching_pairs_each_target_with_the_query_that_predicts_it():
    config = mc.MaskClsTrainingConfig()
    targets = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    classes = torch.tensor([2, 0])
    # Query 0 predicts class 0 on the right half, query 2 class 2 on the left half,
    # query 1 is "no object" everywhere.
    cls = torch.full((3, 4), -5.0)
    cls[0, 0] = cls[1, 3] = cls[2, 2] = 5.0
    masks = torch.tensor([[-9.0, -9.0, 9.0, 9.0], [0.0, 0.0, 0.0, 0.0], [9.0, 9.0, -9.0, -9.0]])
    rows, cols = mc.match(cls, masks, classes, targets, config)
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 1), (2, 0)]
    # The set loss is small for this prediction and larger with the two queries swapped.
    labels = torch.tensor([[[2, 2, 0, 0]]])
    good = mc.set_loss([cls[None]], [masks.view(1, 3, 1, 4)], labels, config)
    bad = mc.set_loss([cls[[2, 1, 0]][None]], [masks.view(1, 3, 1, 4)], labels, config)
    assert good.item() < 0.2 < bad.item()
    # Void pixels carry no mask loss: changing the masks there changes nothing.
    void_labels = torch.tensor([[[2, 255, 0, 0]]])
    moved = masks.clone()
    moved[:, 1] = -moved[:, 1]
    a = mc.set_loss([cls[None]], [masks.view(1, 3, 1, 4)], void_labels, config)
    b = mc.set_loss([cls[None]], [moved.view(1, 3, 1, 4)], void_labels, config)
    assert a.item() == pytest.approx(b.item())


def test_network_shapes_and_rba_range():
    torch.manual_seed(0)
    net = MaskClassificationNet(5, queries=6, dim=32, layers=2, heads=4, ffn=64).eval()
    cls, masks = net(torch.rand(2, 3, 48, 80))
    assert len(cls) == len(masks) == 3                 # initial queries + 2 layers
    assert cls[-1].shape == (2, 6, 6) and masks[-1].shape == (2, 6, 12, 20)
    with torch.no_grad():
        anomaly, classes = MaskClsSegmenterModel(net)(
            torch.randint(0, 255, (2, 48, 80, 3), dtype=torch.uint8))
    assert anomaly.shape == classes.shape == (2, 48, 80)
    assert float(anomaly.max()) <= 0.0 and float(anomaly.min()) >= -6.0   # U in [-Q, 0]
    assert int(classes.max()) < 5


def test_train_maskcls_writes_a_pixel_model_the_pipeline_runs(tiny_pixel_data, tiny_pixel_model,
                                                              tmp_path):
    from anomaly_perception.branches.pixel.detector import PixelAnomalySegmenter
    from anomaly_perception.runtime.export import export_model
    from anomaly_perception.training import TrainingError
    config = mc.MaskClsTrainingConfig(input_shape=(32, 56), epochs=1, batch_size=16,
                                      queries=6, dim=32, layers=2, ffn=64,
                                      init_from=str(tiny_pixel_model))
    manifest = mc.train_maskcls_model(tiny_pixel_data, tmp_path / 'm', tmp_path / 'w', config,
                                      cache_dir=tmp_path / 'c', show_progress=False)
    assert manifest['branch'] == 'pixel' and manifest['architecture']['type'] == 'maskcls_rba'
    assert len(manifest['metrics']['history']) == 1
    export_model(tmp_path / 'm')
    image = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    torch_seg = PixelAnomalySegmenter.from_model_dir(tmp_path / 'm', 'torch')
    ort_seg = PixelAnomalySegmenter.from_model_dir(tmp_path / 'm', 'onnxruntime')
    a, b = torch_seg.segment(image)[0], ort_seg.segment(image)[0]
    assert a.anomaly.shape == (360, 640)
    valid = np.isfinite(a.anomaly)
    np.testing.assert_allclose(b.anomaly[valid], a.anomaly[valid], rtol=1e-4, atol=1e-4)
    # Resuming a finished run trains nothing more; other options are refused.
    again = mc.train_maskcls_model(tiny_pixel_data, tmp_path / 'm2', tmp_path / 'w', config,
                                   cache_dir=tmp_path / 'c', show_progress=False)
    assert again['metrics']['history'] == manifest['metrics']['history']
    other = mc.MaskClsTrainingConfig(**{**config.__dict__, 'lr': 1e-3})
    with pytest.raises(TrainingError, match='other options'):
        mc.train_maskcls_model(tiny_pixel_data, tmp_path / 'm3', tmp_path / 'w', other,
                               cache_dir=tmp_path / 'c', show_progress=False)
    # RbA's outlier fine-tuning reuses the finished first stage and trains the decoder only.
    import torch
    first = torch.load(tmp_path / 'w' / 'best.pt', weights_only=False)['model']
    ood = mc.MaskClsTrainingConfig(**{**config.__dict__, 'outlier_epochs': 1})
    tuned = mc.train_maskcls_model(tiny_pixel_data, tmp_path / 'm4', tmp_path / 'w', ood,
                                   cache_dir=tmp_path / 'c', show_progress=False)
    assert tuned['metrics']['history'] == manifest['metrics']['history']
    assert len(tuned['metrics']['outlier_history']) == 1
    assert tuned['training']['outlier_epochs'] == 1
    from anomaly_perception.runtime.network import load_network
    state = load_network(tmp_path / 'm4')[0].network.state_dict()
    frozen = [k for k in first if k.startswith(('encoder.', 'lateral', 'mask_features.'))]
    assert frozen and all(torch.equal(state[k], first[k]) for k in frozen)
    assert not torch.equal(state['class_embed.weight'], first['class_embed.weight'])


def test_outlier_loss_hinges_on_the_rba_map():
    import torch
    u = torch.tensor([[-1.0, -0.5, -0.05, -0.3]])
    inlier = torch.tensor([[True, True, False, False]])
    outlier = torch.tensor([[False, False, True, True]])
    # Inliers above -0.9: only -0.5 (0.4^2); outliers below -0.1: only -0.3 (0.2^2).
    loss = mc.outlier_loss(u, inlier, outlier, inlier_margin=-0.9, outlier_margin=-0.1)
    assert loss.item() == pytest.approx(0.4 ** 2 / 2 + 0.2 ** 2 / 2)
    assert mc.outlier_loss(u, inlier & False, outlier & False).item() == 0.0
    u = u.clone().requires_grad_(True)
    mc.outlier_loss(u, inlier, outlier).backward()
    assert u.grad[0, 1] > 0 and u.grad[0, 3] < 0 and u.grad[0, 0] == 0 and u.grad[0, 2] == 0
