"""Pixel branch pieces: ERFNet, the losses of paper 002, per-pixel scores, calibration."""

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

import math

from anomaly_perception.branches.pixel.losses import class_weights
from anomaly_perception.branches.pixel.losses import cross_entropy
from anomaly_perception.branches.pixel.losses import focal_loss
from anomaly_perception.branches.pixel.losses import isomax_plus_loss
from anomaly_perception.branches.pixel.losses import logitnorm
from anomaly_perception.branches.pixel.losses import logitnorm_loss
from anomaly_perception.branches.pixel.losses import PixelLoss
from anomaly_perception.models.erfnet import count_parameters
from anomaly_perception.models.erfnet import ERFNet
from anomaly_perception.models.erfnet import IsoMaxPlusHead
from anomaly_perception.scoring.pixel import fit_pixel_calibration
from anomaly_perception.scoring.pixel import pixel_score
import cv2
import numpy as np
import pytest
import torch


# --- ERFNet ---------------------------------------------------------------------------------


def test_erfnet_has_the_published_parameter_count():
    model = ERFNet(20)
    assert count_parameters(model) == 2_066_836
    assert count_parameters(model.encoder) == 1_874_044 + 2_580   # + the encoder-only head
    assert count_parameters(model.decoder) == 190_212
    # The class count changes only the two heads.
    assert count_parameters(ERFNet(5)) == 2_066_836 - 15 * (128 + 1) - 15 * (16 * 4 + 1)


