"""The frame branch: Real-NVP maths, training, resuming, calibration, the detector."""

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

import csv
import math

from anomaly_perception import training as common
from anomaly_perception.branches.frame.detector import FrameAnomalyDetector
from anomaly_perception.branches.frame.detector import load_frame_model
from anomaly_perception.branches.frame.evaluate import evaluate_frame
from anomaly_perception.branches.frame.model import FrameDensityModel
from anomaly_perception.branches.frame.realnvp import AffineCoupling
from anomaly_perception.branches.frame.realnvp import odds_mask
from anomaly_perception.branches.frame.realnvp import RealNVP
from anomaly_perception.branches.frame.train import AutoencoderConfig
from anomaly_perception.branches.frame.train import density_scores
from anomaly_perception.branches.frame.train import DensityConfig
from anomaly_perception.branches.frame.train import load_density
from anomaly_perception.branches.frame.train import select_exposed
from anomaly_perception.branches.frame.train import train_autoencoder
from anomaly_perception.branches.frame.train import train_density
from anomaly_perception.branches.frame.train_model import FrameTrainingConfig
from anomaly_perception.branches.frame.train_model import train_frame_model
from anomaly_perception.data.hazards import DatasetError
from anomaly_perception.data.hazards import HazardsDataset
from anomaly_perception.data.synthetic.dataset import write_dataset
from anomaly_perception.runtime.backends import TorchBackend
from anomaly_perception.runtime.manifest import ModelError
from anomaly_perception.runtime.preprocess import ImageInputError
from anomaly_perception.scoring.calibration import EmpiricalCalibration
from anomaly_perception.training import TrainingError
import cv2
import numpy as np
import pytest
import torch


# --- Real-NVP ---------------------------------------------------------------------------------


def test_coupling_and_flow_inverse_reconstruct_the_input():
    torch.manual_seed(0)
    x = torch.randn(16, 10)
    layer = AffineCoupling(10, odds_mask(10), hidden=12)
    y, _ = layer(x)
    torch.testing.assert_close(layer.inverse(y), x, atol=1e-5, rtol=1e-5)
    flow = RealNVP(10, n_couplings=4, hidden=12)
    z, _ = flow(x)
    torch.testing.assert_close(flow.inverse(z), x, atol=1e-5, rtol=1e-5)
    # The "odds" mask alternates: each coupling transforms the other half.
    masks = [c.mask for c in flow.couplings]
    assert torch.equal(masks[0], 1 - masks[1]) and torch.equal(masks[0], masks[2])


def test_log_determinant_matches_the_autograd_jacobian():
    torch.manual_seed(1)
    flow = RealNVP(6, n_couplings=4, hidden=8).double()
    x = torch.randn(3, 6, dtype=torch.float64)
    _, logdet = flow(x)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], x[i])
        sign, logabs = torch.linalg.slogdet(jac)
        assert float(sign) > 0
        assert float(logabs) == pytest.approx(float(logdet[i].detach()), abs=1e-9)


def test_nll_is_prior_term_plus_log_determinant():
    torch.manual_seed(2)
    flow = RealNVP(8, n_couplings=4, hidden=16)
    x = torch.randn(5, 8)
    y, logdet = flow(x)
    prior = torch.distributions.MultivariateNormal(torch.zeros(8), torch.eye(8))
    torch.testing.assert_close(flow.nll(x), -(prior.log_prob(y) + logdet), atol=1e-4,
                               rtol=1e-5)
    assert float(flow.prior_nll(torch.zeros(1, 8))) == pytest.approx(4 * math.log(2 * math.pi))


def _toy_embeddings(seed=0, dim=8):
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(300, dim)).astype(np.float32)
    val = rng.normal(size=(100, dim)).astype(np.float32)
    anomalies = (rng.normal(size=(40, dim)) * 0.5 + 1.2).astype(np.float32)
    return normal, val, anomalies


