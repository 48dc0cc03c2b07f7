"""FSNet's failure head: logit maps, balanced loss, targets, shapes, training, ONNX."""

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
import shutil

from anomaly_perception.branches.pixel.fsnet import balanced_bce
from anomaly_perception.branches.pixel.fsnet import failure_targets
from anomaly_perception.branches.pixel.fsnet import FailureHead
from anomaly_perception.branches.pixel.fsnet import FailureHeadSpec
from anomaly_perception.branches.pixel.fsnet import logit_maps
import numpy as np
import pytest
import torch


def test_logit_maps_on_hand_made_logits():
    # Two pixels, three normal classes and a void channel (index 3), excluded from w2..w4.
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 0.0]], [[0.0, 5.0]], [[9.0, 9.0]]]])
    conv = torch.nn.Conv2d(4, 1, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0, 0.5, 0.0]).view(1, 4, 1, 1))
        conv.bias.fill_(0.25)
    maps = logit_maps(logits, conv, keep=[0, 1, 2])
    assert {k: v.shape for k, v in maps.items()} == {k: (1, 1, 1, 2) for k in maps}
    # Pixel 0: softmax of (2, 0, 0) over the normal classes.
    p = np.exp([2.0, 0.0, 0.0]) / np.exp([2.0, 0.0, 0.0]).sum()
    entropy = -(p * np.log(p)).sum()
    assert maps['w2'][0, 0, 0, 0].item() == pytest.approx(p.max(), rel=1e-6)
    assert maps['w3'][0, 0, 0, 0].item() == pytest.approx(1 / (1 + math.exp(-entropy)), rel=1e-6)
    # w4: the arg-max over normal classes, divided by K - 1 = 2 (void's 9 is ignored).
    assert maps['w4'].flatten().tolist() == [0.0, 1.0]
    # w1: the 1x1 convolution over every channel, void included.
    assert maps['w1'].flatten().tolist() == pytest.approx([2.0 + 0.25, 2.5 + 0.25])
    # A confident pixel has a lower entropy map than an uncertain one.
    flat = logit_maps(torch.zeros(1, 3, 1, 1), torch.nn.Conv2d(3, 1, 1))
    assert flat['w3'].item() == pytest.approx(1 / (1 + math.exp(-math.log(3))), rel=1e-6)
    assert flat['w2'].item() == pytest.approx(1 / 3)


def test_balanced_bce_by_hand_and_beta_weighs_the_rarer_class():
    z = torch.tensor([0.5, -1.0, 2.0, 0.0, 0.3], requires_grad=True)
    y = torch.tensor([1, 0, 0, 0, 0])
    valid = torch.tensor([True, True, True, True, False])
    loss = balanced_bce(z, y, valid)
    beta = 3.0      # 3 valid negatives / 1 positive; the invalid pixel counts nowhere

    def sig(v):
        return 1 / (1 + math.exp(-v))
    expected = -(beta * math.log(sig(0.5)) + math.log(1 - sig(-1.0)) +
                 math.log(1 - sig(2.0)) + math.log(1 - sig(0.0))) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # The gradient on the one positive is beta times a negative's at the same logit.
    z2 = torch.zeros(5, requires_grad=True)
    balanced_bce(z2, y, valid).backward()
    g = z2.grad
    assert g[4] == 0.0
    assert abs(g[0].item()) == pytest.approx(3.0 * abs(g[1].item()), rel=1e-6)
    assert g[0] < 0 < g[1]          # push the positive up, the negatives down
    # Without positives, beta is 1: plain BCE.
    none = balanced_bce(torch.zeros(3), torch.zeros(3))
    assert none.item() == pytest.approx(math.log(2), rel=1e-6)


def test_failure_targets():
    pred = np.array([[0, 1, 2, 1]])
    labels = np.array([[0, 2, 255, 255]])
    anomaly = np.array([[False, False, True, False]])
    failures, valid = failure_targets(pred, labels, anomaly)
    # right, wrong, anomaly (always a failure), void outside the image (not valid)
    assert failures.tolist() == [[False, True, True, False]]
    assert valid.tolist() == [[True, True, True, False]]


