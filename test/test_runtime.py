"""Runtime: ONNX export, backends, engine cache, auto selection, bench."""

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

import importlib.util
import json
import logging
import shutil
import subprocess
import sys

from anomaly_perception.branches.frame.detector import FrameAnomalyDetector
from anomaly_perception.branches.frame.model import FrameDensityModel
from anomaly_perception.branches.frame.model import MODEL_FILE
from anomaly_perception.cli import main
from anomaly_perception.data.synthetic.world import Sequence
from anomaly_perception.data.synthetic.world import SequenceSpec
from anomaly_perception.runtime.backends import BackendError
from anomaly_perception.runtime.backends import create_backend
from anomaly_perception.runtime.backends import split_batches
from anomaly_perception.runtime.engine_cache import EngineCache
from anomaly_perception.runtime.engine_cache import EngineKey
from anomaly_perception.runtime.export import export_model
from anomaly_perception.runtime.manifest import load_manifest
from anomaly_perception.runtime.manifest import ModelError
from anomaly_perception.runtime.manifest import shipped_model_dir
from anomaly_perception.runtime.manifest import write_model_dir
from anomaly_perception.scoring.calibration import EmpiricalCalibration
from anomaly_perception.training import to_bytes
import numpy as np
import pytest
import torch
import yaml

SHIPPED = shipped_model_dir('frame_rnvp_oe')
HAS_CUDA = torch.cuda.is_available()
HAS_TRT = importlib.util.find_spec('tensorrt') is not None


@pytest.fixture(scope='module')
def frames():
    """640x360 camera frames: eight synthetic ones and random noise."""
    seq = Sequence(SequenceSpec(seed=3, environment='corridor', scene_seed=5, anomaly='boxes'))
    rendered = [seq.frame(float(t), 640, 360).image for t in np.linspace(0, 15, 8)]
    noise = np.random.default_rng(1).integers(0, 255, (24, 360, 640, 3), dtype=np.uint8)
    return np.concatenate([np.stack(rendered), noise])


@pytest.mark.parametrize('batch', [1, 32])
def test_onnxruntime_matches_torch(frames, batch):
    torch_det = FrameAnomalyDetector.from_model_dir(SHIPPED, 'torch')
    ort_det = FrameAnomalyDetector.from_model_dir(SHIPPED, 'onnxruntime')
    a = torch_det.score(frames[:batch]).raw
    b = ort_det.score(frames[:batch]).raw
    np.testing.assert_allclose(b, a, rtol=1e-4)
    # The same calibration applies whichever backend ran.
    np.testing.assert_allclose(ort_det.score(frames[:batch]).probability,
                               torch_det.score(frames[:batch]).probability, atol=2e-3)


def test_fp16_graph_within_documented_tolerance(frames):
    ref = FrameAnomalyDetector.from_model_dir(SHIPPED, 'torch').score(frames).raw
    half = FrameAnomalyDetector.from_model_dir(SHIPPED, 'onnxruntime', precision='fp16')
    np.testing.assert_allclose(half.score(frames).raw, ref, rtol=1e-3)  # docs/PERFORMANCE.md


def test_exported_graph_takes_uint8_and_is_recorded():
    import onnx
    manifest = load_manifest(SHIPPED)
    entry = manifest['exports']['onnx_fp32']
    assert entry['inputs'] == [{'name': 'images', 'shape': ['batch', 64, 64, 3],
                                'dtype': 'uint8'}]
    assert manifest['files'][entry['file']]['sha256']
    model = onnx.load(str(SHIPPED / entry['file']))
    onnx.checker.check_model(model)
    elem = model.graph.input[0].type.tensor_type.elem_type
    assert elem == onnx.TensorProto.UINT8
    assert model.opset_import[0].version == entry['opset']


def _tiny_model_dir(path):
    torch.manual_seed(0)
    model = FrameDensityModel.build(width=4, embedding_dim=8, input_size=32, n_couplings=2,
                                    hidden=8)
    arch = {'type': 'frame_rnvp_oe',
            'autoencoder': {'width': 4, 'embedding_dim': 8, 'input_size': 32},
            'realnvp': {'n_couplings': 2, 'hidden': 8, 'mask': 'odds'}}
    manifest = {'name': 'tiny', 'branch': 'frame', 'architecture': arch,
                'preprocessing': {'input_size': 32},
                'calibration': EmpiricalCalibration.fit(np.arange(50.0)).to_dict(),
                'threshold': {'target_fpr': 0.1}}
    write_model_dir(path, manifest, {MODEL_FILE: to_bytes({'config': arch,
                                                           'state_dict': model.state_dict()})})
    return path