def test_outlier_exposure_lowers_normal_nll_and_pushes_anomalies_up(tmp_path):
    normal, val, anomalies = _toy_embeddings()
    config = DensityConfig(n_couplings=4, hidden=32, epochs=40, batch_size=64, anomaly_batch=32,
                           gamma=10.0, seed=0)
    train_density(normal, val, tmp_path / 'oe', config, anomalies, show_progress=False)
    normalizer, flow = load_density(tmp_path / 'oe')
    untrained = RealNVP(8, 4, 32)
    with torch.no_grad():
        before = float((untrained.nll(normalizer(torch.from_numpy(val)))
                        + normalizer.log_scale).mean())
    after_normal = density_scores(normalizer, flow, val).mean()
    after_anomaly = density_scores(normalizer, flow, anomalies).mean()
    assert after_normal < before
    # The margin loss pushes exposed anomalies well above the normals.
    assert after_anomaly - after_normal > 5.0
    plain = DensityConfig(n_couplings=4, hidden=32, epochs=40, batch_size=64, oe=False, seed=0)
    train_density(normal, val, tmp_path / 'plain', plain, show_progress=False)
    gap_plain = (density_scores(*load_density(tmp_path / 'plain'), anomalies).mean()
                 - density_scores(*load_density(tmp_path / 'plain'), val).mean())
    assert after_anomaly - after_normal > gap_plain


class _Interrupt(Exception):
    pass


def _interrupting_progress(after):
    real = common.progress

    def fake(total, desc, enabled=True):
        bar = real(total, desc, False)
        update = bar.update
        calls = {'n': 0}

        def counted(n=1):
            update(n)
            if n:
                calls['n'] += 1
                if calls['n'] == after:
                    raise _Interrupt
        bar.update = counted
        return bar
    return fake


def test_density_training_resumes_identically(tmp_path, monkeypatch):
    normal, val, anomalies = _toy_embeddings(1)
    config = DensityConfig(hidden=16, epochs=6, batch_size=64, anomaly_batch=16, gamma=5.0)
    train_density(normal, val, tmp_path / 'straight', config, anomalies, show_progress=False)
    import anomaly_perception.branches.frame.train as frame_module
    monkeypatch.setattr(frame_module, 'progress', _interrupting_progress(3))
    with pytest.raises(_Interrupt):
        train_density(normal, val, tmp_path / 'resumed', config, anomalies)
    monkeypatch.undo()
    train_density(normal, val, tmp_path / 'resumed', config, anomalies, show_progress=False)
    a = torch.load(tmp_path / 'straight' / 'density.pt', weights_only=False)
    b = torch.load(tmp_path / 'resumed' / 'density.pt', weights_only=False)
    for key in a['flow']:
        assert torch.equal(a['flow'][key], b['flow'][key]), key


def test_autoencoder_training_resumes_identically(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (24, 64, 64, 3), dtype=np.uint8)
    config = AutoencoderConfig(width=4, epochs=4, batch_size=8)
    train_autoencoder(images[:16], images[16:], tmp_path / 'straight', config,
                      show_progress=False)
    import anomaly_perception.branches.frame.train as frame_module
    monkeypatch.setattr(frame_module, 'progress', _interrupting_progress(2))
    with pytest.raises(_Interrupt):
        train_autoencoder(images[:16], images[16:], tmp_path / 'resumed', config)
    monkeypatch.undo()
    train_autoencoder(images[:16], images[16:], tmp_path / 'resumed', config,
                      show_progress=False)
    a = torch.load(tmp_path / 'straight' / 'checkpoint.pt', weights_only=False)['model']
    b = torch.load(tmp_path / 'resumed' / 'checkpoint.pt', weights_only=False)['model']
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_training_refuses_data_it_cannot_use(tmp_path):
    normal, val, anomalies = _toy_embeddings()
    with pytest.raises(TrainingError, match='needs normals'):
        train_density(normal[:0], val, tmp_path / 'a', DensityConfig(epochs=1, oe=False))
    with pytest.raises(TrainingError, match='no validation set'):
        train_density(normal, val[:0], tmp_path / 'b', DensityConfig(epochs=1, oe=False))
    with pytest.raises(TrainingError, match='needs exposed anomalies'):
        train_density(normal, val, tmp_path / 'c', DensityConfig(epochs=1, oe=True), None)
    with pytest.raises(TrainingError, match='No normal training frames'):
        train_autoencoder(np.zeros((0, 64, 64, 3), np.uint8), np.zeros((2, 64, 64, 3), np.uint8),
                          tmp_path / 'd', AutoencoderConfig(epochs=1, width=4))


