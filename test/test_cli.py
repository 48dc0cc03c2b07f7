"""The command line: help everywhere, one-line errors, real work."""

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

import argparse
import json
import subprocess
import sys

from anomaly_perception.cli import build_parser
from anomaly_perception.cli import main
from conftest import write_image_bag
import numpy as np
import pytest


def _command_paths(parser=None, prefix=()):
    """Every command and sub-command, as argv prefixes (argparse has no public walk)."""
    parser = parser or build_parser()
    paths = [list(prefix)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in sorted(action.choices.items()):
                paths += _command_paths(sub, (*prefix, name))
    return paths


def test_every_command_is_reached():
    names = {' '.join(p) for p in _command_paths()}
    assert {'inspect', 'synth dataset', 'synth bag', 'synth stats', 'synth compare',
            'demo'} <= names


@pytest.mark.parametrize('argv', _command_paths())
def test_help_on_every_command(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ['--help'])
    assert exit_info.value.code == 0
    assert 'usage: anomaly-perception' in capsys.readouterr().out


def test_unknown_command_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(['frobnicate'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "invalid choice: 'frobnicate'" in err


def test_bad_argument_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(['inspect', 'a', '--no-such-flag'])
    assert exit_info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_inspect_lists_topics(tmp_path, capsys):
    frames = [np.zeros((6, 8, 3), np.uint8)] * 4
    write_image_bag(tmp_path / 'bag', frames, storage='sqlite3')
    assert main(['inspect', str(tmp_path / 'bag'), '--json']) == 0
    info = json.loads(capsys.readouterr().out)
    assert info['storage'] == 'sqlite3'
    assert info['topics'] == [{'name': '/robomaster/camera/image_color',
                               'type': 'sensor_msgs/msg/Image', 'count': 4, 'rate_hz': 30.0}]
    assert info['image_topics']['/robomaster/camera/image_color'] == {
        'frame_id': 'camera_optical_link', 'width': 8, 'height': 6, 'encoding': 'bgr8'}


def test_runtime_error_is_one_line_without_traceback(tmp_path):
    (tmp_path / 'bag').mkdir()
    (tmp_path / 'bag' / 'metadata.yaml').write_text('rosbag2_bagfile_information: [')
    out = subprocess.run([sys.executable, '-m', 'anomaly_perception', 'inspect',
                          str(tmp_path / 'bag')], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.count('\n') == 1
    assert 'Traceback' not in out.stderr
    assert str(tmp_path / 'bag') in out.stderr