def test_export_then_onnxruntime_on_a_fresh_model(tmp_path):
    model_dir = _tiny_model_dir(tmp_path / 'm')
    with pytest.raises(BackendError, match='anomaly-perception export --model'):
        FrameAnomalyDetector.from_model_dir(model_dir, 'onnxruntime')
    entry = export_model(model_dir, opset=17)
    assert entry['file'] == 'model.onnx' and len(entry['sha256']) == 64
    images = np.random.default_rng(0).integers(0, 255, (5, 50, 70, 3), dtype=np.uint8)
    a = FrameAnomalyDetector.from_model_dir(model_dir, 'torch').score(images).raw
    b = FrameAnomalyDetector.from_model_dir(model_dir, 'onnxruntime').score(images).raw
    np.testing.assert_allclose(b, a, rtol=1e-4)


def test_onnx_file_that_does_not_match_its_manifest(tmp_path):
    copy = tmp_path / 'm'
    shutil.copytree(SHIPPED, copy)
    data = bytearray((copy / 'model.onnx').read_bytes())
    data[-10] ^= 0xFF
    (copy / 'model.onnx').write_bytes(bytes(data))
    with pytest.raises(ModelError, match='model.onnx.*sha256'):
        FrameAnomalyDetector.from_model_dir(copy, 'onnxruntime')


