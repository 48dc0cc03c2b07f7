"""A sixth branch, registered at run time, runs through replay, score and bench.

Everything the toy branch is (mean brightness of a frame as its anomaly
score) lives in this module: its config, detector, stream, output messages,
replay recorder and score writer. The only contact with the package is
``registry.register``; the commands then serve it by name like the built-in
branches, which is what "a branch is one folder plus one registry entry"
promises.
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

import dataclasses
import json
from pathlib import Path
import sys

from anomaly_perception.branches import registry
from anomaly_perception.branches.branch import Branch
from anomaly_perception.cli import main
from anomaly_perception.io.bags import BagReader
from anomaly_perception.io.diagnostics import diagnostics_message
from anomaly_perception.io.diagnostics import DIAGNOSTICS_TOPIC
from anomaly_perception.io.diagnostics import DIAGNOSTICS_TYPE
from anomaly_perception.io.images import read_image_file
from anomaly_perception.io.messages import score_classification
from anomaly_perception.metrics.binary import auroc
from anomaly_perception.replay.recorder import Recorder
from anomaly_perception.runtime.backends import BackendError
from anomaly_perception.stream.pipeline import Detector
from anomaly_perception.stream.pipeline import Pipeline
import cv2
import numpy as np
import pytest

# --- the toy branch: config, detector, stream, messages, recorder, score ------------------


@dataclasses.dataclass(frozen=True)
class BrightnessConfig:
    """The toy node's parameters."""

    model_dir: str = ''
    backend: str = 'numpy'
    diagnostics_period_s: float = 1.0


class _NumpyBackend:
    name = 'numpy'

    def infer(self, batch):
        return batch.reshape(len(batch), -1).mean(axis=1) / 255.0

    def describe(self):
        return {'backend': 'numpy', 'device': 'cpu', 'precision': 'fp64'}


class BrightnessDetector(Detector):
    """Mean brightness in [0, 1] of each frame; its model directory holds a threshold."""

    def __init__(self, threshold):
        self.threshold = threshold
        self.backend = _NumpyBackend()
        self.manifest = {'name': 'mean_brightness'}

    @classmethod
    def from_model_dir(cls, model_dir, backend='numpy', **options):
        if backend not in ('numpy', 'auto', 'torch'):
            raise BackendError(f'the toy branch runs on numpy, not {backend!r}.')
        return cls(json.loads((Path(model_dir) / 'toy.json').read_text())['threshold'])

    def preprocess(self, images, channel_order='rgb'):
        return np.asarray(images if isinstance(images, (list, np.ndarray)) and np.ndim(
            images) == 4 else [images], np.float64)

    def score(self, images, channel_order='rgb'):
        return self.backend.infer(self.preprocess(images, channel_order))


class BrightnessStream(Pipeline):
    """The toy's node and replay path: one brightness per frame."""

    detector_class = BrightnessDetector

    def __init__(self, detector, config):
        self.detector, self.config = detector, config

    @classmethod
    def from_config(cls, config, model_dir=None, **backend_options):
        model_dir = Path(model_dir or config.model_dir)
        return cls(BrightnessDetector.from_model_dir(model_dir, config.backend), config)

    def process(self, stamps, images):
        return [float(s) for s in self.detector.score(np.stack(images))]


class BrightnessMessages:
    """The toy's messages module: one Classification per frame, and diagnostics."""

    NODE_NAME = 'brightness'
    OUTPUT_TYPES = {'score': 'vision_msgs/msg/Classification'}
    DIAGNOSTICS_TYPE = DIAGNOSTICS_TYPE

    @staticmethod
    def output_topics(namespace=''):
        ns = f'/{namespace}' if namespace else ''
        return {'score': f'{ns}/brightness/score', 'diagnostics': DIAGNOSTICS_TOPIC}


@dataclasses.dataclass
class BrightnessBuilder:
    """Builds the toy's messages with a message factory (rosbags or rclpy)."""

    f: object
    from_config = classmethod(lambda cls, factory, config: cls(factory))

    def outputs(self, header, result):
        return {'score': score_classification(self.f, header, result, result)}

    def diagnostics(self, header, snapshot, *described):
        return diagnostics_message(self.f, 'brightness', header, snapshot, *described)