# --- calibration --------------------------------------------------------------------------------


def test_calibration_is_monotone_and_uniform_on_its_normals():
    rng = np.random.default_rng(3)
    normals = rng.gamma(2.0, 3.0, 5000)
    cal = EmpiricalCalibration.fit(normals)
    grid = np.linspace(-5, 60, 1000)
    probs = cal.probability(grid)
    assert np.all(np.diff(probs) >= 0) and probs[0] == 0 and probs[-1] == 1
    p = np.sort(cal.probability(normals))
    uniform = (np.arange(p.size) + 0.5) / p.size
    assert np.max(np.abs(p - uniform)) < 0.01
    # A threshold for 5% false positives flags about 5% of fresh normal samples.
    fresh = rng.gamma(2.0, 3.0, 20000)
    assert np.mean(fresh > cal.threshold_for_fpr(0.05)) == pytest.approx(0.05, abs=0.01)
    again = EmpiricalCalibration.from_dict(cal.to_dict())
    np.testing.assert_array_equal(again.probability(grid), probs)
    assert np.isnan(cal.probability(np.nan))


# --- the detector -------------------------------------------------------------------------------


def _tiny_detector(seed=0):
    torch.manual_seed(seed)
    model = FrameDensityModel.build(width=4, embedding_dim=8, input_size=32, n_couplings=2,
                                    hidden=8)
    manifest = {'name': 'tiny', 'preprocessing': {'input_size': 32},
                'calibration': EmpiricalCalibration.fit(np.arange(100.0)).to_dict(),
                'threshold': {'target_fpr': 0.1}}
    return FrameAnomalyDetector(TorchBackend(model), manifest)


def test_detector_single_and_batched_frames_give_the_same_scores():
    det = _tiny_detector()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (5, 90, 160, 3), dtype=np.uint8)
    batch = det.score(frames)
    for i in range(5):
        single = det.score(frames[i])
        assert single.raw[0] == pytest.approx(batch.raw[i], rel=1e-5, abs=1e-4)
    as_list = det.score([frames[0], frames[1][:60, :70]])
    assert len(as_list) == 2
    bgr = det.score(frames[:, :, :, ::-1].copy(), channel_order='bgr')
    np.testing.assert_allclose(bgr.raw, batch.raw, rtol=1e-6)
    assert np.all((batch.probability >= 0) & (batch.probability <= 1))


@pytest.mark.parametrize('images,match', [
    (np.zeros((20, 20, 3), np.float32), 'must be uint8'),
    (np.zeros((20, 20), np.uint8), r'\[H, W, 3\] or \[N, H, W, 3\]'),
    (np.zeros((20, 20, 4), np.uint8), r'shape \[H, W, 3\]'),
    (np.zeros((0, 20, 20, 3), np.uint8), 'empty batch'),
    ([], 'empty batch'),
])
def test_detector_rejects_bad_images(images, match):
    with pytest.raises(ImageInputError, match=match):
        _tiny_detector().score(images)


def test_nan_embeddings_are_unscorable_never_normal(monkeypatch):
    det = _tiny_detector()
    monkeypatch.setattr(det.backend.module.encoder, 'forward',
                        lambda x: torch.full((x.shape[0], 8), float('nan')))
    scores = det.score(np.zeros((2, 32, 32, 3), np.uint8))
    assert not scores.scorable.any()
    assert np.isnan(scores.raw).all() and np.isnan(scores.probability).all()
    assert scores.flag.all()


# --- data, end to end ------------------------------------------------------------------------


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp('frame') / 'data'
    write_dataset(out, preset='tiny', image_size=64, seed=5, progress=False)
    return out


def _write_layout(root, rows, files):
    (root / 'metadata').mkdir(parents=True)
    for split, name in files:
        (root / split).mkdir(exist_ok=True)
        cv2.imwrite(str(root / split / name), np.full((8, 8, 3), 100, np.uint8))
    with open(root / 'metadata' / 'frames_labels.csv', 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=['filename', 'split', 'label', 'label_name'])
        writer.writeheader()
        writer.writerows(rows)


