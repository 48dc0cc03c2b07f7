"""The branch and architecture registries: every branch resolves to its pieces."""

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

from anomaly_perception.branches.registry import branch_names
from anomaly_perception.branches.registry import get_branch
from anomaly_perception.branches.registry import UnknownBranchError
from anomaly_perception.cli import main
from anomaly_perception.models import registry
from anomaly_perception.replay.recorder import Recorder
from anomaly_perception.runtime.manifest import load_manifest
from anomaly_perception.runtime.manifest import ModelError
from anomaly_perception.runtime.manifest import shipped_model_dir
from anomaly_perception.runtime.network import load_network
from anomaly_perception.stream.pipeline import Detector
from anomaly_perception.stream.pipeline import Pipeline
import cv2
import numpy as np
import pytest
import yaml


def test_every_branch_resolves_to_its_pieces():
    assert branch_names() == ['frame', 'instance', 'pixel', 'synthesis']
    for name in branch_names():
        branch = get_branch(name)
        assert get_branch(name) is branch and branch.name == name
        assert issubclass(branch.stream, Pipeline)
        assert issubclass(branch.detector, Detector)
        assert issubclass(branch.recorder, Recorder)
        assert callable(branch.score) or isinstance(branch.score, str)
        config = branch.config()
        assert branch.config_module.config_from_parameters(
            {n: getattr(config, n) for n, *_ in branch.config_module.parameter_specs()
             if hasattr(config, n)}, 'test') == config
        messages = branch.messages
        assert set(messages.output_topics('robot')) >= set(messages.OUTPUT_TYPES)
        default = branch.shipped_model_dir()
        if default in branch.model_free:        # loaded without a directory
            assert branch.shipped_model == default and not Path(default).exists()
        else:
            assert load_manifest(default)['branch'] == name


def test_unknown_branch_is_named_with_the_known_ones(tmp_path, capsys):
    with pytest.raises(UnknownBranchError, match=r"Unknown branch 'pixl'; known: frame"):
        get_branch('pixl')
    assert main(['replay', str(tmp_path / 'no_bag'), '--out', str(tmp_path / 'out'),
                 '--pipelines', 'frame,pixl']) == 1
    assert "Unknown branch 'pixl'" in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()
    with pytest.raises(SystemExit) as stop:
        main(['bench', '--branch', 'pixl'])
    assert stop.value.code == 2
    assert "invalid choice: 'pixl'" in capsys.readouterr().err


def test_commands_take_the_branch_from_the_model(tmp_path, capsys):
    from anomaly_perception.cli.common import resolve_branch
    model = shipped_model_dir('frame_rnvp_oe')
    branch, model_dir = resolve_branch(None, str(model))
    assert branch.name == 'frame' and model_dir == str(model)
    branch, model_dir = resolve_branch('frame', None)
    assert Path(model_dir) == Path(model)
    image = tmp_path / 'frame.png'
    cv2.imwrite(str(image), np.full((360, 640, 3), 90, np.uint8))
    assert main(['score', str(image), '--model', str(model)]) == 0
    out = capsys.readouterr().out
    assert str(image) in out and 'nats' in out


def test_architectures_build_from_their_manifests():
    for name in registry.names():
        arch = registry.get(name)
        assert arch.name == name
        # What runs on a robot takes uint8 images; the offline DDPM takes noisy samples.
        assert arch.inputs[0].dtype == 'uint8' if arch.exportable else name == 'ddpm_unet'
    module, manifest = load_network(shipped_model_dir('frame_rnvp_oe'))
    assert type(module).__name__ == 'FrameDensityModel' and not module.training
    assert registry.get('no_such_net') is None


def test_unknown_architecture_is_a_clear_model_error(tmp_path):
    import shutil
    copy = tmp_path / 'm'
    shutil.copytree(shipped_model_dir('frame_rnvp_oe'), copy)
    manifest = yaml.safe_load((copy / 'manifest.yaml').read_text())
    manifest['architecture']['type'] = 'resnet_9000'
    (copy / 'manifest.yaml').write_text(yaml.safe_dump(manifest))
    with pytest.raises(ModelError, match=r"unknown architecture 'resnet_9000' \(known: "
                                         r'ddpm_unet, erfnet_pixel, erfnet_pixel_fsnet, '
                                         r'frame_rnvp_oe, maskcls_rba\)'):
        load_network(copy)
    with pytest.raises(ModelError, match="holds a 'frame' model, expected a 'pixel' model"):
        load_network(shipped_model_dir('frame_rnvp_oe'), branch='pixel')


def test_the_node_each_branch_names_is_installed_and_runs_that_branch():
    import ast
    import re
    root = Path(__file__).resolve().parents[1]
    setup = (root / 'setup.py').read_text()
    for name in branch_names():
        branch = get_branch(name)
        if branch.node is None:
            assert branch.offline_only and name == 'synthesis'
            continue
        entry = re.search(rf"'{branch.node} = anomaly_perception\.nodes\.(\w+):main'", setup)
        assert entry, f'setup.py installs no {branch.node}'
        module = root / 'anomaly_perception' / 'nodes' / f'{entry.group(1)}.py'
        assigned = {t.id: n.value.value for n in ast.walk(ast.parse(module.read_text()))
                    if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
                    for t in n.targets if isinstance(t, ast.Name)}
        assert assigned['BRANCH'] == name