class BrightnessRecorder(Recorder):
    """Keeps each frame's brightness; its metric is the AUROC of brightness vs labels."""

    def __init__(self, *args):
        super().__init__(*args)
        self.values = []

    def record(self, frame, result):
        self.values.append(result)

    def report(self):
        return {**super().report(), 'mean_brightness': float(np.mean(self.values))}

    def metrics(self, frame_labels):
        labels = np.array([name != 'normal' for name in frame_labels])
        return {'auroc': auroc(labels, np.asarray(self.values))}

    @staticmethod
    def summary(report, part, out):
        return [f"toy branch: mean brightness {part['mean_brightness']:.3f}"]


def write_brightness(model_dir, files, args):
    detector = BrightnessDetector.from_model_dir(model_dir, 'numpy')
    for f in files:
        print(f'{f}  brightness {detector.score(read_image_file(f))[0]:.4f}')
    return 0


TOY = Branch(name='toy', description='mean brightness (a test)', config=BrightnessConfig,
             config_module=sys.modules[__name__], stream=BrightnessStream,
             messages=BrightnessMessages, builder=BrightnessBuilder,
             recorder=BrightnessRecorder, shipped_model='toy_brightness',
             score=write_brightness)


# --- the tests ------------------------------------------------------------------------------


@pytest.fixture
def toy(tmp_path):
    model = tmp_path / 'toy_model'
    model.mkdir()
    (model / 'toy.json').write_text('{"threshold": 0.5}')
    registry.register(TOY)
    yield model
    registry.unregister('toy')
    assert 'toy' not in registry.branch_names()


def test_a_branch_registered_at_run_time_runs_through_replay(toy, patrol_bag_5s, tmp_path,
                                                             capsys):
    out = tmp_path / 'r'
    assert main(['replay', str(patrol_bag_5s), '--out', str(out), '--pipelines', 'frame,toy',
                 '--model', f'toy={toy}', '--backend', 'torch', '--no-progress']) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / 'report.json').read_text())
    assert report['pipelines'] == ['frame', 'toy']
    assert set(report['branches']) == {'frame', 'toy'}
    part = report['branches']['toy']
    assert 0.0 < part['mean_brightness'] < 1.0 and 0.0 <= part['auroc'] <= 1.0
    assert f"toy branch: mean brightness {part['mean_brightness']:.3f}" in printed
    assert 'frame AUROC' in printed and '/brightness/score' in printed
    # The toy's topic holds one message per frame, stamped like the frame's score.
    with BagReader(out / 'outputs') as bag:
        toy_msgs = list(bag.messages(['/robomaster/brightness/score']))
        frame_msgs = list(bag.messages(['/robomaster/frame_anomaly/score']))
    with BagReader(patrol_bag_5s) as bag:
        first = next(iter(bag.read_images()))
    assert len(toy_msgs) == len(frame_msgs) == report['frames_scored']
    assert [m.header.stamp for _, _, m in toy_msgs] == [m.header.stamp for _, _, m in frame_msgs]
    expected = first.image.astype(np.float64).mean() / 255.0
    assert toy_msgs[0][2].results[0].class_id == 'anomaly'
    assert toy_msgs[0][2].results[0].score == pytest.approx(expected)


def test_a_branch_registered_at_run_time_serves_score_and_bench(toy, tmp_path, capsys):
    image = tmp_path / 'grey.png'
    cv2.imwrite(str(image), np.full((36, 64, 3), 51, np.uint8))
    assert main(['score', str(image), '--branch', 'toy', '--model', str(toy)]) == 0
    assert f'{image}  brightness 0.2000' in capsys.readouterr().out
    json_out = tmp_path / 'bench.json'
    assert main(['bench', '--branch', 'toy', '--model', str(toy), '--backend', 'numpy',
                 '--batch', '1,2', '--seconds', '0.02', '--json', str(json_out)]) == 0
    results = json.loads(json_out.read_text())
    assert results['branch'] == 'toy'
    cases = [(c['backend'], c['batch']) for c in results['cases']]
    assert cases == [('numpy', 1), ('numpy', 2)]
    assert all(c['whole_path']['median_ms'] > 0 for c in results['cases'])