def test_loader_keys_labels_by_filename(tmp_path):
    files = [('test_set', 'b.jpg'), ('test_set', 'a.jpg'), ('train_set', 'c.jpg')]
    rows = [{'filename': 'c.jpg', 'split': 'train_set', 'label': 0, 'label_name': 'normal'},
            {'filename': 'a.jpg', 'split': 'test_set', 'label': 7, 'label_name': 'human'},
            {'filename': 'b.jpg', 'split': 'test_set', 'label': 0, 'label_name': 'normal'}]
    _write_layout(tmp_path / 'ok', rows, files)
    data = HazardsDataset(tmp_path / 'ok')
    labels = {r.filename: r.label for r in data.records('test_set')}
    assert labels == {'a.jpg': 7, 'b.jpg': 0}
    images = data.load_images(data.records('test_set'), size=4)
    assert images.shape == (2, 4, 4, 3) and images.dtype == np.uint8


def test_loader_rejects_a_csv_that_disagrees_with_the_folders(tmp_path):
    row = {'filename': 'a.jpg', 'split': 'test_set', 'label': 0, 'label_name': 'normal'}
    _write_layout(tmp_path / 'missing', [row, {**row, 'filename': 'gone.jpg'}],
                  [('test_set', 'a.jpg')])
    with pytest.raises(DatasetError, match="'gone.jpg' is not in test_set/"):
        HazardsDataset(tmp_path / 'missing')
    _write_layout(tmp_path / 'extra', [row], [('test_set', 'a.jpg'), ('test_set', 'b.jpg')])
    with pytest.raises(DatasetError, match="1 image.s. in test_set/ have no row.*'b.jpg'"):
        HazardsDataset(tmp_path / 'extra')


def test_exposure_selection_spreads_over_types(tiny_data):
    data = HazardsDataset(tiny_data)
    outliers = data.records('outliers_set')
    chosen = select_exposed(outliers, 8, seed=0)
    assert len(chosen) == 8 and len({r.label_name for r in chosen}) == 8
    assert select_exposed(outliers, 8, seed=0) == chosen
    assert len(select_exposed(outliers, 'all', seed=0)) == len([r for r in outliers
                                                                if r.is_anomaly])
    with pytest.raises(TrainingError, match='only'):
        select_exposed(outliers, 10_000, seed=0)


@pytest.fixture(scope='module')
def tiny_model(tiny_data, tmp_path_factory):
    """Train a tiny frame model once (two epochs each step) on the tiny dataset."""
    root = tmp_path_factory.mktemp('model')
    config = FrameTrainingConfig(
        autoencoder=AutoencoderConfig(width=4, epochs=2, batch_size=16),
        density=DensityConfig(hidden=16, epochs=3, batch_size=32, anomaly_batch=8),
        target_fpr=0.1)
    manifest = train_frame_model(tiny_data, root / 'model', root / 'work', config,
                                 cache_dir=root / 'cache', show_progress=False)
    return root / 'model', manifest, root / 'cache'


def test_train_frame_chain_writes_a_verified_model(tiny_data, tiny_model, tmp_path):
    model_dir, manifest, cache = tiny_model
    assert manifest['branch'] == 'frame'
    assert manifest['threshold']['target_fpr'] == 0.1
    assert manifest['validation']['n_anomalous'] > 0
    assert set(manifest['files']) == {'frame_model.pt'}
    det = FrameAnomalyDetector.from_model_dir(model_dir)
    s = det.score(np.zeros((100, 200, 3), np.uint8))
    assert s.scorable[0]
    report = evaluate_frame(model_dir, tiny_data, tmp_path / 'report', cache_dir=cache,
                            show_progress=False)
    assert 0 <= report['auroc'] <= 1
    assert len(report['per_type_auroc']) == 22
    for name in ('report.json', 'roc.png', 'pr.png', 'histogram.png'):
        assert (tmp_path / 'report' / name).stat().st_size > 0


def test_corrupt_model_file_is_named(tiny_model, tmp_path):
    import shutil
    copy = tmp_path / 'model'
    shutil.copytree(tiny_model[0], copy)
    weights = copy / 'frame_model.pt'
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match='frame_model.pt.*sha256'):
        load_frame_model(copy)
    (copy / 'frame_model.pt').unlink()
    with pytest.raises(ModelError, match='frame_model.pt.*missing'):
        load_frame_model(copy)
    with pytest.raises(ModelError, match='not a model directory'):
        load_frame_model(tmp_path)


