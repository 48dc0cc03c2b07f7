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

"""The package's shape for many branches: layers, the branch and architecture registries."""

import ast
from pathlib import Path

from anomaly_perception.cli import main
from anomaly_perception.evaluation.replay import replay
from anomaly_perception.models import registry
from anomaly_perception.perception.branches import BRANCHES
from anomaly_perception.perception.branches import get_branch
from anomaly_perception.perception.branches import UnknownBranchError
from anomaly_perception.perception.pipeline import Detector
from anomaly_perception.perception.pipeline import Pipeline
from anomaly_perception.runtime.manifest import load_manifest
from anomaly_perception.runtime.manifest import ModelError
from anomaly_perception.runtime.manifest import shipped_model_dir
from anomaly_perception.runtime.network import load_network
import cv2
import numpy as np
import pytest
import yaml

PACKAGE = Path(__file__).resolve().parents[1] / 'anomaly_perception'
# layer -> layers (top-level subpackages) it must never import
FORBIDDEN = {
    'models': {'runtime', 'perception', 'io', 'data', 'train', 'evaluation', 'nodes', 'cli'},
    'scoring': {'runtime', 'perception', 'io', 'data', 'train', 'evaluation', 'nodes', 'cli'},
    'runtime': {'perception', 'data', 'train', 'evaluation', 'nodes', 'cli'},
    'perception': {'train', 'evaluation', 'nodes', 'cli'},
    'io': {'perception', 'train', 'evaluation', 'nodes', 'cli'},
}


def _imported_layers(path):
    """Top-level subpackages a module imports, lazily (in functions) or not."""
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(PACKAGE).parts) - 1
    layers = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or '').startswith('anomaly_perception.'):
                layers.add(node.module.split('.')[1])
            elif node.level > depth and node.module:
                layers.add(node.module.split('.')[0])
            elif node.level > depth:
                layers.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith('anomaly_perception.'):
                    layers.add(alias.name.split('.')[1])
    return layers


@pytest.mark.parametrize('layer', sorted(FORBIDDEN))
def test_layers_import_only_downwards(layer):
    bad = {}
    for path in sorted((PACKAGE / layer).rglob('*.py')):
        wrong = _imported_layers(path) & FORBIDDEN[layer]
        if wrong:
            bad[str(path.relative_to(PACKAGE))] = sorted(wrong)
    assert not bad, f'{layer}/ imports layers above it: {bad}'


def test_the_import_checker_sees_lazy_imports(tmp_path):
    # The check above would be vacuous if it missed imports inside functions.
    module = PACKAGE / 'runtime' / 'network.py'
    assert 'models' in _imported_layers(module)
    assert 'manifest' not in _imported_layers(module)   # a sibling, not a layer


def test_every_branch_resolves_to_its_pieces():
    for name, branch in BRANCHES.items():
        assert get_branch(name) is branch
        assert issubclass(branch.pipeline_class, Pipeline)
        assert issubclass(branch.detector_class, Detector)
        config = branch.config_class()
        assert branch.config_module.config_from_parameters(
            {n: getattr(config, n) for n, *_ in branch.config_module.parameter_specs()
             if hasattr(config, n)}, 'test') == config
        messages = branch.messages_module
        assert set(messages.output_topics('robot')) >= set(messages.OUTPUT_TYPES)
        assert load_manifest(branch.shipped_model_dir())['branch'] == name


def test_unknown_branch_is_named_with_the_known_ones(tmp_path, capsys):
    with pytest.raises(UnknownBranchError, match=r"Unknown branch 'pixl'; known: frame"):
        get_branch('pixl')
    with pytest.raises(UnknownBranchError, match="'pixl'"):
        replay(tmp_path / 'no_bag', tmp_path / 'out', pipelines=['pixl'])
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
