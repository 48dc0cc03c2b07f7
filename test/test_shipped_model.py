"""The default frame model shipped in models/frame_rnvp_oe."""

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

from pathlib import Path

from anomaly_perception.branches.frame.detector import FrameAnomalyDetector
from anomaly_perception.data.synthetic.world import Sequence
from anomaly_perception.data.synthetic.world import SequenceSpec
from anomaly_perception.runtime.manifest import load_manifest
from anomaly_perception.runtime.manifest import shipped_model_dir
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_model_is_found_verified_and_small():
    model_dir = shipped_model_dir('frame_rnvp_oe')
    assert model_dir == ROOT / 'models' / 'frame_rnvp_oe'
    manifest = load_manifest(model_dir, branch='frame')  # checks every sha256
    total = sum(p.stat().st_size for p in model_dir.iterdir())
    assert total <= 20 * 1024 * 1024
    data = manifest['provenance']['data']
    assert (data['preset'], data['seed']) == ('medium', 0)
    assert manifest['validation']['n_anomalous'] > 0
    assert 0.5 < manifest['validation']['auroc'] <= 1.0
    assert manifest['architecture']['autoencoder']['width'] == 16


def test_shipped_model_scores_a_person_above_an_empty_corridor():
    detector = FrameAnomalyDetector.from_model_dir(shipped_model_dir('frame_rnvp_oe'))
    normal = Sequence(SequenceSpec(seed=11, environment='corridor', scene_seed=101))
    human = Sequence(SequenceSpec(seed=12, environment='corridor', scene_seed=101,
                                  anomaly='human'))
    rng = np.random.default_rng(0)
    normal_frames = [normal.frame(t, 256, 256).image for t in np.linspace(1, 15, 6)]
    human_frames = [f.image for f in (human.frame(float(t), 256, 256)
                                      for t in human.candidate_times(rng, 6, near=True))
                    if f.label_name == 'human']
    assert len(human_frames) >= 3
    a = detector.score(normal_frames)
    b = detector.score(human_frames)
    assert a.scorable.all() and b.scorable.all()
    assert np.median(b.raw) > np.median(a.raw)
    assert np.median(b.probability) > np.median(a.probability)


def test_shipped_pixel_model_carries_its_failure_head_and_it_marks_anomalies_as_errors():
    from anomaly_perception.branches.pixel.detector import PixelAnomalySegmenter
    model_dir = shipped_model_dir('pixel_erfnet')
    manifest = load_manifest(model_dir, branch='pixel')
    assert manifest['architecture']['type'] == 'erfnet_pixel_fsnet'
    metrics = manifest['metrics']
    # Joint training kept the segmenter (the acceptance: within 1 point of mIoU).
    assert metrics['validation']['miou'] >= metrics['miou_before'] - 0.01
    assert 0.5 < metrics['best_ap_err'] <= 1.0
    seg = PixelAnomalySegmenter.from_model_dir(model_dir)
    assert seg.has_failure
    boxes = Sequence(SequenceSpec(seed=21, environment='corridor', scene_seed=101,
                                  anomaly='boxes'))
    rng = np.random.default_rng(0)
    frames = [f for f in (boxes.frame(float(t), 640, 360)
                          for t in boxes.candidate_times(rng, 6, near=True))
              if f.mask.sum() > 500]
    assert len(frames) >= 2
    inside, outside = [], []
    for frame, result in zip(frames, seg.segment([f.image for f in frames])):
        fail = result.failure
        assert fail.shape == (360, 640)
        valid = np.isfinite(fail)
        assert ((fail[valid] >= 0) & (fail[valid] <= 1)).all()
        inside.append(fail[valid & (frame.mask > 0)])
        outside.append(fail[valid & (frame.mask == 0)])
    # Anomaly pixels are errors of the segmenter (no class fits them): the head says so.
    assert np.mean(np.concatenate(inside)) > 2 * np.mean(np.concatenate(outside))