def test_score_command_prints_one_row_per_image(tiny_model, tmp_path, capsys):
    from anomaly_perception.cli import main
    for i in range(3):
        cv2.imwrite(str(tmp_path / f'frame{i}.jpg'), np.full((90, 160, 3), 40 * i, np.uint8))
    assert main(['score', str(tmp_path), '--model', str(tiny_model[0]), '--csv',
                 str(tmp_path / 'scores.csv')]) == 0
    out = capsys.readouterr().out
    assert out.count('frame') >= 3
    rows = list(csv.DictReader(open(tmp_path / 'scores.csv')))
    assert len(rows) == 3 and all(0 <= float(r['probability']) <= 1 for r in rows)


def test_per_type_auroc_compares_with_normals_of_the_same_environment():
    from anomaly_perception.metrics.binary import per_type_auroc
    labels = np.array([0, 0, 0, 0, 21, 21])
    names = np.array(['normal'] * 4 + ['roots'] * 2)
    envs = np.array(['corridor', 'corridor', 'tunnel', 'tunnel', 'tunnel', 'tunnel'])
    # Corridor normals score high, tunnel normals low, roots in between.
    scores = np.array([9.0, 8.0, 1.0, 2.0, 5.0, 6.0])
    assert per_type_auroc(labels, names, scores)['roots'] == 0.5
    assert per_type_auroc(labels, names, scores, envs)['roots'] == 1.0


def test_train_frame_without_validation_set_is_refused(tiny_data, tmp_path):
    import shutil
    copy = tmp_path / 'data'
    shutil.copytree(tiny_data, copy)
    rows = list(csv.DictReader(open(copy / 'metadata' / 'frames_labels.csv')))
    shutil.rmtree(copy / 'validation_set')
    kept = [r for r in rows if r['split'] != 'validation_set']
    with open(copy / 'metadata' / 'frames_labels.csv', 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    with pytest.raises(TrainingError, match='no validation_set'):
        train_frame_model(copy, tmp_path / 'm', tmp_path / 'w', cache_dir=tmp_path / 'c',
                          show_progress=False)


def test_frame_baselines_compare_both_protocols(tiny_data, tmp_path):
    from anomaly_perception.branches.frame.experiments import ClassifierConfig
    from anomaly_perception.branches.frame.experiments import run_protocols
    seen = tmp_path / 'seen'
    write_dataset(seen, preset='tiny', image_size=64, seed=5, progress=False,
                  test_scenes='seen')
    configs = (AutoencoderConfig(width=4, epochs=2, batch_size=16),
               DensityConfig(hidden=16, epochs=2, batch_size=32, anomaly_batch=8),
               ClassifierConfig(epochs=2))
    out = tmp_path / 'out'
    both = run_protocols([tiny_data, seen], out, (0, 1), *configs, exposures=(0, 2, 'all'),
                         cache_dir=tmp_path / 'cache', show_progress=False)
    assert list(both) == ['unseen', 'seen']
    for protocol, results in both.items():
        assert results['protocol'] == protocol
        assert (out / protocol / 'table2.md').read_text().startswith(f'Protocol: {protocol}')
        for ordering in results['orderings']:
            better, worse = ordering['better'], ordering['worse']
            wins = sum(s['auroc'][better] > s['auroc'][worse] for s in results['per_seed'])
            assert ordering['seeds_holding'] == wins and ordering['seeds'] == 2
    # The two protocols test different frames (same sequences, other scenes).
    assert both['seen']['table2'] != both['unseen']['table2']
    text = (out / 'protocols.md').read_text()
    assert '| method | unseen scenes | seen scenes | paper |' in text
    assert 'RNVP+OE > RNVP' in text and 'BCLASS > AE-MSE' in text
    for name in ('protocols.json', 'table2_protocols.png', 'fig7_protocols.png'):
        assert (out / name).stat().st_size > 0
    with pytest.raises(TrainingError, match='different protocol'):
        run_protocols([seen, seen], tmp_path / 'again', (0,), *configs, exposures=(0, 'all'),
                      cache_dir=tmp_path / 'cache', show_progress=False)