def test_auto_on_the_cpu_takes_onnx_runtime_without_loading_torch_and_says_why(caplog):
    caplog.set_level(logging.INFO, logger='anomaly_perception.runtime.backends')
    det = FrameAnomalyDetector.from_model_dir(SHIPPED, 'auto')
    if not (HAS_TRT and HAS_CUDA):
        assert det.backend.name == 'onnxruntime'
        assert det.backend.auto_choice['measured_ms'] == {}
        assert 'tensorrt' in det.backend.auto_choice['skipped']
    message = ' '.join(r.getMessage() for r in caplog.records)
    assert f'backend auto: chose {det.backend.name}' in message
    code = ('import sys; '
            'from anomaly_perception.branches.frame.detector import FrameAnomalyDetector;'
            f'FrameAnomalyDetector.from_model_dir({str(SHIPPED)!r}, "auto");'
            'print("torch" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == ('True' if HAS_TRT else 'False')


def test_auto_without_an_exported_graph_falls_back_to_torch(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger='anomaly_perception.runtime.backends')
    copy = tmp_path / 'no_onnx'
    shutil.copytree(SHIPPED, copy)
    manifest = yaml.safe_load((copy / 'manifest.yaml').read_text())
    for name in ('model.onnx', 'model_fp16.onnx'):
        (copy / name).unlink()
        manifest['files'].pop(name, None)
    manifest.pop('exports', None)
    (copy / 'manifest.yaml').write_text(yaml.safe_dump(manifest))
    det = FrameAnomalyDetector.from_model_dir(copy, 'auto')
    assert det.backend.name == 'torch'
    assert 'onnxruntime' in det.backend.auto_choice['skipped']


@pytest.mark.skipif(HAS_TRT, reason='TensorRT is installed here')
def test_missing_tensorrt_is_one_clear_error():
    with pytest.raises(BackendError) as err:
        FrameAnomalyDetector.from_model_dir(SHIPPED, 'tensorrt')
    text = str(err.value)
    assert 'tensorrt' in text and 'not installed' in text and 'Available here: torch' in text


def test_unknown_backend():
    with pytest.raises(BackendError, match="Unknown backend 'tflite'"):
        create_backend('tflite', SHIPPED, load_manifest(SHIPPED), lambda: None)


def test_batches_larger_than_the_profile_are_split():
    assert split_batches(70, 32) == [(0, 32), (32, 64), (64, 70)]
    assert split_batches(3, 32) == [(0, 3)]
    with pytest.raises(ValueError):
        split_batches(3, 0)


# --- engine cache (no TensorRT needed) ------------------------------------------------------


def _key(**changes):
    base = {'onnx_sha256': 'ab' * 32, 'tensorrt_version': '10.3.0', 'gpu_name': 'Orin',
            'compute_capability': '8.7', 'precision': 'fp16', 'min_batch': 1, 'opt_batch': 8,
            'max_batch': 32}
    return EngineKey(**{**base, **changes})


def test_engine_key_changes_with_everything_it_depends_on():
    base = _key()
    for field, value in [('onnx_sha256', 'cd' * 32), ('tensorrt_version', '10.4.0'),
                         ('gpu_name', 'H200'), ('compute_capability', '9.0'),
                         ('precision', 'fp32'), ('max_batch', 64)]:
        assert _key(**{field: value}).digest() != base.digest(), field
    assert _key().digest() == base.digest()


class _FakeRuntime:
    """Stands in for TensorRT: builds numbered engines, rejects foreign bytes."""

    def __init__(self):
        self.builds = 0

    def build(self):
        self.builds += 1
        return b'ENGINE:' + str(self.builds).encode()

    @staticmethod
    def deserialize(data):
        if not data.startswith(b'ENGINE:'):
            raise RuntimeError('version tag does not match')
        return data.decode()


def test_engine_cache_builds_once_then_loads(tmp_path):
    rt = _FakeRuntime()
    cache = EngineCache(tmp_path / 'engines')
    engine, status = cache.load_or_build(_key(), rt.build, rt.deserialize)
    assert (engine, status) == ('ENGINE:1', 'built')
    engine, status = cache.load_or_build(_key(), rt.build, rt.deserialize)
    assert (engine, status, rt.builds) == ('ENGINE:1', 'cached', 1)
    meta = json.loads(cache.path(_key()).with_suffix('.json').read_text())
    assert meta['gpu_name'] == 'Orin'


def test_corrupt_cached_engine_is_rebuilt_not_fatal(tmp_path, caplog):
    rt = _FakeRuntime()
    cache = EngineCache(tmp_path)
    cache.path(_key()).write_bytes(b'garbage from another TensorRT version')
    with caplog.at_level(logging.WARNING):
        engine, status = cache.load_or_build(_key(), rt.build, rt.deserialize)
    assert (engine, status) == ('ENGINE:1', 'rebuilt')
    assert 'rebuilding' in caplog.text
    assert cache.path(_key()).read_bytes() == b'ENGINE:1'


def test_unwritable_cache_still_gives_an_engine(tmp_path, caplog):
    blocker = tmp_path / 'file'
    blocker.write_text('not a directory')
    rt = _FakeRuntime()
    with caplog.at_level(logging.WARNING):
        engine, status = EngineCache(blocker / 'engines').load_or_build(
            _key(), rt.build, rt.deserialize)
    assert (engine, status) == ('ENGINE:1', 'built')
    assert 'Cannot write the TensorRT engine cache' in caplog.text


# --- GPU (skipped without one) -----------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not (HAS_TRT and HAS_CUDA), reason='needs TensorRT and a CUDA GPU')
@pytest.mark.parametrize('precision,rtol', [('fp32', 1e-3), ('fp16', 1e-2)])
def test_tensorrt_matches_torch(frames, tmp_path, precision, rtol):
    ref = FrameAnomalyDetector.from_model_dir(SHIPPED, 'torch').score(frames).raw
    det = FrameAnomalyDetector.from_model_dir(SHIPPED, 'tensorrt', precision=precision,
                                              max_batch=8, cache_dir=tmp_path)
    np.testing.assert_allclose(det.score(frames).raw, ref, rtol=rtol)  # 32 > 8: split
    again = FrameAnomalyDetector.from_model_dir(SHIPPED, 'tensorrt', precision=precision,
                                                max_batch=8, cache_dir=tmp_path)
    assert again.backend.cache_status == 'cached'


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason='needs a CUDA GPU')
def test_torch_cuda_fp16_matches_cpu(frames):
    ref = FrameAnomalyDetector.from_model_dir(SHIPPED, 'torch').score(frames).raw
    det = FrameAnomalyDetector.from_model_dir(SHIPPED, 'torch', device='cuda',
                                              precision='fp16')
    np.testing.assert_allclose(det.score(frames).raw, ref, rtol=1e-2)


# --- CLI ---------------------------------------------------------------------------------


def test_bench_command_reports_ratios(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    assert main(['bench', '--backend', 'torch,onnxruntime', '--batch', '1,4', '--seconds',
                 '0.05', '--json', str(out)]) == 0
    results = json.loads(out.read_text())
    cases = {(c['backend'], c['batch']): c for c in results['cases']}
    assert set(cases) == {('torch', 1), ('torch', 4), ('onnxruntime', 1), ('onnxruntime', 4)}
    assert cases[('torch', 1)]['speedup_vs_torch_whole'] == 1.0
    assert cases[('onnxruntime', 4)]['whole_path']['median_ms'] > 0
    assert 'x torch' in capsys.readouterr().out
