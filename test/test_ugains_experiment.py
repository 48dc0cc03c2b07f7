"""experiment ugains: every table row from one pass, consistent with the deployed steps."""

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

import json

from anomaly_perception.branches.instance import ugains
import cv2
import numpy as np
import pytest
import torch

pytest.importorskip('segment_anything')


def test_ugains_experiment_rows_match_the_deployed_pipeline(tiny_pixel_data, tiny_pixel_model,
                                                            tiny_promptable, tmp_path):
    from anomaly_perception.branches.instance.experiments import run_ugains_experiment
    from anomaly_perception.branches.instance.promptable import load_promptable
    from anomaly_perception.branches.pixel.detector import PixelAnomalySegmenter
    from anomaly_perception.data.hazards import HazardsDataset
    from anomaly_perception.data.synthetic.catalog import GLOBAL_TYPES
    from anomaly_perception.metrics.binary import BinaryScoreAccumulator
    # The tiny model's map is not RbA: prompts from its top pixels.
    config = ugains.UGainSConfig(threshold=float('-inf'), fallback_threshold=None)
    report = run_ugains_experiment(tiny_pixel_model, tiny_promptable, tiny_pixel_data,
                                   tmp_path / 'x', config=config, points=(2, 5, 50),
                                   every=3, show_progress=False)
    assert {p.name for p in (tmp_path / 'x').iterdir()} >= {'ugains.json', 'ugains.md'}
    records = [r for r in HazardsDataset(tiny_pixel_data).records('test_set')
               if r.label_name not in GLOBAL_TYPES][::3]
    assert json.loads((tmp_path / 'x' / 'ugains.json').read_text())['frames'] == len(records)
    assert any(r.label_name != 'normal' for r in records)
    tables = report['tables']
    assert list(tables['table5']) == ['fps2', 'fps5', 'fps50']
    # One row, three tables.
    assert tables['table5']['fps50'] == tables['table4']['fps50'] == \
        tables['table2']['fps50+scoring+nms+ensemble']
    for rows in tables.values():
        for name, m in rows.items():
            for key in ('pixel_ap', 'pixel_fpr95', 'iap', 'iap50'):
                assert 0.0 <= m[key] <= 1.0, (name, key)
    assert 'point_precision' not in tables['table2']['oracle']
    # The full-pipeline row equals run_ugains, the function the node runs, frame by frame.
    pixel = PixelAnomalySegmenter.from_model_dir(tiny_pixel_model)
    seg, _ = load_promptable(tiny_promptable)
    acc = BinaryScoreAccumulator()
    for r in records:
        rgb = np.ascontiguousarray(cv2.imread(str(r.path))[..., ::-1])
        u = pixel.segment(rgb)[0].anomaly
        result = ugains.run_ugains(seg, rgb, u, config)
        mask = tiny_pixel_data / 'masks' / (r.path.stem + '.png')
        truth = (cv2.imread(str(mask), cv2.IMREAD_UNCHANGED) > 0 if mask.is_file()
                 else np.zeros(u.shape, bool))
        refined = result.refined.numpy()
        acc.update(np.where(np.isfinite(u), truth, 255).astype(np.uint8),
                   np.nan_to_num(refined))
    assert tables['table4']['fps50']['pixel_ap'] == pytest.approx(
        acc.curve().average_precision(), abs=1e-6)
    assert torch.is_tensor(result.refined)