def test_head_shapes_at_640x360_and_the_ablations():
    from anomaly_perception.branches.pixel.fsnet import FSNet
    from anomaly_perception.models.erfnet import ERFNet
    net = ERFNet(8).eval()
    head = FailureHead(8, keep=list(range(7))).eval()
    x = torch.rand(1, 3, 360, 640)
    with torch.no_grad():
        logits, fail = FSNet(net, head)(x)
    assert logits.shape == (1, 8, 360, 640) and fail.shape == (1, 1, 360, 640)
    assert [e.conv1.in_channels for e in head.encoders] == [4, 4]      # x+w1, w1..w4
    spec = FailureHeadSpec()
    single = FailureHead(8, spec=spec.ablation('single'))
    assert [e.conv1.in_channels for e in single.encoders] == [7]
    no_x = FailureHead(8, spec=spec.ablation('-x'))
    assert [e.conv1.in_channels for e in no_x.encoders] == [1, 4]
    direct = FailureHead(8, spec=spec.ablation('direct'))
    assert [e.conv1.in_channels for e in direct.encoders] == [4]
    assert direct.fuse[0].in_channels == 8 * spec.resnet_width      # no S_E(x)
    no_se = FailureHead(8, spec=spec.ablation('-se'))
    assert no_se.fuse[0].in_channels == 2 * 8 * spec.resnet_width
    assert head.fuse[0].in_channels == 2 * 8 * spec.resnet_width + 128
    with pytest.raises(ValueError, match='unknown ablation'):
        spec.ablation('-w9')
    assert FailureHeadSpec.from_dict(spec.ablation('-w2').as_dict()).inputs == \
        ('x', 'w1', 'w3', 'w4', 'se')


def test_resnet18_weights_load_into_torchvisions_layout_only():
    from torchvision.models import resnet18
    state = resnet18().state_dict()
    head = FailureHead(4, spec=FailureHeadSpec(resnet_width=64))
    head.load_resnet18(state)
    enc1 = head.encoders[0]
    # x's three channels are the RGB filters; w1's is their mean.
    assert torch.equal(enc1.conv1.weight[:, :3], state['conv1.weight'])
    assert torch.allclose(enc1.conv1.weight[:, 3:], state['conv1.weight'].mean(1, keepdim=True))
    assert torch.equal(head.encoders[1].layer3[0].conv1.weight, state['layer3.0.conv1.weight'])
    with pytest.raises(ValueError, match='resnet_width 64'):
        FailureHead(4).load_resnet18(state)


def _tiny_config():
    from anomaly_perception.branches.pixel.train_failure import FailureTrainingConfig
    return FailureTrainingConfig(epochs=1, batch_size=16, train_every=2,
                                 head=FailureHeadSpec(resnet_width=4, width=16).as_dict())


def test_train_failure_resumes_writes_a_model_and_exports_with_parity(
        tiny_pixel_data, tiny_pixel_model, tiny_failure_model, tmp_path):
    from anomaly_perception.branches.pixel.train_failure import train_failure_model
    from anomaly_perception.runtime.manifest import load_manifest
    from anomaly_perception.runtime.network import load_network
    root, config = tiny_failure_model, _tiny_config()
    manifest = load_manifest(root / 'model')
    assert manifest['architecture']['type'] == 'erfnet_pixel_fsnet'
    m = manifest['metrics']
    assert 0.0 <= m['best_ap_err'] <= 1.0 and m['best_epoch'] == 1
    assert 0.0 <= m['miou_before'] <= 1.0 and len(m['history']) == 1
    # A second run with the same work directory resumes: nothing left to train.
    again = train_failure_model(tiny_pixel_model, tiny_pixel_data, tmp_path / 'model2',
                                root / 'work', config, cache_dir=root / 'cache',
                                show_progress=False)
    assert again['metrics']['history'] == m['history']
    # Other options on the same checkpoints: refused, naming the file.
    from anomaly_perception.training import TrainingError
    import dataclasses
    with pytest.raises(TrainingError, match='checkpoint.pt.*other options'):
        train_failure_model(tiny_pixel_model, tiny_pixel_data, tmp_path / 'model3',
                            root / 'work', dataclasses.replace(config, lr=1e-3),
                            cache_dir=root / 'cache', show_progress=False)
    module, _ = load_network(root / 'model')
    import onnxruntime as ort
    h, w = manifest['preprocessing']['input_shape']
    images = np.random.default_rng(0).integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = [t.numpy() for t in module(torch.from_numpy(images))]
    sess = ort.InferenceSession(str(root / 'model' / 'model.onnx'),
                                providers=['CPUExecutionProvider'])
    got = sess.run(None, {sess.get_inputs()[0].name: images})
    assert [o.name for o in sess.get_outputs()] == ['anomaly', 'classes', 'failure']
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-4, atol=1e-4)
    assert (got[1] == expected[1]).mean() > 0.999
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-4, atol=1e-4)
    assert ((expected[2] >= 0) & (expected[2] <= 1)).all()


