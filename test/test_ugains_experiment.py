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

"""experiment ugains: every table row from one pass, consistent with the deployed steps."""

import json

from anomaly_perception.instance import ugains
import cv2
import numpy as np
import pytest
import torch

pytest.importorskip('segment_anything')


def test_ugains_experiment_rows_match_the_deployed_pipeline(tiny_pixel_data, tiny_pixel_model,
                                                            tiny_promptable, tmp_path):
    from anomaly_perception.data.hazards import HazardsDataset
    from anomaly_perception.data.synthetic.catalog import GLOBAL_TYPES
    from anomaly_perception.evaluation.metrics import BinaryScoreAccumulator
    from anomaly_perception.evaluation.ugains_experiments import run_ugains_experiment
    from anomaly_perception.instance.promptable import load_promptable
    from anomaly_perception.perception.pixel import PixelAnomalySegmenter
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
    from anomaly_perception.evaluation.ugains_experiments import run_ugains_experiment
    from anomaly_perception.perception.pixel import PixelAnomalySegmenter
    report = run_ugains_experiment(tiny_pixel_model, tiny_promptable, tiny_pixel_data,
                                   tmp_path / 'x', points=(50,), every=8, prompt_fpr=0.1,
                                   instance_fpr=0.1, show_progress=False)
    expected = PixelAnomalySegmenter.from_model_dir(tiny_pixel_model, target_fpr=0.1).threshold
    assert report['config']['threshold'] == pytest.approx(expected)
    assert report['config']['fallback_threshold'] is None and report['prompt_fpr'] == 0.1
    # The '+ instance filter' row is what the instance node publishes (its default filter).
    from anomaly_perception.data.hazards import HazardsDataset
    from anomaly_perception.data.synthetic.catalog import GLOBAL_TYPES
    from anomaly_perception.evaluation.metrics import BinaryScoreAccumulator
    from anomaly_perception.evaluation.ugains_experiments import FILTER_ROW
    from anomaly_perception.perception.instance import InstanceAnomalySegmenter
    assert report['instance_min_score'] == pytest.approx(expected)
    seg = InstanceAnomalySegmenter.from_model_dirs(tiny_pixel_model, tiny_promptable,
                                                   backend='torch', prompt_fpr=0.1,
                                                   instance_fpr=0.1)
    acc = BinaryScoreAccumulator()
    for r in [r for r in HazardsDataset(tiny_pixel_data).records('test_set')
              if r.label_name not in GLOBAL_TYPES][::8]:
        rgb = np.ascontiguousarray(cv2.imread(str(r.path))[..., ::-1])
        out = seg.segment(rgb)
        assert np.all(out.scores >= seg.min_score)
        mask = tiny_pixel_data / 'masks' / (r.path.stem + '.png')
        truth = (cv2.imread(str(mask), cv2.IMREAD_UNCHANGED) > 0 if mask.is_file()
                 else np.zeros(out.anomaly.shape, bool))
        acc.update(np.where(np.isfinite(out.anomaly), truth, 255).astype(np.uint8),
                   np.nan_to_num(out.refined))
    assert report['tables']['table2'][FILTER_ROW]['pixel_ap'] == pytest.approx(
        acc.curve().average_precision(), abs=1e-6)