def test_ugains_experiment_prompts_above_the_calibrated_threshold(
        tiny_pixel_data, tiny_pixel_model, tiny_promptable, tmp_path):
    from anomaly_perception.branches.instance.experiments import run_ugains_experiment
    from anomaly_perception.branches.pixel.detector import PixelAnomalySegmenter
    report = run_ugains_experiment(tiny_pixel_model, tiny_promptable, tiny_pixel_data,
                                   tmp_path / 'x', points=(50,), every=8, prompt_fpr=0.1,
                                   instance_fpr=0.1, show_progress=False)
    expected = PixelAnomalySegmenter.from_model_dir(tiny_pixel_model, target_fpr=0.1).threshold
    assert report['config']['threshold'] == pytest.approx(expected)
    assert report['config']['fallback_threshold'] is None and report['prompt_fpr'] == 0.1
    # The '+ instance filter' row is what the instance node publishes (its default filter).
    from anomaly_perception.branches.instance.detector import InstanceAnomalySegmenter
    from anomaly_perception.branches.instance.experiments import FILTER_ROW
    from anomaly_perception.data.hazards import HazardsDataset
    from anomaly_perception.data.synthetic.catalog import GLOBAL_TYPES
    from anomaly_perception.metrics.binary import BinaryScoreAccumulator
    assert report['instance_min_score'] == pytest.approx(expected)
    from anomaly_perception.branches.instance.experiments import BASELINE_FILTER_ROW
    from anomaly_perception.metrics.segmentation import InstanceAPAccumulator
    assert list(report['tables']['table2'])[:3] == ['components+ensemble',
                                                    BASELINE_FILTER_ROW, 'oracle']
    # ... and the baseline row is what the node publishes without a promptable model.
    segs = [InstanceAnomalySegmenter.from_model_dirs(tiny_pixel_model, model,
                                                     backend='torch', prompt_fpr=0.1,
                                                     instance_fpr=0.1)
            for model in (tiny_promptable, 'components')]
    accs = [BinaryScoreAccumulator(), BinaryScoreAccumulator()]
    instances = InstanceAPAccumulator()
    for r in [r for r in HazardsDataset(tiny_pixel_data).records('test_set')
              if r.label_name not in GLOBAL_TYPES][::8]:
        rgb = np.ascontiguousarray(cv2.imread(str(r.path))[..., ::-1])
        for seg, acc in zip(segs, accs):
            out = seg.segment(rgb)
            assert np.all(out.scores >= seg.min_score)
            mask = tiny_pixel_data / 'masks' / (r.path.stem + '.png')
            truth = (cv2.imread(str(mask), cv2.IMREAD_UNCHANGED) > 0 if mask.is_file()
                     else np.zeros(out.anomaly.shape, bool))
            acc.update(np.where(np.isfinite(out.anomaly), truth, 255).astype(np.uint8),
                       np.nan_to_num(out.refined))
        inst = tiny_pixel_data / 'instances' / (r.path.stem + '.png')
        gt = (cv2.imread(str(inst), cv2.IMREAD_UNCHANGED).astype(np.int64) if inst.is_file()
              else np.zeros(out.anomaly.shape, np.int64))
        valid = np.isfinite(out.anomaly)
        gt = np.where(truth & valid, gt, 0)
        masks = np.stack([out.ids == k + 1 for k in range(len(out.scores))]) \
            if len(out.scores) else np.zeros((0, *out.ids.shape), bool)
        instances.update(gt, masks, out.scores, ~valid)
    table2 = report['tables']['table2']
    assert table2[FILTER_ROW]['pixel_ap'] == pytest.approx(
        accs[0].curve().average_precision(), abs=1e-6)
    assert table2[BASELINE_FILTER_ROW]['pixel_ap'] == pytest.approx(
        accs[1].curve().average_precision(), abs=1e-6)
    assert table2[BASELINE_FILTER_ROW]['iap50'] == pytest.approx(
        instances.results()['iAP50'], abs=1e-9)


def test_decoder_shape_follows_the_spec():
    from anomaly_perception.branches.instance.experiments import decoder_shape
    # The shipped small model: longest side 256, 1/8 grid, masks at 4/8 of the input.
    assert decoder_shape({'image_size': 256, 'encoder': {'patch_size': 8}}, (360, 640)) == \
        (72, 128)
    # SAM: 1024 input, 1/16 grid, 256x256 masks for a square input.
    assert decoder_shape({'image_size': 1024, 'encoder': {'patch_size': 16}}, (512, 512)) == \
        (256, 256)


def test_resolution_ceiling_loses_small_objects_not_large_ones():
    from anomaly_perception.branches.instance.experiments import resolution_ceiling
    big = np.zeros((360, 640), bool)
    big[100:200, 200:400] = True          # 20,000 px, grid-aligned at 1/5
    assert resolution_ceiling(big, (72, 128)) == pytest.approx(1.0, abs=1e-3)
    small = np.zeros((360, 640), bool)
    small[103:106, 303:306] = True        # 9 px straddling four cells of 5x5 px
    ceiling = resolution_ceiling(small, (72, 128))
    assert ceiling < 0.5
    # The same object on a grid at full resolution comes back exactly.
    assert resolution_ceiling(small, (360, 640)) == pytest.approx(1.0)
    # A mid-size object: between the two, and a finer grid never does worse.
    mid = np.zeros((360, 640), bool)
    cv2.circle(mid.view(np.uint8), (320, 180), 6, 1, -1)
    coarse, fine = resolution_ceiling(mid, (72, 128)), resolution_ceiling(mid, (144, 256))
    assert 0.3 < coarse < 1.0 and fine >= coarse


def test_mask_sizes_table_bins_instances_by_area(tiny_pixel_data, tiny_pixel_model,
                                                 tiny_promptable, tmp_path):
    from anomaly_perception.branches.instance.experiments import format_ugains_report
    from anomaly_perception.branches.instance.experiments import run_ugains_experiment
    config = ugains.UGainSConfig(threshold=float('-inf'), fallback_threshold=None)
    report = run_ugains_experiment(tiny_pixel_model, tiny_promptable, tiny_pixel_data,
                                   tmp_path / 'x', config=config, points=(5,), every=4,
                                   show_progress=False)
    sizes = report['mask_sizes']
    assert sizes['instances'] > 0
    assert sum(b['instances'] for b in sizes['bins']) == sizes['instances']
    assert sum(b['share'] for b in sizes['bins'] if b['instances']) == pytest.approx(1.0)
    for b in sizes['bins']:
        if b['instances']:
            assert 0.0 <= b['mask_iou'] <= 1.0 and 0.0 <= b['ceiling_iou'] <= 1.0
    assert '**Masks by instance size**' in format_ugains_report(report)