def test_train_failure_refuses_a_model_without_erfnet_features(tiny_pixel_data, tmp_path):
    from anomaly_perception.branches.pixel.train_failure import train_failure_model
    from anomaly_perception.training import TrainingError
    with pytest.raises(TrainingError, match='no_such_model'):
        train_failure_model(tmp_path / 'no_such_model', tiny_pixel_data, tmp_path / 'm',
                            tmp_path / 'w')
    from pathlib import Path
    frame = Path(__file__).resolve().parents[1] / 'models' / 'frame_rnvp_oe'
    shutil.copytree(frame, tmp_path / 'frame')
    with pytest.raises(TrainingError, match=r"'frame'.*pixel"):
        train_failure_model(tmp_path / 'frame', tiny_pixel_data, tmp_path / 'm', tmp_path / 'w')


def test_train_failure_refuses_a_class_count_mismatch(tiny_pixel_data, tiny_pixel_model,
                                                      tmp_path):
    from anomaly_perception.branches.pixel.train_failure import train_failure_model
    from anomaly_perception.training import TrainingError
    import json
    data = tmp_path / 'data'
    shutil.copytree(tiny_pixel_data, data)
    manifest = json.loads((data / 'manifest.json').read_text())
    manifest['semantic_classes'] = list(manifest['semantic_classes']) + ['stairs']
    (data / 'manifest.json').write_text(json.dumps(manifest))
    with pytest.raises(TrainingError, match='stairs'):
        train_failure_model(tiny_pixel_model, data, tmp_path / 'm', tmp_path / 'w')