@pytest.mark.parametrize('height, width', [(360, 640), (512, 512)])
def test_erfnet_shapes(height, width):
    model = ERFNet(7).eval()
    x = torch.rand(2, 3, height, width)
    with torch.no_grad():
        logits, features = model(x, return_features=True)
        assert logits.shape == (2, 7, height, width)
        assert features.shape == (2, 16, height // 2, width // 2)
        assert model(x, encoder_only=True).shape == (2, 7, height // 8, width // 8)
        iso = ERFNet(7, head='isomax').eval()
        assert iso(x).shape == (2, 7, height, width)
        assert (iso(x) <= 0).all()   # negative distances
    with pytest.raises(ValueError, match='multiples of 8'):
        model(torch.rand(1, 3, 36, 64))


def test_erfnet_dropout_only_in_training():
    model = ERFNet(3)
    x = torch.rand(1, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    a = model(x)
    b = model(x)
    assert not torch.equal(a, b)


# --- losses ---------------------------------------------------------------------------------


def _pixels(rows):
    """Logits for pixels in a row: ``rows`` is a list of per-pixel class logit lists."""
    return torch.tensor(rows, dtype=torch.float32).T[None, :, None, :]   # [1, C, 1, P]


def test_class_weights_follow_enet_from_counted_pixels():
    labels = [np.array([[0, 0, 0, 1], [255, 255, 1, 0]]), torch.tensor([[0, 255]])]
    w = class_weights(labels, 3)
    p = np.array([5, 2, 0]) / 7
    np.testing.assert_allclose(w.numpy(), 1 / np.log(1.02 + p), rtol=1e-6)
    assert w[2] == w.max()          # an absent class weighs most


def test_cross_entropy_weighted_and_ignoring_void():
    logits = _pixels([[2.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    target = torch.tensor([[[0, 1, 255]]])
    w = torch.tensor([2.0, 0.5])
    lp0 = math.log(math.exp(2) / (math.exp(2) + 1))
    lp1 = math.log(math.exp(1) / (math.exp(1) + 1))
    expected = -(2.0 * lp0 + 0.5 * lp1) / 2.5
    assert cross_entropy(logits, target, w).item() == pytest.approx(expected, rel=1e-6)


def test_focal_loss_is_per_pixel_and_gamma_zero_is_cross_entropy():
    logits = _pixels([[2.0, 0.0], [0.0, 0.5], [1.0, 1.0]])
    target = torch.tensor([[[0, 0, 255]]])
    p = [math.exp(2) / (math.exp(2) + 1), 1 / (1 + math.exp(0.5))]
    per_pixel = [-(1 - q) ** 2 * math.log(q) for q in p]
    assert focal_loss(logits, target).item() == pytest.approx(np.mean(per_pixel), rel=1e-5)
    assert focal_loss(logits, target, gamma=3.0).item() == pytest.approx(
        np.mean([-(1 - q) ** 3 * math.log(q) for q in p]), rel=1e-5)
    assert focal_loss(logits, target, gamma=0.0).item() == pytest.approx(
        cross_entropy(logits, target).item(), rel=1e-6)
    # Not the scalar variant (1 - exp(-mean CE))^gamma * CE.
    ce = cross_entropy(logits, target).item()
    assert focal_loss(logits, target).item() != pytest.approx((1 - math.exp(-ce)) ** 2 * ce,
                                                              rel=1e-3)
    w = torch.tensor([3.0, 1.0])
    assert focal_loss(logits, target, weight=w).item() == pytest.approx(
        np.mean(per_pixel), rel=1e-5)   # both counted pixels are class 0: same weight


def test_isomax_plus_head_gives_negative_scaled_distances_and_trains_its_prototypes():
    head = IsoMaxPlusHead(2, 2)
    with torch.no_grad():
        head.prototypes.copy_(torch.tensor([[0.0, 3.0], [2.0, 0.0]]))
        head.distance_scale.fill_(-2.0)     # |s| is used
    features = torch.tensor([[1.0, 0.0]]).T[None, :, None, :]      # one pixel, f = (1, 0)
    logits = head(features)
    assert logits[0, :, 0, 0].tolist() == pytest.approx([-2 * math.sqrt(2), 0.0], abs=1e-5)
    # EIML: -log softmax(10 * logits)_y, gradients reach the prototypes and the scale.
    target = torch.tensor([[[0]]])
    loss = isomax_plus_loss(logits, target)
    z = 10 * np.array([-2 * math.sqrt(2), 0.0])
    assert loss.item() == pytest.approx(-(z[0] - np.log(np.exp(z).sum())), rel=1e-4)
    loss.backward()
    assert head.prototypes.grad is not None and head.prototypes.grad.abs().sum() > 0
    assert head.distance_scale.grad is not None and head.distance_scale.grad.abs() > 0
    # Inside ERFNet the prototypes are model parameters: an optimiser over the model has them.
    model = ERFNet(4, head='isomax')
    names = {n for n, _ in model.named_parameters()}
    assert {'decoder.output.1.prototypes', 'decoder.output.1.distance_scale'} <= names


def test_logitnorm_normalises_over_the_class_dimension():
    logits = torch.tensor([[3.0, 0.0, 1.0], [4.0, 2.0, 1.0]])[None, :, None, :]   # [1, 2, 1, 3]
    normed = logitnorm(logits, tau=0.5)
    norms = torch.linalg.vector_norm(normed, dim=1)
    assert torch.allclose(norms, torch.full_like(norms, 2.0), atol=1e-5)   # 1 / tau per pixel
    first = logits[0, :, 0, 0]
    assert normed[0, :, 0, 0].tolist() == pytest.approx((first / (0.5 * 5.0)).tolist())
    # Normalising over the image width instead (dim=-1) would give something else.
    wrong = logits / (0.5 * torch.linalg.vector_norm(logits, dim=-1, keepdim=True))
    assert not torch.allclose(normed, wrong)
    target = torch.tensor([[[0, 1, 255]]])
    z = np.array([3.0, 4.0]) / 2.5
    assert logitnorm_loss(logits[..., :1], target[..., :1], tau=0.5).item() == pytest.approx(
        -(z[0] - np.log(np.exp(z).sum())), rel=1e-5)


def test_pixel_loss_combinations_and_weights():
    torch.manual_seed(0)
    logits = -torch.rand(2, 4, 3, 5)
    target = torch.randint(0, 4, (2, 3, 5))
    target[0, 0, 0] = 255
    combo = PixelLoss('eiml+focal', weights={'eiml': 0.5, 'focal': 2.0}, gamma=2.0)
    expected = 0.5 * isomax_plus_loss(logits, target) + 2.0 * focal_loss(logits, target)
    assert combo(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    assert combo.needs_isomax and not PixelLoss('logitnorm+ce').needs_isomax
    ln_ce = PixelLoss('logitnorm+ce', tau=0.04)
    assert ln_ce(logits, target).item() == pytest.approx(
        (logitnorm_loss(logits, target, 0.04) + cross_entropy(logits, target)).item(), rel=1e-6)
    for bad in ('dice', 'ce+ce', ''):
        with pytest.raises(ValueError, match='Unknown pixel loss'):
            PixelLoss(bad)
    with pytest.raises(ValueError, match='not in'):
        PixelLoss('ce', weights={'focal': 1.0})


# --- scores ---------------------------------------------------------------------------------


def test_pixel_scores_on_hand_made_logits():
    logits = _pixels([[2.0, 0.0, 0.0], [1.0, 1.0, 1.0]])    # 3 classes, 2 pixels
    p0 = np.exp([2.0, 0, 0]) / np.exp([2.0, 0, 0]).sum()
    assert pixel_score('msp', logits)[0, 0].tolist() == pytest.approx([1 - p0.max(), 2 / 3],
                                                                      rel=1e-5)
    pt = np.exp([4.0, 0, 0]) / np.exp([4.0, 0, 0]).sum()     # t = 0.5 doubles the logits
    assert pixel_score('msp_t0.5', logits)[0, 0, 0].item() == pytest.approx(1 - pt.max(),
                                                                            rel=1e-5)
    assert pixel_score('maxlogit', logits)[0, 0].tolist() == [-2.0, -1.0]
    entropy = -(p0 * np.log(p0)).sum()
    assert pixel_score('maxentropy', logits)[0, 0].tolist() == pytest.approx(
        [entropy, math.log(3)], rel=1e-5)
    assert pixel_score('void', logits, void_index=0)[0, 0].tolist() == pytest.approx(
        [p0[0], 1 / 3], rel=1e-5)
    # The uniform pixel is the more anomalous one under every score but void.
    for name in ('msp', 'msp_t0.75', 'msp_t1.1', 'maxlogit', 'maxentropy'):
        s = pixel_score(name, logits)[0, 0]
        assert s[1] > s[0], name
    with pytest.raises(ValueError, match='void class'):
        pixel_score('void', logits)
    with pytest.raises(ValueError, match='Unknown pixel score'):
        pixel_score('energy', logits)
    with pytest.raises(ValueError, match='Bad temperature'):
        pixel_score('msp_t0', logits)


def test_pixel_calibration_uses_normal_valid_pixels_only():
    rng = np.random.default_rng(0)
    maps = [rng.random((20, 30)) for _ in range(4)]
    anomaly = [np.zeros((20, 30), bool) for _ in range(4)]
    for m, a in zip(maps, anomaly):
        a[:5] = True
        m[:5] = 100.0          # anomaly pixels score high: must not enter the calibration
    valid = [np.ones((20, 30), bool) for _ in range(4)]
    valid[0][:, :10] = False
    maps[0][:, :10] = -100.0   # outside the image
    cal = fit_pixel_calibration(maps, anomaly, valid, max_pixels=1000, seed=1)
    assert cal.probability(np.array([0.5]))[0] == pytest.approx(0.5, abs=0.06)
    assert cal.threshold_for_fpr(0.05) < 1.0
    with pytest.raises(ValueError, match='No normal pixel'):
        fit_pixel_calibration(maps[:1], [np.ones((20, 30), bool)])


# --- training -------------------------------------------------------------------------------


def _tiny_config(**changes):
    from anomaly_perception.branches.pixel.train import PixelTrainingConfig
    base = {'input_shape': (32, 32), 'encoder_epochs': 1, 'decoder_epochs': 2, 'batch_size': 16}
    base.update(changes)
    return PixelTrainingConfig(**base)


class _Stop(Exception):
    pass


def test_pixel_training_writes_a_model_that_loads_and_resumes_identically(
        tiny_pixel_data, tmp_path, monkeypatch):
    import anomaly_perception.branches.pixel.train as pixel_module
    from anomaly_perception.runtime.network import load_network
    config = _tiny_config(loss='eiml+focal', loss_weights={'eiml': 0.5})
    cache = tmp_path / 'cache'
    manifest = pixel_module.train_pixel_model(tiny_pixel_data, tmp_path / 'model',
                                              tmp_path / 'work', config, cache_dir=cache,
                                              show_progress=False)
    assert manifest['branch'] == 'pixel' and manifest['architecture']['head'] == 'isomax'
    assert manifest['classes'][0] == 'floor' and manifest['preprocessing']['input_shape'] == [
        32, 32]
    v = manifest['metrics']['validation']
    assert 0.0 <= v['miou'] <= 1.0 and 0.0 <= v['pixel_auprc'] <= 1.0
    stages = [(h['stage'], h['epoch']) for h in manifest['metrics']['history']]
    assert stages == [('encoder', 1), ('decoder', 1), ('decoder', 2)]
    module, loaded = load_network(tmp_path / 'model', branch='pixel')
    images = torch.randint(0, 255, (2, 32, 32, 3), dtype=torch.uint8)
    with torch.no_grad():
        anomaly, classes = module(images)
    assert anomaly.shape == (2, 32, 32) and anomaly.dtype == torch.float32
    assert classes.dtype == torch.uint8 and int(classes.max()) < len(loaded['classes'])
    # The exported graph gives the same maps (ONNX Runtime against PyTorch).
    import onnxruntime as ort

    from anomaly_perception.runtime.export import export_model
    entry = export_model(tmp_path / 'model')
    assert [o['name'] for o in entry['outputs']] == ['anomaly', 'classes']
    assert entry['outputs'][0]['shape'] == ['batch', 32, 32]
    session = ort.InferenceSession(str(tmp_path / 'model' / entry['file']),
                                   providers=['CPUExecutionProvider'])
    ort_anomaly, ort_classes = session.run(None, {'images': images.numpy()})
    np.testing.assert_allclose(ort_anomaly, anomaly.numpy(), rtol=1e-4, atol=1e-5)
    assert (ort_classes == classes.numpy()).mean() > 0.999
    # Interrupted in the second decoder epoch, then started again: the same weights.
    real, calls = pixel_module._augment, {'n': 0}

    def interrupting(*args):
        calls['n'] += 1
        if calls['n'] == 12:
            raise _Stop
        return real(*args)
    monkeypatch.setattr(pixel_module, '_augment', interrupting)
    with pytest.raises(_Stop):
        pixel_module.train_pixel_model(tiny_pixel_data, tmp_path / 'model2', tmp_path / 'work2',
                                       config, cache_dir=cache, show_progress=False)
    monkeypatch.undo()
    assert not (tmp_path / 'model2').exists()
    pixel_module.train_pixel_model(tiny_pixel_data, tmp_path / 'model2', tmp_path / 'work2',
                                   config, cache_dir=cache, show_progress=False)
    a = torch.load(tmp_path / 'work' / 'checkpoint.pt', weights_only=False)['model']
    b = torch.load(tmp_path / 'work2' / 'checkpoint.pt', weights_only=False)['model']
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_pixel_training_refuses_what_it_cannot_use(tiny_pixel_data, tmp_path, capsys):
    import shutil

    from anomaly_perception.branches.pixel.train import train_pixel_model
    from anomaly_perception.cli import main
    from anomaly_perception.training import TrainingError
    with pytest.raises(TrainingError, match='multiples of 8'):
        train_pixel_model(tiny_pixel_data, tmp_path / 'm', tmp_path / 'w',
                          _tiny_config(input_shape=(30, 32)), show_progress=False)
    copy = tmp_path / 'data'
    shutil.copytree(tiny_pixel_data, copy)
    from anomaly_perception.data.hazards import HazardsDataset
    stem = HazardsDataset(copy).records('train_set')[0].filename.rsplit('.', 1)[0]
    victim = copy / 'semantic' / f'{stem}.png'
    victim.unlink()
    with pytest.raises(TrainingError, match=f'{victim.name}.* is missing'):
        train_pixel_model(copy, tmp_path / 'm', tmp_path / 'w', _tiny_config(),
                          cache_dir=tmp_path / 'cache', show_progress=False)
    assert main(['train', 'pixel', '--data', str(tiny_pixel_data), '--out', str(tmp_path / 'x'),
                 '--loss', 'dice']) == 1
    assert "Unknown pixel loss 'dice'" in capsys.readouterr().err
    assert main(['train', 'pixel', '--data', str(tiny_pixel_data), '--out', str(tmp_path / 'x'),
                 '--score', 'void']) == 1
    assert "--score 'void'" in capsys.readouterr().err
    assert not (tmp_path / 'x').exists()


# --- the pipeline -----------------------------------------------------------------------------


@pytest.mark.parametrize('height, width', [(480, 640), (360, 640), (512, 512), (720, 1280),
                                           (400, 300), (96, 500)])
def test_every_pixel_of_any_camera_is_scored(tiny_pixel_model, height, width):
    from anomaly_perception.branches.pixel.detector import PixelAnomalySegmenter
    from anomaly_perception.runtime.preprocess import content_box
    seg = PixelAnomalySegmenter.from_model_dir(tiny_pixel_model)
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    result = seg.segment(image)[0]
    for name in ('anomaly', 'probability', 'mask', 'semantic'):
        assert getattr(result, name).shape == (height, width), name
    # No blind band: every pixel has a finite score, a class and a probability.
    assert np.isfinite(result.anomaly).all() and np.isfinite(result.probability).all()
    assert (result.semantic < 7).all()
    assert result.mask.tolist() == (result.anomaly > seg.threshold).tolist()
    assert ((result.probability >= 0) & (result.probability <= 1)).all()
    assert np.isfinite(result.frame_score) and 0 <= result.frame_probability <= 1
    # The map is the model's map over the frame's part of the input, resized.
    y0, x0, h, w = content_box(height, width, seg.input_shape)
    raw, _, _ = seg.infer(seg.preprocess(image))
    assert h == seg.input_shape[0] or w == seg.input_shape[1]
    # (bilinear, as the module says): the same values, not merely correlated ones, so a
    # shifted or rescaled map fails however smooth the model's map is.
    expected = cv2.resize(raw[0, y0:y0 + h, x0:x0 + w], (width, height),
                          interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(result.anomaly, expected, rtol=1e-5, atol=1e-6)
    # The same image as BGR gives the same maps; a batch gives one result each.
    bgr = seg.segment(np.ascontiguousarray(image[..., ::-1]), channel_order='bgr')[0]
    np.testing.assert_array_equal(bgr.anomaly, result.anomaly)
    assert len(seg.segment([image, image[:200, :300]])) == 2


def test_letterbox_keeps_the_whole_frame():
    from anomaly_perception.runtime.preprocess import content_box
    from anomaly_perception.runtime.preprocess import from_input
    from anomaly_perception.runtime.preprocess import letterbox
    assert content_box(480, 640, (144, 256)) == (0, 32, 144, 192)
    assert content_box(360, 640, (144, 256)) == (0, 0, 144, 256)
    assert content_box(720, 1280, (144, 256)) == (0, 0, 144, 256)
    assert content_box(512, 512, (144, 256)) == (0, 56, 144, 144)
    assert content_box(100, 1000, (144, 256)) == (59, 0, 26, 256)
    image = np.zeros((480, 640, 3), np.uint8)
    image[:, :320] = 200            # left half bright: it must stay the left half
    boxed = letterbox(image, (144, 256))
    assert boxed.shape == (144, 256, 3)
    assert (boxed[:, 32:128] == 200).all() and (boxed[:, 128:224] == 0).all()
    # The bands mirror the edge, a constant fill is for label maps.
    assert (boxed[:, :32] == 200).all() and (boxed[:, 224:] == 0).all()
    labels = letterbox(np.full((480, 640), 3, np.uint8), (144, 256), fill=255,
                       interp=cv2.INTER_NEAREST)
    assert (labels[:, :32] == 255).all() and (labels[:, 32:224] == 3).all()
    back = from_input(boxed[..., 0].astype(np.float32), (480, 640))
    assert back.shape == (480, 640) and back[:, :300].min() == 200 and back[:, 340:].max() == 0


def test_segmenter_onnxruntime_matches_torch(tiny_pixel_model):
    from anomaly_perception.branches.pixel.detector import PixelAnomalySegmenter
    image = np.random.default_rng(1).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    a = PixelAnomalySegmenter.from_model_dir(tiny_pixel_model, 'torch').segment(image)[0]
    b = PixelAnomalySegmenter.from_model_dir(tiny_pixel_model, 'onnxruntime').segment(image)[0]
    assert np.isfinite(a.anomaly).all()
    np.testing.assert_allclose(b.anomaly, a.anomaly, rtol=1e-4, atol=1e-5)
    assert (a.semantic == b.semantic).mean() > 0.999


def test_segmenter_refuses_bad_input_and_bad_models(tiny_pixel_model, tmp_path):
    import shutil

    import yaml

    from anomaly_perception.branches.pixel.detector import PixelAnomalySegmenter
    from anomaly_perception.runtime.manifest import ModelError
    from anomaly_perception.runtime.preprocess import ImageInputError
    seg = PixelAnomalySegmenter.from_model_dir(tiny_pixel_model)
    for bad, match in ((np.zeros((40, 40, 3), np.float32), 'uint8'),
                       (np.zeros((40, 40), np.uint8), '3'), ([], 'empty')):
        with pytest.raises(ImageInputError, match=match):
            seg.segment(bad)
    copy = tmp_path / 'm'
    shutil.copytree(tiny_pixel_model, copy)
    manifest = yaml.safe_load((copy / 'manifest.yaml').read_text())
    manifest['classes'] = manifest['classes'][:-1]
    (copy / 'manifest.yaml').write_text(yaml.safe_dump(manifest))
    with pytest.raises(ModelError, match='lists 6 classes but the network has 7'):
        PixelAnomalySegmenter.from_model_dir(copy)
    shutil.rmtree(copy)
    shutil.copytree(tiny_pixel_model, copy)
    data = bytearray((copy / 'pixel_model.pt').read_bytes())
    data[100] ^= 0xFF
    (copy / 'pixel_model.pt').write_bytes(bytes(data))
    with pytest.raises(ModelError, match='pixel_model.pt.*sha256'):
        PixelAnomalySegmenter.from_model_dir(copy)


def test_pixel_stream_messages_carry_the_header_and_the_maps(tiny_pixel_model):
    from anomaly_perception.branches.pixel.config import PixelNodeConfig
    from anomaly_perception.branches.pixel.messages import output_topics
    from anomaly_perception.branches.pixel.messages import OUTPUT_TYPES
    from anomaly_perception.branches.pixel.messages import PixelMessageBuilder
    from anomaly_perception.branches.pixel.stream import PixelStream
    from anomaly_perception.io.images import image_to_numpy
    from anomaly_perception.io.messages import RosbagsMessageFactory
    config = PixelNodeConfig(model_dir=str(tiny_pixel_model), backend='torch')
    stream = PixelStream.from_config(config)
    image = np.random.default_rng(2).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    frame = stream.process([123], [image])[0]
    factory = RosbagsMessageFactory()
    header = factory.header(1_700_000_000_123_000_000, 'robomaster/camera_optical_link')
    builder = PixelMessageBuilder.from_config(factory, config)
    plain = builder.outputs(header, frame)
    # No failure head in this model: no ~/failure_map (test_fsnet covers a model with one).
    assert frame.pixels.failure is None
    assert set(plain) == set(OUTPUT_TYPES) - {'overlay', 'failure_map'}
    msgs = builder.outputs(header, frame, overlay=True)
    assert set(msgs) == set(OUTPUT_TYPES) - {'failure_map'}
    assert set(OUTPUT_TYPES) <= set(output_topics('robomaster'))
    for key, msg in msgs.items():
        assert msg.header.stamp.sec == 1_700_000_000 and msg.header.stamp.nanosec == 123_000_000
        assert msg.header.frame_id == 'robomaster/camera_optical_link', key
    anomaly = image_to_numpy(msgs['anomaly_map'], output='passthrough')
    assert msgs['anomaly_map'].encoding == '32FC1' and anomaly.shape == (360, 640)
    np.testing.assert_array_equal(anomaly, frame.pixels.anomaly)
    mask = image_to_numpy(msgs['anomaly_mask'], output='passthrough')
    assert ((mask == 255) == frame.pixels.mask).all()
    semantic = image_to_numpy(msgs['semantic'], output='passthrough')
    np.testing.assert_array_equal(semantic, frame.pixels.semantic)
    assert image_to_numpy(msgs['overlay']).shape == (360, 640, 3)
    score = {h.class_id: h.score for h in msgs['score'].results}
    assert score['raw_score'] == pytest.approx(frame.pixels.frame_score)
    info = builder.label_info(header, stream.detector.classes)
    assert [c.class_name for c in info.class_map] == stream.detector.classes
    # A live threshold change moves the mask without reloading the model.
    stream.reconfigure(PixelNodeConfig(model_dir=str(tiny_pixel_model), backend='torch',
                                       target_fpr=0.3))
    looser = stream.process([124], [image])[0]
    assert looser.pixels.threshold < frame.pixels.threshold
    assert looser.pixels.mask.sum() >= frame.pixels.mask.sum()
