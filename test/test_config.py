"""Typed configuration loading: every mistake names the key and the file."""

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
from pathlib import Path
import typing

from anomaly_perception.config import config_from_dict
from anomaly_perception.config import config_to_dict
from anomaly_perception.config import field
from anomaly_perception.config import load_config
from anomaly_perception.errors import ConfigError
import pytest


@dataclasses.dataclass
class CameraConfig:
    topic: str = field('image', 'input image topic')
    width: int = field(640, 'expected width', range=(16, 4096))


@dataclasses.dataclass
class DetectorConfig:
    threshold: float = field(0.5, 'flag threshold', range=(0.0, 1.0))
    backend: typing.Literal['auto', 'torch', 'onnxruntime', 'tensorrt'] = 'auto'
    model_dir: typing.Optional[Path] = None
    camera: CameraConfig = dataclasses.field(default_factory=CameraConfig)
    classes: list[str] = field(['normal', 'anomaly'])


def _write(tmp_path, text, name='detector.yaml'):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_loads_plain_mapping(tmp_path):
    path = _write(tmp_path, 'threshold: 0.8\nbackend: torch\nmodel_dir: models/frame\n'
                            'camera:\n  width: 960\n')
    cfg = load_config(DetectorConfig, path)
    assert cfg == DetectorConfig(threshold=0.8, backend='torch', model_dir=Path('models/frame'),
                                 camera=CameraConfig(width=960))
    assert config_to_dict(cfg)['model_dir'] == 'models/frame'


def test_loads_ros_parameter_file(tmp_path):
    path = _write(tmp_path, 'frame_anomaly_node:\n  ros__parameters:\n    threshold: 0.25\n')
    assert load_config(DetectorConfig, path).threshold == 0.25
    assert load_config(DetectorConfig, path, node_name='frame_anomaly_node').threshold == 0.25
    with pytest.raises(ConfigError, match="no parameters for node 'other'"):
        load_config(DetectorConfig, path, node_name='other')


def test_unknown_key_is_named_with_file_and_suggestion(tmp_path):
    path = _write(tmp_path, 'treshold: 0.3\n')
    with pytest.raises(ConfigError) as err:
        load_config(DetectorConfig, path)
    message = str(err.value)
    assert str(path) in message and 'treshold' in message and "did you mean 'threshold'" in message


def test_unknown_nested_key(tmp_path):
    path = _write(tmp_path, 'camera:\n  topik: /cam\n')
    with pytest.raises(ConfigError, match=r'camera\.topik: unknown key'):
        load_config(DetectorConfig, path)


@pytest.mark.parametrize('text,match', [
    ('threshold: high', r"threshold: expected a number, got str 'high'"),
    ('threshold: true', r'threshold: expected a number, got bool'),
    ('threshold: 1.5', r'threshold: 1.5 is out of range \[0.0, 1.0\]'),
    ('backend: trt', r"backend: expected one of 'auto', 'torch'"),
    ('camera:\n  width: 8', r'camera.width: 8 is out of range'),
    ('camera:\n  width: 640.5', r'camera.width: expected an integer'),
    ('classes: [normal, 3]', r'classes\[1\]: expected a string'),
    ('camera: 5', r'camera: expected a mapping'),
    ('model_dir: 7', r'model_dir: expected Path or null'),
])
def test_wrong_types_and_ranges(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(DetectorConfig, _write(tmp_path, text))


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match='cannot read config file'):
        load_config(DetectorConfig, tmp_path / 'missing.yaml')
    with pytest.raises(ConfigError, match='invalid YAML at line 2'):
        load_config(DetectorConfig, _write(tmp_path, 'threshold: 0.1\n  bad: [\n'))


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(DetectorConfig, _write(tmp_path, '')) == DetectorConfig()


def test_int_is_accepted_for_float_but_not_bool_for_int():
    assert config_from_dict(DetectorConfig, {'threshold': 1}).threshold == 1.0
    with pytest.raises(ConfigError, match='expected an integer, got bool'):
        config_from_dict(DetectorConfig, {'camera': {'width': True}})