def test_experiment_failure_tables(tiny_pixel_data, tiny_pixel_model, tiny_failure_model,
                                   tmp_path):
    from anomaly_perception.branches.pixel.failure_experiments import format_failure_report
    from anomaly_perception.branches.pixel.failure_experiments import run_failure_experiment
    from anomaly_perception.branches.pixel.train import load_pixel_split
    from anomaly_perception.data.hazards import HazardsDataset
    from anomaly_perception.data.synthetic.catalog import GLOBAL_TYPES
    from anomaly_perception.metrics.segmentation import FailureDetectionAccumulator
    from anomaly_perception.runtime.network import load_network
    root = tiny_failure_model
    report = run_failure_experiment(tiny_pixel_model, {'full': root / 'model'}, tiny_pixel_data,
                                    tmp_path / 'x', every=2, mc_samples=2, show_progress=False)
    written = {p.name for p in (tmp_path / 'x').iterdir()}
    assert written == {'failure.json', 'failure.md', 'risk_coverage.png'}
    methods = report['methods']
    assert set(methods) == {'msp', 'maxlogit', 'entropy', 'mc_dropout', 'full', 'msp on full'}
    for name, m in methods.items():
        for key in ('ap_err', 'ap_suc', 'auroc', 'fpr95'):
            assert 0.0 <= m[key] <= 1.0, (name, key)
        assert len(m['risk_coverage']) == 10
    assert methods['mc_dropout']['ap_err'] != methods['msp']['ap_err']
    # The MSP row by hand: errors of the stage-1 segmenter, anomalies always errors.
    module, man = load_network(tiny_pixel_model)
    shape = tuple(man['preprocessing']['input_shape'])
    part = load_pixel_split(HazardsDataset(tiny_pixel_data), 'test_set', shape, every=2,
                            exclude_types=GLOBAL_TYPES)
    assert report['frames'] == len(part.images) and part.anomaly.any()
    acc = FailureDetectionAccumulator()
    with torch.no_grad():
        x = torch.from_numpy(part.images).permute(0, 3, 1, 2).float() / 255.0
        logits = module.network(x)
    prob = logits.softmax(1)
    acc.update((1 - prob.max(1).values).numpy(), logits.argmax(1).numpy(),
               np.where(part.anomaly, 254, part.labels))
    assert methods['msp']['ap_err'] == pytest.approx(acc.results()['ap_err'], abs=1e-9)
    assert methods['msp']['n_errors'] >= int(part.anomaly.sum())
    text = format_failure_report(report)
    assert '**Table III**' in text and '**Table IV**' in text and '| full |' in text
    # A model with a head as --pixel-model: the baselines judge its own (joint) segmenter,
    # and its head is the row 'full' with the same numbers as above.
    joint = run_failure_experiment(root / 'model', {}, tiny_pixel_data, tmp_path / 'y',
                                   every=2, mc_samples=2, show_progress=False)
    assert set(joint['methods']) == {'msp', 'maxlogit', 'entropy', 'mc_dropout', 'full'}
    assert joint['segmenter'] == 'joint (full)'
    assert joint['methods']['full']['ap_err'] == pytest.approx(methods['full']['ap_err'])
    assert joint['methods']['msp']['ap_err'] == pytest.approx(
        methods['msp on full']['ap_err'])
    assert joint['miou']['stage-1'] == pytest.approx(report['miou']['full'])


def test_pixel_models_with_and_without_a_head_initialise_other_branches(
        tiny_pixel_model, tiny_failure_model):
    from anomaly_perception.runtime.network import load_network
    from anomaly_perception.training import load_erfnet_encoder
    from anomaly_perception.training import TrainingError
    joint = load_network(tiny_failure_model / 'model')[0].segmenter.network.encoder
    for model, expected in ((tiny_failure_model / 'model', joint),
                            (tiny_pixel_model, load_network(tiny_pixel_model)[0].network.encoder)):
        got = load_erfnet_encoder(model).state_dict()
        assert got.keys() == expected.state_dict().keys()
        for k, v in expected.state_dict().items():
            assert torch.equal(got[k], v), k
    from pathlib import Path
    frame = Path(__file__).resolve().parents[1] / 'models' / 'frame_rnvp_oe'
    with pytest.raises(TrainingError, match=r'frame_rnvp_oe.*not an ERFNet'):
        load_erfnet_encoder(frame)


