"""The synthesis branch in replay: keyframes, topics, metrics, and what it refuses."""

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

import numpy as np
import pytest
import yaml


def _params(tmp_path, tiny_pixel_model, **values):
    path = tmp_path / 'synthesis.yaml'
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'pixel_model_dir': str(tiny_pixel_model), 'segments': 16, **values}}}))
    return path


def test_replay_edits_keyframes_as_the_synthesizer_does(tiny_ddpm, tiny_pixel_model,
                                                        patrol_bag_5s, tmp_path, capsys):
    from anomaly_perception.branches.synthesis.config import synthesis_options
    from anomaly_perception.branches.synthesis.config import SynthesisConfig
    from anomaly_perception.branches.synthesis.detector import AnomalySynthesizer
    from anomaly_perception.cli import main
    from anomaly_perception.io.bags import BagReader
    from anomaly_perception.io.images import image_to_numpy
    params = _params(tmp_path, tiny_pixel_model, keyframe_period_s=2.0)
    out = tmp_path / 'r'
    code = main(['replay', str(patrol_bag_5s), '--out', str(out), '--pipelines',
                 'pixel,synthesis', '--model', f'pixel={tiny_pixel_model}', '--model',
                 f'synthesis={tiny_ddpm}', '--params', f'synthesis={params}', '--backend',
                 'torch', '--no-progress'])
    assert code == 0
    printed = capsys.readouterr().out
    assert 'synthesis branch: 3 keyframes (one per 2 s)' in printed
    report = json.loads((out / 'report.json').read_text())
    syn = report['branches']['synthesis']
    # 24 Hz for 5 s, a keyframe every 2 s of stamp time: at 0, 2 and 4 s.
    assert syn['keyframes'] == 3 and syn['keyframe_reasons'] == {'first': 1, 'period': 2}
    assert syn['keyframe_seconds']['median'] > 0
    assert syn['sampler'] == 'reverse guidance, strength 5, all steps'
    px = syn['pixels']
    assert px['label_topic'].endswith('/labels/instances') and 0 < px['keyframes'] <= 3
    for row in (px, px['pixel_branch']):
        assert 0 <= row['auprc'] <= 1 and 0 <= row['auroc'] <= 1
    assert (out / syn['contact_sheet']).stat().st_size > 0
    topics = syn['output_topics']
    with BagReader(out / 'outputs') as bag:
        for key in ('anomaly_map', 'distance_map', 'edit'):
            assert bag.topics[topics[key]].count == 3, key
        first = next(m for _, _, m in bag.messages([topics['anomaly_map']]))
        edit = next(m for _, _, m in bag.messages([topics['edit']]))
    with BagReader(patrol_bag_5s) as bag:
        image = next(iter(bag.read_images()))
    assert first.header.stamp == image.header.stamp and first.encoding == '32FC1'
    assert edit.encoding == 'rgb8' and (edit.height, edit.width) == (16, 24)
    # The first keyframe's map is the synthesizer's on that frame, with the same options.
    config = SynthesisConfig(pixel_model_dir=str(tiny_pixel_model), segments=16)
    direct = AnomalySynthesizer.from_model_dir(
        tiny_ddpm, options=synthesis_options(config)).process(image.image)
    np.testing.assert_array_equal(image_to_numpy(first), direct.anomaly)
    np.testing.assert_array_equal(image_to_numpy(edit), direct.edit)


def test_synthesis_runs_on_pytorch_only_and_points_score_and_bench_elsewhere(
        tiny_ddpm, patrol_bag_5s, tmp_path, capsys):
    from anomaly_perception.branches.registry import get_branches
    from anomaly_perception.cli import main
    from anomaly_perception.replay.engine import replay
    from anomaly_perception.runtime.backends import BackendError
    with pytest.raises(BackendError, match='PyTorch only'):
        replay(patrol_bag_5s, tmp_path / 'r', get_branches('synthesis'), model_dir=tiny_ddpm,
               backend='onnxruntime', show_progress=False)
    assert not (tmp_path / 'r').exists()
    import cv2
    cv2.imwrite(str(tmp_path / 'x.png'), np.zeros((64, 64, 3), np.uint8))
    assert main(['score', str(tmp_path / 'x.png'), '--branch', 'synthesis',
                 '--model', str(tiny_ddpm)]) == 1
    assert 'anomaly-perception synthesize' in capsys.readouterr().err
    assert main(['bench', '--branch', 'synthesis', '--model', str(tiny_ddpm)]) == 1
    # seconds per image (bench_diffusion.py times the DDPM's training step and one pass)
    assert 'benchmarks/bench_synthesis.py' in capsys.readouterr().err


def test_messages_of_a_keyframe_and_refusal_of_other_frames(factory):
    from anomaly_perception.branches.synthesis.detector import SynthesisResult
    from anomaly_perception.branches.synthesis.messages import output_topics
    from anomaly_perception.branches.synthesis.messages import SynthesisMessageBuilder
    from anomaly_perception.branches.synthesis.stream import SynthesisFrame
    assert output_topics('robomaster')['anomaly_map'] == \
        '/robomaster/synthesis_anomaly/anomaly_map'
    builder = SynthesisMessageBuilder(factory)
    header = factory.header(1_500_000_000, 'camera')
    anomaly = np.full((6, 8), np.nan, np.float32)
    anomaly[:, 1:7] = np.arange(36, dtype=np.float32).reshape(6, 6)
    result = SynthesisResult(np.zeros((4, 5, 3), np.uint8), anomaly * 2, anomaly, 1.0)
    msgs = builder.outputs(header, SynthesisFrame(1_500_000_000, True, 'first', result))
    assert set(msgs) == {'anomaly_map', 'distance_map', 'edit'}
    assert all(m.header.stamp.sec == 1 for m in msgs.values())
    from anomaly_perception.io.images import image_to_numpy
    np.testing.assert_array_equal(image_to_numpy(msgs['distance_map']), anomaly * 2)
    with pytest.raises(ValueError, match='not a keyframe'):
        builder.outputs(header, SynthesisFrame(2, False, ''))