def test_failure_map_from_node_replay_and_score_agree(tiny_failure_model, patrol_bag_5s,
                                                      ros_context, tmp_path):
    """The pixel node publishes ~/failure_map; replay writes and scores it; score saves it."""
    from anomaly_perception.branches.registry import get_branches
    from anomaly_perception.cli import main
    from anomaly_perception.io.bags import BagReader
    from anomaly_perception.io.images import image_to_numpy
    from anomaly_perception.io.images import numpy_to_image_fields
    from anomaly_perception.nodes.pixel_anomaly_node import PixelAnomalyNode
    from anomaly_perception.nodes.rclpy_messages import RclpyMessageFactory
    from anomaly_perception.replay.engine import replay
    from conftest import spin_until
    import cv2
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    model = tiny_failure_model / 'model'
    report = replay(patrol_bag_5s, tmp_path / 'r', get_branches('pixel'),
                    model_dirs={'pixel': model}, backend='onnxruntime', show_progress=False)
    pixel = report['branches']['pixel']
    fail = pixel['failure']
    assert fail['label_topic'] == '/robomaster/labels/semantic'
    assert fail['frames'] == pixel['pixels']['frames'] > 0
    for key in ('ap_err', 'ap_suc', 'auroc', 'fpr95'):
        assert 0.0 <= fail[key] <= 1.0, key
    assert fail['n_errors'] > 0 and fail['n_correct'] > 0
    topic = pixel['output_topics']['failure_map']
    with BagReader(tmp_path / 'r' / 'outputs') as out:
        maps = [m for _, _, m in out.messages([topic])]
    assert len(maps) == report['frames_scored']
    with BagReader(patrol_bag_5s) as bag:
        first = next(iter(bag.read_images()))
    assert maps[0].header.stamp == first.header.stamp and maps[0].encoding == '32FC1'
    replayed = image_to_numpy(maps[0])
    assert replayed.shape == first.image.shape[:2]
    finite = np.isfinite(replayed)
    assert finite.any() and ((replayed[finite] >= 0) & (replayed[finite] <= 1)).all()

    node = PixelAnomalyNode(context=ros_context, parameter_overrides=[
        Parameter('model_dir', value=str(model)), Parameter('backend', value='onnxruntime'),
        Parameter('qos_reliability', value='reliable')])
    helper = rclpy.create_node('failure_map_test_helper', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(helper)
    f = RclpyMessageFactory()
    got = []
    try:
        assert node.autostart()
        helper.create_subscription(f._cls('sensor_msgs/msg/Image'),
                                   '/pixel_anomaly/failure_map', got.append, 10)
        pub = helper.create_publisher(f._cls('sensor_msgs/msg/Image'), '/image', 10)
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 10)
        image = first.image     # RGB
        stamp_ns = first.header.stamp.sec * 1_000_000_000 + first.header.stamp.nanosec
        pub.publish(f.new('sensor_msgs/msg/Image',
                          header=f.header(stamp_ns, first.header.frame_id),
                          **numpy_to_image_fields(image, 'rgb8')))
        assert spin_until(executor, lambda: got, 30)
    finally:
        node.close()
        helper.destroy_node()
        executor.shutdown()
    msg = got[0]
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == \
        (first.header.stamp.sec, first.header.stamp.nanosec)
    assert msg.header.frame_id == first.header.frame_id and msg.encoding == '32FC1'
    live = image_to_numpy(msg)
    # The node (one frame) and replay (batches) run the same pipeline: equal to rounding.
    np.testing.assert_allclose(live, replayed, rtol=1e-5, atol=1e-6)
    cv2.imwrite(str(tmp_path / 'same.png'), np.ascontiguousarray(image[..., ::-1]))
    assert main(['score', '--branch', 'pixel', '--model', str(model), '--backend',
                 'onnxruntime', str(tmp_path / 'same.png'), '--out', str(tmp_path / 's')]) == 0
    np.testing.assert_array_equal(live, np.load(tmp_path / 's' / 'same.failure.npy'))


def test_cli_refuses_bad_failure_options(tmp_path, capsys):
    from anomaly_perception.cli import main
    assert main(['experiment', 'failure', '--pixel-model', 'm', '--failure-model', 'full',
                 '--data', 'd', '--out', str(tmp_path)]) == 1
    assert "--failure-model 'full': expected NAME=DIR" in capsys.readouterr().err
    assert main(['train', 'failure', '--pixel-model', 'm', '--data', 'd', '--out',
                 str(tmp_path / 'o'), '--ablation', 'w7']) == 1
    assert 'unknown ablation' in capsys.readouterr().err
    assert main(['train', 'failure', '--pixel-model', 'm', '--data', 'd', '--out',
                 str(tmp_path / 'o'), '--resnet18-weights', str(tmp_path / 'none.pth')]) == 1
    assert 'none.pth' in capsys.readouterr().err
    (tmp_path / 'r18.pth').write_bytes(b'')
    assert main(['train', 'failure', '--pixel-model', 'm', '--data', 'd', '--out',
                 str(tmp_path / 'o'), '--resnet18-weights', str(tmp_path / 'r18.pth')]) == 1
    assert '--resnet-width 64' in capsys.readouterr().err
